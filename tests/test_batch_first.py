"""batch_first=False: the layers take and return time-major arrays (T, B, .), as
PyTorch's default nn.LSTM does, computing bitwise what the batch-first layer
computes on the transposed arrays; export and streaming follow the layout."""
import numpy as np
import pytest

from fastlstm.layers import layer_class

import helpers

B, T, I, H = 3, 6, 4, 5


def _pair(cell, **kw):
    kw = dict(num_layers=2, bidirectional=True, cell=cell, dtype="float64", random_state=0,
              n_threads=1, **kw)
    bf = layer_class(cell)(I, H, **kw)
    tm = layer_class(cell)(I, H, batch_first=False, **kw)
    tm.load_state_dict(bf.state_dict())
    return bf, tm


def _flat(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cell", helpers.CELLS)
def test_time_major_is_the_transposed_batch_first(cell):
    bf, tm = _pair(cell)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I))
    lengths = np.array([6, 2, 4])
    y, s = bf(x, lengths=lengths)
    y_tm, s_tm = tm(np.ascontiguousarray(x.transpose(1, 0, 2)), lengths=lengths)
    assert y_tm.shape == (T, B, 2 * H)
    np.testing.assert_array_equal(y_tm, y.transpose(1, 0, 2))
    for a, b in zip(_flat(s), _flat(s_tm)):
        np.testing.assert_array_equal(a, b)
    dy = rng.standard_normal(y.shape)
    y, s, cache = bf.forward(x, lengths=lengths)
    g = bf.backward(cache, dy)
    y, s, cache = tm.forward(x.transpose(1, 0, 2), lengths=lengths)
    g_tm = tm.backward(cache, dy.transpose(1, 0, 2))
    np.testing.assert_array_equal(g_tm["x"], g["x"].transpose(1, 0, 2))
    for name in bf.param_names + ["h0"]:
        np.testing.assert_array_equal(g_tm[name], g[name])
    with pytest.raises(ValueError, match=r"dy must have shape \(6, 3, 10\)"):
        tm.backward(tm.forward(x.transpose(1, 0, 2))[2], dy)


def test_time_major_matches_pytorch_default_layout():
    torch = pytest.importorskip("torch")
    bf, tm = _pair("lstm")
    mod = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in tm.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((T, B, I))
    with torch.no_grad():
        want, (h, c) = mod(torch.from_numpy(x))
    y, (h_n, c_n) = tm(x)
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n, h.numpy(), rtol=1e-12, atol=1e-12)
    assert repr(tm).endswith("batch_first=False)")
    with pytest.raises(ValueError, match=r"\(time, batch, 4\)"):
        tm(np.zeros((T, B, 3)))


def test_time_major_streams_and_exports():
    layer = layer_class("gru")(I, H, batch_first=False, dtype="float32", random_state=0,
                               n_threads=1)
    x = np.random.default_rng(3).standard_normal((T, B, I)).astype(np.float32)
    y, _ = layer(x)
    state = layer.init_state(B)
    steps = np.stack([layer.step(x[t], state)[0] for t in range(T)])
    np.testing.assert_array_equal(steps, y)
    ort = pytest.importorskip("onnxruntime")
    model = layer.to_onnx()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["y"], {"x": x})[0]
    np.testing.assert_allclose(got, y, rtol=helpers.ONNX_RTOL, atol=helpers.ONNX_ATOL)
