"""fastlstm.export: fitted models out (state dicts, ONNX, PyTorch) and Keras weights in.

* ONNX: every exported graph run in ONNX Runtime against the layer or estimator
  it came from, for every cell of the table ONNX has (``spec.CELLS[c].peers``),
  uni/bidirectional, one and two layers (the estimators' of different widths),
  variable lengths, initial states, the relu / hard_sigmoid activations, the
  embedding (token ids with padding anywhere), and each estimator's outputs.
  Tolerance helpers.ONNX_ATOL / ONNX_RTOL (atol 5e-6 + rtol 1e-5, reasoning
  there): both sides float32 on the same inputs, different vectorised
  sigmoid/tanh and summation orders. Forecasts are compared in the series'
  units, so the absolute part is scaled by scale_ and the horizon (the
  difference model sums the forecast steps).
* PyTorch: ``to_torch`` modules against the layer / estimator: float64 1e-10,
  float32 1e-5 (as tests/test_torch_parity.py, reasoning there).
* state dicts: names, round trip bitwise, errors.
* Keras: the mapping checked without TensorFlow against a hand-computed
  permutation and a numpy implementation of Keras' equations in Keras' own
  layout; against Keras itself where TensorFlow is installed.
"""
import dataclasses
import io
import json
import os
import re
import sys
import threading

import numpy as np
import pytest

import fastlstm
import helpers
from fastlstm import GRU, LSTM, LSTMClassifier, LSTMForecaster, LSTMRegressor, export
from fastlstm.spec import CELLS
from helpers import (ONNX_ACTS, ONNX_ATOL, ONNX_RTOL, assert_close, kernel_infer, make_layer,
                     max_abs_diff, record_error, seed_of)

ONNX_CELLS = [c for c in CELLS if "onnx" in CELLS[c].peers]
TORCH_CELLS = [c for c in CELLS if "torch" in CELLS[c].peers]
KERAS_CELLS = [c for c in CELLS if "keras" in CELLS[c].peers]
NO_TORCH_CELLS = [c for c in CELLS if "torch" not in CELLS[c].peers]
NO_KERAS_CELLS = [c for c in CELLS if "keras" not in CELLS[c].peers]
ACTS = [("tanh", "sigmoid")] + ONNX_ACTS
TORCH_TOL = {"float64": 1e-10, "float32": 1e-5}
FIT = dict(epochs=2, batch_size=8, n_threads=1)
LENGTHS = [5, 2, 1, 4]          # full, short, one step, in between (T = 5)


def _ort(model, feeds):
    pytest.importorskip("onnxruntime")
    return helpers.onnx_session(model).run(None, feeds)


def _pad(seqs, dtype):
    """A list of (T_i, d) arrays -> (B, max T_i, d) zero-padded, lengths int64."""
    lengths = np.array([len(s) for s in seqs], np.int64)
    out = np.zeros((len(seqs), lengths.max(), seqs[0].shape[1]), dtype)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out, lengths


def _token_ids(rng, n, T, vocab):
    """Ids with padding at the end, at the start, inside, and one row of padding only."""
    ids = rng.integers(1, vocab, (n, T))
    ids[0, 3:] = 0
    ids[1, :2] = 0
    ids[2, 1] = ids[2, 4] = 0
    ids[3] = 0
    return ids


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


# ================================================================ layers -> ONNX

@pytest.mark.parametrize("activation,gate_activation", ACTS)
@pytest.mark.parametrize("inputs", ["x", "x+lengths+state"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ONNX_CELLS)
def test_layer_onnx(cell, bidirectional, num_layers, inputs, activation, gate_activation):
    seed = seed_of("export-layer", cell, bidirectional, num_layers, inputs, activation,
                   gate_activation)
    rng = np.random.default_rng(seed)
    B, T, I, H = 4, 5, 3, 6
    LD = num_layers * (2 if bidirectional else 1)
    layer = make_layer(cell, I, H, num_layers, bidirectional, activation, gate_activation,
                       dtype="float32", random_state=seed)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    has_c = CELLS[cell].cell_state
    h0 = c0 = lengths = None
    feeds = {"x": x}
    full = inputs == "x"
    if not full:
        lengths = np.array(LENGTHS)
        h0 = rng.standard_normal((LD, B, H)).astype(np.float32)
        c0 = rng.standard_normal((LD, B, H)).astype(np.float32) if has_c else None
        feeds.update(lengths=lengths, h0=h0, **({"c0": c0} if has_c else {}))
    model = layer.to_onnx(with_lengths=not full, with_state=not full)
    got = _ort(model, feeds)
    assert [o.name for o in model.graph.output] == ["y", "h_n"] + (["c_n"] if has_c else [])
    want = kernel_infer(layer, x, h0, c0, lengths)
    err = helpers.assert_close_all(want, (got[0], got[1], got[2] if has_c else None),
                                   ONNX_RTOL, ONNX_ATOL)
    if lengths is not None:
        for b, n in enumerate(lengths):
            assert np.all(got[0][b, n:] == 0)
    record_error(f"export: ORT vs layer {cell} (abs)", err)


def test_layer_onnx_dynamic_axes_file_and_float64(tmp_path):
    """One model runs any batch and time; written to a path it loads from there; a
    float64 layer exports a float32 graph (ORT's LSTM is float32 only)."""
    onnx = pytest.importorskip("onnx")
    layer = LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", random_state=0)
    path = tmp_path / "layer.onnx"
    model = layer.to_onnx(path)
    assert onnx.load(str(path)) == model
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time", 3]
    for B, T in ((1, 1), (5, 9)):
        x = np.random.default_rng(B).standard_normal((B, T, 3))
        got = _ort(model, {"x": x.astype(np.float32)})
        y, (h, c) = layer(x.astype(np.float32).astype(np.float64))
        for a, b in zip((y, h, c), got):
            assert_close(a, b, ONNX_RTOL, ONNX_ATOL)


# ================================================================ estimators -> ONNX

def _regressor_case(rng, target, inputs, dtype=np.float32):
    """(fit X, fit y, predict input, the same as model inputs of ``dtype`` (a dict),
    estimator kwargs)."""
    n, T, d = 16, 5, 3
    y = {"1d": rng.standard_normal(n), "2d": rng.standard_normal((n, 2)),
         "seq": rng.standard_normal((n, T, 2))}[target]
    if inputs == "ids":
        X = _token_ids(rng, n, T, 9)
        return X, y, X, {"X": X}, dict(embedding_dim=4)
    X = rng.standard_normal((n, T, d))
    if inputs == "dense":
        return X, y, X, {"X": X.astype(dtype)}, {}
    seqs = [rng.standard_normal((k, d)) for k in LENGTHS]
    Xp, lengths = _pad(seqs, dtype)
    return X, y, seqs, {"X": Xp, "lengths": lengths}, {}


@pytest.mark.parametrize("inputs", ["dense", "ragged", "ids"])
@pytest.mark.parametrize("target", ["1d", "2d", "seq"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ONNX_CELLS)
def test_regressor_onnx(cell, bidirectional, target, inputs):
    seed = seed_of("export-reg", cell, bidirectional, target, inputs)
    X, y, Xp, feeds, kw = _regressor_case(np.random.default_rng(seed), target, inputs)
    est = LSTMRegressor(hidden_sizes=(4, 3), cell=cell, bidirectional=bidirectional,
                        random_state=seed, **kw, **FIT).fit(X, y)
    model = est.to_onnx(with_lengths=inputs == "ragged")
    assert [i.name for i in model.graph.input] == list(feeds)
    got = _ort(model, feeds)[0]
    want = est.predict(Xp)
    assert got.shape == want.shape
    assert_close(got, want, ONNX_RTOL, ONNX_ATOL)
    record_error(f"export: ORT vs LSTMRegressor {cell} (abs)", max_abs_diff(got, want))


@pytest.mark.parametrize("activation,gate_activation", ONNX_ACTS)
@pytest.mark.parametrize("cell", ONNX_CELLS)
def test_estimator_onnx_activations(cell, activation, gate_activation):
    seed = seed_of("export-act", cell, activation, gate_activation)
    X, y, Xp, feeds, _ = _regressor_case(np.random.default_rng(seed), "2d", "ragged")
    est = LSTMRegressor(hidden_sizes=(5, 3), cell=cell, activation=activation,
                        gate_activation=gate_activation, bidirectional=True,
                        random_state=seed, **FIT).fit(X, y)
    got = _ort(est.to_onnx(with_lengths=True), feeds)[0]
    want = est.predict(Xp)
    assert_close(got, want, ONNX_RTOL, ONNX_ATOL)
    record_error(f"export: ORT vs LSTMRegressor {activation}/{gate_activation} (abs)",
                 max_abs_diff(got, want))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("embedding", [False, True], ids=["features", "token_ids"])
@pytest.mark.parametrize("cell", ONNX_CELLS)
def test_classifier_onnx(cell, embedding, n_classes):
    """Probabilities, columns in the order of classes_ (string labels here)."""
    seed = seed_of("export-clf", cell, embedding, n_classes)
    rng = np.random.default_rng(seed)
    n, T = 24, 6
    labels = np.array(["cat", "dog", "eel"][:n_classes])[rng.integers(0, n_classes, n)]
    labels[:n_classes] = ["cat", "dog", "eel"][:n_classes]
    if embedding:
        X = _token_ids(rng, n, T, 11)
        kw, feeds = dict(embedding_dim=5), {"X": X}
    else:
        X = rng.standard_normal((n, T, 2))
        kw, feeds = {}, {"X": X.astype(np.float32)}
    est = LSTMClassifier(hidden_sizes=(5, 4), cell=cell, bidirectional=True, random_state=seed,
                         **kw, **FIT).fit(X, labels)
    model = est.to_onnx()
    got = _ort(model, feeds)[0]
    want = est.predict_proba(X)
    assert got.shape == (n, n_classes)
    assert_close(got, want, ONNX_RTOL, ONNX_ATOL)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["classes"]) == est.classes_.tolist()
    record_error(f"export: ORT vs LSTMClassifier {cell} probabilities (abs)",
                 max_abs_diff(got, want))


def _series(rng, n_vars, n=70):
    t = np.arange(n)
    s = np.stack([np.sin(t / (3 + k)) * (10 + 5 * k) + 50 * k + t * 0.3 for k in range(n_vars)],
                 axis=1) + rng.standard_normal((n, n_vars))
    return s[:, 0] if n_vars == 1 else s


def _forecasts(est, hists):
    return np.stack([est.predict(h) for h in hists])


def _forecast_atol(est):
    """ONNX_ATOL in the series' units: unscaled by scale_, summed over the horizon."""
    return ONNX_ATOL * float(np.max(est.scale_)) * est.horizon


@pytest.mark.parametrize("n_vars", [1, 2], ids=["univariate", "multivariate"])
@pytest.mark.parametrize("difference", [False, True], ids=["levels", "difference"])
@pytest.mark.parametrize("strategy", ["direct", "recursive"])
@pytest.mark.parametrize("cell", ONNX_CELLS)
def test_forecaster_onnx(cell, strategy, difference, n_vars):
    """The whole pipeline in the graph: history longer than the window, scaling,
    differences, the recursive loop, unscaling."""
    seed = seed_of("export-fc", cell, strategy, difference, n_vars)
    s = _series(np.random.default_rng(seed), n_vars)
    est = LSTMForecaster(window=6, horizon=4, strategy=strategy, difference=difference,
                         cell=cell, hidden_sizes=(4, 3), bidirectional=cell == "gru",
                         random_state=seed, **FIT).fit(s)
    hists = np.stack([s[:40], s[13:53], s[-40:]])
    got = _ort(est.to_onnx(), {"history": hists})[0]
    want = _forecasts(est, hists)
    assert got.shape == want.shape == ((3, 4) if n_vars == 1 else (3, 4, n_vars))
    assert_close(got, want, ONNX_RTOL, _forecast_atol(est))
    record_error(f"export: ORT vs LSTMForecaster {strategy} (abs / scale_)",
                 max_abs_diff(got, want) / float(np.max(est.scale_)))


def test_onnx_opsets_and_options():
    onnx = pytest.importorskip("onnx")
    X = np.random.default_rng(0).standard_normal((8, 4, 2))
    est = LSTMRegressor(hidden_sizes=(3,), random_state=0, **FIT).fit(X, X[:, 0, 0])
    for opset in (export.MIN_OPSET, 17):
        model = est.to_onnx(opset=opset)
        assert model.opset_import[0].version == opset
        assert_close(_ort(model, {"X": X.astype(np.float32)})[0], est.predict(X), ONNX_RTOL,
                     ONNX_ATOL)
    for bad in (export.MIN_OPSET - 1, onnx.defs.onnx_opset_version() + 1, 17.0, True):
        with pytest.raises(ValueError, match="opset must be an int"):
            est.to_onnx(opset=bad)
    with pytest.raises(TypeError, match="with_lengths must be a bool"):
        est.to_onnx(with_lengths="yes")
    clf = LSTMClassifier(embedding_dim=2, hidden_sizes=(3,), random_state=0, **FIT)
    clf.fit(np.array([[1, 2, 0], [2, 1, 1], [3, 0, 0], [1, 1, 2]]), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="does not apply to token ids"):
        clf.to_onnx(with_lengths=True)
    fc = LSTMForecaster(window=3, random_state=0, **FIT).fit(np.arange(20.0))
    with pytest.raises(ValueError, match="does not apply to LSTMForecaster"):
        fc.to_onnx(with_lengths=True)
    with pytest.raises(fastlstm.NotFittedError):
        LSTMRegressor().to_onnx()


def test_onnx_refuses_a_cell_it_lacks(monkeypatch):
    """A cell whose row does not list ONNX among its peers is refused by name."""
    monkeypatch.setitem(CELLS, "lstm_private",
                        dataclasses.replace(CELLS["lstm"], name="lstm_private", peers=()))
    layer = LSTM(2, 3, cell="lstm_private", random_state=0)
    with pytest.raises(ValueError, match="cell='lstm_private' has no ONNX operator"):
        layer.to_onnx()
    X = np.random.default_rng(0).standard_normal((8, 3, 2))
    est = LSTMRegressor(hidden_sizes=(3,), cell="lstm_private", random_state=0, **FIT)
    with pytest.raises(ValueError, match="cell='lstm_private' has no ONNX operator"):
        est.fit(X, X[:, 0, 0]).to_onnx()
    with pytest.raises(ValueError, match="PyTorch has no cell='lstm_private'"):
        est.to_torch()


def test_missing_onnx_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install onnx"):
        LSTM(2, 3).to_onnx()


# ================================================================ PyTorch

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_layer_to_torch(cell, bidirectional, num_layers, dtype):
    torch = _torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    seed = seed_of("export-torch-layer", cell, bidirectional, num_layers, dtype)
    layer = make_layer(cell, 3, 5, num_layers, bidirectional, dtype=dtype, random_state=seed)
    mod = layer.to_torch()
    assert isinstance(mod, torch.nn.LSTM if CELLS[cell].cell_state else torch.nn.GRU)
    assert not mod.training and mod.batch_first
    x = np.random.default_rng(seed).standard_normal((4, 5, 3)).astype(dtype)
    lengths = np.array(LENGTHS)
    with torch.no_grad():
        packed = pack_padded_sequence(torch.from_numpy(x), torch.as_tensor(lengths),
                                      batch_first=True, enforce_sorted=False)
        y, state = mod(packed)
        y = pad_packed_sequence(y, batch_first=True, total_length=5)[0]
    state = state if isinstance(state, tuple) else (state,)
    want = kernel_infer(layer, x, lengths=lengths)
    err = max(helpers.rel_err(a.numpy(), b) for a, b in zip((y,) + state, want))
    assert err < TORCH_TOL[dtype]
    record_error(f"export: torch vs layer {dtype} (rel)", err)


def _torch_out(torch, mod, *args):
    with torch.no_grad():
        return mod(*[torch.from_numpy(np.asarray(a)) for a in args]).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("inputs", ["dense", "ragged", "ids"])
@pytest.mark.parametrize("target", ["1d", "seq"])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_regressor_to_torch(cell, target, inputs, dtype):
    torch = _torch()
    seed = seed_of("export-torch-reg", cell, target, inputs, dtype)
    X, y, Xp, feeds, kw = _regressor_case(np.random.default_rng(seed), target, inputs, dtype)
    est = LSTMRegressor(hidden_sizes=(4, 3), cell=cell, bidirectional=True, dtype=dtype,
                        random_state=seed, **kw, **FIT).fit(X, y)
    mod = est.to_torch()
    got = _torch_out(torch, mod, *feeds.values())
    want = est.predict(Xp)
    assert got.shape == want.shape
    err = helpers.rel_err(got, want)
    assert err < TORCH_TOL[dtype]
    record_error(f"export: torch vs LSTMRegressor {dtype} (rel)", err)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_classifier_to_torch(cell, n_classes):
    torch = _torch()
    seed = seed_of("export-torch-clf", cell, n_classes)
    rng = np.random.default_rng(seed)
    X = _token_ids(rng, 20, 6, 9)
    y = rng.integers(0, n_classes, 20)
    y[:n_classes] = np.arange(n_classes)
    est = LSTMClassifier(embedding_dim=4, hidden_sizes=(5, 5), cell=cell, bidirectional=True,
                         random_state=seed, **FIT).fit(X, y)
    mod = est.to_torch()
    got = _torch_out(torch, mod, X)
    want = est.predict_proba(X)
    err = helpers.rel_err(got, want)
    assert err < TORCH_TOL["float32"]
    record_error("export: torch vs LSTMClassifier float32 (rel)", err)
    # the raw network and its names; the whole module pickles
    names = set(mod.network.state_dict())
    assert {"embedding.weight", "head.weight", "head.bias", "rnn.weight_ih_l1_reverse"} <= names
    buf = io.BytesIO()
    torch.save(mod, buf)
    buf.seek(0)
    np.testing.assert_array_equal(_torch_out(torch, torch.load(buf, weights_only=False), X), got)


@pytest.mark.parametrize("difference", [False, True], ids=["levels", "difference"])
@pytest.mark.parametrize("strategy", ["direct", "recursive"])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_forecaster_to_torch(cell, strategy, difference):
    torch = _torch()
    seed = seed_of("export-torch-fc", cell, strategy, difference)
    s = _series(np.random.default_rng(seed), 2)
    est = LSTMForecaster(window=5, horizon=3, strategy=strategy, difference=difference,
                         cell=cell, hidden_sizes=(4,), random_state=seed, **FIT).fit(s)
    hists = np.stack([s[:30], s[-30:]])
    got = _torch_out(torch, est.to_torch(), hists)
    want = _forecasts(est, hists)
    assert_close(got, want, TORCH_TOL["float32"], TORCH_TOL["float32"] * np.max(est.scale_) * 3)
    with pytest.raises(ValueError, match="history must be"):
        est.to_torch()(torch.zeros((1, 2, 2), dtype=torch.float64))


@pytest.mark.parametrize("cell", NO_TORCH_CELLS)
def test_to_torch_refuses_cells_pytorch_lacks(cell):
    layer = make_layer(cell, 2, 3, dtype="float32")
    with pytest.raises(ValueError, match=f"PyTorch has no cell='{cell}'"):
        layer.to_torch()


@pytest.mark.parametrize("activation,gate_activation", ONNX_ACTS)
def test_to_torch_refuses_activations_pytorch_lacks(activation, gate_activation):
    layer = LSTM(2, 3, activation=activation, gate_activation=gate_activation)
    bad = activation if activation != "tanh" else gate_activation
    with pytest.raises(ValueError, match=f"has no .*{bad!r}"):
        layer.to_torch()
    X = np.random.default_rng(0).standard_normal((8, 3, 2))
    est = LSTMRegressor(hidden_sizes=(3,), activation=activation, gate_activation=gate_activation,
                        random_state=0, **FIT).fit(X, X[:, 0, 0])
    with pytest.raises(ValueError, match=f"has no .*{bad!r}"):
        est.to_torch()


def test_missing_torch_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "fastlstm._torch_modules", raising=False)
    monkeypatch.delattr(fastlstm, "_torch_modules", raising=False)
    with pytest.raises(ImportError, match="pip install torch"):
        LSTM(2, 3).to_torch()


# ================================================================ state dicts

def _fitted(kind, seed, **kw):
    rng = np.random.default_rng(seed)
    if kind == "forecaster":
        return LSTMForecaster(window=4, horizon=2, hidden_sizes=(4, 3), random_state=seed,
                              **kw, **FIT).fit(_series(rng, 2)), None
    if kind == "classifier":
        X = _token_ids(rng, 16, 6, 9)
        return LSTMClassifier(embedding_dim=3, hidden_sizes=(4,), bidirectional=True,
                              cell="peephole", random_state=seed, **kw, **FIT).fit(
            X, rng.integers(0, 3, 16)), X
    X = rng.standard_normal((16, 5, 2))
    return LSTMRegressor(hidden_sizes=(3, 3), cell="gru", random_state=seed, **kw,
                         **FIT).fit(X, rng.standard_normal((16, 2))), X


def _outputs(est, X):
    return est.predict() if X is None else (
        est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X))


@pytest.mark.parametrize("kind", ["regressor", "classifier", "forecaster"])
def test_state_dict_round_trip(kind):
    """est -> state_dict -> a fresh estimator of the same parameters, fitted briefly
    on its own seed -> load_state_dict -> bitwise the same predictions."""
    est, X = _fitted(kind, 1)
    sd = est.state_dict()
    spec = est._network.spec
    want_names = [("embedding.weight" if n == "embedding" else n) for n, _ in spec.param_shapes()]
    assert list(sd) == want_names
    assert all(sd[k].shape == s for k, (_, s) in zip(sd, spec.param_shapes()))
    other, _ = _fitted(kind, 2)
    if X is not None:
        assert not np.array_equal(_outputs(other, X), _outputs(est, X))
    other.load_state_dict(sd)
    if kind == "forecaster":            # its scaler comes from its own training series
        other.mean_, other.scale_, other.last_window_ = est.mean_, est.scale_, est.last_window_
    np.testing.assert_array_equal(_outputs(other, X), _outputs(est, X))
    sd["head.bias"][...] += 1.0         # copies: the estimator is untouched
    np.testing.assert_array_equal(est.state_dict()["head.bias"] + 1.0, sd["head.bias"])


def test_state_dict_into_and_from_torch():
    """The torch module's names: ``rnn.`` + ours; torch tensors load back."""
    torch = _torch()
    est, X = _fitted("regressor", 3)
    mod = est.to_torch()
    tsd = mod.network.state_dict()
    sd = est.state_dict()
    for k, v in sd.items():
        np.testing.assert_array_equal(tsd[k if k.startswith(("head", "emb")) else "rnn." + k], v)
    other, _ = _fitted("regressor", 4)
    other.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    np.testing.assert_array_equal(other.predict(X), est.predict(X))


def test_load_state_dict_errors():
    est, _ = _fitted("regressor", 5)
    sd = est.state_dict()
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        est.load_state_dict([1, 2])
    with pytest.raises(ValueError, match=r"missing \['head.bias'\], unexpected \[\]"):
        est.load_state_dict({k: v for k, v in sd.items() if k != "head.bias"})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        est.load_state_dict(dict(sd, extra=np.zeros(1)))
    with pytest.raises(ValueError, match=r"state_dict\['head.weight'\] must have shape"):
        est.load_state_dict(dict(sd, **{"head.weight": np.zeros((3, 3))}))
    with pytest.raises(ValueError, match=r"state_dict\['bias_ih_l0'\] contains NaN"):
        est.load_state_dict(dict(sd, bias_ih_l0=np.full(9, np.nan)))
    before = est.state_dict()
    for k in sd:                        # nothing was written by the failed loads
        np.testing.assert_array_equal(before[k], sd[k])
    with pytest.raises(fastlstm.NotFittedError):
        LSTMRegressor().state_dict()
    with pytest.raises(fastlstm.NotFittedError):
        LSTMRegressor().load_state_dict(sd)


def test_load_state_dict_while_predicting():
    """A loader swaps between two weight sets while another thread predicts: every
    prediction is that of one set or the other, never a mix."""
    est, X = _fitted("regressor", 6)
    a = est.state_dict()
    b = {k: v * 0.5 for k, v in a.items()}
    est.load_state_dict(b)
    want_b = est.predict(X)
    est.load_state_dict(a)
    want_a = est.predict(X)
    stop, bad = threading.Event(), []

    def predictor():
        while not stop.is_set():
            p = est.predict(X)
            if not (np.array_equal(p, want_a) or np.array_equal(p, want_b)):
                bad.append(p)

    t = threading.Thread(target=predictor)
    t.start()
    for i in range(200):
        est.load_state_dict(b if i % 2 == 0 else a)
    stop.set()
    t.join()
    assert not bad


# ================================================================ Keras weights

KERAS_TOL = 1e-12       # float64 on both sides; a wrong block is off by ~1e-1


def _keras_weights(rng, layer, I, H, num_layers, bidirectional, bias=True):
    """Random weights in Keras' layout, flat, per layer and direction."""
    G = 4 if layer == "LSTM" else 3
    out, in_size = [], I
    for _ in range(num_layers):
        for _ in range(2 if bidirectional else 1):
            out += [rng.uniform(-0.5, 0.5, (in_size, G * H)), rng.uniform(-0.5, 0.5, (H, G * H))]
            if bias:
                out.append(rng.uniform(-0.5, 0.5, (G * H,) if layer == "LSTM" else (2, G * H)))
        in_size = H * (2 if bidirectional else 1)
    return out


def _keras_numpy(weights, x, layer, num_layers, bidirectional):
    """Keras' LSTM / GRU(reset_after=True) equations in Keras' own layout (kernel
    columns i, f, c, o / z, r, h), full-length sequences: (y, [h_n per layer and
    direction])."""
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    D = 2 if bidirectional else 1
    per = len(weights) // (num_layers * D)
    inp, finals = x, []
    for k in range(num_layers):
        outs = []
        for d in range(D):
            w = weights[(k * D + d) * per:(k * D + d + 1) * per]
            kernel, rec = w[0], w[1]
            H = rec.shape[0]
            bias = w[2] if per == 3 else np.zeros((2, 3 * H) if layer == "GRU" else 4 * H)
            h = np.zeros((x.shape[0], H))
            c = np.zeros_like(h)
            seq = inp[:, ::-1] if d else inp
            ys = []
            for t in range(seq.shape[1]):
                if layer == "LSTM":
                    z = seq[:, t] @ kernel + h @ rec + bias
                    i, f, g, o = np.split(z, 4, axis=1)
                    c = sig(f) * c + sig(i) * np.tanh(g)
                    h = sig(o) * np.tanh(c)
                else:
                    xz, xr, xh = np.split(seq[:, t] @ kernel + bias[0], 3, axis=1)
                    hz, hr, hh = np.split(h @ rec + bias[1], 3, axis=1)
                    zg, r = sig(xz + hz), sig(xr + hr)
                    h = zg * h + (1 - zg) * np.tanh(xh + r * hh)
                ys.append(h)
            y = np.stack(ys, axis=1)
            outs.append(y[:, ::-1] if d else y)
            finals.append(h)
        inp = np.concatenate(outs, axis=2)
    return inp, finals


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", KERAS_CELLS)
def test_keras_weights_against_keras_equations(cell, bidirectional, num_layers, bias):
    """Keras' equations written in Keras' layout (numpy) against the layer that loaded
    the same weights; no TensorFlow needed."""
    seed = seed_of("keras-np", cell, bidirectional, num_layers, bias)
    rng = np.random.default_rng(seed)
    kind = CELLS[cell].layer
    I, H = 3, 4
    w = _keras_weights(rng, kind, I, H, num_layers, bidirectional, bias)
    cls = fastlstm.layers.layer_class(cell)
    layer = cls.from_keras_weights(w, num_layers, bidirectional, cell=cell, dtype="float64",
                                   n_threads=1)
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (I, H, num_layers)
    x = rng.standard_normal((3, 5, I))
    y_k, finals = _keras_numpy(w, x, kind, num_layers, bidirectional)
    y, h_n, _ = kernel_infer(layer, x)
    err = max(max_abs_diff(y, y_k), max_abs_diff(h_n, np.stack(finals)))
    assert err < KERAS_TOL
    record_error("export: layer vs Keras equations (numpy, float64)", err)
    # nested per-layer lists and a get_weights() object load the same
    other = cls(I, H, num_layers, bidirectional, cell=cell, dtype="float64")
    per = len(w) // num_layers

    class KerasLike:
        def get_weights(self):
            return [w[k * per:(k + 1) * per] for k in range(num_layers)]

    other.load_keras_weights(KerasLike())
    np.testing.assert_array_equal(other.flat_params, layer.flat_params)


@pytest.mark.parametrize("cell", KERAS_CELLS)
def test_keras_mapping_is_the_documented_permutation(cell):
    """Hand-computed: each Keras column block k lands in our row block given by the
    gate names (LSTM i, f, c, o = ours i, f, g, o; GRU z, r, h -> ours r, z, n), and
    agrees with the numpy reference on the loaded weights."""
    kind = CELLS[cell].layer
    H, I = 2, 3
    G = CELLS[cell].gates
    rng = np.random.default_rng(seed_of("keras-perm", cell))
    kernel, rec = rng.standard_normal((I, G * H)), rng.standard_normal((H, G * H))
    bias = rng.standard_normal((G * H,) if kind == "LSTM" else (2, G * H))
    sd = export.keras_state_dict([kernel, rec, bias], cell, dtype=np.float64)
    block = lambda a, k: a[..., k * H:(k + 1) * H]  # noqa: E731
    ours = {"LSTM": {"i": 0, "f": 1, "g": 2, "o": 3}, "GRU": {"r": 0, "z": 1, "n": 2}}[kind]
    keras = {"LSTM": {"i": 0, "f": 1, "g": 2, "o": 3}, "GRU": {"z": 0, "r": 1, "n": 2}}[kind]
    for gate, k in ours.items():
        j = keras[gate]
        rows = slice(k * H, (k + 1) * H)
        np.testing.assert_array_equal(sd["weight_ih_l0"][rows], block(kernel, j).T)
        np.testing.assert_array_equal(sd["weight_hh_l0"][rows], block(rec, j).T)
        if kind == "LSTM":
            np.testing.assert_array_equal(sd["bias_ih_l0"][rows], block(bias, j))
            assert np.all(sd["bias_hh_l0"] == 0)
        else:
            np.testing.assert_array_equal(sd["bias_ih_l0"][rows], block(bias[0], j))
            np.testing.assert_array_equal(sd["bias_hh_l0"][rows], block(bias[1], j))
    x = rng.standard_normal((2, 4, I))
    y_ref = fastlstm._reference.stack_forward(sd, x, cell=cell)[0]
    y_k, _ = _keras_numpy([kernel, rec, bias], x, kind, 1, False)
    assert max_abs_diff(y_ref, y_k) < KERAS_TOL


def test_keras_weights_errors():
    rng = np.random.default_rng(0)
    lstm_w = _keras_weights(rng, "LSTM", 3, 4, 1, False)
    gru_w = _keras_weights(rng, "GRU", 3, 4, 1, False)
    gru = GRU(3, 4)
    with pytest.raises(ValueError, match="reset_after=False.*cannot express"):
        gru.load_keras_weights([gru_w[0], gru_w[1], np.zeros(12)])
    with pytest.raises(ValueError, match="reset_after=False"):
        gru.load_keras_weights(gru_w, reset_after=False)
    with pytest.raises(ValueError, match=r"3 arrays .* got 4"):
        LSTM(3, 4).load_keras_weights(lstm_w + [lstm_w[0]])
    with pytest.raises(ValueError, match=r"3 arrays .*: 6 \(or 4\)"):
        LSTM(3, 4, bidirectional=True).load_keras_weights(lstm_w)
    with pytest.raises(ValueError, match=r"weights\[1\] \(layer 0 forward recurrent_kernel\)"):
        LSTM(3, 4).load_keras_weights([lstm_w[0], lstm_w[1][:, :8], lstm_w[2]])
    with pytest.raises(ValueError, match=r"weights\[0\] \(layer 0 forward kernel\)"):
        LSTM(3, 4).load_keras_weights([lstm_w[0][:, :4], lstm_w[1], lstm_w[2]])
    with pytest.raises(ValueError, match=r"weights\[2\] .*bias\) must have shape \(16,\)"):
        LSTM(3, 4).load_keras_weights([lstm_w[0], lstm_w[1], np.zeros(8)])
    with pytest.raises(ValueError, match="contains NaN"):
        LSTM(3, 4).load_keras_weights([lstm_w[0], lstm_w[1], np.full(16, np.nan)])
    with pytest.raises(TypeError, match=r"weights\[0\] .* real numbers"):
        LSTM(3, 4).load_keras_weights([np.array(["a"]), lstm_w[1], lstm_w[2]])
    with pytest.raises(TypeError, match="list of arrays"):
        LSTM(3, 4).load_keras_weights(np.zeros(3))
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l0'\] must have shape"):
        LSTM(5, 4).load_keras_weights(lstm_w)       # the kernel is for 3 inputs
    for cell in NO_KERAS_CELLS:
        with pytest.raises(ValueError, match=f"Keras has no cell='{cell}'"):
            make_layer(cell, 3, 4).load_keras_weights(lstm_w)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", KERAS_CELLS)
def test_keras_itself(cell, bidirectional, activation):
    """A Keras layer (random weights, return_sequences and return_state) against the
    fastlstm layer made from it (weights and activations); float32 on both sides,
    tolerance as test_torch_parity's float32 (1e-5)."""
    keras = pytest.importorskip("keras")
    seed = seed_of("keras", cell, bidirectional, activation)
    rng = np.random.default_rng(seed)
    kind = CELLS[cell].layer
    I, H, B, T = 3, 5, 4, 6
    keras.utils.set_random_seed(seed % 2**31)
    rnn = getattr(keras.layers, kind)(H, activation=activation, return_sequences=True,
                                      return_state=True)
    wrapped = keras.layers.Bidirectional(rnn) if bidirectional else rnn
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    outs = [keras.ops.convert_to_numpy(o) for o in wrapped(x)]   # any backend's tensors
    y_k = outs[0]
    # Keras' states: [h, c] per direction (LSTM), [h] per direction (GRU)
    per = 2 if kind == "LSTM" else 1
    h_k = np.stack([outs[1 + d * per] for d in range(2 if bidirectional else 1)])
    layer = fastlstm.layers.layer_class(cell).from_keras_weights(
        wrapped, bidirectional=bidirectional, cell=cell, n_threads=1)
    assert layer.activation == activation
    y, h_n, _ = kernel_infer(layer, x)
    err = max(helpers.rel_err(y, y_k), helpers.rel_err(h_n, h_k))
    assert err < 1e-5
    record_error("export: layer vs Keras (float32, rel)", err)


def test_keras_layers_fastlstm_cannot_express():
    keras = pytest.importorskip("keras")
    x = np.zeros((1, 2, 3), np.float32)
    hard = keras.layers.LSTM(4, recurrent_activation="hard_sigmoid")
    hard(x)
    with pytest.raises(ValueError, match=r"recurrent_activation .* x/6 \+ 0.5"):
        LSTM.from_keras_weights(hard)
    relu = keras.layers.LSTM(4, activation="relu")
    relu(x)
    with pytest.raises(ValueError, match="computes activation='relu'"):
        LSTM(3, 4).load_keras_weights(relu)
    with pytest.raises(ValueError, match="activation='tanh', but the Keras layer computes"):
        LSTM.from_keras_weights(relu, activation="tanh")
    backwards = keras.layers.GRU(4, go_backwards=True)
    backwards(x)
    with pytest.raises(ValueError, match="go_backwards=True"):
        GRU.from_keras_weights(backwards)
    before = keras.layers.GRU(4, reset_after=False, use_bias=False)
    before(x)
    with pytest.raises(ValueError, match="reset_after=False"):
        GRU.from_keras_weights(before)


def test_readme_export_example_runs(tmp_path, monkeypatch):
    """The README's "Export" example runs as written (in a scratch directory)."""
    pytest.importorskip("onnxruntime")
    _torch()
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("## Export"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (Export)", "exec"), {})
    assert (tmp_path / "clf.onnx").exists() and (tmp_path / "layer.onnx").exists()


def test_forecasters_the_graph_cannot_express_are_refused():
    y = np.sin(np.arange(120) / 5.0)
    cov = np.cos(np.arange(120) / 7.0)[:, None]
    kw = dict(window=10, horizon=3, epochs=1, random_state=0, n_threads=1)
    with_cov = fastlstm.LSTMForecaster(**kw).fit(y, future_covariates=cov)
    quant = fastlstm.LSTMForecaster(loss="quantile", **kw).fit(y)
    for est, word in ((with_cov, "covariates"), (quant, "quantile")):
        with pytest.raises(ValueError, match=word):
            est.to_onnx()
