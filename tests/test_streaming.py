"""Streaming: T calls of step() give what one call on the T-step sequences gives
(bitwise: the kernels compute a step the same way whatever the sequence length),
for layers of every cell and for the estimators; streams can be stepped in any
subset and reset one by one."""
import numpy as np
import pytest

import fastlstm
from fastlstm.layers import layer_class

import helpers

B, T, I, H = 4, 7, 3, 5


def _layer(cell, dtype, num_layers=2, bidirectional=False):
    return layer_class(cell)(I, H, num_layers=num_layers, bidirectional=bidirectional, cell=cell,
                             dtype=dtype, random_state=0, n_threads=1)


def _x(dtype, seed=0, shape=(B, T, I)):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", helpers.CELLS)
def test_steps_equal_the_whole_sequence(cell, dtype):
    layer = _layer(cell, dtype)
    x = _x(dtype)
    y, state = layer(x)
    s = layer.init_state(B)
    steps = np.stack([layer.step(x[:, t], s)[0] for t in range(T)], axis=1)
    np.testing.assert_array_equal(steps, y)
    h = state[0] if isinstance(state, tuple) else state
    np.testing.assert_array_equal(np.stack(s.h), h)
    if isinstance(state, tuple):
        np.testing.assert_array_equal(np.stack(s.c), state[1])


def test_streams_step_in_any_subset_and_reset_one_by_one():
    layer = _layer("lstm", "float64")
    x = _x("float64", 1)
    want = layer(x)[0]
    s = layer.init_state(B)
    got = np.zeros_like(want)
    pos = np.zeros(B, int)
    # streams 0 and 2 run ahead, 1 and 3 catch up later, in changing groups
    for group in ([0, 2], [0, 2], [2], [3, 1, 0], [1], [1, 3], [0, 1, 2, 3], [3, 2, 1, 0],
                  [0, 1, 2, 3], [1, 3], [3], [2, 0], [0, 1, 2, 3], [1, 3]):
        group = [g for g in group if pos[g] < T]
        if not group:
            continue
        y, _ = layer.step(x[group, pos[group]], s, streams=group)
        got[group, pos[group]] = y
        pos[group] += 1
    assert (pos == T).all()
    np.testing.assert_array_equal(got, want)
    # a reset stream starts a new sequence; the others keep their state
    before = s.copy()
    s.reset([1])
    y1, _ = layer.step(x[:, 0], s)
    fresh = layer.init_state(B)
    np.testing.assert_array_equal(y1[1], layer.step(x[:, 0], fresh)[0][1])
    cont = before.copy()
    np.testing.assert_array_equal(y1[[0, 2, 3]], layer.step(x[:, 0], cont)[0][[0, 2, 3]])


def test_bad_streaming_use_is_refused():
    layer = _layer("lstm", "float64")
    with pytest.raises(ValueError, match="bidirectional"):
        _layer("gru", "float64", bidirectional=True).init_state(2)
    s = layer.init_state(2)
    with pytest.raises(ValueError, match="x_t must have shape"):
        layer.step(np.zeros((3, I)), s)
    with pytest.raises(ValueError, match="streams must be indices"):
        layer.step(np.zeros((1, I)), s, streams=[2])
    with pytest.raises(ValueError, match="repeat"):
        layer.step(np.zeros((2, I)), s, streams=[0, 0])
    with pytest.raises(ValueError, match="does not fit"):
        _layer("lstm", "float32").step(np.zeros((2, I), np.float32), s)
    with pytest.raises(TypeError, match="init_state"):
        layer.step(np.zeros((2, I)), (np.zeros((2, 2, H)), np.zeros((2, 2, H))))
    with pytest.raises(ValueError, match="NaN"):
        layer.step(np.full((2, I), np.nan), s)


def test_regressor_steps_equal_predict_on_the_prefixes():
    X = _x("float32", 2, (20, T, I))
    y = X[:, :, 0].sum(axis=1)
    est = fastlstm.LSTMRegressor(hidden_sizes=(6, 4), epochs=2, batch_size=8, random_state=0,
                                 n_threads=1).fit(X, y)
    s = est.init_state(20)
    for t in range(T):
        out, s = est.step(X[:, t], s)
        np.testing.assert_array_equal(out, est.predict(X[:, :t + 1]))


def test_sequence_regressor_steps_follow_predict():
    X = _x("float64", 3, (10, T, I))
    Y = np.cumsum(X[:, :, :2], axis=1)
    est = fastlstm.LSTMRegressor(hidden_sizes=(5,), epochs=2, random_state=0, n_threads=1,
                                 dtype="float64").fit(X, Y)
    s = est.init_state(10)
    steps = np.stack([est.step(X[:, t], s)[0] for t in range(T)], axis=1)
    # the head runs on one step's rows here and on all T*n at once in predict:
    # the same dot products, possibly summed in another order by the BLAS
    np.testing.assert_allclose(steps, est.predict(X), rtol=1e-12, atol=1e-14)


def test_classifier_with_embedding_streams_token_ids():
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 12, (30, T))
    labels = ids[:, :3].sum(axis=1) % 3
    est = fastlstm.LSTMClassifier(hidden_sizes=(6,), embedding_dim=4, cell="gru", epochs=2,
                                  batch_size=10, random_state=0, n_threads=1).fit(ids, labels)
    s = est.init_state(30)
    for t in range(T):
        proba, s = est.step(ids[:, t], s)
        np.testing.assert_array_equal(proba, est.predict_proba(ids[:, :t + 1]))
    with pytest.raises(ValueError, match="padding"):
        est.step(np.zeros(30, int), s)
    assert not hasattr(fastlstm.LSTMForecaster(window=3), "step")
