"""Callbacks for the estimators' ``callbacks=`` parameter.

A callback is any callable ``callback(estimator, logs)``, called after each
epoch with ``logs = {"epoch": n (epochs run so far), "loss": mean training
loss, "val_loss": validation loss or None, "val_score": validation score
(higher is better) or None}``; a true return value stops training after
that epoch.
"""
import os

__all__ = ["Checkpoint"]


class Checkpoint:
    """Save the estimator every ``every`` epochs to ``path`` (a model file, written
    atomically: a crash leaves the previous checkpoint), with the optimizer state
    and random streams by default, so that::

        est = fastlstm.load(path)
        est.set_params(warm_start=True, epochs=remaining).fit(X, y)

    continues training exactly as the interrupted fit would have.
    """

    def __init__(self, path, every=1, include_optimizer=True):
        from ._validation import Bool, Int

        self.path = os.fspath(path)
        self.every = Int(1).check("every", every)
        self.include_optimizer = Bool().check("include_optimizer", include_optimizer)

    def __call__(self, estimator, logs):
        if logs["epoch"] % self.every == 0:
            estimator.save(self.path, include_optimizer=self.include_optimizer)
        return False

    def __repr__(self):
        return f"Checkpoint({self.path!r}, every={self.every})"
