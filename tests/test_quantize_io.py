"""Quantized estimators in the model file: ``q.save(path)`` stores the
recurrent weights as the model computes with them (int8 values with float32
row scales, or bfloat16 bit patterns as uint16) and ``fastlstm.load`` gives
back a quantized estimator whose outputs equal q's bitwise; the file needs a
0.2.0 reader, and every value of the quantized members is checked."""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastlstm
from fastlstm import _version, io
from fastlstm.quantize import QUANT_DTYPES, dequantize
from fastlstm.spec import CELLS, NetworkSpec
from test_hostile_files import _load_in_subprocess, _write

RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 5, 2)).astype(np.float32)
Y = X[:, :, 0].sum(axis=1)
LABELS = np.digitize(Y, [-1.0, 1.0])          # three classes
SERIES = np.sin(np.arange(40) / 3.0)
KW = dict(epochs=1, batch_size=8, random_state=0, n_threads=1)
KINDS = ("regressor", "classifier", "forecaster")


def _fit(kind, cell="lstm", bidirectional=False, hidden_sizes=(3, 2), **kw):
    arch = dict(hidden_sizes=hidden_sizes, cell=cell, bidirectional=bidirectional, **KW, **kw)
    if kind == "regressor":
        return fastlstm.LSTMRegressor(**arch).fit(X, Y)
    if kind == "classifier":
        return fastlstm.LSTMClassifier(**arch).fit(X, LABELS)
    return fastlstm.LSTMForecaster(window=4, horizon=2, **arch).fit(SERIES)


@pytest.fixture(scope="module")
def fitted():
    """fitted(kind, cell, bidirectional): a tiny fitted float32 model, fitted once."""
    cache = {}

    def get(*key):
        if key not in cache:
            cache[key] = _fit(*key)
        return cache[key]
    return get


def _outputs(est, Xs=X):
    """Everything the model computes: predict, predict_proba, streaming steps."""
    if isinstance(est, fastlstm.LSTMForecaster):
        return [est.predict()]
    out = [est.predict(Xs)]
    if isinstance(est, fastlstm.LSTMClassifier):
        out.append(est.predict_proba(Xs))
    if not est.bidirectional:            # streaming needs a forward-only model
        state = est.init_state(len(Xs))
        for t in range(Xs.shape[1]):
            y_t, state = est.step(Xs[:, t], state)
            out.append(y_t)
    return out


def _assert_same_outputs(got, want, Xs=X):
    # bitwise: the loaded model holds the same stored weights and runs the same kernels
    got, want = _outputs(got, Xs), _outputs(want, Xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n[:-4]: np.lib.format.read_array(zf.open(n), allow_pickle=False)
                for n in zf.namelist()}


def _config(path):
    return json.loads(_members(path)["config"].tobytes())


@pytest.mark.parametrize("dtype", QUANT_DTYPES)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bidi"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_bitwise(fitted, kind, cell, bidirectional, dtype, tmp_path):
    q = fitted(kind, cell, bidirectional).quantize(dtype)
    r = fastlstm.load(q.save(tmp_path / "q.npz"))
    assert type(r) is type(q) and r._network.quant_dtype == dtype
    _assert_same_outputs(r, q)


@pytest.mark.parametrize("dtype", QUANT_DTYPES)
@pytest.mark.parametrize("case", ["token_ids", "float64", "scaled_inputs"])
def test_round_trip_of_other_layouts(case, dtype, tmp_path):
    # the embedding comes before the recurrent weights in the flat buffer; a
    # float64 model keeps its head in float64; scaled inputs add arrays
    if case == "token_ids":
        ids = RNG.integers(1, 9, size=(16, 6))
        est = fastlstm.LSTMClassifier(hidden_sizes=(3,), embedding_dim=2, cell="gru",
                                      **KW).fit(ids, LABELS)
        Xs = ids
    else:
        est = _fit("regressor", **({"dtype": "float64"} if case == "float64"
                                    else {"scale_inputs": True}))
        Xs = X
    q = est.quantize(dtype)
    r = fastlstm.load(q.save(tmp_path / "q.npz"))
    _assert_same_outputs(r, q, Xs)


def _train(est):
    if isinstance(est, fastlstm.LSTMForecaster):
        return est.set_params(warm_start=True).fit(SERIES)
    return est.partial_fit(X, LABELS if isinstance(est, fastlstm.LSTMClassifier) else Y)


@pytest.mark.parametrize("kind", KINDS)
def test_loaded_model_refuses_what_the_quantized_one_refuses(fitted, kind, tmp_path):
    q = fitted(kind, "lstm", False).quantize("int8")
    r = fastlstm.load(q.save(tmp_path / "q.npz"))
    for est in (q, r):
        with pytest.raises(TypeError, match="already quantized"):
            est.quantize("bfloat16")
        with pytest.raises(TypeError, match="inference only"):
            _train(est)
        with pytest.raises(NotImplementedError, match="does not export"):
            est.to_onnx()
        with pytest.raises(ValueError, match="no optimizer state"):
            est.save(tmp_path / "ckpt.npz", include_optimizer=True)


@pytest.mark.parametrize("dtype", QUANT_DTYPES)
def test_file_holds_the_weights_as_stored(fitted, dtype, tmp_path):
    q = fitted("regressor", "peephole", True).quantize(dtype)
    m = _members(q.save(tmp_path / "q.npz"))
    stored = [w for key in sorted(q._network.recurrent._qweights)
              for w in q._network.recurrent._qweights[key][:2]]
    np.testing.assert_array_equal(m["quant_weights"], np.concatenate([w.ravel() for w in stored]))
    assert m["quant_weights"].dtype == {"int8": np.int8, "bfloat16": np.uint16}[dtype]
    if dtype == "int8":
        scales = [s for key in sorted(q._network.recurrent._qweights)
                  for s in q._network.recurrent._qweights[key][2:]]
        np.testing.assert_array_equal(m["quant_scales"], np.concatenate(scales))
        assert m["quant_scales"].dtype == np.float32
    else:
        assert "quant_scales" not in m
    # params: every other parameter, no float copy of the weights
    assert m["params"].size == q._network.params.size - m["quant_weights"].size
    assert _config(tmp_path / "q.npz")["fitted"]["quant_dtype"] == dtype
    # the loaded model's float params are the dequantized weights, as q's are
    r = fastlstm.load(tmp_path / "q.npz")
    np.testing.assert_array_equal(r._network.params, q._network.params)
    w_ih, _, s_ih, _ = r._network.recurrent._qweights[0, 0]
    np.testing.assert_array_equal(r.state_dict()["weight_ih_l0"], dequantize(w_ih, s_ih))


def test_quantized_files_are_smaller(tmp_path):
    est = _fit("regressor", hidden_sizes=(32, 32))
    sizes = {"float32": os.path.getsize(est.save(tmp_path / "f.npz"))}
    for dtype in QUANT_DTYPES:
        sizes[dtype] = os.path.getsize(est.quantize(dtype).save(tmp_path / f"{dtype}.npz"))
    # 12544 recurrent weights in 512 rows: bfloat16 saves 2 bytes of each, int8
    # 3 less 4 per row for its scale; the new members' zip and .npy headers and
    # config entries cost under 1 KiB
    n, rows = 4 * 32 * (2 + 32) + 4 * 32 * (32 + 32), 2 * 2 * 4 * 32
    assert sizes["float32"] - sizes["bfloat16"] > 2 * n - 1024, sizes
    assert sizes["float32"] - sizes["int8"] > 3 * n - 4 * rows - 1024, sizes


def test_needs_a_0_2_0_reader(fitted, tmp_path, monkeypatch):
    q = fitted("regressor", "lstm", False).quantize("bfloat16")
    path = q.save(tmp_path / "q.npz")
    assert _config(path)["min_reader_version"] == "0.2.0"
    assert ("fitted", "quant_dtype", None, "0.2.0") in io._VERSIONED_FEATURES
    monkeypatch.setattr(_version, "__version__", "0.1.5")
    with pytest.raises(ValueError, match=r"needs fastlstm >= 0\.2\.0.*this is fastlstm 0\.1\.5"):
        fastlstm.load(path)


@pytest.mark.parametrize("dtype", QUANT_DTYPES)
def test_pickles(fitted, dtype, tmp_path):
    q = fitted("classifier", "gru", False).quantize(dtype)
    r = fastlstm.load(q.save(tmp_path / "q.npz"))
    for est in (q, r):
        _assert_same_outputs(pickle.loads(pickle.dumps(est)), q)
    # the loaded model saves the same members again
    again = _members(r.save(tmp_path / "again.npz"))
    for name, arr in _members(tmp_path / "q.npz").items():
        np.testing.assert_array_equal(again[name], arr)


# ---------------------------------------------------------------- hostile files

def _rewrite(src, dst, edit, declare=True):
    """Copy a model file, letting edit(config, members) change both; the config
    then declares the members as they are (unless not ``declare``), so each
    change reaches the check aimed at it rather than the container's header check."""
    members = _members(src)
    config = json.loads(members.pop("config").tobytes())
    edit(config, members)
    if declare:
        config["arrays"] = {k: {"shape": list(v.shape), "dtype": io._dtype_str(v.dtype)}
                            for k, v in members.items() if k != "format_version"}
    return _write(dst, members, config, zipfile.ZIP_STORED)


def _set(key, value):
    def edit(config, members):
        config["fitted"][key] = value
    return edit


def _drop_fitted(key):
    def edit(config, members):
        del config["fitted"][key]
    return edit


def _member(name, change):
    def edit(config, members):
        members[name] = change(members[name].copy())
    return edit


def _put(index, value):
    def change(a):
        a[index] = value
        return a
    return change


def _full_params(config, members):
    members["params"] = np.zeros(members["params"].size + members["quant_weights"].size,
                                 np.float32)


def _drop(name):
    def edit(config, members):
        del members[name]
    return edit


# id: (source dtype, edit, words the message holds)
HOSTILE = {
    "quant_dtype_unknown": ("int8", _set("quant_dtype", "float16"), "quant_dtype must be"),
    "quant_dtype_not_a_string": ("int8", _set("quant_dtype", 8), "quant_dtype must be"),
    "int8_arrays_called_bfloat16": ("int8", _set("quant_dtype", "bfloat16"), "'quant_scales'"),
    "bfloat16_arrays_called_int8": ("bfloat16", _set("quant_dtype", "int8"), "quant_weights"),
    "quant_arrays_in_a_float_file": ("int8", _drop_fitted("quant_dtype"), "'quant_weights'"),
    "scales_missing": ("int8", _drop("quant_scales"), "quant_scales"),
    "weights_missing": ("bfloat16", _drop("quant_weights"), "quant_weights"),
    "weights_one_short": ("int8", _member("quant_weights", lambda a: a[:-1]), "quant_weights"),
    "scales_one_long": ("int8", _member("quant_scales", lambda a: np.r_[a, a[:1]]),
                        "quant_scales"),
    "weights_2d": ("int8", _member("quant_weights", lambda a: a.reshape(2, -1)),
                   "quant_weights"),
    "weights_uint8": ("int8", _member("quant_weights", lambda a: a.view(np.uint8)),
                      "quant_weights"),
    "bf16_as_int32": ("bfloat16", _member("quant_weights", lambda a: a.view(np.int32)),
                      "quant_weights"),
    "scales_float64": ("int8", _member("quant_scales", lambda a: a.astype(np.float64)),
                       "quant_scales"),
    "params_with_float_weights": ("bfloat16", _full_params, "params"),
    "int8_minus_128": ("int8", _member("quant_weights", _put(7, -128)), "-128"),
    "negative_scale": ("int8", _member("quant_scales", _put(3, -0.5)), "negative"),
    "nan_scale": ("int8", _member("quant_scales", _put(0, np.nan)), "NaN"),
    "inf_scale": ("int8", _member("quant_scales", _put(-1, np.inf)), "infinity"),
    "overflowing_scales": ("int8", _member("quant_scales", lambda a: np.full_like(a, 3e38)),
                           "overflow"),
    "bf16_infinity": ("bfloat16", _member("quant_weights", _put(5, 0x7F80)), "infinity or NaN"),
    "bf16_minus_infinity": ("bfloat16", _member("quant_weights", _put(-1, 0xFF80)),
                            "infinity or NaN"),
    "bf16_nan": ("bfloat16", _member("quant_weights", _put(0, 0x7FC1)), "infinity or NaN"),
}


@pytest.fixture(scope="module")
def quantized_files(tmp_path_factory):
    est = _fit("regressor", "lstm", True)
    d = tmp_path_factory.mktemp("quantized")
    files = {dtype: est.quantize(dtype).save(d / f"{dtype}.npz") for dtype in QUANT_DTYPES}
    files["float32_checkpoint"] = est.save(d / "ckpt.npz", include_optimizer=True)
    return files


@pytest.mark.parametrize("vid", HOSTILE)
def test_hostile_quantized_files_are_refused(quantized_files, vid, tmp_path):
    dtype, edit, words = HOSTILE[vid]
    path = _rewrite(quantized_files[dtype], tmp_path / "bad.npz", edit)
    with pytest.raises(ValueError) as info:
        fastlstm.load(path)
    assert words.lower() in str(info.value).lower(), str(info.value)


def test_unchanged_rewrite_loads(quantized_files, tmp_path):
    # the hostile cases above fail by their change, not by the rewriting
    for dtype in QUANT_DTYPES:
        fastlstm.load(_rewrite(quantized_files[dtype], tmp_path / "ok.npz", lambda c, m: None))


def test_training_state_in_a_quantized_file_is_refused(quantized_files, tmp_path):
    ckpt = _members(quantized_files["float32_checkpoint"])

    def with_training(config, members):
        config["training"] = json.loads(ckpt["config"].tobytes())["training"]
        members.update({k: v for k, v in ckpt.items() if k.startswith("optimizer_")})
    path = _rewrite(quantized_files["int8"], tmp_path / "bad.npz", with_training)
    with pytest.raises(ValueError, match="training state, but its model is quantized"):
        fastlstm.load(path)


def test_huge_quantized_model_refused_from_the_config(quantized_files, tmp_path):
    """int8 weights of a bidirectional H = 20000 layer (3.2e9 of them) fit the
    4 GiB bound on a file's arrays, but the float32 model they stand for does
    not: refused from the config, before anything of that size is allocated."""
    def huge(config, members):
        config["params"]["hidden_sizes"] = config["network"]["hidden_sizes"] = [20000]
        spec = NetworkSpec.from_json(config["network"])
        config["arrays"].update({name: {"shape": list(shape), "dtype": dtype} for name, (
            dtype, shape) in io._network_arrays(spec, "int8").items()})
    path = _rewrite(quantized_files["int8"], tmp_path / "huge.npz", huge, declare=False)
    outcome, extra_rss = _load_in_subprocess(path, limit_bytes=2 << 30)
    assert outcome.startswith("ValueError") and "bytes of parameters" in outcome, outcome
    assert extra_rss < 64 << 20
