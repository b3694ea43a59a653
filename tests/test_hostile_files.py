"""Model files and sizes that cost memory or time out of proportion.

A model file's cost to load is bounded by what it declares: the config is
checked against the architecture before any array is read, each array is
read once straight into its own memory, and nothing is initialised only to
be overwritten. Malformed archives of every kind raise ValueError. Sizes
given to constructors are bounded before anything is allocated or looped
over. Loads that could use a lot of memory run in a subprocess, which
reports its peak RSS.
"""
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import fastlstm
import helpers
from fastlstm import _limits
from fastlstm.spec import NetworkSpec

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    X, y = RNG.standard_normal((20, 5, 2)), RNG.standard_normal(20)
    reg = fastlstm.LSTMRegressor(hidden_sizes=(4,), epochs=1, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("hostile") / "small.npz"
    reg.save(path)
    return path


def _members(path):
    with np.load(path, allow_pickle=False) as f:
        members = {k: f[k] for k in f.files}
    return members, json.loads(members["config"].tobytes())


def _write(path, members, config, compression=zipfile.ZIP_DEFLATED):
    """A model file as np.savez writes one, members deflated (or stored)."""
    members = dict(members)
    members["config"] = np.frombuffer(json.dumps(config, separators=(",", ":")).encode(),
                                      np.uint8)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, arr in members.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
    return path


def _resize(config, hidden):
    config = json.loads(json.dumps(config))
    config["params"]["hidden_sizes"] = list(hidden)
    config["network"]["hidden_sizes"] = list(hidden)
    n = NetworkSpec.from_json(config["network"]).param_count()
    config["arrays"]["params"] = {"shape": [n], "dtype": "float32"}
    return config, n


# Under AddressSanitizer (CI's sanitizer stage) the process maps terabytes of
# shadow memory: no address-space limit can be set, and RSS says nothing about
# the loader; there the tests check the outcome alone.
SANITIZED = "ASAN_OPTIONS" in os.environ


def _load_in_subprocess(path, limit_bytes):
    """Load under an address-space limit; returns (outcome, peak RSS in bytes)."""
    if SANITIZED:
        limit_bytes = -1      # resource.RLIM_INFINITY
    code = textwrap.dedent(f"""
        import resource, sys
        import fastlstm
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))
        try:
            fastlstm.load({str(path)!r})
            outcome = "loaded"
        except ValueError as e:
            outcome = "ValueError: " + str(e)[:200]
        except BaseException as e:
            outcome = type(e).__name__ + ": " + str(e)[:200]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(outcome)
        print(base * 1024, peak * 1024)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=helpers.CHILD_CWD,
                          env=helpers.child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    outcome, sizes = proc.stdout.strip().splitlines()[-2:]
    base, peak = map(int, sizes.split())
    return outcome, 0 if SANITIZED else peak - base


def test_large_consistent_file_loads_at_about_its_own_size(small_file, tmp_path):
    """H = 3000 zeros deflate to ~0.2 MB but declare 144 MB of float32 weights:
    loading it may cost that once (plus slack), not four times over."""
    members, config = _members(small_file)
    config, n = _resize(config, [3000])
    members["params"] = np.zeros(n, np.float32)
    path = _write(tmp_path / "big.npz", members, config)
    assert os.path.getsize(path) < 1 << 20
    declared = n * 4
    outcome, extra_rss = _load_in_subprocess(path, limit_bytes=4 << 30)
    assert outcome == "loaded", outcome
    assert extra_rss < 1.5 * declared + (64 << 20), (extra_rss, declared)


def test_many_layers_refused_before_building(small_file, tmp_path):
    members, config = _members(small_file)
    config["params"]["hidden_sizes"] = config["network"]["hidden_sizes"] = [1] * 200_000
    path = _write(tmp_path / "deep.npz", members, config)
    outcome, extra_rss = _load_in_subprocess(path, limit_bytes=2 << 30)
    assert outcome.startswith("ValueError") and "hidden_sizes" in outcome, outcome
    assert extra_rss < 64 << 20


def test_declared_params_larger_than_file_refused_before_reading(small_file, tmp_path):
    """A config declaring 4 GB of params with a small array is refused from the
    config alone: nothing of that size is allocated."""
    members, config = _members(small_file)
    config, n = _resize(config, [16000])
    config["arrays"]["params"]["shape"] = [n]
    path = _write(tmp_path / "liar.npz", members, config)
    outcome, extra_rss = _load_in_subprocess(path, limit_bytes=2 << 30)
    assert outcome.startswith("ValueError"), outcome
    assert extra_rss < 64 << 20


def _patched_zip(src, dst, patch):
    data = bytearray(src.read_bytes())
    patch(data)
    dst.write_bytes(bytes(data))
    return dst


def _header(data, member, signature, name_len_at, name_at):
    """Offset of the zip header with this signature that names member."""
    pos = data.find(signature)
    while pos >= 0:
        name_len = int.from_bytes(data[pos + name_len_at:pos + name_len_at + 2], "little")
        if bytes(data[pos + name_at:pos + name_at + name_len]) == member:
            return pos
        pos = data.find(signature, pos + 4)
    raise AssertionError(f"{member!r} not found")


def _local_header(data, member):
    """Offset of the local file header of member (e.g. b'params.npy')."""
    return _header(data, member, b"PK\x03\x04", 26, 30)


def _central_header(data, member):
    """Offset of member's entry in the central directory."""
    return _header(data, member, b"PK\x01\x02", 28, 46)


def _flip_deflated_byte(data):
    pos = _local_header(data, b"params.npy")
    name_len = int.from_bytes(data[pos + 26:pos + 28], "little")
    extra_len = int.from_bytes(data[pos + 28:pos + 30], "little")
    data[pos + 30 + name_len + extra_len + 5] ^= 0xFF


def _set_encrypted(data):
    for header, flag_at in ((_local_header(data, b"params.npy"), 6),
                            (_central_header(data, b"params.npy"), 8)):
        data[header + flag_at] |= 0x01


def _needs_new_zip_version(data):
    pos = _central_header(data, b"params.npy")
    data[pos + 6:pos + 8] = (99).to_bytes(2, "little")      # version needed to extract: 9.9


def _bad_crc(data):
    pos = _central_header(data, b"params.npy")
    data[pos + 16] ^= 0xFF


@pytest.mark.parametrize("patch", [_flip_deflated_byte, _set_encrypted, _needs_new_zip_version,
                                   _bad_crc])
def test_damaged_archives_raise_value_error(small_file, tmp_path, patch):
    members, config = _members(small_file)
    deflated = _write(tmp_path / "deflated.npz", members, config)
    bad = _patched_zip(deflated, tmp_path / "bad.npz", patch)
    with pytest.raises(ValueError, match="model file"):
        fastlstm.load(bad)


def test_forecaster_with_extreme_statistics_refused(tmp_path):
    fc = fastlstm.LSTMForecaster(window=4, horizon=2, epochs=1, random_state=0)
    fc.fit(np.sin(np.arange(40.0)))
    path = fc.save(tmp_path / "fc.npz")
    members, config = _members(path)
    members["mean"] = np.array([1e300])
    members["scale"] = np.array([1e-300])
    with pytest.raises(ValueError, match="overflows"):
        fastlstm.load(_write(tmp_path / "extreme.npz", members, config))


def test_saved_file_mode_follows_umask(small_file, tmp_path):
    model = fastlstm.load(small_file)
    old = os.umask(0o022)
    try:
        path = model.save(tmp_path / "shared.npz")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
    os.chmod(path, 0o640)                  # an existing file keeps its mode
    model.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize("kwargs, word", [
    (dict(num_layers=2**31), "num_layers"),
    (dict(num_layers=_limits.MAX_LAYERS + 1), "num_layers"),
    (dict(hidden_size=2**40), "hidden_size"),
    (dict(n_threads=10**6), "n_threads"),
    (dict(n_threads=2**31), "n_threads"),
    (dict(n_threads=-2**31), "n_threads"),
])
def test_huge_layer_sizes_fail_fast(kwargs, word):
    args = dict(input_size=3, hidden_size=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        fastlstm.LSTM(**args)


def test_estimator_thread_count_bounded():
    X, y = RNG.standard_normal((8, 3, 2)), RNG.standard_normal(8)
    with pytest.raises(ValueError, match="n_threads"):
        fastlstm.LSTMRegressor(n_threads=2**31, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="hidden_sizes"):
        fastlstm.LSTMRegressor(hidden_sizes=(1,) * 1000, epochs=1).fit(X, y)


def test_inferred_vocabulary_bounded():
    X = np.array([[1, 2, 10**9], [3, 0, 0]])
    clf = fastlstm.LSTMClassifier(embedding_dim=3, epochs=1)
    with pytest.raises(ValueError, match="vocab_size"):
        clf.fit(X, [0, 1])
    # an explicit vocab_size is the user's choice and still checked against the ids
    with pytest.raises(ValueError, match="token id"):
        fastlstm.LSTMClassifier(embedding_dim=3, vocab_size=100, epochs=1).fit(X, [0, 1])


def _npy_with_header(header):
    """A .npy v1.0 member whose header dict is the given text (padded as numpy does)."""
    text = header.encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + b"\x00" * 64


@pytest.mark.parametrize("header", [
    "{'descr': '<f8', 'fortran_order': False, 'shape': (1,",       # tokenize.TokenError
    "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)))}",    # SyntaxError
    "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 3: 4}",  # TypeError in numpy
    "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (True,)}",   # a bool is no size
    "[1, 2, 3]",
])
def test_malformed_npy_headers_raise_value_error(small_file, tmp_path, header):
    """Found by fuzz/fuzz_load.py: numpy parses the header with ast and tokenize,
    which raise SyntaxError, TokenError or TypeError on mangled text."""
    path = tmp_path / "bad_header.npz"
    with zipfile.ZipFile(small_file) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "params.npy":
                data = _npy_with_header(header)
            dst.writestr(info.filename, data)
    with pytest.raises(ValueError):
        fastlstm.load(path)


def test_member_larger_than_its_bytes_refused_before_allocating(small_file, tmp_path):
    """Found by fuzz/fuzz_load.py: the config, the .npy header and the zip headers all
    declare a 3 GiB member that holds no data; 1.9 KB of file made the loader
    allocate 3 GiB. Deflate expands at most 1032-fold, so the declared size is
    checked against the member's bytes in the file before anything is read."""
    members, config = _members(small_file)
    n = 3 << 28                                      # 3 GiB of float32
    config["arrays"]["params"]["shape"] = [n]
    path = _write(tmp_path / "claims.npz", members, config, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    header = _central_header(data, b"params.npy")
    for offset in (20, 24):                          # compressed and uncompressed sizes
        data[header + offset:header + offset + 4] = (n * 4 + 128).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    outcome, extra_rss = _load_in_subprocess(path, limit_bytes=2 << 30)
    assert outcome.startswith("ValueError"), outcome
    assert extra_rss < 64 << 20
