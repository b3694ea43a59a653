"""Mutations of fastlstm model files for fuzz_load.py.

A model file is a zip archive of ``.npy`` members (see fastlstm/io.py). A
case starts from one seed file of the corpus and applies one to three
mutations, picked by weight from two groups:

* structured mutations work on the list of members (name, uncompressed
  bytes, compression) and on what they hold: the JSON config, the ``.npy``
  headers and the array data. The archive is then written again with
  ``zipfile``, so sizes and CRCs are right and the change reaches the
  loader's own checks;
* raw mutations work on the bytes of the archive: zip header fields (version
  needed, flags, compression method, CRC, sizes, offsets, zip64 extra
  fields, the end-of-central-directory record), bytes inside a member's
  (possibly deflated) data, and plain bit flips, overwrites, truncation,
  insertion, deletion and splicing with another seed.

Every random choice comes from the ``random.Random`` passed in, so a case is
a function of (seed files, random state): ``fuzz_load.py`` seeds one
generator per case from (--seed, case number).

Each mutation returns a short description of what it did; the fuzzer stores
it with every finding.
"""

import ast
import copy
import io
import json
import re
import struct
import warnings
import zipfile

import numpy as np

# The largest array a mutation fills with values, to keep cases fast.
MAX_GENERATED_VALUES = 1 << 20
MAX_GENERATED_BYTES = 8 << 20
# A larger params array is written as zeros, deflated (a 256 MiB array is a
# 250 KB member): big enough to show what loading a large model costs.
MAX_ZERO_FILLED_BYTES = 256 << 20

NPY_MAGIC = b"\x93NUMPY"

# ---------------------------------------------------------------- interesting values

INTERESTING_JSON_VALUES = [
    0, -1, 1, 2, 3, 255, 256, 4096, 4097, 65535, 65536,
    2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**31), -(2**63),
    0.0, -0.0, 0.5, 1.5, -1.5, 1e-300, 5e-324, 1e300, 1.7976931348623157e308,
    True, False, None,
    "", "0", "1", "nan", "inf", "-inf", "1e999", "x" * 1000,
    "float16", "float32", "float64", "int64", "uint8", "bool", "<U5", "<U9999", "object", "|O",
    "int8", "uint16", "bfloat16",
    "lstm", "gru", "peephole", "cifg", "relu", "tanh", "sigmoid", "hard_sigmoid",
    "LSTMRegressor", "LSTMClassifier", "LSTMForecaster", "fastlstm-model",
    "direct", "recursive", "mse", "mae", "huber", "adam", "sgd",
    [], {}, [0], [1], [-1], [2**40], [1.5], ["1"], [None], [[1]], {"a": 1},
    [1] * 1000, [2] * 100, [0.5] * 100, {"shape": [1], "dtype": "float32"},
]

# Numbers written over a number token of the JSON text: several are not
# JSON at all, or are outside what Python's json module reads without help.
NUMBER_TOKEN_REPLACEMENTS = [
    "1e999", "-1e999", "1e-999", "NaN", "Infinity", "-Infinity", "-0", "0.0", "1.0",
    "1E400", "9" * 30, "9" * 400, "1" + "0" * 5000, "0x10", "01", "+1", ".5", "1.",
    "2147483648", "4294967296", "9223372036854775808", "18446744073709551616",
    "-9223372036854775809", "1e308", "2e308", "4.9e-324", "true", "null", '"1"',
]

# Architecture values for mutate_architecture. Those in LARGE_ARCH_VALUES make
# a valid model that takes seconds and hundreds of MB to load (and a second
# to write), so they are picked for only a small share of the cases.
ARCH_VALUES = {
    "hidden_sizes": [[1] * 100, [2] * 30, [64], [300, 300], [2**20], [2**31],
                     [2**40], [2**62], [0], [-1], [], [1.5], ["3"], [True], [None], [[2]]],
    "input_size": [1, 3, 1000, 10**5, 2**20, 2**31, 2**40, 0, -1, 1.0, None],
    "n_outputs": [1, 2, 3, 1000, 2**20, 2**31, 0, -1],
    "vocab_size": [2, 3, 10**5, 2**20, 2**31, 2**40, 1, 0, None],
    "embedding_dim": [1, 64, 4096, 2**20, 2**31, 0, None],
    "bidirectional": [True, False, 1, "true"],
    "cell": ["lstm", "gru", "peephole", "cifg", "LSTM"],
    "dtype": ["float32", "float64", "float16", "int64"],
}
LARGE_ARCH_VALUES = {
    "hidden_sizes": [[1] * 1000, [1] * 10000, [1] * 100000, [1] * 150000, [2048], [3000],
                     [3500], [700] * 8],
    "input_size": [10**6, 10**7],
    "n_outputs": [10**6, 10**7],
    "vocab_size": [2**23, 2**24],
    "embedding_dim": [2**16],
}
LARGE_ARCH_SHARE = 0.02

NPY_DESCRS = [
    "<f4", "<f8", ">f8", ">f4", "<f2", "<i8", ">i8", "<i4", "|u1", "|b1", "|i1", "<u8",
    "<U3", "<U0", "<U9999", ">U3", "|S5", "|V8", "|O", "<c16", "<M8[D]", "<m8",
    [("a", "<f8")], [("a", "|O")], ("<i8", (2,)), "float32", "f", "", ",i8", "i8,",
    "(2,)i8", "(2)i8,f4", "<f8,(", "O", "U", "M8", "<f16", "<f8\x00",
]

NPY_SHAPES = [
    (), (0,), (1,), (2,), (3,), (-1,), (2**31,), (2**32,), (2**40,), (2**62,), (2**63 - 1,),
    (2**31, 2**31), (2**20, 2**20), (1, 1, 1, 1), (1,) * 33, (1,) * 70, (3, 2), (2, 3),
]

MEMBER_NAMES = [
    "", "x.npy", "extra.npy", "Params.npy", "params", "params.npy/", "../params.npy",
    "/params.npy", "params.npz", "a" * 40 + ".npy", "params.npy\x00", "\u00e9.npy",
    "config.npy", "format_version.npy", "params.NPY", "dir/params.npy", "params.npy.npy",
]

# ---------------------------------------------------------------- members of the archive


class Member:
    """One zip member: its name, its uncompressed bytes and its compression.

    ``zeros`` zero bytes follow ``data`` in the member; they are written in
    chunks and never held in memory (large arrays of zeros).
    ``fake_size`` (when set) is written over the member's size fields after
    the archive is built, to claim more (or less) data than it holds.
    """

    def __init__(self, name, data, compress_type, zeros=0, fake_size=None):
        self.name = name
        self.data = data
        self.compress_type = compress_type
        self.zeros = zeros
        self.fake_size = fake_size

    def copy(self):
        return Member(self.name, self.data, self.compress_type, self.zeros, self.fake_size)


def read_members(blob):
    """The members of a (valid) archive, in archive order."""
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return [Member(info.filename, zf.read(info), info.compress_type)
                for info in zf.infolist()]


def write_zip(members):
    """Build an archive from ``members`` (duplicate names are written as they are)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w") as zf:
            for member in members:
                info = zipfile.ZipInfo(member.name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = member.compress_type
                if not member.zeros:
                    zf.writestr(info, member.data)
                    continue
                chunk = bytes(1 << 20)
                with zf.open(info, "w", force_zip64=True) as out:
                    out.write(member.data)
                    for start in range(0, member.zeros, len(chunk)):
                        out.write(chunk[:member.zeros - start])
    blob = bytearray(buf.getvalue())
    for index, member in enumerate(members):
        if member.fake_size is not None:
            set_member_sizes(blob, index, member.fake_size)
    return bytes(blob)


def find_member(members, name):
    for member in members:
        if member.name == name:
            return member
    return None


# ---------------------------------------------------------------- raw zip records

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"

# field name -> (offset in the record, struct format)
LOCAL_FIELDS = {
    "version_needed": (4, "<H"), "flags": (6, "<H"), "method": (8, "<H"),
    "mod_time": (10, "<H"), "crc": (14, "<I"), "compressed_size": (18, "<I"),
    "size": (22, "<I"), "name_length": (26, "<H"), "extra_length": (28, "<H"),
}
CENTRAL_FIELDS = {
    "version_made_by": (4, "<H"), "version_needed": (6, "<H"), "flags": (8, "<H"),
    "method": (10, "<H"), "crc": (16, "<I"), "compressed_size": (20, "<I"),
    "size": (24, "<I"), "name_length": (28, "<H"), "extra_length": (30, "<H"),
    "comment_length": (32, "<H"), "disk_start": (34, "<H"), "external_attr": (38, "<I"),
    "local_header_offset": (42, "<I"),
}
EOCD_FIELDS = {
    "disk": (4, "<H"), "cd_disk": (6, "<H"), "entries_on_disk": (8, "<H"),
    "entries": (10, "<H"), "cd_size": (12, "<I"), "cd_offset": (16, "<I"),
    "comment_length": (20, "<H"),
}
ZIP64_EOCD_FIELDS = {
    "record_size": (4, "<Q"), "version_needed": (14, "<H"), "disk": (16, "<I"),
    "entries_on_disk": (24, "<Q"), "entries": (32, "<Q"), "cd_size": (40, "<Q"),
    "cd_offset": (48, "<Q"),
}
RECORDS = [
    ("local", LOCAL_SIG, LOCAL_FIELDS, 30),
    ("central", CENTRAL_SIG, CENTRAL_FIELDS, 46),
    ("eocd", EOCD_SIG, EOCD_FIELDS, 22),
    ("zip64_eocd", ZIP64_EOCD_SIG, ZIP64_EOCD_FIELDS, 56),
]


def find_all(blob, signature):
    """Offsets of every occurrence of ``signature`` (a few may lie inside data)."""
    offsets = []
    start = blob.find(signature)
    while start >= 0:
        offsets.append(start)
        start = blob.find(signature, start + 1)
    return offsets


def get_field(blob, offset, fmt):
    return struct.unpack_from(fmt, blob, offset)[0]


def set_field(blob, offset, fmt, value):
    """Write ``value`` (wrapped to the field's width) into the bytearray ``blob``."""
    bits = 8 * struct.calcsize(fmt)
    struct.pack_into(fmt, blob, offset, value % (1 << bits))


def record_label(blob, kind, offset):
    """'central[config.npy]'-style name of a record, for descriptions."""
    if kind in ("local", "central"):
        length_offset = 26 if kind == "local" else 28
        name_offset = 30 if kind == "local" else 46
        if offset + name_offset <= len(blob):
            n = min(get_field(blob, offset + length_offset, "<H"), 40)
            name = bytes(blob[offset + name_offset:offset + name_offset + n])
            return f"{kind}[{name.decode('ascii', errors='backslashreplace')}]"
    return kind


def zip64_extra_values(blob, kind, offset):
    """Offsets of the 8-byte values in a header's zip64 extra field (id 0x0001)."""
    if kind == "local":
        name_len, extra_len, fixed = get_field(blob, offset + 26, "<H"), \
            get_field(blob, offset + 28, "<H"), 30
    else:
        name_len, extra_len, fixed = get_field(blob, offset + 28, "<H"), \
            get_field(blob, offset + 30, "<H"), 46
    start = offset + fixed + name_len
    end = min(start + extra_len, len(blob))
    values = []
    pos = start
    while pos + 4 <= end:
        tag, size = struct.unpack_from("<HH", blob, pos)
        if tag == 0x0001:
            for value_pos in range(pos + 4, min(pos + 4 + size, end) - 7, 8):
                values.append(value_pos)
        pos += 4 + size
    return values


def set_member_sizes(blob, index, size):
    """Claim ``size`` as the compressed and uncompressed size of member ``index``."""
    for signature, fields in ((LOCAL_SIG, LOCAL_FIELDS), (CENTRAL_SIG, CENTRAL_FIELDS)):
        offsets = find_all(blob, signature)
        if index < len(offsets):
            for field in ("compressed_size", "size"):
                field_offset, fmt = fields[field]
                set_field(blob, offsets[index] + field_offset, fmt, min(size, 0xFFFFFFFF))


def field_values(field, old, fmt, rng):
    """Values worth writing into a zip header field that holds ``old``."""
    if field in ("version_needed", "version_made_by"):
        return [0, 10, 20, 45, 46, 62, 63, 64, 99, 255, 0x3F3F, 0xFFFF, old + 1]
    if field == "flags":
        return [old ^ bit for bit in (0x1, 0x8, 0x20, 0x40, 0x800, 0x2000)] + [0, 0xFFFF]
    if field == "method":
        return [0, 1, 6, 8, 9, 12, 14, 93, 95, 98, 99, 0xFFFF]
    if field == "crc":
        return [0, 0xFFFFFFFF, old ^ 1, rng.getrandbits(32)]
    if fmt == "<H":
        return [0, 1, old - 1, old + 1, 16, 17, 0x7FFF, 0xFFFF]
    if fmt == "<I":
        return [0, 1, old - 1, old + 1, old * 2, old // 2, 0x7FFFFFFF, 0x80000000,
                0xFFFFFFFE, 0xFFFFFFFF]
    return [0, 1, old - 1, old + 1, 2**31, 2**32, 2**33, 2**40, 2**62, 2**63 - 1, 2**64 - 1]


# ---------------------------------------------------------------- .npy members


def parse_npy(data):
    """(version, header text, data bytes) of a .npy member, or None if it has no header."""
    if len(data) < 10 or not data.startswith(NPY_MAGIC):
        return None
    version = (data[6], data[7])
    if version[0] == 1:
        (length,), start = struct.unpack_from("<H", data, 8), 10
    elif len(data) >= 12:
        (length,), start = struct.unpack_from("<I", data, 8), 12
    else:
        return None
    header = data[start:start + length].decode("latin-1")
    return version, header, data[start + length:]


def header_dict(header_text):
    try:
        value = ast.literal_eval(header_text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def header_text(descr, fortran_order, shape):
    return "{'descr': %r, 'fortran_order': %r, 'shape': %r, }" % (descr, fortran_order, shape)


def encode_npy(text, body, version=(1, 0)):
    """A .npy member with this header text (padded as numpy pads it) and data."""
    length_size = 2 if version[0] == 1 else 4
    prefix = 6 + 2 + length_size
    text = text.rstrip("\n")
    text += " " * ((-(prefix + len(text) + 1)) % 64) + "\n"
    encoded = text.encode("latin-1", errors="replace")
    length_format = "<H" if length_size == 2 else "<I"
    length = len(encoded) % (1 << (8 * length_size))
    return (NPY_MAGIC + bytes(version) + struct.pack(length_format, length) + encoded + body)


def npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def member_dtype(member):
    """(numpy dtype, shape) from a member's .npy header, or (None, None)."""
    parsed = parse_npy(member.data)
    if parsed is None:
        return None, None
    d = header_dict(parsed[1])
    if d is None:
        return None, None
    dtype = as_dtype(d.get("descr"))
    return (None, None) if dtype is None else (dtype, d.get("shape"))


def as_dtype(value):
    """numpy's dtype for ``value``, or None when numpy does not take it as one
    (odd strings make numpy raise TypeError, ValueError, SyntaxError and more)."""
    try:
        return np.dtype(value)
    except Exception:
        return None


def make_array(dtype, shape, rng):
    """Plausible values of ``dtype`` and ``shape``: finite positive floats (a
    scale must be > 0), sorted unique labels, or None when too large."""
    count = 1
    for n in shape:
        count *= n
    if count > MAX_GENERATED_VALUES or count * dtype.itemsize > MAX_GENERATED_BYTES:
        return None
    gen = np.random.default_rng(rng.getrandbits(32))
    kind = dtype.kind
    if kind == "f":
        values = gen.uniform(0.1, 1.0, count)
    elif kind in "iu":
        values = np.arange(count)
    elif kind == "b":
        values = np.arange(count) % 2 == 1
    elif kind == "U":
        values = np.array(["c%07d" % i for i in range(count)])
    else:
        return None
    return np.asarray(values).astype(dtype).reshape(shape)


# ---------------------------------------------------------------- the JSON config


def read_config(members):
    """(config member, parsed config dict) or (member, None) or (None, None)."""
    member = find_member(members, "config.npy")
    if member is None:
        return None, None
    parsed = parse_npy(member.data)
    if parsed is None:
        return member, None
    try:
        config = json.loads(parsed[2].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return member, None
    return member, config if isinstance(config, dict) else None


def config_text(member):
    parsed = parse_npy(member.data)
    return None if parsed is None else parsed[2].decode("utf-8", errors="replace")


def set_config_text(member, text):
    member.data = npy_bytes(np.frombuffer(text.encode("utf-8", errors="replace"), np.uint8))


def write_config(member, config):
    set_config_text(member, json.dumps(config))


def json_paths(node, path=()):
    """Every path (tuple of keys and indices) into a JSON value, itself first."""
    paths = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            paths += json_paths(value, path + (key,))
    elif isinstance(node, list) and len(node) <= 50:
        for i, value in enumerate(node):
            paths += json_paths(value, path + (i,))
    return paths


def json_get(node, path):
    for key in path:
        node = node[key]
    return node


def array_spec(config):
    spec = config.get("arrays")
    return spec if isinstance(spec, dict) else {}


def param_count(net):
    """The flat parameter count of a network spec (fastlstm's layout: embedding,
    then per layer and direction W_ih, W_hh, b_ih, b_hh [, peepholes], then
    the dense head). Raises TypeError/KeyError on a spec that is not numeric."""
    sizes = [net["input_size"], net["vocab_size"], net["embedding_dim"], net["n_outputs"]]
    for value in sizes + list(net["hidden_sizes"]):
        if value is not None and type(value) is not int:
            raise TypeError(f"not an int: {value!r}")
    directions = 2 if net["bidirectional"] is True else 1
    gates = 3 if net["cell"] == "gru" else 4
    count = 0
    if net["embedding_dim"] is not None:
        count += net["vocab_size"] * net["embedding_dim"]
        width = net["embedding_dim"]
    else:
        width = net["input_size"]
    for h in net["hidden_sizes"]:
        per_direction = gates * h * width + gates * h * h + 2 * gates * h
        if net["cell"] == "peephole":
            per_direction += 3 * h
        count += directions * per_direction
        width = directions * h
    count += net["n_outputs"] * width + net["n_outputs"]
    return int(count)


# ---------------------------------------------------------------- structured mutations
#
# Each takes (rng, members, seeds) and changes ``members`` in place; seeds is
# the list of (name, blob, members) of the corpus. Each returns a description.


def mutate_config_tree(rng, members, seeds):
    """Replace, delete or add one value anywhere in the parsed JSON config."""
    member, config = read_config(members)
    if config is None:
        return "fell back to mutate_config_text: " + mutate_config_text(rng, members, seeds)
    path = rng.choice(json_paths(config)[1:])
    parent = json_get(config, path[:-1])
    key = path[-1]
    old = parent[key]
    action = rng.choice(["set", "set", "set", "delete", "add", "bump"])
    where = "/".join(str(p) for p in path)
    if action == "delete":
        del parent[key]
        note = f"delete {where}"
    elif action == "add" and isinstance(old, dict):
        new_key = rng.choice(["x", "params", "shape", "dtype", "hidden_sizes", "n_outputs_",
                              "classes", "arrays", "estimator", ""])
        old[new_key] = pick(rng, INTERESTING_JSON_VALUES)
        note = f"add {where}/{new_key} = {short(old[new_key])}"
    elif action == "bump" and isinstance(old, (int, float)) and not isinstance(old, bool):
        new = rng.choice([old * 2**20, old * 2**40, -old, old + 0.5, str(old), [old], old - 1,
                          old + 1, 10**rng.randint(5, 400)])
        parent[key] = new
        note = f"{where}: {short(old)} -> {short(new)}"
    elif action in ("add", "bump") and isinstance(old, list):
        length = rng.choice([0, 2, 100, 10000, 100000])
        new = (old * (length // max(len(old), 1) + 1))[:length] if old else [1] * length
        parent[key] = new
        note = f"{where}: list of {len(old)} -> list of {len(new)}"
    else:
        new = pick(rng, INTERESTING_JSON_VALUES)
        parent[key] = new
        note = f"{where}: {short(old)} -> {short(new)}"
    write_config(member, config)
    return note


def mutate_config_text(rng, members, seeds):
    """Change the JSON text itself: number tokens, truncation, odd bytes, nesting."""
    member = find_member(members, "config.npy")
    text = None if member is None else config_text(member)
    if not text:
        return "fell back to mutate_member_list: " + mutate_member_list(rng, members, seeds)
    action = rng.choice(["number", "number", "number", "truncate", "byte", "nest",
                         "duplicate_key", "long_string"])
    if action == "number":
        tokens = list(re.finditer(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", text))
        if tokens:
            token = rng.choice(tokens)
            new = rng.choice(NUMBER_TOKEN_REPLACEMENTS)
            context = text[max(0, token.start() - 25):token.start()]
            text = text[:token.start()] + new + text[token.end():]
            set_config_text(member, text)
            return f"number after {context!r}: {token.group()} -> {short(new)}"
        action = "truncate"
    if action == "truncate":
        cut = rng.randrange(len(text))
        set_config_text(member, text[:cut])
        return f"JSON text truncated to {cut} characters"
    if action == "byte":
        raw = bytearray(text.encode("utf-8"))
        pos = rng.randrange(len(raw) + 1)
        value = rng.choice([b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\\"])
        raw[pos:pos] = value
        member.data = npy_bytes(np.frombuffer(bytes(raw), np.uint8))
        return f"bytes {value!r} inserted into the JSON at {pos}"
    if action == "nest":
        depth = rng.choice([100, 1000, 100000])
        tokens = list(re.finditer(r": ", text))
        pos = rng.choice(tokens).end() if tokens else 0
        text = text[:pos] + "[" * depth + "1" + "]" * depth + ", " + text[pos:]
        set_config_text(member, text)
        return f"list nested {depth} deep inserted into the JSON"
    if action == "duplicate_key":
        key = rng.choice(['"estimator": "LSTMRegressor"', '"arrays": {}', '"format_version": 2',
                          '"params": 1', '"network": null'])
        text = "{" + key + ", " + text[1:] if text.startswith("{") else text
        set_config_text(member, text)
        return f"duplicate key {key} at the start of the JSON object"
    length = rng.choice([1000, 100000, 1 << 20])
    text = text.replace('"', '"' + "x" * length, 1)
    set_config_text(member, text)
    return f"a string of the JSON made {length} characters longer"


def mutate_architecture(rng, members, seeds):
    """Change the network architecture in both the params and the network spec,
    then resize the params array to fit, so the change gets past the checks
    that compare them."""
    member, config = read_config(members)
    if config is None or not isinstance(config.get("network"), dict):
        return "fell back to mutate_config_tree: " + mutate_config_tree(rng, members, seeds)
    net = config["network"]
    params = config.get("params") if isinstance(config.get("params"), dict) else {}
    fitted = config.get("fitted") if isinstance(config.get("fitted"), dict) else {}
    if rng.random() < LARGE_ARCH_SHARE:
        key = rng.choice(["hidden_sizes", "hidden_sizes", "hidden_sizes", "input_size",
                          "n_outputs", "vocab_size", "embedding_dim"])
        value = pick(rng, LARGE_ARCH_VALUES[key])
    else:
        key = rng.choice(["hidden_sizes", "hidden_sizes", "hidden_sizes", "input_size",
                          "n_outputs", "vocab_size", "embedding_dim", "bidirectional", "cell",
                          "dtype"])
        value = pick(rng, ARCH_VALUES[key])
    net[key] = value
    if key in params:
        params[key] = value
    if key == "input_size":
        fitted["n_features_in_"] = value
    if key == "n_outputs" and "n_outputs_" in fitted:
        fitted["n_outputs_"] = value
    note = f"network and params {key} = {short(value)}"
    try:
        count = param_count(net)
    except (TypeError, KeyError):
        count = None
    dtype = as_dtype(net.get("dtype"))
    params_member = find_member(members, "params.npy")
    if count is None or count <= 0 or params_member is None or dtype is None \
            or dtype.kind != "f" \
            or count * dtype.itemsize > MAX_ZERO_FILLED_BYTES:
        note += f"; params not resized (count {count})"
    elif count <= MAX_GENERATED_VALUES:
        array_spec(config)["params"] = {"shape": [count], "dtype": dtype.name}
        params_member.data = npy_bytes(make_array(dtype, (count,), rng))
        params_member.zeros = 0
        if count > 10000:
            params_member.compress_type = zipfile.ZIP_DEFLATED  # keeps the case small
        note += f"; params resized to {count} {dtype.name} values"
    else:
        array_spec(config)["params"] = {"shape": [count], "dtype": dtype.name}
        params_member.data = encode_npy(header_text(dtype.str, False, (count,)), b"")
        params_member.zeros = count * dtype.itemsize
        params_member.compress_type = zipfile.ZIP_DEFLATED
        note += f"; params resized to {count} {dtype.name} zeros, deflated"
    write_config(member, config)
    return note


def mutate_array_spec(rng, members, seeds):
    """Change an array's shape or dtype in the config; half the time the
    member is rewritten to match, so the mismatch is found by the estimator."""
    member, config = read_config(members)
    spec = array_spec(config) if config is not None else {}
    if not spec:
        return "fell back to mutate_config_tree: " + mutate_config_tree(rng, members, seeds)
    name = rng.choice(list(spec))
    entry = spec[name] if isinstance(spec[name], dict) else {}
    spec[name] = entry
    old_shape = entry.get("shape")
    if rng.random() < 0.5:
        first = old_shape[0] if isinstance(old_shape, list) and old_shape and \
            isinstance(old_shape[0], int) else 1
        entry["shape"] = rng.choice([[], [0], [1], [2], [first + 1], [max(first - 1, 0)],
                                     [first, 1], [1, first], [first] * 5, [2**39], [2**40],
                                     [2**40 - 1, 2**40 - 1], [-1], ["1"], [1.0], None, [[1]]])
        note = f"arrays/{name}/shape: {short(old_shape)} -> {short(entry['shape'])}"
    else:
        old = entry.get("dtype")
        entry["dtype"] = rng.choice(["float16", "float32", "float64", "int64", "int32",
                                     "uint8", "int8", "uint16", "bool", "<U1", "<U4000", "<U9999", "<U0",
                                     "object", "|O", "S5", "V8", ">f8", "complex128", 5, None])
        note = f"arrays/{name}/dtype: {short(old)} -> {short(entry['dtype'])}"
    target = find_member(members, name + ".npy")
    if target is not None and rng.random() < 0.5:
        dtype = as_dtype(entry.get("dtype"))
        try:
            shape = tuple(int(n) for n in entry["shape"])
            array = make_array(dtype, shape, rng) \
                if dtype is not None and min(shape, default=0) >= 0 else None
        except (TypeError, ValueError, KeyError, OverflowError):
            array = None
        if array is not None:
            target.data = npy_bytes(array)
            note += "; member rewritten to match"
    write_config(member, config)
    return note


def mutate_declared_size(rng, members, seeds):
    """Declare a huge array (config and .npy header agree) that the member does
    not hold; sometimes also claim a huge size in the zip headers."""
    member, config = read_config(members)
    spec = array_spec(config) if config is not None else {}
    names = [n for n in spec if find_member(members, n + ".npy") is not None
             and isinstance(spec[n], dict)]
    if not names:
        return "fell back to mutate_npy_header: " + mutate_npy_header(rng, members, seeds)
    name = rng.choice(names)
    target = find_member(members, name + ".npy")
    dtype, _ = member_dtype(target)
    if dtype is None or dtype.itemsize == 0:
        return "fell back to mutate_npy_header: " + mutate_npy_header(rng, members, seeds)
    nbytes = rng.choice([2**24, 2**28, 2**30, 3 * 2**30, 2**32 - 1, 2**33, 2**36])
    count = max(nbytes // dtype.itemsize, 1)
    shape = rng.choice([(count,), (count // 2, 2), (2, count // 2)])
    spec[name]["shape"] = list(shape)
    parsed = parse_npy(target.data)
    body = parsed[2][:rng.choice([0, 16, len(parsed[2])])]
    target.data = encode_npy(header_text(dtype.str, False, shape), body)
    note = f"{name}: config and .npy header declare shape {shape} ({count * dtype.itemsize} " \
           f"bytes), member holds {len(body)} bytes of data"
    if rng.random() < 0.7:
        target.fake_size = rng.choice([count * dtype.itemsize + 128, 0xFFFFFFFF, 0x7FFFFFFF])
        note += f"; zip headers claim size {target.fake_size}"
    write_config(member, config)
    return note


def mutate_npy_header(rng, members, seeds):
    """Change a .npy header: descr, shape, fortran_order, keys, version, length."""
    member = rng.choice(members)
    parsed = parse_npy(member.data)
    if parsed is None:
        return "fell back to mutate_raw_member: " + mutate_raw_member(rng, members, seeds)
    version, text, body = parsed
    d = header_dict(text) or {"descr": "<f8", "fortran_order": False, "shape": (1,)}
    action = rng.choice(["descr", "descr", "shape", "shape", "shape", "fortran", "keys",
                         "garble", "version", "length"])
    if action == "descr":
        d["descr"] = rng.choice(NPY_DESCRS)
        note = f"descr -> {d['descr']!r}"
    elif action == "shape":
        d["shape"] = rng.choice(NPY_SHAPES + [(1.5,), [2], "(2,)", (True,), None])
        note = f"shape -> {short(d['shape'])}"
    elif action == "fortran":
        d["fortran_order"] = rng.choice([True, 1, "yes", None])
        note = f"fortran_order -> {d['fortran_order']!r}"
    elif action == "keys":
        if rng.random() < 0.5 and d:
            key = rng.choice(list(d))
            del d[key]
            note = f"key {key!r} removed"
        else:
            d[rng.choice(["extra", "descr2", 1])] = 0
            note = "extra key added"
    if action in ("descr", "shape", "fortran", "keys"):
        new_text = repr(d)
        if rng.random() < 0.3:
            # make the data as long as the new header says, when it is small
            dtype = as_dtype(d.get("descr"))
            try:
                array = make_array(dtype, tuple(d["shape"]), rng) if dtype is not None else None
            except (KeyError, TypeError, ValueError, OverflowError):
                array = None
            if array is not None:
                body = array.tobytes()
                note += "; data resized to match"
        member.data = encode_npy(new_text, body, version)
    elif action == "garble":
        pos = rng.randrange(len(text) + 1)
        snippet = rng.choice(["(", ")", "{", "'", "\\", "\x00", "__import__('os')", "1e999",
                              "'shape': (9999999999999999999999,), ", "[" * 200, "é"])
        member.data = encode_npy(text[:pos] + snippet + text[pos:], body, version)
        note = f"{snippet[:20]!r} inserted into the header text at {pos}"
    elif action == "version":
        new_version = rng.choice([(2, 0), (3, 0), (1, 1), (0, 0), (255, 255)])
        member.data = encode_npy(text, body, new_version)
        note = f".npy version {version} -> {new_version}"
    else:
        raw = bytearray(member.data)
        size = 2 if version[0] == 1 else 4
        old = get_field(raw, 8, "<H" if size == 2 else "<I")
        new = rng.choice([0, 1, old - 1, old + 1, old + 64, 0xFFFF, 0xFFFFFFFF])
        set_field(raw, 8, "<H" if size == 2 else "<I", new)
        member.data = bytes(raw)
        note = f"header length field {old} -> {new % (1 << (8 * size))}"
    return f"{member.name}: {note}"


def mutate_npy_data(rng, members, seeds):
    """Special values in an array's data, or too little or too much data."""
    candidates = [m for m in members if m.name != "config.npy"] or members
    member = rng.choice(candidates)
    parsed = parse_npy(member.data)
    dtype, _ = member_dtype(member)
    if parsed is None or dtype is None:
        return "fell back to mutate_raw_member: " + mutate_raw_member(rng, members, seeds)
    version, text, body = parsed
    action = rng.choice(["value", "value", "value", "truncate", "extend"])
    if action == "value" and dtype.itemsize > 0 and len(body) >= dtype.itemsize:
        count = len(body) // dtype.itemsize
        index = rng.randrange(count)
        if dtype.kind == "f":
            value = rng.choice([float("nan"), float("inf"), float("-inf"), -0.0, 1e308,
                                3.4e38, 5e-324, -1.0, 0.0, 1e30])
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            value = rng.choice([info.min, info.max, 0, -1 if info.min < 0 else 0, 2, 3])
        elif dtype.kind == "b":
            value = None
            raw = bytearray(body)
            raw[index] = rng.choice([2, 255, 0x80])
            body = bytes(raw)
            note = f"bool element {index} set to byte {body[index]}"
        elif dtype.kind == "U":
            value = None
            raw = bytearray(body)
            char = rng.randrange(dtype.itemsize // 4)
            code = rng.choice([0, 0xD800, 0x10FFFF, 0x110000, 0xFFFFFFFF, 0x41])
            struct.pack_into(dtype.byteorder.replace("=", "<").replace("|", "<") + "I",
                             raw, index * dtype.itemsize + 4 * char, code)
            body = bytes(raw)
            note = f"string element {index}, character {char} set to code point {code:#x}"
        else:
            value = None
            note = "no special value for this dtype"
        if value is not None:
            array = np.frombuffer(body, dtype=dtype, count=count).copy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # 1e308 overflows float32: inf is fine
                array[index] = value
            body = array.tobytes() + body[count * dtype.itemsize:]
            note = f"element {index} set to {value!r}"
    elif action == "truncate" or action == "value":
        cut = rng.choice([1, dtype.itemsize or 1, len(body)])
        body = body[:max(len(body) - cut, 0)]
        note = f"data shortened by {cut} bytes"
    else:
        extra = rng.choice([1, dtype.itemsize or 1, 4096])
        body = body + bytes(extra)
        note = f"{extra} bytes appended to the data"
    member.data = encode_npy(text, body, version)
    return f"{member.name}: {note}"


def mutate_member_list(rng, members, seeds):
    """Remove, duplicate, rename, add, reorder or empty members."""
    action = rng.choice(["remove", "duplicate", "rename", "rename", "add", "shuffle", "many",
                         "empty", "swap"])
    if action == "remove" and len(members) > 1:
        member = members.pop(rng.randrange(len(members)))
        return f"member {member.name} removed"
    if action == "duplicate":
        member = rng.choice(members)
        duplicate = member.copy()
        if rng.random() < 0.5:
            other = rng.choice(members)
            duplicate.data = other.data  # same name, other content
        members.insert(rng.randrange(len(members) + 1), duplicate)
        return f"member {member.name} duplicated"
    if action == "rename":
        member = rng.choice(members)
        old = member.name
        member.name = rng.choice(MEMBER_NAMES)
        return f"member {old} renamed to {member.name!r}"
    if action == "add":
        array = rng.choice([np.zeros(3), np.arange(2), np.array("x"), np.zeros((0,))])
        name = rng.choice(["extra.npy", "classes.npy", "mean.npy", "scale.npy",
                           "last_window.npy", "params.npy"])
        members.append(Member(name, npy_bytes(array), zipfile.ZIP_STORED))
        member, config = read_config(members)
        if config is not None and rng.random() < 0.5:
            array_spec(config)[name[:-4]] = {"shape": list(array.shape),
                                             "dtype": str(array.dtype)}
            write_config(member, config)
            return f"member {name} added (and listed in the config)"
        return f"member {name} added"
    if action == "shuffle":
        rng.shuffle(members)
        return "members reordered: " + ", ".join(m.name for m in members)
    if action == "many":
        count = rng.choice([16, 17, 64, 1000])
        for i in range(count):
            members.append(Member(f"m{i}.npy", npy_bytes(np.zeros(1)), zipfile.ZIP_STORED))
        return f"{count} extra members added"
    if action == "swap" and len(members) > 1:
        a, b = rng.sample(range(len(members)), 2)
        members[a].data, members[b].data = members[b].data, members[a].data
        return f"contents of {members[a].name} and {members[b].name} swapped"
    member = rng.choice(members)
    member.data = rng.choice([b"", NPY_MAGIC, member.data[:10]])
    return f"member {member.name} emptied to {len(member.data)} bytes"


def mutate_compression(rng, members, seeds):
    """Store a member with another compression method (bzip2 and lzma are refused)."""
    member = rng.choice(members)
    old = member.compress_type
    member.compress_type = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                                       zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                       zipfile.ZIP_LZMA])
    return f"{member.name}: compression {old} -> {member.compress_type}"


def mutate_raw_member(rng, members, seeds):
    """Flip bits in a member's uncompressed bytes (the CRC is then right)."""
    member = rng.choice(members)
    raw = bytearray(member.data)
    if not raw:
        return "fell back to mutate_member_list: " + mutate_member_list(rng, members, seeds)
    flips = rng.choice([1, 1, 2, 8])
    for _ in range(flips):
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    member.data = bytes(raw)
    return f"{member.name}: {flips} bit(s) flipped in its uncompressed bytes"


# ---------------------------------------------------------------- raw mutations
#
# Each takes (rng, blob, seeds) and returns (new blob, description).


def mutate_zip_field(rng, blob, seeds):
    """Write an interesting value into one field of a zip record."""
    blob = bytearray(blob)
    kind, signature, fields, fixed = rng.choice(RECORDS[:3] * 3 + RECORDS[3:])
    offsets = [o for o in find_all(blob, signature) if o + fixed <= len(blob)]
    if not offsets:
        blob, note = mutate_bit_flip(rng, bytes(blob), seeds)
        return blob, "fell back to mutate_bit_flip: " + note
    offset = rng.choice(offsets)
    label = record_label(blob, kind, offset)
    zip64_values = zip64_extra_values(blob, kind, offset) if kind in ("local", "central") else []
    if zip64_values and rng.random() < 0.2:
        pos = rng.choice(zip64_values)
        old = get_field(blob, pos, "<Q")
        new = rng.choice(field_values("zip64", old, "<Q", rng))
        set_field(blob, pos, "<Q", new)
        return bytes(blob), f"{label} zip64 extra value " \
                            f"{old} -> {new % 2**64}"
    field = rng.choice(list(fields))
    field_offset, fmt = fields[field]
    old = get_field(blob, offset + field_offset, fmt)
    new = rng.choice(field_values(field, old, fmt, rng))
    set_field(blob, offset + field_offset, fmt, new)
    new = get_field(blob, offset + field_offset, fmt)
    # the same change in the matching local or central header, half the time
    if kind in ("local", "central") and field in ("flags", "method", "version_needed") \
            and rng.random() < 0.5:
        other_kind, other_sig, other_fields = ("central", CENTRAL_SIG, CENTRAL_FIELDS) \
            if kind == "local" else ("local", LOCAL_SIG, LOCAL_FIELDS)
        index = find_all(blob, signature).index(offset)
        others = find_all(blob, other_sig)
        if index < len(others) and others[index] + 30 <= len(blob):
            set_field(blob, others[index] + other_fields[field][0], "<H", new)
            label += f" and {other_kind}"
    return bytes(blob), f"{label}.{field}: {old:#x} -> {new:#x}"


def mutate_member_data(rng, blob, seeds):
    """Flip a byte inside one member's stored or deflated data (the CRC is
    left as it was, so only a reader that checks it notices)."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            infos = [i for i in zf.infolist() if i.compress_size > 0]
            spans = []
            for info in infos:
                name_len = get_field(blob, info.header_offset + 26, "<H")
                extra_len = get_field(blob, info.header_offset + 28, "<H")
                start = info.header_offset + 30 + name_len + extra_len
                spans.append((info, start, info.compress_size))
    except (zipfile.BadZipFile, struct.error, ValueError, OSError, EOFError,
            NotImplementedError, RuntimeError):
        spans = []
    spans = [s for s in spans if s[1] + s[2] <= len(blob)]
    if not spans:
        blob, note = mutate_bit_flip(rng, blob, seeds)
        return blob, "fell back to mutate_bit_flip: " + note
    # deflated members first: their streams are what zlib has to survive
    deflated = [s for s in spans if s[0].compress_type == zipfile.ZIP_DEFLATED]
    info, start, size = rng.choice(deflated if deflated and rng.random() < 0.7 else spans)
    raw = bytearray(blob)
    pos = start + rng.randrange(size)
    raw[pos] ^= rng.choice([0x01, 0x80, 0xFF, 1 << rng.randrange(8)])
    method = "deflated" if info.compress_type == zipfile.ZIP_DEFLATED else "stored"
    return bytes(raw), f"{info.filename}: byte {pos - start} of its {size} {method} " \
                       f"bytes changed {blob[pos]:#04x} -> {raw[pos]:#04x}"


def mutate_bit_flip(rng, blob, seeds):
    raw = bytearray(blob)
    if not raw:
        return blob, "empty file left empty"
    flips = rng.choice([1, 1, 2, 4, 8])
    positions = []
    for _ in range(flips):
        pos = rng.randrange(len(raw))
        raw[pos] ^= 1 << rng.randrange(8)
        positions.append(pos)
    return bytes(raw), f"bits flipped at offsets {positions}"


def mutate_byte_set(rng, blob, seeds):
    raw = bytearray(blob)
    if not raw:
        return blob, "empty file left empty"
    pos = rng.randrange(len(raw))
    value = rng.choice([b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x00\x00\x00\x80",
                        b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"PK\x03\x04", b"PK\x01\x02",
                        bytes([rng.randrange(256)])])
    raw[pos:pos + len(value)] = value
    return bytes(raw[:len(blob)] if len(raw) > len(blob) else raw), \
        f"bytes {value!r} written at offset {pos}"


def mutate_truncate(rng, blob, seeds):
    cut = rng.choice([0, 1, 4, 22, rng.randrange(len(blob) + 1), len(blob) - 1, len(blob) - 22])
    cut = min(max(cut, 0), len(blob))
    return blob[:cut], f"file truncated to {cut} of {len(blob)} bytes"


def mutate_insert_delete(rng, blob, seeds):
    pos = rng.randrange(len(blob) + 1)
    if rng.random() < 0.5:
        size = rng.choice([1, 4, 30, 1000])
        data = bytes(rng.randrange(256) for _ in range(size))
        return blob[:pos] + data + blob[pos:], f"{size} random bytes inserted at offset {pos}"
    size = rng.choice([1, 4, 30, 1000])
    return blob[:pos] + blob[pos + size:], f"{size} bytes deleted at offset {pos}"


def mutate_splice(rng, blob, seeds):
    name, other, _ = rng.choice(seeds)
    cut = rng.randrange(len(blob) + 1)
    other_cut = rng.randrange(len(other) + 1)
    return blob[:cut] + other[other_cut:], \
        f"first {cut} bytes joined to {name} from offset {other_cut}"


def mutate_append(rng, blob, seeds):
    name, other, _ = rng.choice(seeds)
    tail = rng.choice([b"\x00" * 100, other, b"PK\x05\x06" + bytes(18), b"garbage"])
    return blob + tail, f"{len(tail)} bytes appended"


# (weight, mutation): structured ones are applied first, then raw ones
STRUCTURED_MUTATIONS = [
    (10, mutate_config_tree),
    (6, mutate_config_text),
    (6, mutate_architecture),
    (6, mutate_array_spec),
    (4, mutate_declared_size),
    (8, mutate_npy_header),
    (6, mutate_npy_data),
    (6, mutate_member_list),
    (3, mutate_compression),
    (3, mutate_raw_member),
]
RAW_MUTATIONS = [
    (12, mutate_zip_field),
    (8, mutate_member_data),
    (6, mutate_bit_flip),
    (4, mutate_byte_set),
    (3, mutate_truncate),
    (3, mutate_insert_delete),
    (2, mutate_splice),
    (1, mutate_append),
]


def pick(rng, values):
    """A copy of a random entry of ``values`` (the lists in them are shared)."""
    return copy.deepcopy(rng.choice(values))


def short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 15] + f"...({len(text)} chars)"


def load_seeds(paths):
    """[(file name, bytes, members)] for the corpus files, in the given order."""
    seeds = []
    for path in paths:
        with open(path, "rb") as f:
            blob = f.read()
        seeds.append((path.rsplit("/", 1)[-1], blob, read_members(blob)))
    return seeds


def make_case(rng, seeds):
    """One mutated seed file: (bytes, description of the mutations)."""
    name, blob, members = rng.choice(seeds)
    blob, description = mutate_file(rng, blob, members, seeds)
    return blob, f"{name} | {description}"


def mutate_file(rng, blob, members, seeds):
    """Apply one to three mutations to an archive; ``members`` are its members
    (or None when it is not a readable zip: then only raw mutations apply).
    Returns (bytes, description)."""
    all_mutations = STRUCTURED_MUTATIONS + RAW_MUTATIONS
    weights = [w for w, _ in all_mutations]
    count = rng.choice([1, 1, 1, 2, 2, 3])
    chosen = rng.choices([m for _, m in all_mutations], weights=weights, k=count)
    structured_kinds = [m for _, m in STRUCTURED_MUTATIONS]
    structured = [m for m in chosen if m in structured_kinds]
    raw = [m for m in chosen if m not in structured_kinds]
    if members is None:
        raw += [mutate_bit_flip] * len(structured)
        structured = []
    notes = []
    if structured:
        members = [m.copy() for m in members]
        for mutation in structured:
            notes.append(f"{mutation.__name__}: {mutation(rng, members, seeds)}")
        blob = write_zip(members)
    for mutation in raw:
        blob, note = mutation(rng, blob, seeds)
        notes.append(f"{mutation.__name__}: {note}")
    return blob, " | ".join(notes)
