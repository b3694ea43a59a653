"""Inference from several threads while the weights change.

The contract (README, "Serving"): inference on one model is safe from any
number of threads, and each call computes with one consistent set of
weights, the one before or the one after any concurrent update, never a
mix. Each test alternates two known weight sets A and B in one thread while
others infer, and checks that every output equals the output under A or
the output under B exactly (the kernels are deterministic), and that the
model serves A's numbers once the updates end on A. The loops are bounded
in count, so a regression fails instead of hanging.
"""
import threading

import numpy as np
import pytest

import fastlstm
from fastlstm.network import Network
from fastlstm.spec import NetworkSpec

N_SWAPS = 60


def _run(infer, swap_to, n_readers=2):
    """Readers call infer() until the writer has made N_SWAPS alternating updates
    (ending on A); returns every output the readers saw."""
    seen, errors = [], []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                seen.append(infer())
        except BaseException as e:          # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(n_readers)]
    for t in threads:
        t.start()
    try:
        for i in range(N_SWAPS):
            swap_to("B" if i % 2 == 0 else "A")
    finally:
        done.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    return seen


def _which(out, out_a, out_b):
    if np.array_equal(out, out_a):
        return "A"
    if np.array_equal(out, out_b):
        return "B"
    return "mixed"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_layer_calls_see_old_or_new_weights(cell):
    cls = fastlstm.GRU if cell == "gru" else fastlstm.LSTM
    layer = cls(256, 256, num_layers=2, random_state=0, n_threads=1)
    x = np.random.default_rng(0).standard_normal((4, 6, 256)).astype(np.float32)
    sd_a = layer.state_dict()
    sd_b = {k: v[::-1].copy() * 0.9 for k, v in sd_a.items()}
    out_a = layer(x)[0]
    layer.load_state_dict(sd_b)
    out_b = layer(x)[0]
    layer.load_state_dict(sd_a)
    assert not np.allclose(out_a, out_b)

    seen = _run(lambda: layer(x)[0], lambda which: layer.load_state_dict(sd_a if which == "A"
                                                                          else sd_b))
    kinds = [_which(o, out_a, out_b) for o in seen]
    assert "mixed" not in kinds, f"{kinds.count('mixed')} of {len(kinds)} calls mixed weight sets"
    # after the last update (to A) the layer serves A, not a pack made during an update
    np.testing.assert_array_equal(layer(x)[0], out_a)


def test_network_predict_sees_old_or_new_weights():
    spec = NetworkSpec(16, (64, 64), 3, bidirectional=True)
    net = Network(spec, seed=0, n_threads=1)
    X = np.random.default_rng(1).standard_normal((8, 10, 16)).astype(np.float32)
    p_a = net.params.copy()
    p_b = np.random.default_rng(2).uniform(-0.3, 0.3, p_a.size).astype(np.float32)
    out_a = net.predict_raw(X)

    def swap_to(which):
        with net.updating():
            net.params[...] = p_a if which == "A" else p_b

    swap_to("B")
    out_b = net.predict_raw(X)
    swap_to("A")
    seen = _run(lambda: net.predict_raw(X), swap_to)
    kinds = [_which(o, out_a, out_b) for o in seen]
    assert "mixed" not in kinds, f"{kinds.count('mixed')} of {len(kinds)} calls mixed weight sets"
    np.testing.assert_array_equal(net.predict_raw(X), out_a)


def test_predict_during_partial_fit_is_consistent():
    """partial_fit updates in place under the same lock: a concurrent predict gets
    the output of the weights after some whole optimizer step, finite and shaped."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 8, 3)), rng.standard_normal(64)
    reg = fastlstm.LSTMRegressor(hidden_sizes=(16,), batch_size=8, random_state=0, n_threads=1)
    reg.partial_fit(X, y)
    outs = _run(lambda: reg.predict(X), lambda which: reg.partial_fit(X, y))
    assert outs and all(o.shape == (64,) and np.isfinite(o).all() for o in outs)
    # with no writer left, two predicts agree exactly
    np.testing.assert_array_equal(reg.predict(X), reg.predict(X))


@pytest.mark.parametrize("exc", [MemoryError, KeyboardInterrupt])
def test_workspace_lock_released_when_acquire_fails(monkeypatch, exc):
    """An allocation that fails (or is interrupted) inside acquire must not leave
    the workspace locked; otherwise every later call allocates its own."""
    from fastlstm import layers

    ws = layers._Workspace()

    def failing_empty(*args, **kwargs):
        raise exc()

    monkeypatch.setattr(layers.np, "empty", failing_empty)
    with pytest.raises(exc):
        ws.acquire(1 << 20)
    monkeypatch.undo()
    buf = ws.acquire(1 << 20)
    assert buf is not None and buf.size == 1 << 20, "the workspace stayed locked"
    ws.release(buf)
