"""Reduced-precision inference (fastlstm.quantize): bfloat16 and int8 weights.

Three kinds of check:
- the kernel against a float64 numpy reference of the *quantized* computation
  (dequantized weights; the dot products' input rounded to bfloat16, or
  quantized to int8 per row, as the kernels do): one step from given states must match within float32 rounding
  and the kernels' activation error (atol 2e-5), whole sequences within a
  looser atol (below), because over many steps a float32 h can land on the
  other side of a bfloat16 rounding boundary than the float64 one;
- the stated accuracy bound against the float32 model: one LSTM step's
  deviation is within the first-order bound the weight error implies, and on
  the benchmark shapes e and f the observed max and mean deviations stay
  under the tolerances README states;
- the API: every cell, stacks, bidirectional, lengths, streaming, pickling,
  estimators, and the clear errors for training and export.
"""
import pickle

import numpy as np
import pytest

import fastlstm
from fastlstm import _kernels
from fastlstm.quantize import bf16_bits, bf16_value, dequantize

CELLS = [("lstm", fastlstm.LSTM), ("peephole", fastlstm.LSTM), ("cifg", fastlstm.LSTM),
         ("gru", fastlstm.GRU)]
DTYPES = ["bfloat16", "int8"]


def _bf16(a):
    return bf16_value(bf16_bits(np.asarray(a, np.float32))).astype(np.float64)


def _act(name, z):
    return {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0)}[name](z)


def _gate(name, z):
    if name == "hard_sigmoid":
        return np.clip(0.2 * z + 0.5, 0, 1)
    return 1 / (1 + np.exp(-z))


def _int8_rows(a):
    """Each row of a quantized as the int8 kernels quantize a step's inputs
    (in float32, as they do): q = rint(a * (127 / max|a|)), scale max|a| / 127;
    the values q * scale in float64."""
    a = np.asarray(a, np.float32)
    amax = np.abs(a).max(axis=1, keepdims=True)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    q = np.clip(np.rint(a * inv), -127, 127)
    return q.astype(np.float64) * (amax / np.float32(127)).astype(np.float64)


def ref_step(cell, dtype, x, h, c, wi, wh, b_ih, b_hh, peep, act="tanh", gate="sigmoid"):
    """One step in float64 of the quantized computation; wi, wh dequantized."""
    rnd = _bf16 if dtype == "bfloat16" else _int8_rows
    gx = rnd(x) @ wi.T + b_ih
    gh = rnd(h) @ wh.T + b_hh
    H = h.shape[1]
    if cell == "gru":
        r = _gate(gate, gx[:, :H] + gh[:, :H])
        z = _gate(gate, gx[:, H:2 * H] + gh[:, H:2 * H])
        n = _act(act, gx[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h, None
    zz = gx + gh
    zi, zf, zg, zo = (zz[:, k * H:(k + 1) * H] for k in range(4))
    if peep is not None:
        zi = zi + peep[0] * c
        zf = zf + peep[1] * c
    i = _gate(gate, zi)
    f = 1 - i if cell == "cifg" else _gate(gate, zf)
    c2 = f * c + i * _act(act, zg)
    if peep is not None:
        zo = zo + peep[2] * c2
    return _gate(gate, zo) * _act(act, c2), c2


def ref_stack(q, x, lengths=None, act="tanh", gate="sigmoid"):
    """The quantized layer stack q in float64: y (B, T, D*H), h_n, c_n (L*D, B, H)."""
    B, T, _ = x.shape
    D = q.num_directions
    inp = x.astype(np.float64)
    hs, cs = [], []
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    for layer in range(q.num_layers):
        H = q.hidden_sizes[layer]
        y = np.zeros((B, T, D * H))
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh, peep = (None if v is None else v.astype(np.float64)
                                           for v in q._layer_views[layer, d])
            h = np.zeros((B, H))
            c = np.zeros((B, H))
            steps = range(T - 1, -1, -1) if d else range(T)
            for t in steps:
                live = t < lens
                h2, c2 = ref_step(q.cell, q.quant_dtype, inp[:, t], h, c, w_ih, w_hh, b_ih, b_hh,
                                  peep, act, gate)
                h = np.where(live[:, None], h2, h)
                if c2 is not None:
                    c = np.where(live[:, None], c2, c)
                y[:, t, d * H:(d + 1) * H] = np.where(live[:, None], h2, 0)
            hs.append(h)
            cs.append(c)
        inp = y
    return y, np.stack(hs), np.stack(cs)


def _layer(cls, cell, I=13, H=37, **kw):
    return cls(I, H, cell=cell, random_state=7, **kw)


def _x(B, T, I, seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)


# the avx512 level's source has the AMX tile path (also in its AVX2 test build)
AMX_LEVEL = _kernels.isa() == "avx512"


@pytest.fixture(params=["cpu", "general", "amx_emulated"])
def paths(request):
    """The kernels' paths: the CPU's best (its dot-product instructions,
    AVX512_BF16, AVX512_VNNI, AVX-VNNI, and AMX tiles where it has them);
    the level's general ones (widening, vpmaddwd, vpsignb + vpmaddubsw,
    generic vectors), which such a CPU would otherwise never run; or the
    CPU's best with the AMX tile path for batches of 16 rows or more, its
    tiles emulated in C, so its layout, padding and tails are checked on any
    CPU that runs the avx512 level (elsewhere the same as "cpu")."""
    previous = _kernels.set_quant_paths_for_tests(request.param)
    yield request.param
    _kernels.set_quant_paths_for_tests(previous)


# ----- the kernel against the reference of the quantized computation ----------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,cls", CELLS)
@pytest.mark.parametrize("act,gate", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
def test_one_step_matches_reference(cell, cls, dtype, act, gate, paths):
    # H = 37, I = 13: odd sizes cover the padded units, columns and k pairs;
    # atol 2e-5: float32 sums of ~50 products plus the activations' 3e-7
    layer = _layer(cls, cell, activation=act, gate_activation=gate)
    q = layer.quantize(dtype)
    rng = np.random.default_rng(1)
    B, H = 19, 37   # 19: tiles of 3 rows with a remainder; AMX's 16 and 3 padded
    x = _x(B, 1, 13)
    h0 = rng.uniform(-1, 1, (1, B, H)).astype(np.float32)
    c0 = rng.uniform(-2, 2, (1, B, H)).astype(np.float32)
    if cls is fastlstm.GRU:
        y, h_n = q(x, h0)
    else:
        y, (h_n, c_n) = q(x, (h0, c0))
    w_ih, w_hh, b_ih, b_hh, peep = (None if v is None else v.astype(np.float64)
                                   for v in q._layer_views[0, 0])
    h_ref, c_ref = ref_step(cell, dtype, x[:, 0], h0[0].astype(np.float64),
                            c0[0].astype(np.float64), w_ih, w_hh, b_ih, b_hh, peep, act, gate)
    np.testing.assert_allclose(y[:, 0], h_ref, rtol=0, atol=2e-5)
    np.testing.assert_allclose(h_n[0], h_ref, rtol=0, atol=2e-5)
    if c_ref is not None:
        np.testing.assert_allclose(c_n[0], c_ref, rtol=0, atol=2e-5)


def _rint_ties(amax, n):
    """n float32 values a, |a| < amax, whose float32 product with
    inv = 127 / amax is exactly k + 0.5 while the exact product is not:
    rint of the float product (what the int8 kernels must compute) and
    the exact product rounded once (what a fused multiply-add gives)
    differ by one code."""
    inv = np.float32(127) / np.float32(amax)
    out = []
    for k in range(-126, 126):
        a = np.float32((k + 0.5) / float(inv))
        for step in range(600):
            p = a * inv
            if (abs(a) < amax and p - np.floor(p) == 0.5
                    and np.rint(p) != np.rint(float(a) * float(inv))):
                out.append(a)
                break
            a = np.nextafter(a, np.float32(np.inf) if step % 2 else np.float32(-np.inf))
        if len(out) == n:
            break
    return np.array(out, np.float32)


def test_int8_codes_round_the_float_product(paths):
    # each element's code is rint(fl(a * inv)): inputs whose float product is
    # a tie that the exact product is not, where a fused multiply-add would
    # round differently (the vector code of every level, and the scalar tail)
    q = _layer(fastlstm.LSTM, "lstm", I=40, H=16).quantize("int8")
    ties = _rint_ties(3.7, 39)
    assert len(ties) == 39
    x = np.concatenate([[np.float32(3.7)], ties]).astype(np.float32).reshape(1, 1, 40)
    y, (h_n, c_n) = q(x)
    w_ih, w_hh, b_ih, b_hh = (v.astype(np.float64) for v in q._layer_views[0, 0][:4])
    zeros = np.zeros((1, 16))
    h_ref, c_ref = ref_step("lstm", "int8", x[:, 0], zeros, zeros, w_ih, w_hh, b_ih, b_hh, None)
    np.testing.assert_allclose(y[:, 0], h_ref, rtol=0, atol=2e-5)
    np.testing.assert_allclose(c_n[0], c_ref, rtol=0, atol=2e-5)


# sequences: a float32 input can round to the neighbouring bfloat16 or int8
# step where the float64 one does not (a jump of up to 2^-7 |h_k|, or of
# max|h| / 127, in one input, times |w| <= 1/sqrt(H), in one pre-activation):
# atol 2e-3
SEQ_ATOL = {"int8": 2e-3, "bfloat16": 2e-3}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,cls", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequences_match_reference(cell, cls, dtype, bidirectional, paths):
    layer = _layer(cls, cell, num_layers=2, bidirectional=bidirectional)
    q = layer.quantize(dtype)
    x = _x(4, 9, 13)
    lengths = np.array([9, 3, 7, 1])
    out = q(x, lengths=lengths)
    y, h_n = out[0], out[1] if cls is fastlstm.GRU else out[1][0]
    y_ref, h_ref, c_ref = ref_stack(q, x, lengths)
    tol = SEQ_ATOL[dtype]
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=tol)
    np.testing.assert_allclose(h_n, h_ref, rtol=0, atol=tol)
    if cls is not fastlstm.GRU:
        np.testing.assert_allclose(out[1][1], c_ref, rtol=0, atol=tol)
    assert np.all(y[1, 3:] == 0) and np.all(y[3, 1:] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,cls", CELLS)
def test_streaming_equals_whole_sequence(cell, cls, dtype):
    q = _layer(cls, cell, num_layers=2).quantize(dtype)
    x = _x(3, 6, 13)
    y = q(x)[0]
    state = q.init_state(3)
    steps = [q.step(x[:, t], state)[0] for t in range(6)]
    np.testing.assert_array_equal(np.stack(steps, 1), y)   # same kernel, same sums


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,cls", CELLS)
def test_threads_and_batch_rows_do_not_change_results(cell, cls, dtype, paths):
    # threads split the batch rows and a row's sums do not depend on its
    # register tile: any thread count, and any batch the row is part of, gives
    # the same bits (B = 11: tiles of 3 rows with a remainder, uneven shares)
    q = _layer(cls, cell, bidirectional=True).quantize(dtype)
    x = _x(11, 6, 13)
    lengths = np.array([6, 2, 5, 6, 1, 3, 6, 4, 6, 2, 5])
    want = q(x, lengths=lengths)[0]
    for nt in (2, 3, 7):
        q.n_threads = nt
        np.testing.assert_array_equal(q(x, lengths=lengths)[0], want)
    q.n_threads = 1
    for rows in ([4], [0, 5, 9], list(range(10))):
        np.testing.assert_array_equal(q(x[rows], lengths=lengths[rows])[0], want[rows])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,cls", CELLS)
def test_batches_of_16_rows_or_more_do_not_change_results(cell, cls, dtype, paths):
    # from 16 rows a batch may take AMX tiles (the path depends on the batch
    # size alone): any thread count, and any batch of 16 rows or more the row
    # is part of, gives the same bits; B = 40: tile blocks of 32 and 16 rows
    # (8 padded) on one thread, shares of 20 (padded to 32) on two, of 13 or
    # 14 (padded to 16) on three (and on seven: the tiles take a thread per
    # 16 rows)
    q = _layer(cls, cell, I=40, H=70, bidirectional=True).quantize(dtype)
    x = _x(40, 5, 40)
    lengths = np.random.default_rng(3).integers(1, 6, 40)
    want = q(x, lengths=lengths)[0]
    for nt in (2, 3, 7):
        q.n_threads = nt
        np.testing.assert_array_equal(q(x, lengths=lengths)[0], want)
    q.n_threads = 1
    for rows in (list(range(3, 19)), list(range(0, 40, 2)) + [5], list(range(33))):
        np.testing.assert_array_equal(q(x[rows], lengths=lengths[rows])[0], want[rows])
    np.testing.assert_allclose(want, ref_stack(q, x, lengths)[0], rtol=0, atol=SEQ_ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,cls", CELLS)
def test_batch_of_one_splits_its_units_with_the_same_bits(cell, cls, dtype, paths):
    # a batch of one splits its unit blocks between threads (each quantizes
    # the whole h_{t-1} itself): the same bits as one thread, c and h included
    # (H = 240: each step streams enough of W_hh for the split; T = 60: the
    # input products hoisted in chunks of 48 steps and 12)
    q = _layer(cls, cell, I=70, H=240, bidirectional=True).quantize(dtype)
    x = _x(1, 60, 70)
    q.n_threads = 1
    want = q(x, lengths=[53])
    for nt in (2, 3, 7):
        q.n_threads = nt
        _kernels.set_thread_split_for_tests("auto")     # resets the peak
        got = q(x, lengths=[53])
        assert _kernels.thread_split_peak_for_tests() >= 2   # the split took place
        for g, w in zip(_flat(got), _flat(want)):
            np.testing.assert_array_equal(g, w)
    y_ref = ref_stack(q, x, [53])[0]
    np.testing.assert_allclose(want[0], y_ref, rtol=0, atol=SEQ_ATOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,cls", CELLS)
def test_hoisted_input_products_keep_the_bits(cell, cls, dtype, paths):
    # a thread with up to 24 rows computes the input side of a chunk of
    # steps in one product before them (B = 1: chunks of 48, 48 and 14
    # steps; B = 5: 9, 9 and 5); a batch of 30 rows computes it step by step:
    # the rows give the same bits either way (with emulated AMX tiles a batch
    # of 30 takes the tiles, whose bfloat16 sums may round differently)
    q = _layer(cls, cell, I=20, H=40, bidirectional=True).quantize(dtype)
    for T, rows in ((110, [7]), (23, [0, 4, 11, 12, 29])):
        x = _x(30, T, 20, seed=T)
        lengths = np.random.default_rng(T).integers(1, T + 1, 30)
        lengths[rows[0]] = T
        part = q(x[rows], lengths=lengths[rows])
        if dtype == "int8" or paths != "amx_emulated":
            whole = q(x, lengths=lengths)
            got, want = _flat(part), _flat(whole)
            np.testing.assert_array_equal(got[0], want[0][rows])   # y (B, T, 2H)
            for g, w in zip(got[1:], want[1:]):                     # states (2, B, H)
                np.testing.assert_array_equal(g, w[:, rows])
        y_ref = ref_stack(q, x[rows], lengths[rows])[0]
        np.testing.assert_allclose(part[0], y_ref, rtol=0, atol=SEQ_ATOL[dtype])


def _flat(out):
    """y and the states of a layer call, as a list of arrays."""
    y, st = out
    return [y, *(st if isinstance(st, tuple) else (st,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [8, 37])
def test_every_level_path_matches_reference_on_wide_layers(dtype, B, paths):
    # H = 200 spans several column blocks and unit blocks on every level; I = 70
    # has a partial k group (and a K tail past AMX's 16-group stretches);
    # B = 8 fills panels of 3-row tiles with a remainder, B = 37 AMX's blocks
    # of 32 and 16 rows, 11 of them padding
    layer = fastlstm.LSTM(70, 200, random_state=5)
    q = layer.quantize(dtype)
    x = _x(B, 3, 70)
    y_ref, h_ref, c_ref = ref_stack(q, x)
    y, (h_n, c_n) = q(x)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=SEQ_ATOL[dtype])
    np.testing.assert_allclose(c_n, c_ref, rtol=0, atol=SEQ_ATOL[dtype])


@pytest.mark.parametrize("cell,cls", CELLS)
def test_int8_paths_agree_bitwise(cell, cls):
    # every int8 path computes the same exact integer sums and the same float
    # arithmetic after them, so the CPU's vpdpbusd, the level's general path
    # and AMX's tdpbssd give the same bits (on a CPU without VNNI the first
    # two runs take one path); B = 20: the tiles' 16 rows and 4 of 16 padded
    q = _layer(cls, cell, I=70, H=200, bidirectional=True).quantize("int8")
    x = _x(20, 5, 70)
    previous = _kernels.set_quant_paths_for_tests("cpu")
    try:
        want = q(x)[0]
        for mode in ("general", "amx_emulated"):
            _kernels.set_quant_paths_for_tests(mode)
            np.testing.assert_array_equal(q(x)[0], want)
    finally:
        _kernels.set_quant_paths_for_tests(previous)


def test_paths_are_named(paths):
    code = _kernels.QTYPES
    bf16, i8 = _kernels.quant_path(code["bfloat16"]), _kernels.quant_path(code["int8"])
    tiles = ""
    if bf16.startswith("AMX"):
        tiles = "AMX (emulated) " if paths == "amx_emulated" else "AMX "
        assert AMX_LEVEL and paths != "general"
        assert bf16.startswith(tiles + "tdpbf16ps for 16+ rows, else ")
        assert i8.startswith(tiles + "tdpbssd for 16+ rows, else ")
        bf16, i8 = bf16.split(", else ")[1], i8.split(", else ")[1]
    assert bf16 in ("AVX512_BF16 vdpbf16ps", "widened to float32, FMA", "widened to float32")
    assert i8 in ("AVX512_VNNI vpdpbusd", "AVX-VNNI vpdpbusd", "AVX-512BW vpmaddwd",
                  "AVX2 vpsignb, vpmaddubsw", "SSE2 pmaddwd", "generic integer vectors")
    assert (tiles == "AMX (emulated) ") == (paths == "amx_emulated" and AMX_LEVEL)
    if paths == "general":
        assert "BF16" not in bf16 and "VNNI" not in i8
    level = _kernels.isa()
    assert ("AVX-512" in i8 or "AVX512" in i8) == (level == "avx512")
    assert "AVX2" in i8 or "AVX-VNNI" in i8 or level != "avx2"


def test_int8_refuses_inputs_wider_than_its_integer_sums_allow():
    with pytest.raises(ValueError, match="65536"):
        fastlstm.LSTM(65537, 1).quantize("int8")


# ----- accuracy against the float32 model -----------------------------------

def _pre_activation_bound(dtype, layer, q, x, h, c):
    """Per-row bound on |dz| from the quantization (module docstring)."""
    w_ih, w_hh, _, _, _ = (None if v is None else v.astype(np.float64)
                           for v in layer._layer_views[0, 0])
    if dtype == "bfloat16":
        return (2.0 ** -7 + 2.0 ** -16) * (np.abs(x) @ np.abs(w_ih).T + np.abs(h) @ np.abs(w_hh).T)
    bound = 0
    for a, w in ((x, w_ih), (h, w_hh)):
        s = np.abs(w).max(1) / 127                         # per weight row
        sa = np.abs(a).max(1, keepdims=True) / 127         # per input row
        bound = bound + (s / 2 * np.abs(a).sum(1, keepdims=True) + sa / 2 * np.abs(w).sum(1)
                         + a.shape[1] * s * sa / 4)
    return bound


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_lstm_step_within_derived_bound(dtype):
    # first order: |di| <= |dz_i|/4, |df| <= |dz_f|/4, |dg| <= |dz_g|, so
    # |dc| <= |c| |dz_f|/4 + |dz_i|/4 + |dz_g| and |dh| <= |dz_o|/4 + |dc|;
    # a factor 1.05 and 1e-6 cover the second order and float32 roundoff
    I, H, B = 32, 128, 8
    layer = fastlstm.LSTM(I, H, random_state=3)
    q = layer.quantize(dtype)
    rng = np.random.default_rng(2)
    x = _x(B, 1, I)
    h0 = rng.uniform(-1, 1, (1, B, H)).astype(np.float32)
    c0 = rng.uniform(-2, 2, (1, B, H)).astype(np.float32)
    y32, (_, c32) = layer(x, (h0, c0))
    yq, (_, cq) = q(x, (h0, c0))
    dz = _pre_activation_bound(dtype, layer, q, x[:, 0].astype(np.float64),
                               h0[0].astype(np.float64), c0[0])
    dzi, dzf, dzg, dzo = (dz[:, k * H:(k + 1) * H] for k in range(4))
    dc = np.abs(c0[0]) * dzf / 4 + dzi / 4 + dzg
    dh = dzo / 4 + dc
    assert np.all(np.abs(cq[0] - c32[0]) <= 1.05 * dc + 1e-6)
    assert np.all(np.abs(yq[:, 0] - y32[:, 0]) <= 1.05 * dh + 1e-6)


# Tolerances stated in README ("Reduced precision") for the benchmark shapes
# with PyTorch's default initialisation and standard normal inputs: observed
# values are about a quarter to a half of these.
SHAPE_TOL = {"bfloat16": (4e-3, 5e-4), "int8": (1e-2, 2.5e-3)}   # (max, mean) abs deviation


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H,T", [(128, 100), (256, 50)])   # shapes e and f
def test_benchmark_shapes_deviation(dtype, H, T):
    layer = fastlstm.LSTM(32, H, random_state=0)
    x = _x(1, T, 32, seed=4)
    y32, (h32, c32) = layer(x)
    yq, (hq, cq) = layer.quantize(dtype)(x)
    mx, mean = SHAPE_TOL[dtype]
    for got, want in ((yq, y32), (hq, h32), (cq, c32)):
        d = np.abs(got - want)
        assert d.max() <= mx and d.mean() <= mean, (d.max(), d.mean())


def test_float32_layer_unchanged_by_quantize():
    layer = fastlstm.LSTM(13, 37, random_state=0)
    x = _x(2, 5, 13)
    before = layer(x)[0]
    flat = layer.flat_params.copy()
    layer.quantize("int8")
    layer.quantize("bfloat16")
    np.testing.assert_array_equal(layer.flat_params, flat)
    np.testing.assert_array_equal(layer(x)[0], before)


# ----- quantization itself ------------------------------------------------------

def test_bf16_rounding_is_nearest_even():
    # ties go to the even neighbour; the relative error of a normal number is
    # at most 2^-8 (half of bfloat16's 2^-7 spacing in [1, 2): 7 stored bits)
    v = np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, -2.5], np.float32)
    got = bf16_value(bf16_bits(v))
    np.testing.assert_array_equal(got, np.array([1.0, 1.0, 1 + 2 ** -6, 1.0, -2.5], np.float32))
    r = np.random.default_rng(0).standard_normal(10000).astype(np.float32)
    assert np.all(np.abs(bf16_value(bf16_bits(r)) - r) <= np.abs(r) * 2.0 ** -8)


def test_int8_rows_within_half_a_step():
    from fastlstm.quantize import quantize_weights
    w = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    w[3] = 0
    q, s = quantize_weights(w, "int8")
    assert q.dtype == np.int8 and s.shape == (20,) and np.abs(q).max() == 127
    err = np.abs(dequantize(q, s) - w)
    assert np.all(err <= s[:, None] / 2 * (1 + 1e-6))
    assert np.all(dequantize(q, s)[3] == 0)


# ----- API -------------------------------------------------------------------------

def test_training_and_export_raise():
    q = fastlstm.LSTM(4, 8, random_state=0).quantize("int8")
    x = _x(2, 3, 4)
    with pytest.raises(TypeError, match="inference only"):
        q.forward(x)
    with pytest.raises(TypeError, match="inference only"):
        q.load_state_dict(q.state_dict())
    with pytest.raises(NotImplementedError, match="does not export"):
        q.to_onnx()
    with pytest.raises(NotImplementedError, match="does not export"):
        q.to_torch()
    with pytest.raises(TypeError, match="already quantized"):
        q.quantize("bfloat16")
    with pytest.raises(ValueError, match="dtype must be one of"):
        fastlstm.LSTM(4, 8).quantize("float16")


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_pickles(dtype):
    q = fastlstm.GRU(5, 9, num_layers=2, random_state=0).quantize(dtype)
    x = _x(2, 4, 5)
    q2 = pickle.loads(pickle.dumps(q))
    np.testing.assert_array_equal(q2(x)[0], q(x)[0])


@pytest.fixture(scope="module")
def regressor():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 12, 3)).astype(np.float32)
    y = X[:, :, 0].sum(1)
    return fastlstm.LSTMRegressor(hidden_sizes=(16,), epochs=2, random_state=0).fit(X, y), X


@pytest.mark.parametrize("dtype", DTYPES)
def test_estimator_quantize(regressor, dtype):
    reg, X = regressor
    q = reg.quantize(dtype)
    p32, pq = reg.predict(X), q.predict(X)
    assert np.abs(pq - p32).max() < 1e-2 * (1 + np.abs(p32).max())
    assert not getattr(reg._network, "quant_dtype", None)   # the original stays float32
    np.testing.assert_array_equal(reg.predict(X), p32)
    q2 = pickle.loads(pickle.dumps(q))
    np.testing.assert_array_equal(q2.predict(X), pq)
    state = q.init_state(2)
    for t in range(X.shape[1]):
        out, state = q.step(X[:2, t], state)
    np.testing.assert_allclose(np.ravel(out), pq[:2], rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="already quantized"):
        q.quantize(dtype)
    with pytest.raises(NotImplementedError, match="does not export"):
        q.to_onnx()
    with pytest.raises(NotImplementedError, match="does not export"):
        q.to_torch()
    with pytest.raises(TypeError, match="inference only"):
        q.partial_fit(X, reg.predict(X))


def test_show_config_names_quantized_paths(capsys):
    c = fastlstm.show_config()
    assert set(c["quantized"]) == set(DTYPES)
    assert "bfloat16" in capsys.readouterr().out
    assert c["quantized"]["int8"] == _kernels.quant_path(_kernels.QTYPES["int8"])
