"""The C kernels (through fastlstm.LSTM / GRU) against the numpy reference
(fastlstm._reference, itself proved by tests/test_reference.py): every output, final
state and gradient, for all cells, activations, gate activations, uni/bidirectional,
1-3 layers, lengths, initial state, dropout, float64 and float32, and the shapes at
the kernels' blocking edges (unit block 16, batch chunk 16).

Errors are helpers.rel_err: max |kernel - reference| / max(1, max |reference|),
measured per array (per gradient tensor), i.e. absolute below magnitude 1.
"""
import numpy as np
import pytest

from helpers import (CELLS, check_all, kernel_infer, kernel_train, lstm_state, make_case,
                     make_layer, record_error, reference_train, rel_err, seed_of)

# float64: same formulas, different summation order (packed GEMM blocks, fused gate
# accumulation) and the kernels' own exp (accurate to ~2e-16 relative). Measured
# differences are ~1e-15 relative to magnitude; 1e-12 leaves room for growth over
# a few steps and three layers, while any formula or indexing error is >= 1e-3.
F64_TOL = 1e-12

# float32 kernel vs the float64 reference fed the same float32-rounded numbers:
# float32 rounding (eps 6e-8) in dot products of I+H <= 210 terms, the float32
# sigmoid/tanh approximation (< 1e-7 absolute), grown over <= 14 steps and 2 layers,
# and weight gradients that sum <= 280 (B*T) rows. Measured <= 1e-6 relative to the
# magnitude; 5e-6 keeps a margin of 5, while a real error is >= 1e-3.
F32_TOL = 5e-6


def _run_both(cell, case, L, bi, act, ga, dtype="float64", **layer_kw):
    I, H = case["x"].shape[2], case["params"]["weight_hh_l0"].shape[1]
    layer = make_layer(cell, I, H, L, bi, act, ga, dtype=dtype, params=case["params"],
                       **layer_kw)
    y, h, c, g, cache = kernel_train(layer, case)
    return (y, h, c, g), reference_train(case, cell, L, bi, act, ga), layer, cache


def _check(got, want, tol, label):
    check_all(got, want, tol, f"kernel vs reference {label}")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("gate_activation", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("cell", CELLS)
def test_every_variant_float64(cell, activation, gate_activation, bidirectional):
    """2 layers, lengths and initial state, H = 19 (a full unit block and a partial one);
    parameters uniform in [-1, 1] so that gates
    saturate (hard_sigmoid flat parts, dead relu units) and every branch runs."""
    seed = seed_of("variants", cell, activation, gate_activation, bidirectional)
    case = make_case(cell, 5, 4, 3, 19, 2, bidirectional, True, True, seed, scale=1.0)
    got, want, _, _ = _run_both(cell, case, 2, bidirectional, activation, gate_activation)
    _check(got, want, F64_TOL, "float64")


@pytest.mark.parametrize("use_init", [False, True], ids=["zero_state", "init_state"])
@pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (1, True), (3, False), (3, True)],
                         ids=["L1uni", "L1bi", "L3uni", "L3bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_layers_lengths_state_float64(cell, num_layers, bidirectional, use_lengths, use_init):
    seed = seed_of("layers", cell, num_layers, bidirectional, use_lengths, use_init)
    case = make_case(cell, 4, 5, 3, 6, num_layers, bidirectional, use_lengths, use_init,
                     seed, scale=0.8)
    got, want, _, _ = _run_both(cell, case, num_layers, bidirectional, "tanh", "sigmoid")
    _check(got, want, F64_TOL, "float64")


# (B, T, I, H): H at the unit-block edges 1, 15, 16, 17, 33; B = 1 and 17 (the batch
# chunk is 16); T = 1; I = 1. The last three reach the GEMM tile edges: I = 40 > H
# (the backward's weight-gradient workspace is sized by I + H); T*B = 102 rows and
# 5 unit blocks (4*80 = 320 > 256 gate columns: two column tiles in the input
# projection, several row tiles in the weight gradients); T*B = 280 > 256 (two K
# blocks in the weight-gradient GEMMs). The forward step projects inputs up to
# max(64, H) wide itself (fused_x) when B > 6; I = 64 and 65 at H = 17 straddle that,
# and I = 70 at H = 80 is inside it by the H rule. Wider inputs, B <= 6 and every gru
# go through the hoisted projection, and so does the second layer (input 2H) at
# H = 33, 70 and 80. The avx512 level's unit block is 64 (one column group of
# its 6 x 4 tile per gate) and its float64 group 32: H = 31, 63, 64, 65 and 129
# sit at those edges, and B = 13 leaves a partial 6-row tile.
SHAPES = [(3, 4, 3, 1), (3, 4, 3, 15), (3, 4, 3, 16), (3, 3, 3, 17), (2, 3, 2, 33),
          (1, 4, 3, 17), (17, 3, 2, 17), (17, 2, 2, 33), (3, 1, 3, 17), (3, 4, 1, 16),
          (1, 1, 1, 1), (3, 3, 40, 5), (17, 6, 3, 70), (20, 14, 2, 9), (7, 3, 64, 17),
          (7, 3, 65, 17), (7, 2, 70, 80), (13, 2, 3, 31), (13, 2, 3, 63), (2, 2, 5, 64),
          (13, 2, 3, 65), (1, 3, 2, 65), (8, 2, 3, 129)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=["B{}T{}I{}H{}".format(*s) for s in SHAPES])
@pytest.mark.parametrize("cell", CELLS)
def test_block_edges(cell, shape, dtype):
    """Bidirectional, 2 layers, lengths (when T > 1) and initial state at each shape."""
    b, t, i, h = shape
    seed = seed_of("edges", cell, shape, dtype)
    # build in float64, round to float32 for the float32 run so that both sides see
    # exactly the same numbers; the reference always runs in float64
    case = make_case(cell, b, t, i, h, 2, True, t > 1, True, seed)
    if dtype == "float32":
        case = {k: (None if v is None else
                    {n: a.astype(np.float32).astype(np.float64) for n, a in v.items()}
                    if isinstance(v, dict) else
                    v if k == "lengths" else v.astype(np.float32).astype(np.float64))
                for k, v in case.items()}
    layer = make_layer(cell, i, h, 2, True, dtype=dtype, params=case["params"])
    y, hn, cn, g, _ = kernel_train(layer, case)
    assert y.dtype == hn.dtype == np.dtype(dtype)
    assert all(v.dtype == np.dtype(dtype) for v in g.values())
    want = reference_train(case, cell, 2, True)
    _check((y, hn, cn, g), want, F64_TOL if dtype == "float64" else F32_TOL, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_every_variant(cell):
    """float32 for each activation / gate activation combination (bi, 2 layers, lengths)."""
    for act in ("tanh", "relu"):
        for ga in ("sigmoid", "hard_sigmoid"):
            case = make_case(cell, 5, 4, 3, 7, 2, True, True, True,
                             seed_of("f32", cell, act, ga), dtype=np.float32)
            layer = make_layer(cell, 3, 7, 2, True, act, ga, dtype="float32",
                               params=case["params"])
            got = kernel_train(layer, case)[:4]
            case64 = {k: (None if v is None else
                          {n: a.astype(np.float64) for n, a in v.items()} if isinstance(v, dict)
                          else v.astype(np.float64)) for k, v in case.items()}
            want = reference_train(case64, cell, 2, True, act, ga)
            _check(got, want, F32_TOL, "float32")


# ---------------------------------------------------------------- dropout

@pytest.mark.parametrize("cell", CELLS)
def test_dropout_matches_reference_with_the_same_masks(cell):
    """Train mode with dropout: the masks the layer drew (cache.dropout_masks) fed to
    the reference give the same outputs and gradients; the masks are 0 or 1/(1-p)."""
    p, L = 0.4, 3
    case = make_case(cell, 5, 4, 3, 6, L, True, True, True, seed_of("dropout", cell))
    layer = make_layer(cell, 3, 6, L, True, params=case["params"], dropout=p,
                       random_state=123)
    y, h, c, g, cache = kernel_train(layer, case)
    masks = cache.dropout_masks
    assert len(masks) == L - 1
    for m in masks:
        assert m.shape == (5, 4, 12)
        vals = np.unique(m)
        np.testing.assert_allclose(vals, [0.0, 1.0 / (1 - p)], rtol=1e-15)
    want = reference_train(case, cell, L, True, dropout_masks=masks)
    _check((y, h, c, g), want, F64_TOL, "float64 dropout")
    # and the dropout really changed something
    y_plain = reference_train(case, cell, L, True)[0]
    assert rel_err(y, y_plain) > 1e-3


def test_dropout_reproducible_and_absent_in_inference():
    case = make_case("lstm", 4, 5, 3, 6, 2, True, True, True, 5)

    def layer(rs):
        return make_layer("lstm", 3, 6, 2, True, params=case["params"], dropout=0.5,
                          random_state=rs)

    a, b, other = layer(7), layer(7), layer(8)
    ya, _, _, ga, ca = kernel_train(a, case)
    yb, _, _, gb, cb = kernel_train(b, case)
    yo, _, _, _, co = kernel_train(other, case)
    # same random_state -> the same masks, outputs and gradients, bitwise
    np.testing.assert_array_equal(ca.dropout_masks[0], cb.dropout_masks[0])
    np.testing.assert_array_equal(ya, yb)
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k], err_msg=k)
    # another random_state -> other masks
    assert not np.array_equal(ca.dropout_masks[0], co.dropout_masks[0])
    # a second training pass draws fresh masks
    _, _, _, _, ca2 = kernel_train(a, case)
    assert not np.array_equal(ca.dropout_masks[0], ca2.dropout_masks[0])
    # inference: no dropout at all, deterministic, equal to the reference without masks
    yi1, hi1, ci1 = kernel_infer(a, case["x"], case["h0"], case["c0"], case["lengths"])
    yi2, _, _ = kernel_infer(a, case["x"], case["h0"], case["c0"], case["lengths"])
    np.testing.assert_array_equal(yi1, yi2)
    yr, hr, cr, _ = reference_train(case, "lstm", 2, True)
    err = max(rel_err(yi1, yr), rel_err(hi1, hr), rel_err(ci1, cr))
    record_error("kernel vs reference float64 forward (rel)", err)
    assert err < F64_TOL
    # forward(train=False) is inference too: no cache, no masks
    y_nt, _, cache_nt = a.forward(case["x"], (case["h0"], case["c0"]), case["lengths"],
                                  train=False)
    assert cache_nt is None
    np.testing.assert_array_equal(y_nt, yi1)


def test_single_layer_has_no_dropout_masks():
    case = make_case("gru", 3, 4, 2, 5, 1, False, False, False, 3)
    layer = make_layer("gru", 2, 5, params=case["params"], dropout=0.5, random_state=0)
    y, h, _, g, cache = kernel_train(layer, case)
    assert cache.dropout_masks == []
    want = reference_train(case, "gru", 1, False)
    _check((y, h, None, g), want, F64_TOL, "float64")


# ---------------------------------------------------------------- semantics

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_inference_equals_training_forward_bitwise(cell, dtype):
    """The inference path (ping-pong state buffers) and the training path (state
    caches) do the same arithmetic: identical outputs and final states."""
    case = make_case(cell, 17, 5, 3, 17, 2, True, True, True, seed_of("inf", cell),
                     dtype=np.dtype(dtype))
    layer = make_layer(cell, 3, 17, 2, True, dtype=dtype, params=case["params"])
    yi, hi, ci = kernel_infer(layer, case["x"], case["h0"], case["c0"], case["lengths"])
    yt, ht, ct, _, _ = kernel_train(layer, case)
    np.testing.assert_array_equal(yi, yt)
    np.testing.assert_array_equal(hi, ht)
    if ci is not None:
        np.testing.assert_array_equal(ci, ct)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_a_row_does_not_depend_on_the_rest_of_its_batch(cell, dtype):
    """Batches of more than 6 rows project the input inside the step's tile, smaller
    ones hoist it (fused_x); both start from the bias and sum over the input in
    the same order, so a sequence gets bitwise the same outputs alone, in a small
    batch and in a large one (scikit-learn's subset-invariance check relies on it)."""
    case = make_case(cell, 13, 5, 3, 17, 2, True, True, True, seed_of("rows", cell),
                     dtype=np.dtype(dtype))
    layer = make_layer(cell, 3, 17, 2, True, dtype=dtype, params=case["params"])
    x, h0, c0, lengths = case["x"], case["h0"], case["c0"], case["lengths"]
    y, h, _ = kernel_infer(layer, x, h0, c0, lengths)
    for rows in (slice(4, 5), slice(2, 7), slice(1, 9)):   # 1, 5 and 8 rows
        sub = lambda a: None if a is None else a[:, rows] if a.ndim == 3 else a[rows]
        ys, hs, _ = kernel_infer(layer, x[rows], sub(h0), sub(c0), lengths[rows])
        np.testing.assert_array_equal(ys, y[rows])
        np.testing.assert_array_equal(hs, h[:, rows])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_a_rows_input_and_state_gradients_do_not_depend_on_its_batch(cell, dtype):
    """Backward gives a row the same dx, dh0 and dc0 alone (batch 1, which has its
    own recurrent-gradient path over several unit blocks at once), in a small
    batch and in a large one. H = 100: 7 unit blocks, so batch 1 groups them
    unevenly (4 + 3 in float32, 2 + 2 + 2 + 1 in float64)."""
    case = make_case(cell, 13, 5, 3, 100, 2, True, True, True, seed_of("grows", cell),
                     dtype=np.dtype(dtype))
    layer = make_layer(cell, 3, 100, 2, True, dtype=dtype, params=case["params"])
    _, _, _, grads, _ = kernel_train(layer, case)
    keys = ("x", "h0") if cell == "gru" else ("x", "h0", "c0")
    for rows in (slice(4, 5), slice(2, 7), slice(1, 9)):   # 1, 5 and 8 rows
        sub = {k: (None if v is None else v[:, rows] if k in ("h0", "c0", "dh_n", "dc_n")
                   else v[rows] if k != "params" else v) for k, v in case.items()}
        _, _, _, gs, _ = kernel_train(layer, sub)
        for k in keys:
            want = grads[k][rows] if k == "x" else grads[k][:, rows]
            np.testing.assert_array_equal(gs[k], want, err_msg=f"{k}, rows {rows}")


@pytest.mark.parametrize("cell", CELLS)
def test_padding_semantics(cell):
    """Outputs past each length are exactly zero, dy at padded steps changes nothing
    (bitwise), and the x gradient there is exactly zero."""
    case = make_case(cell, 5, 6, 3, 5, 2, True, True, True, seed_of("pad", cell),
                     lengths=[6, 1, 3, 5, 2])
    layer = make_layer(cell, 3, 5, 2, True, params=case["params"])
    y, _, _, g, _ = kernel_train(layer, case)
    dy2 = case["dy"].copy()
    for b, n in enumerate(case["lengths"]):
        assert np.all(y[b, n:] == 0)
        assert np.all(g["x"][b, n:] == 0)
        dy2[b, n:] = 123.0
    _, _, _, g2, _ = kernel_train(layer, dict(case, dy=dy2))
    for k in g:
        np.testing.assert_array_equal(g[k], g2[k], err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_optional_gradients_and_grad_out(cell):
    """dh_n / dc_n = None means zeros, dy = None means zeros (bitwise), and grad_out
    receives exactly the returned parameter gradients."""
    case = make_case(cell, 3, 4, 2, 5, 2, True, True, True, seed_of("opt", cell))
    layer = make_layer(cell, 2, 5, 2, True, params=case["params"])
    zeros = np.zeros_like(case["dh_n"])
    gru = cell == "gru"
    state = case["h0"] if gru else (case["h0"], case["c0"])
    y, *_rest = layer.forward(case["x"], state, case["lengths"])
    cache = _rest[-1]
    extra_none = () if gru else (None,)
    extra_zero = () if gru else (zeros,)
    g_none = layer.backward(cache, case["dy"], None, *extra_none)
    g_zero = layer.backward(cache, case["dy"], zeros, *extra_zero)
    for k in g_none:
        np.testing.assert_array_equal(g_none[k], g_zero[k], err_msg=k)
    g_dy_none = layer.backward(cache, None, case["dh_n"], *(() if gru else (case["dc_n"],)))
    g_dy_zero = layer.backward(cache, np.zeros_like(case["dy"]), case["dh_n"],
                               *(() if gru else (case["dc_n"],)))
    for k in g_dy_none:
        np.testing.assert_array_equal(g_dy_none[k], g_dy_zero[k], err_msg=k)
    buf = np.full_like(layer.flat_params, np.nan)
    g_buf = layer.backward(cache, case["dy"], case["dh_n"],
                           *(() if gru else (case["dc_n"],)), grad_out=buf)
    off = 0
    for name, shape in layer.param_shapes:
        n = int(np.prod(shape))
        np.testing.assert_array_equal(buf[off:off + n].reshape(shape), g_buf[name])
        off += n
    assert off == buf.size and np.isfinite(buf).all()
    # and the backward is a pure function of the cache: repeated calls agree
    g_again = layer.backward(cache, case["dy"], zeros, *extra_zero)
    for k in g_again:
        np.testing.assert_array_equal(g_again[k], g_zero[k], err_msg=k)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_backward_without_the_input_gradient(cell, dtype):
    """need_dx=False (a model's first layer) skips dX and changes no other gradient."""
    case = make_case(cell, 13, 5, 3, 17, 2, True, True, True, seed_of("nodx", cell),
                     dtype=np.dtype(dtype))
    layer = make_layer(cell, 3, 17, 2, True, dtype=dtype, params=case["params"])
    _, _, _, full, cache = kernel_train(layer, case)
    extra = () if cell == "gru" else (case["dc_n"],)
    part = layer.backward(cache, case["dy"], case["dh_n"], *extra, need_dx=False)
    assert part["x"] is None and full["x"] is not None
    assert set(part) == set(full)
    for k in full:
        if k != "x":
            np.testing.assert_array_equal(part[k], full[k], err_msg=k)


def test_bias_split_is_irrelevant():
    """Only b_ih + b_hh matters for lstm cells (and both biases are separate for gru):
    moving bias between b_ih and b_hh leaves the LSTM output unchanged (to rounding)
    and the two bias gradients are equal."""
    case = make_case("lstm", 3, 4, 2, 5, 1, False, False, False, 11)
    layer = make_layer("lstm", 2, 5, params=case["params"])
    y1, _, _, g, _ = kernel_train(layer, case)
    np.testing.assert_array_equal(g["bias_ih_l0"], g["bias_hh_l0"])
    p2 = dict(case["params"])
    p2["bias_ih_l0"] = p2["bias_ih_l0"] + p2["bias_hh_l0"]
    p2["bias_hh_l0"] = np.zeros_like(p2["bias_hh_l0"])
    layer.load_state_dict(p2)
    y2, _, _ = kernel_infer(layer, case["x"])
    assert rel_err(y2, y1) < F64_TOL


@pytest.mark.parametrize("cell", [c for c in CELLS if c != "gru"])
def test_partial_lstm_state(cell):
    """state=(h0, None) and (None, c0) mean zeros for the missing part (bitwise equal
    to passing the zeros), and match the reference."""
    case = make_case(cell, 3, 4, 2, 5, 2, True, True, True, seed_of("partial", cell))
    layer = make_layer(cell, 2, 5, 2, True, params=case["params"])
    z = np.zeros_like(case["h0"])
    for h0, c0 in ((case["h0"], None), (None, case["c0"])):
        got = layer(case["x"], (h0, c0), case["lengths"])
        full = layer(case["x"], (z if h0 is None else h0, z if c0 is None else c0),
                     case["lengths"])
        np.testing.assert_array_equal(got[0], full[0])
        np.testing.assert_array_equal(got[1][0], full[1][0])
        np.testing.assert_array_equal(got[1][1], full[1][1])
        want = reference_train(dict(case, h0=h0, c0=c0), cell, 2, True)
        err = max(rel_err(got[0], want[0]), rel_err(got[1][0], want[1]),
                  rel_err(got[1][1], want[2]))
        record_error("kernel vs reference float64 forward (rel)", err)
        assert err < F64_TOL


def _poison_workspace(layer):
    """Fill the layer's reusable kernel scratch (if it keeps one) with 0xFF bytes, which
    are NaN in float32 and float64: any read of scratch the kernel did not write first
    turns the results into NaN."""
    ws = getattr(layer, "_workspace", None)
    buf = getattr(ws, "_buf", None)
    if buf is not None:
        buf.view(np.uint8)[...] = 0xFF
    return buf is not None


WS_CASES = [(c, d, 1) for c in CELLS for d in ("float64", "float32")] + [
    ("lstm", "float32", 2), ("gru", "float64", 2)]   # per-thread GEMM scratch as well


@pytest.mark.parametrize("cell,dtype,n_threads", WS_CASES,
                         ids=[f"{c}-{d}-nt{n}" for c, d, n in WS_CASES])
def test_reused_workspace_changes_nothing(cell, dtype, n_threads):
    """One layer run on a sequence of shapes (largest first, so later calls reuse the
    same scratch), with its scratch poisoned before every kernel pass (inference,
    training forward, backward), gives bitwise the results of a fresh layer for each
    shape: no call depends on what an earlier call left in the workspace."""
    shapes = [(20, 4), (3, 3), (17, 1), (1, 4)]   # (B, T)
    H, I, L = 17, 5, 2
    params = make_case(cell, 1, 1, I, H, L, True, False, False, seed_of("ws", cell),
                       dtype=np.dtype(dtype))["params"]
    reused = make_layer(cell, I, H, L, True, dtype=dtype, params=params, n_threads=n_threads)
    gru = cell == "gru"
    poisoned = 0
    for k, (b, t) in enumerate(shapes):
        case = make_case(cell, b, t, I, H, L, True, t > 1, k % 2 == 0,
                         seed_of("ws", cell, k), dtype=np.dtype(dtype))
        state = case["h0"] if gru else lstm_state(case["h0"], case["c0"])
        bwd_extra = () if gru else (case["dc_n"],)
        fresh = make_layer(cell, I, H, L, True, dtype=dtype, params=params, n_threads=n_threads)
        want = kernel_infer(fresh, case["x"], case["h0"], case["c0"], case["lengths"])
        want_fwd = fresh.forward(case["x"], state, case["lengths"])
        want_g = fresh.backward(want_fwd[-1], case["dy"], case["dh_n"], *bwd_extra)

        poisoned += _poison_workspace(reused)
        got = kernel_infer(reused, case["x"], case["h0"], case["c0"], case["lengths"])
        poisoned += _poison_workspace(reused)
        got_fwd = reused.forward(case["x"], state, case["lengths"])
        poisoned += _poison_workspace(reused)
        got_g = reused.backward(got_fwd[-1], case["dy"], case["dh_n"], *bwd_extra)

        for a, w in zip(got, want):
            if w is not None:
                np.testing.assert_array_equal(a, w)
        np.testing.assert_array_equal(got_fwd[0], want_fwd[0])
        for key in want_g:
            np.testing.assert_array_equal(got_g[key], want_g[key], err_msg=key)
    # layers keep a reusable workspace: the poisoning above must have happened,
    # or this test proved nothing
    assert poisoned


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_changes_reach_inference(cell):
    """Inference may reuse weights packed on an earlier call; every documented way of
    changing parameters must be seen by the next call (bitwise equal to a fresh layer
    holding the new parameters): load_state_dict, and writing into a buffer given to
    bind_parameters followed by params_updated()."""
    b, t, i, h, L = 4, 3, 3, 18, 2
    case = make_case(cell, b, t, i, h, L, True, True, True, seed_of("repack", cell))
    layer = make_layer(cell, i, h, L, True, params=case["params"])
    args = (case["x"], case["h0"], case["c0"], case["lengths"])
    kernel_infer(layer, *args)                       # packs the weights
    new = {k: v * 0.5 + 0.1 for k, v in case["params"].items()}

    def check(params):
        fresh = make_layer(cell, i, h, L, True, params=params)
        for a, w in zip(kernel_infer(layer, *args), kernel_infer(fresh, *args)):
            if w is not None:
                np.testing.assert_array_equal(a, w)

    layer.load_state_dict(new)
    check(new)
    buf = np.array(layer.flat_params)
    layer.bind_parameters(buf)
    check(new)
    buf *= -1.0                                          # an "optimizer step" in place
    layer.params_updated()
    check({k: -v for k, v in new.items()})
    # flat_params is a read-only view of the live buffer
    assert np.shares_memory(layer.flat_params, buf)
    with pytest.raises(ValueError):
        layer.flat_params[0] = 1.0
    # training sees the in-place change too, and matches the reference
    case2 = dict(case, params={k: -v for k, v in new.items()})
    got = kernel_train(layer, case2)[:4]
    _check(got, reference_train(case2, cell, L, True), F64_TOL, "float64")
