"""Model files: the container, its schema and all checks of a file, in one place.

File layout (a zip archive of ``.npy`` members, as ``numpy.savez`` writes)::

    format_version.npy   int64 scalar, FORMAT_VERSION
    config.npy           uint8 1-D array: UTF-8 JSON (see below)
    params.npy           the network's flat parameter buffer (float32/float64),
                         laid out as NetworkSpec.param_shapes(); of a quantized
                         model, without its recurrent weight matrices
    quant_weights.npy    quantized models only (fitted ``quant_dtype``): every
                         W_ih and W_hh as stored (int8, or bfloat16 bit
                         patterns as uint16), one after the other
    quant_scales.npy     int8 models only: their float32 row scales
    ...                  estimator-specific arrays (classes, scaler, history)

The JSON config holds ``format`` ("fastlstm-model"), ``format_version``,
``fastlstm_version``, ``estimator`` (class name), ``params`` (constructor
arguments), ``fitted`` (learned scalars and lists: the ones every estimator
has, ``_COMMON_FITTED``, and the estimator's own), ``network`` (the
architecture, ``NetworkSpec.to_json()``) and ``arrays``: for every array
member its ``shape`` and ``dtype``.

Loading is written for files from untrusted sources:

* numpy's pickle support is never used (arrays are read member by member with
  ``numpy.lib.format`` and ``allow_pickle=False`` semantics: object dtypes are
  refused before any data is read);
* the version and the config are read first, and the parameter array the
  config declares must be exactly what its architecture holds; every other
  member's header (shape, dtype) is compared with the config before its data
  is read, and the data must be exactly as long as the header says;
* member names, count and sizes are bounded, and the config must be plain
  JSON (no NaN/Infinity) within a size limit;
* every value is then checked (types, ranges; the architecture the params
  give must be the stored one) before anything is built, and the
  parameters must be finite (a quantized model's: int8 values in
  [-127, 127], scales >= 0, and finite once dequantized).

Anything wrong raises ``ValueError`` (a missing file raises the usual
``FileNotFoundError``). The estimators module depends on this one, never
the other way: ``fastlstm.load`` passes its classes to ``read_model``.
"""

import dataclasses
import json
import math
import os
import re
import stat
import struct
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

from . import _kernels
from ._validation import is_int, is_real
from .network import Network
from .quantize import QUANT_DTYPES, dequantize, quantize_stored
from .spec import NetworkSpec, direction_suffix

__all__ = ["save", "read_model", "FORMAT_VERSION", "ModelFileWarning"]

FORMAT_NAME = "fastlstm-model"
FORMAT_VERSION = 1

MAX_MEMBERS = 16
MAX_CONFIG_BYTES = 1 << 20  # 1 MiB of JSON
MAX_TOTAL_BYTES = 1 << 32  # 4 GiB of arrays
DEFLATE_MAX_RATIO = 1032   # deflate's largest expansion (258-byte matches in 2 bits)

# (int8 and uint16: a quantized model's weights and bfloat16 bit patterns)
_ALLOWED_DTYPES = {"float32", "float64", "int64", "int32", "uint8", "bool", "int8", "uint16"}
_UNICODE_RE = re.compile(r"^<U([1-9][0-9]{0,3})$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _dtype_str(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "U":
        return "<U%d" % (dtype.itemsize // 4)
    return dtype.name


def _check_dtype_str(s):
    if not isinstance(s, str):
        raise ValueError(f"array dtype in config must be a string, got {s!r}")
    if s in _ALLOWED_DTYPES or _UNICODE_RE.match(s):
        return np.dtype(s)
    raise ValueError(f"array dtype {s!r} is not allowed in a model file")


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a model config")


def _write(config, arrays, path):
    """Write the container: the arrays and the config, atomically."""
    spec = {}
    for name, arr in arrays.items():
        if not _NAME_RE.match(name) or name in ("config", "format_version"):
            raise ValueError(f"invalid array name {name!r}")
        arr = np.ascontiguousarray(arr)
        if arr.dtype.kind == "U":
            arr = arr.astype("<U%d" % max(1, arr.dtype.itemsize // 4))
        _check_dtype_str(_dtype_str(arr.dtype))
        arrays[name] = arr
        spec[name] = {"shape": list(arr.shape), "dtype": _dtype_str(arr.dtype)}
    config = dict(config)
    config["format"] = FORMAT_NAME
    config["format_version"] = FORMAT_VERSION
    config["arrays"] = spec
    text = json.dumps(config, allow_nan=False, default=_json_default, sort_keys=True)
    members = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "config": np.frombuffer(text.encode("utf-8"), dtype=np.uint8),
    }
    members.update(arrays)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=".fastlstm-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
        os.chmod(tmp, mode)          # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _file_mode(path):
    """The permission bits a plain open(path, "w") would leave: the existing file's,
    or 0666 less the umask for a new one."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        pass
    umask = None
    try:
        with open("/proc/self/status") as f:      # Linux: read without changing it
            for line in f:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


# ---------------------------------------------------------------- reading

# what a damaged archive raises from inside zipfile and zlib, besides BadZipFile
_CORRUPT_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError,
                   NotImplementedError, struct.error, UnicodeDecodeError, OverflowError)
_READ_CHUNK = 1 << 24


class _Reader:
    """Reads .npy members of a zip one at a time, checking headers first."""

    def __init__(self, zf, file_bytes):
        self.zf = zf
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ValueError(f"model file has {len(infos)} members; at most {MAX_MEMBERS} allowed")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise ValueError("model file has duplicate member names")
        total = 0
        self.infos = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or not _NAME_RE.match(name[:-4]):
                raise ValueError(f"unexpected member {name!r} in model file")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"member {name!r} uses an unsupported compression")
            # a member's size may not exceed what its bytes in the file can hold
            # (stored: as many; deflated: at most DEFLATE_MAX_RATIO times as many),
            # so reading it never allocates for data the file does not have
            stored = info.compress_type == zipfile.ZIP_STORED
            hold = info.compress_size if stored else DEFLATE_MAX_RATIO * info.compress_size + 64
            if info.compress_size > file_bytes:
                raise ValueError(f"member {name!r} claims {info.compress_size} bytes of a "
                                 f"{file_bytes}-byte file")
            if info.file_size > hold:
                raise ValueError(f"member {name!r} declares {info.file_size} bytes, more than its "
                                 f"{info.compress_size} bytes in the file can hold")
            total += info.file_size
            self.infos[name[:-4]] = info
        if total > MAX_TOTAL_BYTES:
            raise ValueError("model file is too large")

    def names(self):
        return set(self.infos)

    def read(self, name, expect_dtype=None, expect_shape=None, max_bytes=None):
        info = self.infos.get(name)
        if info is None:
            raise ValueError(f"model file is missing the array {name!r}")
        with self.zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except _CORRUPT_ERRORS:
                raise                # the archive itself is damaged: reported below
            except Exception as e:   # numpy parses the header dict with ast/tokenize:
                # SyntaxError, tokenize.TokenError, TypeError... all mean a bad header
                raise ValueError(f"array {name!r}: bad .npy header "
                                 f"({type(e).__name__}: {e})") from None
            if not all(type(s) is int and s >= 0 for s in shape):   # (True,) parses
                raise ValueError(f"array {name!r}: bad .npy header (shape {shape!r})")
            if dtype.hasobject:
                raise ValueError(
                    f"array {name!r} holds Python objects (a pickle payload); "
                    "model files may only hold numeric arrays"
                )
            if expect_dtype is not None and dtype != expect_dtype:
                raise ValueError(
                    f"array {name!r} has dtype {dtype}, but the config says {expect_dtype}"
                )
            if expect_shape is not None and tuple(shape) != tuple(expect_shape):
                raise ValueError(
                    f"array {name!r} has shape {tuple(shape)}, but the config says "
                    f"{tuple(expect_shape)}"
                )
            count = 1
            for s in shape:
                count *= int(s)
            nbytes = count * dtype.itemsize
            if max_bytes is not None and nbytes > max_bytes:
                raise ValueError(f"array {name!r} is too large ({nbytes} bytes)")
            if nbytes > info.file_size:
                raise ValueError(f"array {name!r} is truncated")
            # straight into the array's own memory, a chunk at a time: the
            # file's bytes are never held twice
            flat = np.empty(count, dtype=dtype)
            raw = memoryview(flat.view(np.uint8))
            got = 0
            while got < nbytes:
                n = f.readinto(raw[got:got + _READ_CHUNK])
                if not n:
                    raise ValueError(f"array {name!r} is truncated: expected {nbytes} bytes "
                                     f"of data, found {got}")
                got += n
            if f.read(1):
                raise ValueError(f"array {name!r} has trailing data after its values")
        if fortran:
            return np.ascontiguousarray(flat.reshape(shape, order="F"))
        return flat.reshape(shape)


def _reject_constant(token):
    raise ValueError(f"config contains the non-JSON number {token}")


def _finite_float(text):
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"config contains the out-of-range number {text}")
    return value


def read_payload(path, check_config=None):
    """Read and check the container; returns (config dict, arrays dict).

    ``check_config(config)`` runs once the config is parsed and before any
    array is read, so a config whose declared arrays do not fit its
    architecture costs nothing to refuse.
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:1] == b"\x80":  # pickle protocol >= 2 starts with the PROTO opcode
        raise ValueError(
            "model file is a pickle, not a fastlstm .npz model file; "
            "refusing to load it (use pickle.load only on files you trust)"
        )
    try:
        zf = zipfile.ZipFile(path)
    except _CORRUPT_ERRORS + (zipfile.LargeZipFile, ValueError) as e:
        raise ValueError(f"not a fastlstm model file, or a truncated or corrupt one "
                         f"(not a valid .npz archive: {e})") from None
    try:
        with zf:
            reader = _Reader(zf, os.path.getsize(path))
            version = reader.read("format_version", max_bytes=64)
            if version.shape != () or version.dtype.kind not in "iu":
                raise ValueError("format_version must be an integer scalar")
            if int(version) != FORMAT_VERSION:
                raise ValueError(
                    f"unsupported model format version {int(version)}; this fastlstm "
                    f"reads version {FORMAT_VERSION}"
                    + (" (the file is from a newer fastlstm: upgrade fastlstm to load it)"
                       if int(version) > FORMAT_VERSION else "")
                )
            raw_config = reader.read("config", expect_dtype=np.dtype(np.uint8),
                                     max_bytes=MAX_CONFIG_BYTES)
            if raw_config.ndim != 1:
                raise ValueError("config must be a 1-D uint8 array")
            try:
                config = json.loads(raw_config.tobytes().decode("utf-8"),
                                    parse_constant=_reject_constant,
                                    parse_float=_finite_float)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise ValueError(f"config is not valid UTF-8 JSON: {e}") from None
            if not isinstance(config, dict):
                raise ValueError("config must be a JSON object")
            if config.get("format") != FORMAT_NAME:
                raise ValueError(f"config format must be {FORMAT_NAME!r}")
            cv = config.get("format_version")
            if type(cv) is not int or cv != int(version):
                raise ValueError("config format_version does not match the file's format_version")
            spec = config.get("arrays")
            if not isinstance(spec, dict):
                raise ValueError("config must list its arrays under 'arrays'")
            expected = set(spec) | {"config", "format_version"}
            if reader.names() != expected:
                extra = sorted(reader.names() - expected)
                missing = sorted(expected - reader.names())
                raise ValueError(
                    f"arrays in the file do not match the config: missing {missing}, "
                    f"unexpected {extra}"
                )
            declared = {}
            total = 0
            for name, s in spec.items():
                if not isinstance(name, str) or not _NAME_RE.match(name):
                    raise ValueError(f"invalid array name {name!r} in config")
                if not isinstance(s, dict) or set(s) != {"shape", "dtype"}:
                    raise ValueError(f"config entry for array {name!r} must have shape and dtype")
                shape = s["shape"]
                if not isinstance(shape, list) or len(shape) > 4 or not all(
                    type(d) is int and 0 <= d < 2**40 for d in shape
                ):
                    raise ValueError(f"config shape of array {name!r} is invalid: {shape!r}")
                dtype = _check_dtype_str(s["dtype"])
                total += math.prod(shape) * dtype.itemsize
                declared[name] = (dtype, shape)
            if total > MAX_TOTAL_BYTES:
                raise ValueError(f"model file declares {total} bytes of arrays; at most "
                                 f"{MAX_TOTAL_BYTES} allowed")
            if check_config is not None:
                check_config(config)
            arrays = {}
            for name, (dtype, shape) in declared.items():
                arr = reader.read(name, expect_dtype=dtype, expect_shape=shape)
                if arr.dtype.kind == "f" and not _kernels.all_finite(arr):
                    raise ValueError(f"array {name!r} contains NaN or infinity")
                arrays[name] = arr
    except _CORRUPT_ERRORS as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"model file is corrupt, truncated or unreadable "
                         f"({type(e).__name__}: {e})") from None
    return config, arrays


# ---------------------------------------------------------------- the estimator schema
# What every estimator's file holds: its constructor arguments ("params"),
# learned values ("fitted": the ones below plus the estimator's own extras),
# the architecture ("network", a NetworkSpec) and arrays (the network's flat
# "params" plus the estimator's own extras).

_COMMON_FITTED = ("n_features_in_", "loss_curve_", "validation_scores_", "best_loss_", "n_iter_")

# Compatibility across versions. ``format_version`` is the container's layout
# (a newer one is refused). Within it, each file names the oldest fastlstm
# that computes its model's function, ``min_reader_version`` (files without
# it: 0.1.0, the first release), computed by the writer from the features the
# model uses. A reader at least that new loads the file: keys it does not know
# (written by a newer version) are ignored with a ModelFileWarning, since the
# writer has declared they do not change what the model computes; keys the
# file lacks (written by an older version) take their defaults. An older
# reader refuses the file, naming both versions.
# Features that raise min_reader_version: (key path, value that needs no
# newer reader, version that introduced the key).
_VERSIONED_FEATURES = (
    # standardised inputs: an older reader would feed the network raw features
    ("params", "scale_inputs", False, "0.2.0"),
    # forecaster covariates widen the network's input; quantile models output
    # Q values per step (an older reader would build the wrong network)
    ("fitted", "n_past_covariates", 0, "0.2.0"),
    ("fitted", "n_future_covariates", 0, "0.2.0"),
    ("fitted", "quantiles", None, "0.2.0"),
    # quantized recurrent weights (estimator.quantize): an older reader has
    # neither their arrays nor their kernels
    ("fitted", "quant_dtype", None, "0.2.0"),
)
_FIRST_VERSION = "0.1.0"


def _version_tuple(text, what):
    """(major, minor, patch) of "X.Y.Z" (a suffix after the patch number, as in
    "0.2.0.dev1", is ignored); ValueError for anything else."""
    m = re.match(r"^(\d{1,6})\.(\d{1,6})\.(\d{1,6})", text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{what} must be a version string like '0.1.0', got {text!r}")
    return tuple(int(g) for g in m.groups())


def _min_reader_version(config):
    """The oldest fastlstm that computes a payload's function."""
    need = _FIRST_VERSION
    for section, key, neutral, since in _VERSIONED_FEATURES:
        if config[section].get(key, neutral) != neutral and \
                _version_tuple(since, "since") > _version_tuple(need, "need"):
            need = since
    return need


def _check_reader_version(config):
    from ._version import __version__

    need = config.get("min_reader_version", _FIRST_VERSION)
    writer = config.get("fastlstm_version", "an unknown version")
    if _version_tuple(need, "min_reader_version") > _version_tuple(__version__, "__version__"):
        raise ValueError(f"this model file needs fastlstm >= {need} (it was written by fastlstm "
                         f"{writer}); this is fastlstm {__version__}: upgrade fastlstm to load it")


class ModelFileWarning(UserWarning):
    """A model file holds keys this fastlstm does not know (it was written by a
    newer version); they do not change what the model computes and are ignored."""


def _json_param(name, value):
    """A constructor argument as the config stores it."""
    if isinstance(value, (np.random.RandomState, np.random.Generator)) or name == "callbacks":
        return None  # a generator's state, code to call: not part of the model
    if isinstance(value, tuple):
        return list(value)
    if name == "dtype":
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):    # e.g. class_weight: JSON keys would all become strings
        return {"dict": [[_json_param("", k), _json_param("", w)] for k, w in value.items()]}
    return value


def _param_from_json(name, value):
    """A constructor argument as the config stores it, back (lists were tuples)."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        items = value.get("dict")
        if set(value) != {"dict"} or not isinstance(items, list) or not all(
                isinstance(kv, list) and len(kv) == 2 for kv in items):
            raise ValueError(f"model config param {name!r} must not be an object")
        return {(tuple(k) if isinstance(k, list) else k): w for k, w in items}
    return value


def _payload(est, include_optimizer=False):
    """(config, arrays) of a fitted estimator."""
    from ._version import __version__

    params = {k: _json_param(k, v) for k, v in est.get_params(deep=False).items()}
    fitted = {
        "n_features_in_": int(est.n_features_in_),
        "loss_curve_": [float(x) for x in est.loss_curve_],
        "validation_scores_": None if est.validation_scores_ is None
        else [float(x) for x in est.validation_scores_],
        "validation_loss_curve_": None if est.validation_loss_curve_ is None
        else [float(x) for x in est.validation_loss_curve_],
        "best_loss_": float(est.best_loss_),
        "n_iter_": int(est.n_iter_),
    }
    fitted.update(est._extra_fitted())
    scaled = getattr(est, "input_mean_", None) is not None
    if scaled:
        fitted["input_scaled"] = True
    config = {"estimator": type(est).__name__, "params": params, "fitted": fitted,
              "network": est._network.spec.to_json(), "fastlstm_version": __version__}
    quant = getattr(est._network, "quant_dtype", None)
    if quant:
        if include_optimizer:
            raise ValueError(f"this model is quantized ({quant}) and does not train: it has "
                             "no optimizer state to save; save it without include_optimizer")
        fitted["quant_dtype"] = quant
    config["min_reader_version"] = _min_reader_version(config)
    arrays = _quantized_arrays(est._network) if quant else {"params": est._network.params.copy()}
    arrays.update(est._extra_arrays())
    if scaled:
        arrays.update(input_mean=est.input_mean_, input_scale=est.input_scale_)
    if include_optimizer:
        config["training"], train_arrays = _training_state(est)
        arrays.update(train_arrays)
    return config, arrays


# ---------------------------------------------------------------- training state
# With save(..., include_optimizer=True): the optimizer's step count and
# buffers, the random streams' positions and the early-stopping counter, so
# that partial_fit after load continues exactly as without the round trip.

_OPTIMIZER_ARRAYS = {"adam": ("m", "v"), "sgd": ("buf",)}
_STREAMS = ("_split_rng", "_shuffle_rng", "_dropout_rng")


def _training_state(est):
    from .optim import Adam

    opt = getattr(est, "_optimizer", None)
    if opt is None:
        raise ValueError(f"this {type(est).__name__} has no optimizer state to save "
                         "(it was loaded without one); save it without include_optimizer")
    name = "adam" if isinstance(opt, Adam) else "sgd"
    arrays = {}
    for key in _OPTIMIZER_ARRAYS[name]:
        buf = getattr(opt, key)
        if buf is not None:
            arrays[f"optimizer_{key}"] = buf.copy()
    streams = {attr.strip("_"): getattr(est, attr).bit_generator.state for attr in _STREAMS}
    state = {"optimizer": name, "step": int(opt.t), "streams": streams,
             "no_improvement_count": int(est._no_improvement_count)}
    return state, arrays


def _check_stream_state(state, name):
    ok = (isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32",
                                                     "uinteger"}
          and state["bit_generator"] == "PCG64" and isinstance(state["state"], dict)
          and set(state["state"]) == {"state", "inc"}
          and all(is_int(v) and 0 <= v < 2**128 for v in state["state"].values())
          and state["has_uint32"] in (0, 1) and is_int(state["uinteger"])
          and 0 <= state["uinteger"] < 2**32)
    if not ok:
        raise ValueError(f"training state: random stream {name!r} is not a PCG64 state")


def _restore_training_state(est, p, training, arrays):
    """Put the optimizer and the random streams back (checked first)."""
    from .optim import make_optimizer

    if not isinstance(training, dict) or set(training) != {"optimizer", "step", "streams",
                                                            "no_improvement_count"}:
        raise ValueError("training state in the model file is malformed")
    name, step = training["optimizer"], training["step"]
    if name != p["optimizer"]:
        raise ValueError(f"training state is for optimizer {name!r}, the params say "
                         f"{p['optimizer']!r}")
    if not is_int(step) or step < 0 or not is_int(training["no_improvement_count"]) \
            or training["no_improvement_count"] < 0:
        raise ValueError("training state: step and no_improvement_count must be ints >= 0")
    streams = training["streams"]
    if not isinstance(streams, dict) or set(streams) != {a.strip("_") for a in _STREAMS}:
        raise ValueError("training state: streams must name " + ", ".join(_STREAMS))
    for key, state in streams.items():
        _check_stream_state(state, key)
    params = est._network.params
    opt = make_optimizer(p["optimizer"], p["learning_rate"], p["weight_decay"])
    for key in _OPTIMIZER_ARRAYS[name]:
        buf = arrays.get(f"optimizer_{key}")
        if buf is not None and (buf.shape != params.shape or buf.dtype != params.dtype):
            raise ValueError(f"optimizer_{key} must match params ({params.dtype}, "
                             f"{params.shape}), got {buf.dtype}, {buf.shape}")
        setattr(opt, key, buf)
    if name == "adam" and (opt.m is None) != (opt.v is None):
        raise ValueError("training state: Adam needs both optimizer_m and optimizer_v")
    opt.t = int(step)
    est._optimizer = opt
    for attr in _STREAMS:
        getattr(est, attr).bit_generator.state = streams[attr.strip("_")]
    est._no_improvement_count = int(training["no_improvement_count"])


def _training_array_names(config):
    training = config.get("training")
    if not isinstance(training, dict):
        return set()
    return {f"optimizer_{k}" for k in _OPTIMIZER_ARRAYS.get(training.get("optimizer"), ())}


# ---------------------------------------------------------------- quantized models
# A quantized model (estimator.quantize) computes with its recurrent weight
# matrices in their stored form, so the file keeps that form and not also a
# float copy: "quant_weights" holds every W_ih and W_hh, flattened one after
# the other in flat-buffer order, as int8 values or bfloat16 bit patterns
# (uint16); "quant_scales" (int8 only) their float32 row scales in the same
# order; "params" every other parameter, in flat-buffer order. Loading
# rebuilds the float params the in-memory model holds (the dequantized
# weights) from them.

# how fastlstm.quantize.quantize_weights stores each form's weights
_QUANT_STORAGE = {"int8": "int8", "bfloat16": "uint16"}
_QUANT_ARRAYS = ("quant_weights", "quant_scales")


def _quant_matrices(spec):
    """[((layer, direction), 0 for W_ih or 1 for W_hh, name, offset in the flat
    buffer, shape)] of the matrices a quantized network stores, in file order
    (sizes only: a hostile config's architecture costs nothing here)."""
    offsets, off = {}, 0
    for name, shape in spec.param_shapes():
        offsets[name] = off, shape
        off += math.prod(shape)
    matrices = []
    for layer in range(len(spec.hidden_sizes)):
        for d in range(spec.num_directions):
            for which, kind in enumerate(("ih", "hh")):
                name = f"weight_{kind}_{direction_suffix(layer, d)}"
                matrices.append(((layer, d), which, name) + offsets[name])
    return matrices


def _kept(spec, matrices):
    """A mask of the flat buffer's values that a quantized file's params hold."""
    kept = np.ones(spec.param_count(), bool)
    for _, _, _, at, shape in matrices:
        kept[at:at + math.prod(shape)] = False
    return kept


def _quant_dtype_of(config):
    """The fitted quant_dtype of a config: None (a float model) or one of QUANT_DTYPES."""
    fitted = config.get("fitted")
    quant = fitted.get("quant_dtype") if isinstance(fitted, dict) else None
    if quant is not None and not (isinstance(quant, str) and quant in QUANT_DTYPES):
        raise ValueError(f"fitted quant_dtype must be null or one of {list(QUANT_DTYPES)}, "
                         f"got {quant!r}")
    return quant


def _network_arrays(spec, quant):
    """{name: (dtype, shape)} of the arrays holding the parameters of a network
    with quantized weights of ``quant`` (None: a float network)."""
    n = spec.param_count()
    if quant is None:
        return {"params": (spec.dtype, (n,))}
    matrices = _quant_matrices(spec)
    n_weights = sum(math.prod(shape) for *_, shape in matrices)
    arrays = {"params": (spec.dtype, (n - n_weights,)),
              "quant_weights": (_QUANT_STORAGE[quant], (n_weights,))}
    if quant == "int8":
        arrays["quant_scales"] = ("float32", (sum(shape[0] for *_, shape in matrices),))
    return arrays


def _quantized_arrays(net):
    """The arrays of a quantized network: params without the quantized
    matrices, and the matrices as the model holds them."""
    matrices = _quant_matrices(net.spec)
    weights, scales = [], []
    for key, which, _, _, _ in matrices:
        stored = net.recurrent._qweights[key]     # (w_ih, w_hh, s_ih, s_hh)
        weights.append(stored[which].ravel())
        scales.append(stored[which + 2])
    arrays = {"params": net.params[_kept(net.spec, matrices)],
              "quant_weights": np.concatenate(weights)}
    if net.quant_dtype == "int8":
        arrays["quant_scales"] = np.concatenate(scales)
    return arrays


def _dequantized(name, w, s):
    """The float32 weights of one stored matrix, checked: int8 values in
    [-127, 127] with scales >= 0 (the container refused NaN and infinity in
    them), and, like float params, finite weights (no bfloat16 infinity or
    NaN, no scale that overflows)."""
    if s is not None:
        if (w == -128).any():
            raise ValueError(f"array 'quant_weights': {name} holds -128; int8 weights are "
                             "in [-127, 127]")
        if (s < 0).any():
            raise ValueError(f"array 'quant_scales': {name} has negative scales")
    with np.errstate(over="ignore"):       # an overflow is refused just below
        values = dequantize(w, s)
    if not _kernels.all_finite(values):
        raise ValueError(f"array 'quant_weights': {name} holds bfloat16 infinity or NaN"
                         if s is None else
                         f"array 'quant_scales': {name}'s scales overflow float32")
    return values


def _quantized_params(spec, arrays):
    """(flat float params, quantized weights as QuantizedLSTM/GRU._qweights
    holds them) of a checked quantized file's arrays."""
    matrices = _quant_matrices(spec)
    flat = np.empty(spec.param_count(), np.dtype(spec.dtype))
    flat[_kept(spec, matrices)] = arrays["params"]
    stored, scales = arrays["quant_weights"], arrays.get("quant_scales")
    qweights = {}
    w_at = s_at = 0
    for key, which, name, at, shape in matrices:
        n = math.prod(shape)
        w = stored[w_at:w_at + n].reshape(shape)
        s = None if scales is None else scales[s_at:s_at + shape[0]]
        w_at, s_at = w_at + n, s_at + shape[0]
        flat[at:at + n] = _dequantized(name, w, s).ravel()
        entry = qweights.setdefault(key, [None] * 4)
        entry[which], entry[which + 2] = w, s
    return flat, {key: tuple(entry) for key, entry in qweights.items()}


# ---------------------------------------------------------------- reading the schema

def _spec_of(config, unknown=None):
    """The NetworkSpec of a config: keys it lacks take their defaults; keys this
    version does not know are listed in ``unknown`` (refused without it)."""
    obj = config.get("network")
    if not isinstance(obj, dict):
        raise ValueError("invalid network spec in model file: it must be an object")
    fields = {f.name for f in dataclasses.fields(NetworkSpec)}
    extra = sorted(set(obj) - fields)
    if extra and unknown is None:
        raise ValueError(f"invalid network spec in model file: unknown keys {extra}")
    if unknown is not None:
        unknown += [f"network.{k}" for k in extra]
    try:
        return NetworkSpec.from_json({k: v for k, v in obj.items() if k in fields}, partial=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid network spec in model file: {e}") from None


def _check_declared_arrays(config):
    """Before any array is read: the parameter arrays the config declares must
    be exactly what its architecture holds (a hostile config costs nothing)."""
    _check_reader_version(config)
    spec = _spec_of(config, [])
    quant = _quant_dtype_of(config)
    want = _network_arrays(spec, quant)
    for name in _QUANT_ARRAYS:
        if name in config["arrays"] and name not in want:
            raise ValueError(f"array {name!r} does not belong in a model file whose fitted "
                             f"quant_dtype is {quant!r}")
    for name, (dtype, shape) in want.items():
        declared = config["arrays"].get(name)
        if declared is None or declared["shape"] != list(shape) or declared["dtype"] != dtype:
            raise ValueError(f"the config declares {name} as {declared}, but the architecture "
                             f"in the config has {shape[0]} {dtype} values for it"
                             + (f" (a quantized {quant} model)" if quant else ""))
    # (a float file's params are within the bound on its arrays; the float
    # model a quantized file's smaller arrays stand for must be too)
    model_bytes = spec.param_count() * np.dtype(spec.dtype).itemsize
    if model_bytes > MAX_TOTAL_BYTES:
        raise ValueError(f"model file declares a model of {model_bytes} bytes of parameters; "
                         f"at most {MAX_TOTAL_BYTES} allowed")


def _finite_list(value, max_len=None):
    return isinstance(value, list) and (max_len is None or len(value) <= max_len) and all(
        is_real(v) and math.isfinite(v) for v in value)


def _check_common_fitted(fitted, spec):
    nf = fitted.get("n_features_in_")
    if not is_int(nf) or nf < 1:
        raise ValueError(f"fitted n_features_in_ must be an int >= 1, got {nf!r}")
    if spec.embedding_dim is not None and nf != 1:
        raise ValueError("n_features_in_ must be 1 with token-id input")
    n_iter = fitted.get("n_iter_")
    if not is_int(n_iter) or n_iter < 0:
        raise ValueError(f"fitted n_iter_ must be an int >= 0, got {n_iter!r}")
    lc = fitted.get("loss_curve_")
    if not _finite_list(lc) or len(lc) != n_iter:
        raise ValueError("fitted loss_curve_ must be a list of n_iter_ finite numbers")
    for key in ("validation_scores_", "validation_loss_curve_"):
        vs = fitted.get(key)
        if vs is not None and not _finite_list(vs, n_iter):
            raise ValueError(f"fitted {key} must be null or a list of finite numbers")
    bl = fitted.get("best_loss_")
    if not is_real(bl) or not math.isfinite(bl):
        raise ValueError(f"fitted best_loss_ must be a finite number, got {bl!r}")


def _build(cls, config, arrays):
    """The estimator a checked container holds."""
    for key in ("params", "fitted", "network"):
        if not isinstance(config.get(key), dict):
            raise ValueError(f"model config needs an object {key!r}")
    _check_reader_version(config)
    unknown = []
    names = set(cls._get_param_names())
    params = {}
    for k, v in config["params"].items():
        if k not in names:
            unknown.append(f"params.{k}")
        else:
            params[k] = _param_from_json(k, v)
    est = cls(**params)   # parameters the file lacks (an older writer) keep their defaults
    try:
        p = est._validate_params()
    except TypeError as e:
        raise ValueError(f"invalid params in model file: {e}") from None
    spec = _spec_of(config, unknown)
    fitted = config["fitted"]
    unknown += [f"fitted.{k}" for k in sorted(set(fitted) - set(_COMMON_FITTED)
                                              - {"input_scaled", "validation_loss_curve_",
                                                 "quant_dtype"}
                                              - set(est._extra_fitted_keys))]
    scaled = fitted.get("input_scaled", False)
    if scaled not in (True, False) or scaled != bool(p.get("scale_inputs", False)):
        raise ValueError(f"fitted input_scaled={scaled!r} does not match the params' "
                         f"scale_inputs={p.get('scale_inputs')!r}")
    quant = _quant_dtype_of(config)
    if quant and "training" in config:
        raise ValueError(f"model file holds a training state, but its model is quantized "
                         f"({quant}) and does not train")
    network_arrays = _network_arrays(spec, quant)
    expected = set(network_arrays) | set(est._extra_array_names(fitted))
    if scaled:
        expected |= {"input_mean", "input_scale"}
    optional = _training_array_names(config)
    missing = expected - set(arrays)
    if missing:
        raise ValueError(f"{cls.__name__} model file must hold the arrays {sorted(expected)}, "
                         f"missing {sorted(missing)}")
    unknown += [f"arrays.{k}" for k in sorted(set(arrays) - expected - optional)]
    _check_common_fitted(fitted, spec)
    # the architecture the params give for the fitted data must be the stored one
    want = est._network_spec(p, est._network_input_size(fitted), spec.n_outputs,
                             spec.sequence_output,
                             spec.vocab_size if p["vocab_size"] is None else p["vocab_size"])
    diff = [f.name for f in dataclasses.fields(spec) if getattr(spec, f.name) != getattr(want, f.name)]
    if diff:
        raise ValueError(f"the network spec in the model file does not match its params and "
                         f"fitted values in {', '.join(diff)}")
    est._check_extra_fitted(fitted, spec, arrays)
    for name, (dtype, shape) in network_arrays.items():
        a = arrays[name]
        if a.shape != shape or a.dtype != np.dtype(dtype):
            raise ValueError(f"{name} must be a 1-D {dtype} array of {shape[0]} values, got "
                             f"{a.dtype} of shape {a.shape}")
    if quant:
        flat, qweights = _quantized_params(spec, arrays)
    else:
        flat = arrays["params"]
    est._network = Network.from_params(spec, flat, n_threads=p["n_threads"], copy=False)
    if quant:
        quantize_stored(est._network, quant, qweights)
    for key in _COMMON_FITTED:
        setattr(est, key, fitted[key])
    if "validation_loss_curve_" in fitted:
        est.validation_loss_curve_ = fitted["validation_loss_curve_"]
    else:
        # written by 0.1.0, whose validation_scores_ held the validation losses
        est.validation_loss_curve_, est.validation_scores_ = est.validation_scores_, None
    est.loss_curve_ = [float(v) for v in est.loss_curve_]
    for key in ("validation_scores_", "validation_loss_curve_"):
        if getattr(est, key) is not None:
            setattr(est, key, [float(v) for v in getattr(est, key)])
    est.best_loss_ = float(est.best_loss_)
    if spec.embedding_dim is not None:
        est.vocab_size_ = spec.vocab_size
    est._set_output_info_from(fitted, spec, arrays)
    if "scale_inputs" in p:
        est.input_mean_ = est.input_scale_ = None
    if scaled:
        nf = fitted["n_features_in_"]
        for key in ("input_mean", "input_scale"):
            a = arrays[key]
            if a.shape != (nf,) or a.dtype != np.float64:
                raise ValueError(f"{key} must be float64 of shape ({nf},), got {a.dtype} "
                                 f"{a.shape}")
        if not (arrays["input_scale"] > 0).all():
            raise ValueError("input_scale must be positive")
        est.input_mean_, est.input_scale_ = arrays["input_mean"], arrays["input_scale"]
    est._seed_streams(p)
    est._no_improvement_count = 0
    if "training" in config:
        _restore_training_state(est, p, config["training"], arrays)
    if unknown:
        warnings.warn(
            f"model file written by fastlstm {config.get('fastlstm_version', '?')} holds keys "
            f"this fastlstm does not know: {', '.join(unknown)}. The file declares they do "
            "not change what the model computes; they are ignored.", ModelFileWarning,
            stacklevel=3)
    return est


def save(estimator, path, include_optimizer=False):
    """Write a fitted estimator to ``path`` (exactly that name) as one .npz file.

    The file is written to a temporary name next to ``path`` and renamed
    into place, so a crash never leaves a half-written model behind. With
    ``include_optimizer`` the optimizer state and the random streams go in
    too, so ``partial_fit`` after loading continues exactly.
    """
    if not hasattr(estimator, "_extra_fitted"):
        raise TypeError(f"cannot save a {type(estimator).__name__}: not a fastlstm estimator")
    config, arrays = _payload(estimator, include_optimizer)
    return _write(config, arrays, path)


def read_model(path, classes):
    """The estimator in a model file; ``classes`` maps the class names a file
    may name to the classes (the estimators module passes its own)."""

    def estimator_class(config):
        name = config.get("estimator")
        cls = classes.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(f"unknown estimator {name!r} in model file")
        return cls

    def check_config(config):
        estimator_class(config)
        _check_declared_arrays(config)

    try:
        config, arrays = read_payload(path, check_config)
        return _build(estimator_class(config), config, arrays)
    except ValueError:
        raise
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError) as e:
        raise ValueError(f"invalid model file: {type(e).__name__}: {e}") from None
