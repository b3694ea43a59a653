"""callbacks=: called after every epoch, can stop training; progress goes to
the "fastlstm" logger; Checkpoint saves a model file from which a warm-started
fit continues exactly as the uninterrupted one; warm_start continues the
optimizer."""
import logging

import numpy as np
import pytest

import fastlstm
from fastlstm.callbacks import Checkpoint

RNG = np.random.default_rng(0)
X = RNG.standard_normal((24, 5, 2))
Y = X[:, :, 0].sum(axis=1)
KW = dict(hidden_sizes=(6,), batch_size=8, dropout=0.2, learning_rate=0.01, random_state=2,
          n_threads=1, n_iter_no_change=100)


def test_callbacks_see_every_epoch_and_can_stop():
    seen = []

    def record(est, logs):
        seen.append((logs["epoch"], logs["loss"], logs["val_loss"], est.n_iter_))

    def stop_at_3(est, logs):
        return logs["epoch"] == 3
    est = fastlstm.LSTMRegressor(epochs=10, callbacks=[record, stop_at_3], **KW).fit(X, Y)
    assert est.n_iter_ == 3
    assert [s[0] for s in seen] == [1, 2, 3] and [s[3] for s in seen] == [1, 2, 3]
    assert [s[1] for s in seen] == est.loss_curve_ and seen[0][2] is None
    es = fastlstm.LSTMRegressor(epochs=2, early_stopping=True, callbacks=[record], **KW)
    es.fit(X, Y)
    assert seen[-1][2] == es.validation_loss_curve_[-1]


def test_progress_goes_to_the_logger_and_with_verbose_to_stdout(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="fastlstm"):
        fastlstm.LSTMRegressor(epochs=2, **KW).fit(X, Y)
    lines = [r.getMessage() for r in caplog.records if r.name == "fastlstm"]
    assert len(lines) == 2 and lines[0].startswith("LSTMRegressor epoch 1/2: loss ")
    assert capsys.readouterr().out == ""
    fastlstm.LSTMRegressor(epochs=2, verbose=1, **KW).fit(X, Y)
    assert capsys.readouterr().out.count("LSTMRegressor epoch") == 2


def test_warm_start_continues_the_optimizer():
    whole = fastlstm.LSTMRegressor(epochs=6, **KW).fit(X, Y)
    halves = fastlstm.LSTMRegressor(epochs=3, **KW).fit(X, Y)
    halves.set_params(warm_start=True).fit(X, Y)
    np.testing.assert_array_equal(halves._network.params, whole._network.params)
    assert halves.loss_curve_ == whole.loss_curve_


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_checkpoint_resume_equals_the_uninterrupted_fit(optimizer, tmp_path):
    path = tmp_path / "ckpt.npz"
    whole = fastlstm.LSTMRegressor(epochs=6, optimizer=optimizer, **KW).fit(X, Y)

    def interrupt_at_4(est, logs):
        if logs["epoch"] == 4:
            raise KeyboardInterrupt
    est = fastlstm.LSTMRegressor(epochs=6, optimizer=optimizer,
                                 callbacks=[Checkpoint(path, every=2), interrupt_at_4], **KW)
    with pytest.warns(RuntimeWarning, match="interrupted"), pytest.raises(KeyboardInterrupt):
        est.fit(X, Y)
    resumed = fastlstm.load(path)
    assert resumed.n_iter_ == 4
    resumed.set_params(warm_start=True, epochs=2).fit(X, Y)
    np.testing.assert_array_equal(resumed._network.params, whole._network.params)
    assert resumed.loss_curve_ == whole.loss_curve_


def test_bad_callbacks_are_refused():
    with pytest.raises(TypeError, match="callbacks"):
        fastlstm.LSTMRegressor(epochs=1, callbacks=[1], **KW).fit(X, Y)
    with pytest.raises(ValueError, match="every"):
        Checkpoint("x.npz", every=0)
