"""The cell table (fastlstm.spec.CELLS) is the Python side's one definition of
the cells: every row round-trips through the spec, the layer, the network,
an estimator, a model file and the peers that have the cell; and a new row is
all a new cell needs in Python (the kernels and the numpy reference aside)."""
import dataclasses

import numpy as np
import pytest

import fastlstm
from fastlstm import _kernels, spec
from fastlstm.layers import layer_class
from fastlstm.network import Network
from fastlstm.spec import CELLS, NetworkSpec

import helpers

I, H, B, T = 3, 5, 4, 6
# float64 kernels against the float64 reference and PyTorch: agreement to
# rounding over a few steps (measured below 1e-14)
TOL64 = 1e-12


def _layer(cell, num_layers=2, bidirectional=True, seed=0):
    return layer_class(cell)(I, H, num_layers=num_layers, bidirectional=bidirectional, cell=cell,
                             dtype="float64", random_state=seed, n_threads=1)


def _infer(layer, x):
    y, state = layer(x)
    return (y,) + (state if isinstance(state, tuple) else (state,))


@pytest.mark.parametrize("cell", list(CELLS))
def test_row_matches_the_c_kernels(cell):
    """The table's C code and gate count are what the kernels implement: a layer
    packs weights of G*H rows, and the training cache has one column block per
    gate of the kernels' layout."""
    c = CELLS[cell]
    w_ih = np.zeros((c.gates * H, I))
    need = _kernels.packed_len(c.code, I, H, True)
    assert need > 0
    # a wrong gate count is refused by the C argument checks (not read past)
    with pytest.raises((ValueError, TypeError)):
        _kernels.rnn_pack(c.code, 1, 1, 1, np.zeros(((c.gates + 1) * H, I)),
                          np.zeros(((c.gates + 1) * H, H)), np.zeros((c.gates + 1) * H),
                          np.zeros((c.gates + 1) * H), np.zeros((3, H)), np.empty(need))
    w = [w_ih, np.zeros((c.gates * H, H)), np.zeros(c.gates * H), np.zeros(c.gates * H),
         np.zeros((3, H)) if c.extra else None]
    _kernels.rnn_pack(c.code, 1, 1, 1, *w, np.empty(need))


@pytest.mark.parametrize("cell", list(CELLS))
def test_spec_layer_and_reference_agree(cell):
    layer = _layer(cell)
    shapes = spec.layer_param_shapes(cell, I, (H, H), True)
    assert [(n, tuple(s)) for n, s in shapes] == [(n, tuple(s)) for n, s in layer.param_shapes]
    assert layer.flat_params.size == spec.param_count(shapes)
    x = np.random.default_rng(1).standard_normal((B, T, I))
    got = _infer(layer, x)
    y, h_n, c_n, _ = fastlstm._reference.stack_forward(layer.state_dict(), x, num_layers=2,
                                                        bidirectional=True, cell=cell)
    want = (y, h_n) + ((c_n,) if CELLS[cell].cell_state else ())
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=TOL64, atol=TOL64)


@pytest.mark.parametrize("cell", [c for c in CELLS if "torch" in CELLS[c].peers])
def test_torch_peer(cell):
    torch = pytest.importorskip("torch")
    layer = _layer(cell)
    mod = helpers.torch_module_from_params(layer.state_dict(), cell, I, H, 2, True)
    x = np.random.default_rng(2).standard_normal((B, T, I))
    with torch.no_grad():
        y, state = mod(torch.from_numpy(x))
    want = (y,) + (state if isinstance(state, tuple) else (state,))
    for a, b in zip(_infer(layer, x), want):
        np.testing.assert_allclose(a, b.numpy(), rtol=TOL64, atol=TOL64)


@pytest.mark.parametrize("cell", [c for c in CELLS if "onnx" in CELLS[c].peers])
def test_onnx_peer(cell):
    pytest.importorskip("onnxruntime")
    case = helpers.make_case(cell, B, T, I, H, bidirectional=True, seed=3, dtype=np.float32)
    layer = helpers.make_layer(cell, I, H, bidirectional=True, dtype="float32",
                               params=case["params"])
    helpers.compare_with_onnx(helpers.kernel_infer(layer, case["x"]), case, cell, True)


@pytest.mark.parametrize("cell", list(CELLS))
def test_spec_network_estimator_and_file(cell, tmp_path):
    s = NetworkSpec(I, (H, 4), 2, cell=cell, bidirectional=True)
    assert NetworkSpec.from_json(s.to_json()) == s
    net = Network(s, seed=0, n_threads=1)
    assert net.params.size == s.param_count()
    assert isinstance(net.recurrent, layer_class(cell))
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((16, T, I)), rng.standard_normal(16)
    est = fastlstm.LSTMRegressor(hidden_sizes=(H,), cell=cell, epochs=2, batch_size=8,
                                 random_state=0, n_threads=1).fit(X, y)
    path = est.save(tmp_path / f"{cell}.npz")
    np.testing.assert_array_equal(fastlstm.load(path).predict(X), est.predict(X))


def test_a_new_row_is_all_a_new_cell_needs_in_python(monkeypatch, tmp_path):
    """A row added to the table (here a second name for the lstm kernels) is at
    once a valid cell for the layers, the spec, the network, the estimators and
    model files, with no other Python change; it computes what its kernels do."""
    monkeypatch.setitem(CELLS, "lstm_twin", dataclasses.replace(CELLS["lstm"], name="lstm_twin"))
    twin, plain = _layer("lstm_twin", seed=5), _layer("lstm", seed=5)
    assert twin.param_names == plain.param_names
    x = np.random.default_rng(6).standard_normal((B, T, I))
    for a, b in zip(_infer(twin, x), _infer(plain, x)):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((16, T, I)), rng.standard_normal(16)
    kw = dict(hidden_sizes=(H, 3), bidirectional=True, epochs=2, batch_size=8, random_state=0,
              n_threads=1)
    est = fastlstm.LSTMRegressor(cell="lstm_twin", **kw).fit(X, y)
    ref = fastlstm.LSTMRegressor(cell="lstm", **kw).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))
    loaded = fastlstm.load(est.save(tmp_path / "twin.npz"))
    assert loaded.cell == "lstm_twin"
    np.testing.assert_array_equal(loaded.predict(X), ref.predict(X))
