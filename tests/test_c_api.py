"""The C API: fastlstm/include/fastlstm_model.h and fastlstm/libfastlstm.so.

examples/c_predict/predict.c is compiled here with the system C compiler
against fastlstm.get_include() and fastlstm.get_lib(), and run on models
saved from Python: its predictions must be Python's predict / predict_proba,
its streaming steps Python's step, and every bad model file must give an
error code and a message, never a crash (each run is a subprocess with a
timeout). The rest of the API (fl_model_from_arrays, stream subsets, calls
from many threads, argument errors) is called in-process through ctypes.

Tolerances. The recurrent layers run the same kernels with the same
arguments as Python (same chunks of rows, same time steps, same packed
weights), so recurrent states are compared bitwise. The dense head is
numpy's ``feat @ W.T + b`` in Python (OpenBLAS's summation order) and
fl_gemm in C: the two dot products of F <= 16 terms differ by a few units in
the last place of their terms' magnitude, so outputs are compared with
float64: rtol 1e-12, atol 1e-13 (observed: about 1e-16);
float32 models (outputs rounded to float32, then widened as Python does):
rtol 2e-6, atol 2e-7 (one or two float32 ulps of values of magnitude <= 1;
observed: 1.5e-8).
Probabilities go through exp() (numpy's SIMD exp in Python, libm's in C,
both within an ulp) after the head, inside the same tolerances.
"""
import ctypes
import io
import os
import shutil
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

import fastlstm
from fastlstm import LSTMClassifier, LSTMRegressor

import test_io
from test_io import data, good_files, models  # noqa: F401  (the bad-file corpus' fixtures)

import helpers  # noqa: E402

EXAMPLE = os.path.join(helpers.SOURCE_ROOT, "examples", "c_predict", "predict.c")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
TIMEOUT = 120   # seconds per run of the C program (ASan builds are slower)


def _find_cc():
    for name in (os.environ.get("CC", "").split(" ")[0], "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CC = _find_cc()
pytestmark = pytest.mark.skipif(
    CC is None, reason="no C compiler (cc, gcc or clang) on PATH: the C API test compiles "
                       "examples/c_predict/predict.c")

TOL = {"float64": dict(rtol=1e-12, atol=1e-13), "float32": dict(rtol=2e-6, atol=2e-7)}


def assert_close(got, want, dtype):
    import helpers
    helpers.record_error(f"C API vs Python ({dtype})", helpers.max_abs_diff(got, want))
    helpers.assert_close(got, want, **TOL[dtype])


# ---------------------------------------------------------------- the program


@pytest.fixture(scope="module")
def predict(tmp_path_factory):
    """The example, compiled as its header comment says: a function running it."""
    if not os.path.isfile(EXAMPLE):
        pytest.skip("needs the source tree's examples/c_predict/predict.c")
    exe = str(tmp_path_factory.mktemp("capi") / "predict")
    libdir = os.path.dirname(fastlstm.get_lib())
    cmd = [CC, "-std=c99", "-O2", "-Wall", "-Werror", "-o", exe, EXAMPLE,
           "-I" + fastlstm.get_include(), "-L" + libdir, "-lfastlstm", "-Wl,-rpath," + libdir]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, " ".join(cmd) + "\n" + proc.stderr

    def run(*args, check=True):
        proc = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True,
                              timeout=TIMEOUT)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc
    run.exe = exe
    return run


def _rows(text):
    return np.array([[float(v) for v in line.split()] for line in text.strip().splitlines()
                     if not line.startswith("state")])


def _write(tmp, name, arr):
    path = tmp / name
    np.ascontiguousarray(arr).tofile(path)
    return path


def c_predict(predict, tmp, model_path, X, dtype, lengths=None, threads=None):
    """The program's outputs for X (N, T, d) floats or (N, T) int token ids."""
    N, T = X.shape[:2]
    x = _write(tmp, "x.bin", X.astype(np.int64 if X.dtype.kind in "iu" else dtype))
    args = (["-t", threads] if threads else []) + [model_path, x, N, T]
    if lengths is not None:
        args.append(_write(tmp, "len.bin", np.asarray(lengths, np.int64)))
    return _rows(predict(*args).stdout)


def c_stream(predict, tmp, model_path, X, dtype):
    """(outputs of every step, (T*N, n_out); the final state as flat values)."""
    N, T = X.shape[:2]
    x = _write(tmp, "xs.bin", X.astype(np.int64 if X.dtype.kind in "iu" else dtype))
    out = predict("--stream", model_path, x, N, T).stdout.strip().splitlines()
    assert out[-1].startswith("state")
    return _rows("\n".join(out[:-1])), np.array([float(v) for v in out[-1].split()[1:]])


def py_stream(est, X):
    state = est.init_state(X.shape[0])
    outs = []
    for t in range(X.shape[1]):
        out, state = est.step(X[:, t], state)
        outs.append(out.reshape(X.shape[0], -1))
    flat = [h.ravel() for h in state.h] + ([c.ravel() for c in state.c] if state.c else [])
    return np.concatenate(outs), np.concatenate(flat)


# ---------------------------------------------------------------- models


FAST = dict(epochs=2, batch_size=8, random_state=0, n_threads=1)
RNG = np.random.default_rng(7)


def _ragged(n, T, d):
    lengths = RNG.integers(1, T + 1, n)
    lengths[0] = T
    return [RNG.standard_normal((L, d)) for L in lengths]


def _padded(seqs, T):
    X = np.zeros((len(seqs), T, seqs[0].shape[1]))
    for i, s in enumerate(seqs):
        X[i, :len(s)] = s
    return X, np.array([len(s) for s in seqs])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (estimator, path, dtype) for every case below, fitted and saved once."""
    d = tmp_path_factory.mktemp("models")
    out = {}
    seqs = _ragged(24, 7, 3)
    ids = RNG.integers(0, 12, (30, 9))
    ids[0, 0] = 11                       # (vocab_size_ 12)
    ids[:, -2:] = 0                      # padding at the end,
    ids[3, 2] = 0                        # inside a row,
    ids[5] = 0                           # and a row with no token at all
    labels = RNG.choice(["ant", "bee", "cat"], 30)
    X = RNG.standard_normal((26, 6, 2))
    for dtype in ("float32", "float64"):
        cases = {
            "reg_bidi": (LSTMRegressor(hidden_sizes=(5, 4), bidirectional=True, dtype=dtype, **FAST),
                         (seqs, np.array([s.sum() for s in seqs]))),
            "clf_gru_ids": (LSTMClassifier(hidden_sizes=(6,), cell="gru", embedding_dim=4,
                                           dtype=dtype, **FAST), (ids, labels)),
            "reg_peephole": (LSTMRegressor(hidden_sizes=(5,), cell="peephole", dtype=dtype, **FAST),
                             (X, np.c_[X[:, -1, 0], X[:, 0, 1]])),
            "reg_cifg_seq": (LSTMRegressor(hidden_sizes=(4, 3), cell="cifg", activation="relu",
                                           dtype=dtype, **FAST), (X, X[:, :, :1] * 2.0)),
            "clf_binary": (LSTMClassifier(hidden_sizes=(5,), gate_activation="hard_sigmoid",
                                          dtype=dtype, **FAST), (X, X[:, -1, 0] > 0)),
        }
        for name, (est, fit_args) in cases.items():
            est.fit(*fit_args)
            out[f"{name}_{dtype}"] = (est, est.save(d / f"{name}_{dtype}.npz"), dtype)
    return out


DTYPES = ("float32", "float64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_regressor_bidirectional_two_layers_with_lengths(predict, saved, dtype, tmp_path):
    est, path, _ = saved[f"reg_bidi_{dtype}"]
    seqs = _ragged(40, 9, 3)
    seqs[1] = seqs[1][:1]
    X, lengths = _padded(seqs, 11)      # T beyond the longest sequence: never read
    X[1, 1:] = np.nan                   # past a length: never read either
    got = c_predict(predict, tmp_path, path, X, dtype, lengths)[:, 0]
    assert_close(got, est.predict(seqs), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequence_output_with_lengths(predict, saved, dtype, tmp_path):
    est, path, _ = saved[f"reg_cifg_seq_{dtype}"]
    seqs = _ragged(30, 8, 2)
    X, lengths = _padded(seqs, 10)
    got = c_predict(predict, tmp_path, path, X, dtype, lengths).reshape(30, 10)
    want = est.predict(seqs)[:, :, 0]                  # (30, 8): zero past each length
    assert_close(got[:, :8], want, dtype)
    assert not got[:, 8:].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_classifier_gru_embedding(predict, saved, dtype, tmp_path):
    est, path, _ = saved[f"clf_gru_ids_{dtype}"]
    ids = RNG.integers(0, 12, (33, 10))
    ids[0] = 0
    ids[4, :7] = 0
    got = c_predict(predict, tmp_path, path, ids, dtype)
    assert got.shape == (33, 3)
    assert_close(got, est.predict_proba(ids), dtype)


@pytest.mark.parametrize("name", ["reg_peephole", "reg_cifg_seq", "clf_binary"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cells_outputs_and_sequence_output(predict, saved, name, dtype, tmp_path):
    est, path, _ = saved[f"{name}_{dtype}"]
    X = RNG.standard_normal((3000, 5, 2))   # over 2048 rows: two chunks, as Python's predict
    got = c_predict(predict, tmp_path, path, X, dtype)
    if name == "clf_binary":
        want = est.predict_proba(X)
    else:
        want = est.predict(X).reshape(len(X), -1)
    assert_close(got, want, dtype)


@pytest.mark.parametrize("name", ["reg_peephole", "reg_cifg_seq", "clf_gru_ids"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_streaming_steps_equal_python_step(predict, saved, name, dtype, tmp_path):
    est, path, _ = saved[f"{name}_{dtype}"]
    X = RNG.integers(1, 12, (6, 5)) if name == "clf_gru_ids" else RNG.standard_normal((6, 5, 2))
    outs, state = c_stream(predict, tmp_path, path, X, dtype)
    want_outs, want_state = py_stream(est, X)
    # the recurrent state: the same kernel calls, bitwise
    np.testing.assert_array_equal(state.astype(dtype), want_state)
    assert_close(outs, want_outs, dtype)


def test_threads_do_not_change_results(predict, saved, tmp_path):
    _, path, _ = saved["reg_bidi_float64"]
    X = RNG.standard_normal((300, 20, 3))
    one = c_predict(predict, tmp_path, path, X, "float64", threads=1)
    two = c_predict(predict, tmp_path, path, X, "float64", threads=2)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("name", ["regressor_peephole_bidi", "classifier_gru_embedding"])
def test_files_of_the_first_release(predict, name, tmp_path):
    path = os.path.join(FIXTURES, f"{name}.npz")
    est = fastlstm.load(path)
    if name.startswith("classifier"):
        X = RNG.integers(0, est.vocab_size_, (20, 9))
        want = est.predict_proba(X)
    else:
        X = RNG.standard_normal((20, 8, 3)).astype(np.float32)
        want = est.predict(X)[:, None]
    assert_close(c_predict(predict, tmp_path, path, X, "float32"), want, "float32")


def test_max_isa_caps_the_level_as_in_python(predict, saved):
    path = saved["reg_peephole_float32"][1]
    for level in fastlstm._kernels.levels_supported():
        env = dict(os.environ, FASTLSTM_MAX_ISA=f" {level.upper()} ")
        out = _run_env(predict, env, path)
        assert out.returncode == 0 and f"isa {level}\n" in out.stdout, out.stderr
    out = _run_env(predict, dict(os.environ, FASTLSTM_MAX_ISA="sse9"), path)
    assert out.returncode == 2 and "FL_ERR_LEVEL" in out.stderr and "not a level" in out.stderr


def _run_env(predict, env, *args):
    return subprocess.run([predict.exe] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)


def test_info(predict, saved):
    info = dict(line.split(" ", 1) for line in
                predict(saved["clf_gru_ids_float64"][1]).stdout.strip().splitlines())
    assert info["estimator"] == "classifier" and info["cell"] == "gru"
    assert info["input"] == "tokens 1" and info["n_outputs"] == "3" and info["n_classes"] == "3"
    assert info["dtype"] == "float64" and info["hidden_sizes"] == "6"
    assert info["isa"] == fastlstm._kernels.isa()


# ---------------------------------------------------------------- bad files


# Variants of tests/test_io.py's corpus that Python refuses and the C API
# loads: they change a training-only constructor argument, which the C API
# never reads (it has nothing to train).
C_ACCEPTS = {"learning_rate_string", "epochs_float", "hostile_n_threads"}


def _refused(predict, path):
    proc = predict(path, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "FL_ERR_" in proc.stderr and len(proc.stderr.split(": ", 2)[-1].strip()) > 5, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("vid", test_io._variant_ids())
def test_bad_model_files_of_the_python_corpus(predict, vid, good_files, tmp_path):  # noqa: F811
    path = dict(test_io._bad_variants(good_files))[vid](tmp_path)
    if vid in C_ACCEPTS:
        assert predict(path).returncode == 0
        return
    message = _refused(predict, path)
    word = {"nan_params": "NaN", "version_2": "version", "raw_pickle_file": "pickle",
            "member_data_truncated": "truncated", "unknown_estimator": "unknown estimator",
            "needs_newer_reader": "upgrade fastlstm", "forecaster_zero_scale": "LSTMForecaster",
            "huge_hidden_size_small_params": "the architecture in the config has",
            "config_huge_float": "out-of-range"}.get(vid, "")
    assert word.lower() in message.lower(), message


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rezip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return path


def _config_member(text):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(text.encode("utf-8"), np.uint8))
    return buf.getvalue()


def _c_only_variants(good):
    """{id: (builder(tmp) -> path, words the message holds, status)}: bad files
    the Python corpus lacks, aimed at the C reader's own parsers."""
    raw = open(good, "rb").read()
    members = _members(good)
    text = np.lib.format.read_array(io.BytesIO(members["config.npy"])).tobytes().decode()
    out = {}

    def add(vid, build, words, status="FL_ERR_FORMAT"):
        out[vid] = (build, words, status)

    def write(name, data):
        return lambda t: (t / name).write_bytes(data) and t / name

    def with_member(name, data):
        return lambda t: _rezip(t / "m.npz", {**members, name: data})

    def savez_compressed(t):
        arrays = {k[:-4]: np.lib.format.read_array(io.BytesIO(v)) for k, v in members.items()}
        np.savez_compressed(t / "z.npz", **arrays)
        return t / "z.npz"

    flipped = bytearray(raw)          # one bit of the params' data: only the CRC-32 sees it
    flipped[raw.index(b"NUMPY", raw.index(b"params.npy")) + 200] ^= 0x10
    params = members["params.npy"]
    add("deflated", lambda t: _rezip(t / "d.npz", members, zipfile.ZIP_DEFLATED), "STORED",
        "FL_ERR_UNSUPPORTED")
    add("savez_compressed", savez_compressed, "deflated", "FL_ERR_UNSUPPORTED")
    add("crc_mismatch", write("f.npz", bytes(flipped)), "CRC-32")
    add("truncated_at_10", write("t.npz", raw[:10]), "")
    add("truncated_at_100", write("t.npz", raw[:100]), "")
    add("truncated_half", write("t.npz", raw[:len(raw) // 2]), "")
    add("truncated_end-30", write("t.npz", raw[:-30]), "")
    add("truncated_end-1", write("t.npz", raw[:-1]), "")
    add("trailing_garbage", write("g.npz", raw + b"x" * 7), "end of central directory")
    add("json_deep_nesting", with_member("config.npy", _config_member("[" * 5000 + "]" * 5000)),
        "too deep")
    add("json_duplicate_key",
        with_member("config.npy", _config_member(text[:-1] + ', "format": "fastlstm-model"}')),
        "duplicate key")
    add("json_lone_surrogate",
        with_member("config.npy", _config_member(text[:-1] + ', "x": "\\ud800"}')), "surrogate")
    add("json_trailing_comma", with_member("config.npy", _config_member(text[:-1] + ",}")), "JSON")
    add("json_infinity", with_member("config.npy", _config_member(
        text.replace('"best_loss_": ', '"best_loss_": -Infinity, "y": '))), "NaN or Infinity")
    add("json_huge_int", with_member("config.npy", _config_member(
        text.replace('"best_loss_": ', '"best_loss_": 1' + "0" * 400 + ', "y": '))), "best_loss_")
    add("params_wrong_length", with_member("params.npy", params[:-4]), "truncated")
    add("fortran_order", with_member("params.npy", params.replace(
        b"'fortran_order': False", b"'fortran_order': True ")), "Fortran")
    add("big_endian", with_member("params.npy", params.replace(b"'<f", b"'>f")), "element type")
    add("too_many_members", lambda t: _rezip(t / "m.npz", {
        **members, **{f"x{k}.npy": members["format_version.npy"] for k in range(16)}}), "members")
    add("not_npy_member", with_member("evil.txt", b"hi"), "member")
    add("missing_file", lambda t: t / "nope.npz", "cannot open", "FL_ERR_IO")
    return out


C_ONLY_IDS = ["deflated", "savez_compressed", "crc_mismatch", "truncated_at_10", "truncated_at_100",
              "truncated_half", "truncated_end-30", "truncated_end-1", "trailing_garbage",
              "json_deep_nesting", "json_duplicate_key", "json_lone_surrogate",
              "json_trailing_comma", "json_infinity", "json_huge_int", "params_wrong_length",
              "fortran_order", "big_endian", "too_many_members", "not_npy_member", "missing_file"]


@pytest.mark.parametrize("vid", C_ONLY_IDS)
def test_bad_model_files_the_c_reader_checks(predict, saved, vid, tmp_path):
    variants = _c_only_variants(saved["reg_bidi_float64"][1])
    assert sorted(variants) == sorted(C_ONLY_IDS)
    build, words, status = variants[vid]
    message = _refused(predict, build(tmp_path))
    assert status in message, message
    assert words.lower() in message.lower(), message


def test_random_mutations_never_crash(predict, saved, tmp_path):
    """Flipped bytes, cut files, spliced pieces: exit status 0 or 2, never a signal."""
    raw = open(saved["clf_gru_ids_float32"][1], "rb").read()
    rng = np.random.default_rng(2024)
    for i in range(60):
        b = bytearray(raw)
        kind = i % 3
        if kind == 0:
            for _ in range(rng.integers(1, 8)):
                b[rng.integers(len(b))] = rng.integers(256)
        elif kind == 1:
            b = b[:rng.integers(len(b))]
        else:
            a, c = sorted(rng.integers(len(b), size=2))
            b = b[:a] + b[c:] + b[a:c]
        path = tmp_path / f"m{i}.npz"
        path.write_bytes(bytes(b))
        proc = predict(path, check=False)
        assert proc.returncode in (0, 2), (i, proc.returncode, proc.stderr[-2000:])


# ---------------------------------------------------------------- the library in-process


class Spec(ctypes.Structure):
    _fields_ = [("estimator", ctypes.c_int), ("dtype", ctypes.c_int), ("cell", ctypes.c_int),
                ("activation", ctypes.c_int), ("gate_activation", ctypes.c_int),
                ("bidirectional", ctypes.c_int), ("sequence_output", ctypes.c_int),
                ("n_layers", ctypes.c_int), ("hidden_sizes", ctypes.POINTER(ctypes.c_int)),
                ("input_size", ctypes.c_long), ("vocab_size", ctypes.c_long),
                ("embedding_dim", ctypes.c_long), ("n_outputs", ctypes.c_long),
                ("n_classes", ctypes.c_long)]


class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in (
        "estimator", "dtype", "takes_tokens", "cell", "activation", "gate_activation",
        "bidirectional", "sequence_output", "can_stream", "n_layers")] + [
        ("hidden_sizes", ctypes.c_int * 64)] + [(name, ctypes.c_long) for name in (
            "input_size", "vocab_size", "embedding_dim", "n_outputs", "n_classes", "n_params")]


@pytest.fixture(scope="module")
def lib():
    L = ctypes.CDLL(fastlstm.get_lib())
    vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    L.fl_model_load.argtypes = [cp, ctypes.POINTER(vp), cp, sz]
    L.fl_model_load_memory.argtypes = [vp, sz, ctypes.POINTER(vp), cp, sz]
    L.fl_model_from_arrays.argtypes = [ctypes.POINTER(Spec), vp, sz, ctypes.POINTER(vp), cp, sz]
    L.fl_model_free.argtypes = [vp]
    L.fl_model_free.restype = None
    L.fl_model_get_info.argtypes = [vp, ctypes.POINTER(Info)]
    L.fl_model_predict.argtypes = [vp, ctypes.c_long, ctypes.c_long, ctypes.c_int, vp, vp, vp,
                                   sz, ctypes.c_int, cp, sz]
    L.fl_model_step.argtypes = [vp, vp, ctypes.c_long, vp, ctypes.c_long, ctypes.c_int, vp, vp,
                                sz, ctypes.c_int, cp, sz]
    L.fl_model_state_bytes.argtypes = [vp, ctypes.c_long]
    L.fl_model_state_bytes.restype = sz
    L.fl_model_state_reset.argtypes = [vp, vp, ctypes.c_long, ctypes.c_long, cp, sz]
    for name in ("fl_model_status_name", "fl_model_reader_version", "fl_model_isa"):
        getattr(L, name).restype = cp
    L.fl_model_status_name.argtypes = [ctypes.c_int]
    return L


class Model:
    """A loaded model and checked calls into the library."""

    def __init__(self, lib, path=None, data=None, spec=None, params=None):
        self.lib, self.ptr = lib, ctypes.c_void_p()
        self.err = ctypes.create_string_buffer(512)
        if path is not None:
            st = lib.fl_model_load(str(path).encode(), ctypes.byref(self.ptr), self.err, 512)
        elif data is not None:
            st = lib.fl_model_load_memory(data, len(data), ctypes.byref(self.ptr), self.err, 512)
        else:
            st = lib.fl_model_from_arrays(ctypes.byref(spec), params.ctypes.data, params.size,
                                          ctypes.byref(self.ptr), self.err, 512)
        assert st == 0, self.err.value
        self.info = Info()
        assert lib.fl_model_get_info(self.ptr, ctypes.byref(self.info)) == 0

    def __del__(self):
        self.lib.fl_model_free(self.ptr)

    def predict(self, x, lengths=None, expect=0, threads=1, out_len=None):
        B, T = x.shape[:2]
        n = self.info.n_outputs * (T if self.info.sequence_output else 1)
        out = np.full((B, n), np.nan)
        xt = 2 if x.dtype == np.int64 else (1 if x.dtype == np.float64 else 0)
        err = ctypes.create_string_buffer(512)
        st = self.lib.fl_model_predict(
            self.ptr, B, T, xt, x.ctypes.data, None if lengths is None else lengths.ctypes.data,
            out.ctypes.data, out.size if out_len is None else out_len, threads, err, 512)
        assert st == expect, (st, err.value)
        return out if st == 0 else err.value.decode()


def _params_and_spec(est):
    net = est._network
    s = net.spec
    hidden = (ctypes.c_int * len(s.hidden_sizes))(*s.hidden_sizes)
    spec = Spec(estimator=1 if isinstance(est, LSTMClassifier) else 0,
                dtype=1 if s.dtype == "float64" else 0, cell=fastlstm.spec.CELLS[s.cell].code,
                activation=fastlstm.spec.ACTIVATIONS[s.activation],
                gate_activation=fastlstm.spec.GATE_ACTIVATIONS[s.gate_activation],
                bidirectional=int(s.bidirectional), sequence_output=int(s.sequence_output),
                n_layers=len(s.hidden_sizes), hidden_sizes=hidden,
                input_size=s.input_size or 0, vocab_size=s.vocab_size or 0,
                embedding_dim=s.embedding_dim or 0, n_outputs=s.n_outputs,
                n_classes=len(est.classes_) if isinstance(est, LSTMClassifier) else 0)
    return spec, hidden, net.params.copy()


@pytest.mark.parametrize("name", ["reg_bidi_float64", "clf_gru_ids_float32"])
def test_from_arrays_equals_the_file_and_memory(lib, saved, name):
    est, path, dtype = saved[name]
    spec, _hidden, params = _params_and_spec(est)
    x = (RNG.integers(0, 12, (9, 6)) if "ids" in name else RNG.standard_normal((9, 6, 3)))
    x = np.ascontiguousarray(x, np.int64 if "ids" in name else dtype)
    from_file = Model(lib, path=path).predict(x)
    np.testing.assert_array_equal(Model(lib, spec=spec, params=params).predict(x), from_file)
    np.testing.assert_array_equal(Model(lib, data=open(path, "rb").read()).predict(x), from_file)
    bad = spec
    bad.n_outputs += 1
    err = ctypes.create_string_buffer(256)
    ptr = ctypes.c_void_p()
    assert lib.fl_model_from_arrays(ctypes.byref(bad), params.ctypes.data, params.size,
                                    ctypes.byref(ptr), err, 256) < 0 and not ptr.value
    assert err.value


def test_many_threads_share_one_model(lib, saved):
    est, path, _ = saved["reg_bidi_float64"]
    m = Model(lib, path=path)
    xs = [np.ascontiguousarray(RNG.standard_normal((17, 8, 3))) for _ in range(6)]
    serial = [m.predict(x) for x in xs]
    results, errors = {}, []

    def work(k):
        try:                             # ctypes releases the GIL: the calls overlap
            for _ in range(5):
                results[k] = m.predict(xs[k], threads=2)
                assert np.array_equal(results[k], serial[k])
        except Exception as e:          # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors


NESTED_C = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <omp.h>
#include "fastlstm_model.h"

/* fl_model_predict on one thread from each thread of the caller's own
 * OpenMP team: every call must give the serial call's output. */
int main(int argc, char **argv)
{
    fl_model *m;
    fl_model_info info;
    char err[256];
    double x[12], want[16], got[4][16];
    int bad = 0;
    if (argc < 2 || fl_model_load(argv[1], &m, err, sizeof err) != 0) return 2;
    fl_model_get_info(m, &info);
    for (int i = 0; i < 12; i++) x[i] = sin(0.7 * i);
    if (fl_model_predict(m, 1, 6, FL_FLOAT64, x, NULL, want, 16, 1, err, sizeof err) != 0) return 3;
    #pragma omp parallel num_threads(4)
    {
        char e[256];
        double *out = got[omp_get_thread_num()];
        if (fl_model_predict(m, 1, 6, FL_FLOAT64, x, NULL, out, 16, 1, e, sizeof e) != 0
            || memcmp(out, want, sizeof(double) * (size_t)info.n_outputs) != 0) {
            #pragma omp atomic
            bad++;
        }
    }
    fl_model_free(m);
    printf("%d calls differ\n", bad);
    return bad != 0;
}
"""


def test_calls_from_inside_the_callers_openmp_team(saved, tmp_path):
    # a one-thread call runs the kernels without a region of its own; inside
    # the caller's team it must not take the caller's thread number as its
    # own (its work shared out with threads that never run it: wrong output,
    # or a barrier no one else reaches: a hang)
    src = tmp_path / "nested.c"
    src.write_text(NESTED_C)
    exe = str(tmp_path / "nested")
    libdir = os.path.dirname(fastlstm.get_lib())
    cmd = [CC, "-std=c99", "-O2", "-fopenmp", "-o", exe, str(src), "-I" + fastlstm.get_include(),
           "-L" + libdir, "-lfastlstm", "-lm", "-Wl,-rpath," + libdir]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, " ".join(cmd) + "\n" + proc.stderr
    _, path, _ = saved["reg_peephole_float64"]   # 2 features, batch of 1, T = 6
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["reg_peephole_float64", "clf_gru_ids_float32"])
def test_step_on_a_subset_of_streams(lib, saved, name):
    est, path, dtype = saved[name]
    m = Model(lib, path=path)
    ids = "ids" in name
    n_streams = 5
    state = np.zeros(lib.fl_model_state_bytes(m.ptr, n_streams), np.uint8)
    py_state = est.init_state(n_streams)
    err = ctypes.create_string_buffer(512)
    for streams in ([0, 1, 2, 3, 4], [3, 1], [4], [2, 0, 3]):
        sel = np.array(streams, np.int64)
        x = (RNG.integers(1, 12, len(sel)).astype(np.int64) if ids
             else np.ascontiguousarray(RNG.standard_normal((len(sel), 2)), dtype))
        out = np.zeros((len(sel), m.info.n_outputs))
        st = lib.fl_model_step(m.ptr, state.ctypes.data, n_streams, sel.ctypes.data, len(sel),
                               2 if ids else (1 if dtype == "float64" else 0), x.ctypes.data,
                               out.ctypes.data, out.size, 1, err, 512)
        assert st == 0, err.value
        want, py_state = est.step(x, py_state, streams=streams)
        assert_close(out, want.reshape(out.shape), dtype)
    flat = np.concatenate([h.ravel() for h in py_state.h]
                          + ([c.ravel() for c in py_state.c] if py_state.c else []))
    np.testing.assert_array_equal(state.view(dtype), flat)
    # reset one stream: its rows are zero, the others untouched
    assert lib.fl_model_state_reset(m.ptr, state.ctypes.data, n_streams, 3, err, 512) == 0
    py_state.reset([3])
    flat = np.concatenate([h.ravel() for h in py_state.h]
                          + ([c.ravel() for c in py_state.c] if py_state.c else []))
    np.testing.assert_array_equal(state.view(dtype), flat)


def test_argument_errors_are_status_codes(lib, saved):
    est, path, _ = saved["reg_bidi_float64"]
    m = Model(lib, path=path)
    x = np.ascontiguousarray(RNG.standard_normal((4, 5, 3)))
    bad = x.copy()
    bad[2, 1, 0] = np.inf
    assert "x[2, 1, 0]" in m.predict(bad, expect=-8)
    assert "out holds" in m.predict(x, out_len=3, expect=-2)
    # a sequence of length 0 gives the head zero features: the output is head.bias exactly
    out = m.predict(x, lengths=np.array([5, 0, 2, 3], np.int64))
    assert out[1, 0] == est._network.head_bias[0]
    np.testing.assert_array_equal(out[[0, 2, 3]], m.predict(x, lengths=np.array(
        [5, 1, 2, 3], np.int64))[[0, 2, 3]])
    assert "lengths[1]" in m.predict(x, lengths=np.array([1, 6, 2, 3], np.int64), expect=-8)
    assert isinstance(m.predict(x.astype(np.float32)), np.ndarray)   # float32 input converts
    # a bidirectional model cannot stream
    assert lib.fl_model_state_bytes(m.ptr, 3) == 0
    err = ctypes.create_string_buffer(256)
    st = lib.fl_model_step(m.ptr, x.ctypes.data, 3, None, 3, 1, x.ctypes.data, x.ctypes.data,
                           100, 1, err, 256)
    assert st == -7 and b"forward-only" in err.value
    # token models: ids out of range; a step may not take padding
    est_c, path_c, _ = saved["clf_gru_ids_float32"]
    c = Model(lib, path=path_c)
    ids = RNG.integers(0, 12, (3, 4)).astype(np.int64)
    ids[1, 2] = 12
    assert "x[1, 2] = 12" in c.predict(ids, expect=-8)
    assert "FL_INT64" in c.predict(np.zeros((3, 4, 1)), expect=-3)
    state = np.zeros(lib.fl_model_state_bytes(c.ptr, 2), np.uint8)
    zero = np.zeros(2, np.int64)
    out = np.zeros(6)
    st = lib.fl_model_step(c.ptr, state.ctypes.data, 2, None, 2, 2, zero.ctypes.data,
                           out.ctypes.data, 6, 1, err, 256)
    assert st == -8 and b"padding" in err.value
    dup = np.array([1, 1], np.int64)
    st = lib.fl_model_step(c.ptr, state.ctypes.data, 2, dup.ctypes.data, 2, 2, zero.ctypes.data,
                           out.ctypes.data, 6, 1, err, 256)
    assert st == -3 and b"repeat" in err.value
    # NULLs and names
    assert lib.fl_model_predict(None, 1, 1, 0, None, None, None, 0, 1, None, 0) == -3
    assert lib.fl_model_status_name(-6) == b"FL_ERR_FORMAT"
    assert lib.fl_model_isa().decode() == fastlstm._kernels.isa()


def test_models_needing_a_newer_reader_are_refused_naming_versions(predict, lib, tmp_path):
    # the C reader computes the models of fastlstm 0.1.0 (READER_VERSION in
    # model.c); a file using a feature of io._VERSIONED_FEATURES newer than that
    # (scaled inputs, forecaster covariates or quantiles) is refused with the
    # versions named, never computed without the feature
    have = tuple(int(v) for v in lib.fl_model_reader_version().decode().split("."))
    newer = [f for f in fastlstm.io._VERSIONED_FEATURES
             if tuple(int(v) for v in f[3].split(".")[:3]) > have]
    assert ("params", "scale_inputs", False, "0.2.0") in newer
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4, 2))
    est = fastlstm.LSTMRegressor(hidden_sizes=(3,), epochs=1, scale_inputs=True,
                                 random_state=0, n_threads=1).fit(X, X[:, -1, 0])
    stderr = _refused(predict, est.save(tmp_path / "scaled.npz"))
    assert "FL_ERR_UNSUPPORTED" in stderr and "needs fastlstm >= 0.2.0" in stderr, stderr


@pytest.mark.parametrize("dtype", fastlstm.quantize.QUANT_DTYPES)
def test_quantized_models_are_refused_naming_quantization(predict, dtype, tmp_path):
    # int8 and bfloat16 weights have no runner in the C library: the file
    # (min_reader_version 0.2.0, members of dtypes it does not read) is refused
    # as unsupported, and the message says why
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4, 2))
    est = fastlstm.LSTMRegressor(hidden_sizes=(3,), epochs=1, random_state=0,
                                 n_threads=1).fit(X, X[:, -1, 0])
    stderr = _refused(predict, est.quantize(dtype).save(tmp_path / "q.npz"))
    assert "FL_ERR_UNSUPPORTED" in stderr and f"quantized model ({dtype}" in stderr, stderr


# ---------------------------------------------------------------- the Python side


def test_get_include_and_get_lib():
    assert os.path.isfile(os.path.join(fastlstm.get_include(), "fastlstm_model.h"))
    assert os.path.basename(fastlstm.get_lib()).startswith("libfastlstm")


# the loaded libraries are listed in Linux's /proc/self/maps; elsewhere there is
# no portable list to read, and the kernels' fork and thread code is Linux's too
@pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's /proc/self/maps")
def test_import_does_not_load_the_library():
    code = ("import fastlstm, sys; fastlstm.get_lib(); "
            "sys.exit('libfastlstm' in open('/proc/self/maps').read())")
    env = helpers.child_env()
    assert subprocess.run([sys.executable, "-c", code], env=env,
                          cwd=helpers.CHILD_CWD).returncode == 0


def test_header_compiles_as_cxx(tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "h.cpp"
    src.write_text('#include <fastlstm_model.h>\nint main() { fl_model *m = nullptr; '
                   'fl_model_free(m); return 0; }\n')
    proc = subprocess.run([cxx, "-fsyntax-only", "-Wall", "-Werror", "-I" + fastlstm.get_include(),
                           str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

