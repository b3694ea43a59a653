"""A fit that diverges, is interrupted or runs concurrently never leaves a
half-fitted estimator.

The contract: a failed epoch leaves nothing of itself behind. The estimator
keeps the weights (and optimizer state) from the end of its last whole
epoch; a new model that finished no epoch is dropped and the estimator is
what it was before the fit (unfitted, or its previous model). The
exception (or, for Ctrl-C, a RuntimeWarning) says which.

Failures are injected at a chosen batch by wrapping the loss, so each test
knows exactly which weights must survive and compares them bitwise with a
run that stopped there on purpose.
"""
import threading

import numpy as np
import pytest

import fastlstm
from fastlstm import _training
from fastlstm.exceptions import DivergenceError, NotFittedError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 6, 3))
Y = X.sum(axis=(1, 2))
KW = dict(hidden_sizes=(8,), batch_size=10, random_state=0, n_threads=1)   # 4 batches an epoch


def _fail_at(monkeypatch, call, exc):
    """Make the loss of the call-th batch (1-based) non-finite, or raise exc there."""
    real = _training.loss_and_grad
    count = [0]

    def loss_and_grad(*args, **kwargs):
        count[0] += 1
        loss, dout = real(*args, **kwargs)
        if count[0] == call:
            if exc is not None:
                raise exc()
            return float("nan"), dout
        return loss, dout

    monkeypatch.setattr(_training, "loss_and_grad", loss_and_grad)


def _reference(epochs):
    return fastlstm.LSTMRegressor(epochs=epochs, **KW).fit(X, Y)


def test_divergence_keeps_last_whole_epoch(monkeypatch, tmp_path):
    ref = _reference(2)
    _fail_at(monkeypatch, 2 * 4 + 3, None)          # epoch 3, batch 3
    reg = fastlstm.LSTMRegressor(epochs=5, **KW)
    with pytest.raises(DivergenceError, match="keeps the weights from the end of epoch 2"):
        reg.fit(X, Y)
    monkeypatch.undo()
    assert reg.n_iter_ == 2 and len(reg.loss_curve_) == 2
    np.testing.assert_array_equal(reg._network.params, ref._network.params)
    np.testing.assert_array_equal(reg.predict(X), ref.predict(X))
    # a finite best_loss_: the model saves and loads
    path = reg.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(fastlstm.load(path).predict(X), ref.predict(X))


def test_divergence_in_first_epoch_leaves_estimator_unfitted(monkeypatch):
    _fail_at(monkeypatch, 2, None)
    reg = fastlstm.LSTMRegressor(epochs=5, **KW)
    with pytest.raises(DivergenceError, match="as it was before this fit \\(unfitted\\)"):
        reg.fit(X, Y)
    with pytest.raises(NotFittedError):
        reg.predict(X)
    assert not [k for k in vars(reg) if k.endswith("_") and not k.startswith("__")]


def test_failed_refit_keeps_previous_model(monkeypatch):
    reg = fastlstm.LSTMRegressor(epochs=2, **KW).fit(X, Y)
    before = reg.predict(X)
    _fail_at(monkeypatch, 1, None)
    with pytest.raises(DivergenceError, match="its previous model"):
        reg.fit(X * 2, Y)
    np.testing.assert_array_equal(reg.predict(X), before)
    assert reg.n_iter_ == 2


def test_diverged_partial_fit_restores_weights_and_optimizer(monkeypatch):
    reg = fastlstm.LSTMRegressor(**KW).partial_fit(X, Y)
    twin = fastlstm.LSTMRegressor(**KW).partial_fit(X, Y)
    _fail_at(monkeypatch, 3, None)
    with pytest.raises(DivergenceError, match="end of epoch 1"):
        reg.partial_fit(X, Y)
    monkeypatch.undo()
    np.testing.assert_array_equal(reg._network.params, twin._network.params)
    # the optimizer state came back too: the next steps match an uninterrupted twin's
    # (the shuffle stream moved on in the failed call, so both skip one epoch's draw)
    twin._shuffle_rng.permutation(len(X))
    reg.partial_fit(X, Y)
    twin.partial_fit(X, Y)
    np.testing.assert_array_equal(reg._network.params, twin._network.params)


def test_keyboard_interrupt_keeps_last_whole_epoch(monkeypatch):
    ref = _reference(1)
    _fail_at(monkeypatch, 4 + 2, KeyboardInterrupt)      # epoch 2, batch 2
    reg = fastlstm.LSTMRegressor(epochs=5, **KW)
    with pytest.warns(RuntimeWarning, match="interrupted.*end of epoch 1"):
        with pytest.raises(KeyboardInterrupt):
            reg.fit(X, Y)
    np.testing.assert_array_equal(reg.predict(X), ref.predict(X))


def test_keyboard_interrupt_in_first_epoch_leaves_unfitted(monkeypatch):
    _fail_at(monkeypatch, 1, KeyboardInterrupt)
    reg = fastlstm.LSTMRegressor(epochs=5, **KW)
    with pytest.warns(RuntimeWarning, match="unfitted"):
        with pytest.raises(KeyboardInterrupt):
            reg.fit(X, Y)
    with pytest.raises(NotFittedError):
        reg.predict(X)


def test_real_divergence_leaves_no_nan_model():
    """Without injection: targets too large for float32 make the loss infinite."""
    reg = fastlstm.LSTMRegressor(epochs=3, **KW)
    with pytest.raises(DivergenceError):
        reg.fit(X, Y * 1e30)
    with pytest.raises(NotFittedError):
        reg.predict(X)


def test_predict_during_a_new_fit_is_a_clear_error(monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real = _training.loss_and_grad

    def slow_loss(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    reg = fastlstm.LSTMRegressor(epochs=1, **KW)
    monkeypatch.setattr(_training, "loss_and_grad", slow_loss)
    worker = threading.Thread(target=reg.fit, args=(X, Y))
    worker.start()
    try:
        assert entered.wait(30)
        with pytest.raises(RuntimeError, match="being fitted in another thread"):
            reg.predict(X)
        with pytest.raises(RuntimeError, match="already running"):
            reg.fit(X, Y)
    finally:
        release.set()
        worker.join(60)
    assert reg.predict(X).shape == (40,)


def test_forecaster_divergence_in_first_epoch_leaves_it_unfitted(monkeypatch):
    """LSTMForecaster.fit has its own data path; the same guard wraps it."""
    _fail_at(monkeypatch, 1, None)
    fc = fastlstm.LSTMForecaster(window=4, horizon=2, epochs=3, random_state=0)
    with pytest.raises(DivergenceError, match="unfitted"):
        fc.fit(np.sin(np.arange(60.0)))
    with pytest.raises(NotFittedError):
        fc.predict()
