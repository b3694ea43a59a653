"""Transformers for sequence data, for scikit-learn pipelines.

scikit-learn's scalers refuse 3-D arrays, so a leak-free cross-validation of a
sequence model needed hand-written code. ``SequenceScaler`` standardises each
feature over every real time step of every training sequence and works in a
``Pipeline`` in front of the estimators::

    make_pipeline(SequenceScaler(), LSTMRegressor(...))
"""
import numpy as np

from ._estimator_base import EstimatorBase, split_ragged, store_init_params, to_numeric
from ._validation import Bool, validate_params
from .exceptions import not_fitted_error

__all__ = ["SequenceScaler"]


class SequenceScaler(EstimatorBase):
    """Standardise each feature of sequences: (x - mean_) / scale_.

    X: (n, T, d), (n, T) (one feature), or a list of (T_i, d) / (T_i,) arrays
    of different lengths (then only their real steps count, and a list comes
    back). Statistics are over all time steps of all sequences of ``fit``'s X;
    a constant feature gets scale 1. Padding in a 3-D array counts as data:
    give variable-length sequences as a list.
    """

    _parameter_constraints = {"with_mean": Bool(), "with_std": Bool()}

    def __init__(self, with_mean=True, with_std=True):
        store_init_params(self, locals())

    def __sklearn_is_fitted__(self):
        return hasattr(self, "mean_")

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags, InputTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
                    input_tags=InputTags(two_d_array=True, three_d_array=True))

    def _steps(self, X, name):
        """(rows (n_steps, d) of every real step, a function putting rows back in X's form)."""
        arr, seqs = split_ragged(X)
        if seqs is not None:
            seqs = [to_numeric(np.asarray(s), f"{name}[{i}]") for i, s in enumerate(seqs)]
            flat = [s[:, None] if s.ndim == 1 else s for s in seqs]
            if any(s.ndim != 2 for s in flat) or len({s.shape[1] for s in flat}) != 1:
                raise ValueError(f"SequenceScaler: each sequence of {name} must be (T_i,) or "
                                 "(T_i, d) with the same d")
            rows = np.concatenate(flat, axis=0).astype(np.float64)
            ends = np.cumsum([len(s) for s in flat])[:-1]

            def back(z):
                return [p[:, 0] if s.ndim == 1 else p
                        for p, s in zip(np.split(z, ends), seqs)]
            return rows, back
        arr = to_numeric(np.asarray(arr), name)
        if arr.ndim not in (2, 3) or arr.size == 0:
            raise ValueError(f"SequenceScaler: {name} must be (n, T) or (n, T, d) with data, "
                             f"got shape {arr.shape}")
        shape = arr.shape
        rows = arr.reshape(-1, 1 if arr.ndim == 2 else shape[2]).astype(np.float64)
        return rows, lambda z: z.reshape(shape)

    def fit(self, X, y=None):
        p = validate_params(self, self._parameter_constraints)
        rows, _ = self._steps(X, "X")
        if not np.isfinite(rows).all():
            raise ValueError("SequenceScaler: X contains NaN or infinity")
        self.n_features_in_ = rows.shape[1]
        self.mean_ = rows.mean(axis=0) if p["with_mean"] else np.zeros(rows.shape[1])
        sd = rows.std(axis=0) if p["with_std"] else np.ones(rows.shape[1])
        self.scale_ = np.where(sd > 0, sd, 1.0)
        return self

    def _apply(self, X, forward):
        if not hasattr(self, "mean_"):
            raise not_fitted_error("This SequenceScaler instance is not fitted yet. Call 'fit' "
                                   "with appropriate arguments before using this estimator.")
        rows, back = self._steps(X, "X")
        if rows.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {rows.shape[1]} features per step, but SequenceScaler "
                             f"is expecting {self.n_features_in_}")
        z = (rows - self.mean_) / self.scale_ if forward else rows * self.scale_ + self.mean_
        return back(z)

    def transform(self, X):
        return self._apply(X, True)

    def inverse_transform(self, X):
        return self._apply(X, False)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)
