"""Proof that the numpy reference (fastlstm._reference) is right.

Three independent witnesses:
1. finite differences of its own forward (float64) check its hand-written backward;
2. PyTorch (nn.LSTM / nn.GRU, float64) checks forward and every gradient for lstm and gru;
3. ONNX Runtime (LSTM / GRU operators, float32 inference) checks the forward of
   lstm, peephole, cifg and gru, and the non-default activations.

Every comparison records its largest error with helpers.record_error; the table is
printed at the end of the pytest run ("max measured errors").
"""

import numpy as np
import pytest

import helpers
from fastlstm import export
from helpers import (CELLS, FD_ELEMENTWISE_CELL_ACTS, ONNX_ACTS, assert_cifg_forget_rows_zero,
                     check_all, check_directional, check_elementwise, compare_with_onnx,
                     fd_directional_grid, fd_skip, make_case, max_abs_diff, onnx_grid,
                     projected_loss, record_error, reference as ref, reference_train, seed_of)

# Sizes for the finite-difference grid: tiny, so that each check is cheap.
B, T, I, H = 3, 4, 3, 4
LENGTHS = np.array([4, 1, 3])  # full length, length 1 and one in between


def run_stack(case, cell, bidirectional, num_layers, activation, gate_activation, **override):
    """stack_forward on ``case`` with some inputs replaced by ``override``."""
    inp = dict(case["params"], x=case["x"], h0=case["h0"], c0=case["c0"])
    inp.update(override)
    params = {k: v for k, v in inp.items() if k not in ("x", "h0", "c0")}
    return ref.stack_forward(params, inp["x"], inp["h0"], inp["c0"], case["lengths"],
                             num_layers, bidirectional, cell, activation, gate_activation,
                             dropout_masks=case["dropout_masks"])


def base_inputs(case, cell, bidirectional, num_layers):
    """Every differentiable input at its base value (zeros where the case passed None)."""
    b, t, _ = case["x"].shape
    h = case["params"]["weight_hh_l0"].shape[1]
    LD = num_layers * (2 if bidirectional else 1)
    inputs = dict(case["params"], x=case["x"])
    inputs["h0"] = case["h0"] if case["h0"] is not None else np.zeros((LD, b, h))
    if cell != "gru":
        inputs["c0"] = case["c0"] if case["c0"] is not None else np.zeros((LD, b, h))
    return inputs


def grads_and_loss(case, cell, bidirectional, num_layers, activation, gate_activation):
    """The reference's analytic gradients on ``case``, the shape of every differentiable
    input, and loss(key, delta): the projected loss with input ``key`` moved by delta
    (the arguments helpers.check_directional / check_elementwise take)."""
    grads = reference_train(case, cell, num_layers, bidirectional, activation, gate_activation,
                            dropout_masks=case["dropout_masks"])[3]
    base = base_inputs(case, cell, bidirectional, num_layers)

    def loss(key, delta):
        out = run_stack(case, cell, bidirectional, num_layers, activation, gate_activation,
                        **{key: base[key] + delta})
        return projected_loss(case, *out[:3])
    return grads, {k: v.shape for k, v in base.items()}, loss


# Finite differences: step helpers.FD_EPS, error helpers.fd_error, tolerance
# helpers.FD_RTOL (relative error 1e-6; measured ~1e-9, a wrong formula gives
# 1e-2 .. 1; see there).


@fd_directional_grid
def test_fd_directional(cell, activation, gate_activation, bidirectional, num_layers,
                        use_lengths, use_init):
    seed = seed_of(cell, activation, gate_activation, bidirectional, num_layers, use_lengths,
                   use_init)
    # scale=1.0 (larger than PyTorch's 1/sqrt(H) init) pushes some pre-activations into
    # the saturated / dead regions of hard_sigmoid and relu, so those branches of the
    # backward are exercised too (as in every finite-difference case here).
    case = make_case(cell, B, T, I, H, num_layers, bidirectional, use_lengths, use_init, seed,
                     scale=1.0, lengths=LENGTHS)
    grads, shapes, loss = grads_and_loss(case, cell, bidirectional, num_layers, activation,
                                         gate_activation)
    worst = check_directional(grads, shapes, loss, seed, fd_skip(activation, use_init))
    record_error("finite differences, directional (rel)", worst)
    if cell == "cifg":
        assert_cifg_forget_rows_zero(grads, H)


@pytest.mark.parametrize("cell,activation,gate_activation", FD_ELEMENTWISE_CELL_ACTS)
def test_fd_elementwise(cell, activation, gate_activation):
    """Every scalar gradient of a bidirectional 2-layer stack with lengths and initial state."""
    case = make_case(cell, 2, 3, 2, 2, 2, True, True, True, seed_of("elementwise", cell),
                     scale=1.0, lengths=[3, 2])
    worst = check_elementwise(*grads_and_loss(case, cell, True, 2, activation, gate_activation))
    record_error("finite differences, elementwise (rel)", worst)


@pytest.mark.parametrize("cell", CELLS)
def test_fd_dropout_masks(cell):
    """Dropout masks between layers (3 layers, bidirectional, lengths)."""
    seed = seed_of("dropout", cell)
    case = make_case(cell, B, T, I, H, 3, True, True, True, seed, scale=1.0, lengths=LENGTHS,
                     dropout=0.4)
    assert any(np.any(m == 0) for m in case["dropout_masks"])
    worst = check_directional(*grads_and_loss(case, cell, True, 3, "tanh", "sigmoid"), seed)
    record_error("finite differences, directional (rel)", worst)


# ---------------------------------------------------------------- lengths semantics

@pytest.mark.parametrize("cell", CELLS)
def test_lengths_equal_truncated_sequences(cell):
    """With lengths, each sequence behaves exactly as if run alone on its real steps:
    same outputs there, zeros past its length, same final state, same gradients
    (forward and reverse directions, two layers), and dy at padded steps is ignored."""
    L = 2
    lengths = np.array([4, 1, 3])
    case = make_case(cell, B, T, I, H, L, True, True, True, seed_of("trunc", cell), scale=1.0,
                     lengths=lengths)
    y, h_n, c_n, cache = run_stack(case, cell, True, L, "tanh", "sigmoid")
    grads = ref.stack_backward(cache, case["dy"], case["dh_n"], case["dc_n"])
    dy2 = case["dy"].copy()
    for b, n in enumerate(lengths):
        dy2[b, n:] = 123.0  # garbage at padded steps must change nothing
    grads2 = ref.stack_backward(cache, dy2, case["dh_n"], case["dc_n"])
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads2[k], err_msg=k)

    worst = 0.0
    for b, n in enumerate(lengths):
        assert np.all(y[b, n:] == 0)
        assert np.all(grads["x"][b, n:] == 0)
        sub = lambda a: None if a is None else a[:, b:b + 1]  # noqa: E731
        y1, h1, c1, cache1 = ref.stack_forward(
            case["params"], case["x"][b:b + 1, :n], sub(case["h0"]), sub(case["c0"]), None,
            L, True, cell)
        g1 = ref.stack_backward(cache1, case["dy"][b:b + 1, :n], sub(case["dh_n"]),
                                sub(case["dc_n"]))
        # Same arithmetic on a sub-batch: equal to rounding (matmul blocking may differ).
        worst = max(worst, max_abs_diff(y[b:b + 1, :n], y1), max_abs_diff(h_n[:, b:b + 1], h1),
                    max_abs_diff(grads["x"][b:b + 1, :n], g1["x"]),
                    max_abs_diff(grads["h0"][:, b:b + 1], g1["h0"]))
        if c_n is not None:
            worst = max(worst, max_abs_diff(c_n[:, b:b + 1], c1),
                        max_abs_diff(grads["c0"][:, b:b + 1], g1["c0"]))
    record_error("lengths vs truncated sequences (abs)", worst)
    assert worst < 1e-12


def test_dtype_preserved_float32():
    """float32 in -> float32 out and gradients, close to the float64 result
    (atol 1e-5: float32 rounding, eps 6e-8, grown over a few steps and layers)."""
    case = make_case("lstm", B, T, I, H, 2, True, True, True, seed_of("f32"), scale=1.0,
                     lengths=LENGTHS)
    y64, h64, c64, cache64 = run_stack(case, "lstm", True, 2, "tanh", "sigmoid")
    g64 = ref.stack_backward(cache64, case["dy"], case["dh_n"], case["dc_n"])
    case32 = dict(case, params={k: v.astype(np.float32) for k, v in case["params"].items()},
                  x=case["x"].astype(np.float32), h0=case["h0"].astype(np.float32),
                  c0=case["c0"].astype(np.float32))
    y32, h32, c32, cache32 = run_stack(case32, "lstm", True, 2, "tanh", "sigmoid")
    g32 = ref.stack_backward(cache32, case["dy"], case["dh_n"], case["dc_n"])
    assert y32.dtype == h32.dtype == c32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in g32.values())
    worst = max(max_abs_diff(y32, y64), max_abs_diff(h32, h64), max_abs_diff(c32, c64),
                max(max_abs_diff(g32[k], g64[k]) for k in g64))
    record_error("reference float32 vs float64 (abs)", worst)
    assert worst < 1e-5


def test_rejects_bad_lengths_and_names():
    p = helpers.random_params("lstm", I, H, 1, False, 0)
    x = np.zeros((B, T, I))
    for bad in ([0, 1, 2], [1, 2, T + 1], [1, 2]):
        with pytest.raises(ValueError, match="lengths"):
            ref.stack_forward(p, x, lengths=np.array(bad))
    with pytest.raises(ValueError, match="cell"):
        ref.stack_forward(p, x, cell="rnn")
    with pytest.raises(ValueError, match="activation"):
        ref.stack_forward(p, x, activation="sigmoid")


# ---------------------------------------------------------------- PyTorch parity

# Both sides in float64 with different summation orders: the measured differences
# are ~1e-15; 1e-10 leaves room for longer accumulations while any formula or
# layout error shows up at 1e-3 or more.
TORCH_ATOL = 1e-10

TORCH_CASES = [
    # B, T, I, H, L, bidirectional, lengths, initial state, project dh_n/dc_n
    (3, 5, 4, 6, 1, False, None, False, True),
    (3, 5, 4, 6, 1, True, None, True, False),
    (4, 6, 3, 5, 2, True, [6, 2, 4, 1], True, True),
    (3, 5, 2, 4, 3, True, [1, 5, 3], True, True),
    (5, 7, 3, 4, 3, False, [7, 7, 2, 5, 1], False, True),
    (1, 1, 1, 3, 2, True, [1], True, True),
    (1, 6, 1, 2, 1, True, [3], True, True),
    (2, 1, 1, 1, 3, False, None, True, True),
]


@pytest.mark.parametrize("case_args", TORCH_CASES, ids=[
    f"B{c[0]}T{c[1]}I{c[2]}H{c[3]}L{c[4]}{'bi' if c[5] else 'uni'}"
    f"{'-len' if c[6] else ''}{'-init' if c[7] else ''}" for c in TORCH_CASES])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_parity(cell, case_args):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    b, t, i, h, L, bi, lengths, use_init, project_state = case_args
    # PyTorch's own initialisation scale, 1/sqrt(H) (make_case's default)
    case = make_case(cell, b, t, i, h, L, bi, lengths is not None, use_init,
                     seed_of("torch", cell, case_args), lengths=lengths)
    if not project_state:
        case["dh_n"] = None
        case["dc_n"] = None
    got = reference_train(case, cell, L, bi)
    if cell == "gru":
        assert got[2] is None and "c0" not in got[3]
    want = helpers.torch_forward_backward(
        case["params"], case["x"], case["h0"], case["c0"], case["lengths"], case["dy"],
        case["dh_n"], case["dc_n"], cell, L, bi)
    check_all(got, want, TORCH_ATOL, f"PyTorch {cell} float64", metric="abs")


# ---------------------------------------------------------------- ONNX Runtime parity
#
# ONNX layouts: fastlstm.export (its docstring and ONNX_GATES, ONNX_PEEPHOLE), verified
# by the tests below (test_onnx_layout_is_needed shows that the permutations are
# necessary, test_onnx_parity that they are right). input_forget=1: ONNX Runtime
# computes f = 1 - i and ignores the forget rows of W, R and B
# (test_onnx_cifg_ignores_forget_rows), as our "cifg" does. ONNX Runtime's LSTM
# supports float32 only ("LSTM operator does not support double").
#
# Tolerance: helpers.ONNX_ATOL / ONNX_RTOL (atol 5e-6 + rtol 1e-5; see there). Both
# sides get the same float32-rounded inputs; the reference runs in float64, ORT in
# float32. Measured differences are ~3e-7, a layout error is ~1e-1.


def _onnx_case(cell, bidirectional, use_init, use_lengths, seed, sizes=(3, 5, 3, 4)):
    b, t, i, h = sizes
    case = make_case(cell, b, t, i, h, 1, bidirectional, use_lengths, use_init, seed, scale=1.0,
                     lengths=[5, 2, 1][:b] if use_lengths else None)
    # Round everything to float32 first so that both sides see identical inputs.
    f32 = lambda a: None if a is None else a.astype(np.float32).astype(np.float64)  # noqa: E731
    case["params"] = {k: f32(v) for k, v in case["params"].items()}
    case["x"], case["h0"], case["c0"] = f32(case["x"]), f32(case["h0"]), f32(case["c0"])
    return case


def _compare_onnx(case, cell, bidirectional, activation="tanh", gate_activation="sigmoid"):
    """Run the reference (as one layer) and ORT; return the max abs difference."""
    y, h_n, c_n, _ = run_stack(case, cell, bidirectional, 1, activation, gate_activation)
    return compare_with_onnx((y, h_n, c_n), case, cell, bidirectional, activation,
                             gate_activation)


@onnx_grid
def test_onnx_parity(cell, bidirectional, use_init, use_lengths):
    pytest.importorskip("onnxruntime")
    case = _onnx_case(cell, bidirectional, use_init, use_lengths,
                      seed_of("onnx", cell, bidirectional, use_init, use_lengths))
    record_error(f"ONNX Runtime {cell} float32 (abs)", _compare_onnx(case, cell, bidirectional))


@pytest.mark.parametrize("activation,gate_activation", ONNX_ACTS)
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_parity_activations(cell, activation, gate_activation):
    """relu / hard_sigmoid against ORT's Relu / HardSigmoid (bidirectional, lengths, state)."""
    pytest.importorskip("onnxruntime")
    case = _onnx_case(cell, True, True, True,
                      seed_of("onnx-act", cell, activation, gate_activation))
    record_error(f"ONNX Runtime {activation}/{gate_activation} float32 (abs)",
                 _compare_onnx(case, cell, True, activation, gate_activation))


@pytest.mark.parametrize("what", ["gate_order", "peephole_order"])
def test_onnx_layout_is_needed(monkeypatch, what):
    """Negative control: without the documented row permutation ORT disagrees by far
    more than the tolerance, so the parity tests above really pin the layout down."""
    pytest.importorskip("onnxruntime")
    if what == "gate_order":
        monkeypatch.setitem(export.ONNX_GATES, "LSTM", [0, 1, 2, 3])
    else:
        monkeypatch.setattr(export, "ONNX_PEEPHOLE", [0, 1, 2])
    case = _onnx_case("peephole", False, True, False, seed_of("onnx-neg", what))
    case["params"]["weight_peephole_l0"] *= 3  # make the peephole terms matter
    with pytest.raises(AssertionError):
        _compare_onnx(case, "peephole", False)


def test_onnx_cifg_ignores_forget_rows():
    """ORT with input_forget=1 ignores the forget-gate rows of W, R and B, as the
    reference does; and it really differs from input_forget=0."""
    pytest.importorskip("onnxruntime")
    case = _onnx_case("cifg", True, True, True, seed_of("onnx-cifg"))
    x_tbi = np.transpose(case["x"], (1, 0, 2))
    args = (x_tbi, case["h0"], case["c0"], case["lengths"])
    base = helpers.onnx_lstm_run(case["params"], *args, "cifg", True)
    changed = {k: v.copy() for k, v in case["params"].items()}
    for k in changed:
        if not k.startswith("weight_peephole"):
            changed[k][H:2 * H] += 5.0
    moved = helpers.onnx_lstm_run(changed, *args, "cifg", True)
    for a, b in zip(base, moved):
        np.testing.assert_array_equal(a, b)
    y_ref = run_stack(case, "cifg", True, 1, "tanh", "sigmoid")[0]
    y_ref2 = run_stack(dict(case, params=changed), "cifg", True, 1, "tanh", "sigmoid")[0]
    np.testing.assert_array_equal(y_ref, y_ref2)
    plain = helpers.onnx_lstm_run(case["params"], *args, "lstm", True)
    assert max_abs_diff(plain[0], base[0]) > 1e-2
