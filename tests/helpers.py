"""The one module of shared test helpers: random parameters and cases, the C
kernels and the numpy reference run on a case, error measures, finite-difference
checks, and PyTorch and ONNX Runtime runners that speak the reference's layout
and names. A helper used by a single test module lives in that module instead.

Layout used everywhere here (same as fastlstm._reference):
* params: dict with PyTorch names weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
  bias_hh_l{k} (suffix _reverse for the backward direction) and, for the
  peephole cell, weight_peephole_l{k}[_reverse] (3, H) in order i, f, o.
  LSTM gate rows are i, f, g, o (PyTorch); GRU rows are r, z, n.
* x (B, T, I) batch-first for the stack functions, (T, B, I) for one layer.
* h0, c0, h_n, c_n (L*D, B, H), index = layer*D + direction.

A "case" (make_case) is a dict with params, x (B, T, I), h0, c0 (L*D, B, H) or
None, lengths (B,) or None, the loss projections dy (B, T, D*H), dh_n, dc_n
(L*D, B, H), and dropout_masks (None unless drawn). The loss whose gradients every
test compares is

    loss = sum(dy * y) + sum(dh_n * h_n) + sum(dc_n * c_n).

torch, onnxruntime and pytest's marks are imported lazily or only where
used.

The suite runs against whichever fastlstm is imported: a source checkout's
(editable or in-place build) or an installed wheel's, with tests/ copied
anywhere. Tests that start another interpreter use child_env() and CHILD_CWD
so the child imports that same fastlstm.
"""

import os
import site
import zlib

import numpy as np

import fastlstm
from fastlstm import _reference as reference
from fastlstm import spec
from fastlstm.spec import layer_param_shapes

# The cells every per-cell test runs over.
CELLS = tuple(spec.CELLS)


# ---------------------------------------------------------------- error log and measures
# Tests record the largest error they measured per comparison; conftest.py
# prints the table at the end of the run (pytest_terminal_summary).
MAX_ERRORS = {}


def record_error(name, value):
    """Keep the maximum of ``value`` seen under ``name``; returns value."""
    value = float(value)
    MAX_ERRORS[name] = max(MAX_ERRORS.get(name, 0.0), value)
    return value


def max_abs_diff(a, b):
    """max |a - b| (0 for empty arrays); the shapes must be equal."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def rel_err(a, b):
    """max |a - b| / max(1, max |b|): absolute below magnitude 1, relative to the
    largest entry above it (relu stacks and weight gradients summed over B*T rows
    reach magnitudes of 10..1000, where a fixed absolute tolerance means nothing)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


_ERRORS = {"rel": rel_err, "abs": max_abs_diff}


def compare_all(got, want, metric="rel"):
    """got / want: (y, h_n, c_n, grads). Returns (forward error, {grad key: error})
    measured with rel_err (metric="rel") or max_abs_diff ("abs"), checking that
    both sides have the same gradient keys."""
    err = _ERRORS[metric]
    y, h, c, g = got
    ry, rh, rc, rg = want
    fwd = max(err(y, ry), err(h, rh))
    if rc is not None or c is not None:
        fwd = max(fwd, err(c, rc))
    assert set(g) == set(rg), set(g) ^ set(rg)
    return fwd, {k: err(g[k], rg[k]) for k in rg}


def check_all(got, want, tol, label, metric="rel"):
    """compare_all, then record "<label> forward (<metric>)" and "<label> gradients
    (<metric>)" and assert that the forward error and every gradient's error are
    below ``tol`` (the caller states why that tolerance). Returns compare_all's result."""
    fwd, bwd = compare_all(got, want, metric)
    worst = max(bwd.values())
    record_error(f"{label} forward ({metric})", fwd)
    record_error(f"{label} gradients ({metric})", worst)
    assert fwd < tol, fwd
    assert worst < tol, {k: v for k, v in bwd.items() if v >= tol}
    return fwd, bwd


def assert_close(a, b, rtol, atol):
    """np.testing.assert_allclose both ways round: |a - b| <= atol + rtol * |b| and
    <= atol + rtol * |a|, so neither implementation is taken as the true one."""
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)


def assert_close_all(got, want, rtol, atol):
    """got / want: (y, h_n, c_n), c_n None on both sides for gru. assert_close on
    each pair; returns the largest max_abs_diff."""
    (y, h, c), (wy, wh, wc) = got, want
    assert (c is None) == (wc is None), (c is None, wc is None)
    err = 0.0
    for a, b in ((y, wy), (h, wh)) + (((c, wc),) if c is not None else ()):
        assert_close(a, b, rtol, atol)
        err = max(err, max_abs_diff(a, b))
    return err


# ---------------------------------------------------------------- parameters

def param_names(cell, num_layers, bidirectional):
    """Parameter names in flat-buffer order (PyTorch's, then each cell's extras)."""
    return [name for name, _ in layer_param_shapes(cell, 1, (1,) * num_layers, bidirectional)]


def random_params(cell, I, H, num_layers=1, bidirectional=False, rng=None,
                  dtype=np.float64, scale=None):
    """Random parameters, uniform in [-scale, scale] (default 1/sqrt(H), PyTorch's init),
    drawn in flat-buffer order. Returns a dict in the reference's names and shapes.
    """
    rng = np.random.default_rng(rng)
    scale = 1.0 / np.sqrt(H) if scale is None else scale
    return {name: rng.uniform(-scale, scale, shape).astype(dtype)
            for name, shape in layer_param_shapes(cell, I, (H,) * num_layers, bidirectional)}


# ---------------------------------------------------------------- seeds and cases

def seed_of(*parts):
    """A stable per-test seed, so each parametrisation draws different data."""
    return zlib.crc32(repr(parts).encode())


def random_lengths(rng, B, T):
    """Lengths in [1, T] that include T and (for B > 1, T > 1) 1 as well."""
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    if B > 1:
        lengths[-1] = 1
    return lengths


def make_case(cell, B, T, I, H, num_layers=1, bidirectional=False, use_lengths=False,
              use_init=False, seed=0, scale=None, dtype=np.float64, lengths=None,
              dropout=None):
    """Random parameters, inputs and loss projections; every array has ``dtype``.

    scale: parameter range (default PyTorch's 1/sqrt(H)); scale=1.0 pushes some
    pre-activations into the saturated / dead regions of hard_sigmoid and relu, so
    those branches of the backward are exercised too.
    lengths: used when use_lengths (default random_lengths); ignored otherwise.
    dropout: with num_layers > 1, also draw inverted-dropout masks between the
    layers (0 or 1/(1-dropout), shape (B, T, D*H)) as case["dropout_masks"].
    """
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    LD = num_layers * D
    has_c = spec.CELLS[cell].cell_state
    if use_lengths and lengths is None:
        lengths = random_lengths(rng, B, T)
    params = random_params(cell, I, H, num_layers, bidirectional, rng, dtype=dtype, scale=scale)
    f = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
    case = dict(
        params=params,
        x=f(rng.standard_normal((B, T, I))),
        h0=f(rng.standard_normal((LD, B, H))) if use_init else None,
        c0=f(rng.standard_normal((LD, B, H))) if (use_init and has_c) else None,
        lengths=np.asarray(lengths) if use_lengths else None,
        dy=f(rng.standard_normal((B, T, D * H))),   # nonzero at padded steps: must be ignored
        dh_n=f(rng.standard_normal((LD, B, H))),
        dc_n=f(rng.standard_normal((LD, B, H))) if has_c else None,
        dropout_masks=None,
    )
    if dropout is not None and num_layers > 1:
        keep = [rng.random((B, T, D * H)) >= dropout for _ in range(num_layers - 1)]
        case["dropout_masks"] = [f(k / (1.0 - dropout)) for k in keep]
    return case


def projected_loss(case, y, h_n, c_n):
    """sum(dy * y) + sum(dh_n * h_n) + sum(dc_n * c_n) (the last term unless c_n is None)."""
    loss = float(np.sum(case["dy"] * y)) + float(np.sum(case["dh_n"] * h_n))
    if c_n is not None:
        loss += float(np.sum(case["dc_n"] * c_n))
    return loss


# ---------------------------------------------------------------- C kernels and reference

def make_layer(cell, I, H, num_layers=1, bidirectional=False, activation="tanh",
               gate_activation="sigmoid", dtype="float64", params=None, n_threads=1, **kw):
    """An LSTM (cell lstm / peephole / cifg) or GRU layer, optionally loaded with params.

    n_threads defaults to 1 here: these tests check arithmetic, and test_threads.py
    proves that any thread count gives bitwise the same results (a per-step OpenMP
    barrier on a busy 2-core machine only makes tiny cases slow)."""
    from fastlstm.layers import layer_class
    layer = layer_class(cell)(I, H, n_threads=n_threads, num_layers=num_layers,
                              bidirectional=bidirectional, cell=cell, activation=activation,
                              gate_activation=gate_activation, dtype=dtype, **kw)
    if params is not None:
        layer.load_state_dict(params)
    return layer


def lstm_state(h0, c0):
    """The state argument of an LSTM call: None when both parts are None."""
    return None if h0 is None and c0 is None else (h0, c0)


def kernel_infer(layer, x, h0=None, c0=None, lengths=None):
    """Inference call; returns y, h_n, c_n (None for GRU)."""
    from fastlstm import GRU
    if isinstance(layer, GRU):
        y, h_n = layer(x, h0, lengths)
        return y, h_n, None
    y, (h_n, c_n) = layer(x, lstm_state(h0, c0), lengths)
    return y, h_n, c_n


def kernel_train(layer, case):
    """Training forward + backward on ``case``; returns y, h_n, c_n, grads, cache."""
    from fastlstm import GRU
    x, h0, c0, lengths = case["x"], case["h0"], case["c0"], case["lengths"]
    if isinstance(layer, GRU):
        y, h_n, cache = layer.forward(x, h0, lengths)
        grads = layer.backward(cache, case["dy"], case["dh_n"])
        return y, h_n, None, grads, cache
    y, (h_n, c_n), cache = layer.forward(x, lstm_state(h0, c0), lengths)
    grads = layer.backward(cache, case["dy"], case["dh_n"], case["dc_n"])
    return y, h_n, c_n, grads, cache


def reference_train(case, cell, num_layers, bidirectional, activation="tanh",
                    gate_activation="sigmoid", dropout_masks=None):
    """The numpy reference on ``case`` (in the case's dtype); returns y, h_n, c_n, grads.

    Like the kernels, it returns h0 / c0 gradients in the zero-state case too."""
    y, h_n, c_n, cache = reference.stack_forward(
        case["params"], case["x"], case["h0"], case["c0"], case["lengths"], num_layers,
        bidirectional, cell, activation, gate_activation, dropout_masks=dropout_masks)
    grads = reference.stack_backward(cache, case["dy"], case["dh_n"],
                                     case["dc_n"] if spec.CELLS[cell].cell_state else None)
    return y, h_n, c_n, grads


# ---------------------------------------------------------------- finite differences
# Central differences in float64 with eps = 1e-6: truncation error ~ eps^2 * f''' ~ 1e-12,
# rounding error ~ 1e-16 * |loss| / eps ~ 1e-9 for |loss| ~ 10 (the kernels' float64
# exp is accurate to ~2e-16, so it adds nothing visible). Measured errors are ~1e-9
# and below; a wrong formula gives errors of order 1e-2 .. 1. The error is fd_error,
# relative, |fd - an| / max(|fd|, |an|, 1): below magnitude 1 it is absolute.
# relu and hard_sigmoid have kinks; random data lands within eps of one with
# probability ~1e-6 per element, and the seeds are fixed, so no flakiness.
FD_EPS = 1e-6
FD_RTOL = 1e-6


def fd_error(fd, an):
    """|fd - an| / max(|fd|, |an|, 1): the error FD_RTOL bounds."""
    return abs(fd - an) / max(abs(fd), abs(an), 1.0)


def check_directional(grads, shapes, loss, seed, skip=()):
    """For every gradient tensor (except those in ``skip``), compare its projection
    <grad, v> on a random direction v with the central difference
    (loss(key, FD_EPS v) - loss(key, -FD_EPS v)) / (2 FD_EPS), and assert fd_error < FD_RTOL.

    grads, shapes: {input name: gradient}, {input name: shape}, with the same keys;
    loss(key, delta): the projected loss with input ``key`` moved by ``delta``.
    Returns the worst error."""
    assert set(grads) == set(shapes), set(grads) ^ set(shapes)
    rng = np.random.default_rng(seed + 1)
    worst = 0.0
    for key in sorted(shapes):
        assert grads[key].shape == tuple(shapes[key]), key
        if key in skip:
            continue
        v = rng.standard_normal(shapes[key])
        fd = (loss(key, FD_EPS * v) - loss(key, -FD_EPS * v)) / (2 * FD_EPS)
        an = float(np.sum(grads[key] * v))
        err = fd_error(fd, an)
        worst = max(worst, err)
        assert err < FD_RTOL, (key, fd, an, err)
    return worst


def check_elementwise(grads, shapes, loss):
    """Central difference for every single scalar input (slow: tiny sizes only),
    same arguments, error and tolerance as check_directional. Returns the worst error."""
    assert set(grads) == set(shapes), set(grads) ^ set(shapes)
    worst = 0.0
    for key in sorted(shapes):
        assert grads[key].shape == tuple(shapes[key]), key
        for idx in np.ndindex(shapes[key]):
            e = np.zeros(shapes[key])
            e[idx] = FD_EPS
            fd = (loss(key, e) - loss(key, -e)) / (2 * FD_EPS)
            err = fd_error(fd, grads[key][idx])
            worst = max(worst, err)
            assert err < FD_RTOL, (key, idx, fd, grads[key][idx], err)
    return worst


def fd_skip(activation, use_init):
    """Inputs a directional check must skip. With c0 = 0 and a dead relu candidate
    (g = 0), c_1 = f*c0 + i*g is exactly 0 and h_1 = o*relu(c_1) sits on relu's kink
    for perturbations of c0: the derivative there is one-sided (relu'(0) = 0, like
    PyTorch). The c0 gradient is checked by the init_state cases instead."""
    return ("c0",) if (activation == "relu" and not use_init) else ()


def assert_cifg_forget_rows_zero(grads, H):
    """cifg: f = 1 - i, so the forget-gate rows (H:2H) of the weights and biases
    never enter the computation and their gradients are exactly zero."""
    for name, g in grads.items():
        if name.startswith(("weight_ih", "weight_hh", "bias")):
            assert np.all(g[H:2 * H] == 0), name


def parametrize_all(*marks):
    """One decorator applying ``marks`` (pytest.mark.parametrize, listed top to bottom
    as they would be written), so that two modules can test the same grid."""
    def decorate(test):
        for mark in reversed(marks):
            test = mark(test)
        return test
    return decorate


# The (cell, activation, gate_activation) combinations the finite-difference
# tests cover: every cell with both cell activations and the sigmoid gate, plus
# hard_sigmoid where the gates differ most (peephole feeds c into the gates,
# gru multiplies the reset gate after the matmul, lstm with relu).
FD_CELL_ACTS = [(c, a, "sigmoid") for c in CELLS for a in ("tanh", "relu")] + [
    ("peephole", "tanh", "hard_sigmoid"), ("gru", "tanh", "hard_sigmoid"),
    ("lstm", "relu", "hard_sigmoid")]

# The combinations checked element by element (one per cell, both activations and
# both gate activations among them).
FD_ELEMENTWISE_CELL_ACTS = [("lstm", "tanh", "sigmoid"), ("peephole", "relu", "hard_sigmoid"),
                            ("cifg", "tanh", "sigmoid"), ("gru", "relu", "sigmoid")]


def fd_directional_grid(test):
    """Parametrize ``test(cell, activation, gate_activation, bidirectional, num_layers,
    use_lengths, use_init)`` over FD_CELL_ACTS x uni/bi x 1/2 layers x full/lengths x
    zero/initial state."""
    import pytest
    return parametrize_all(
        pytest.mark.parametrize("use_init", [False, True], ids=["zero_state", "init_state"]),
        pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"]),
        pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"]),
        pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"]),
        pytest.mark.parametrize("cell,activation,gate_activation", FD_CELL_ACTS,
                                ids=["-".join(c) for c in FD_CELL_ACTS]),
    )(test)


# ---------------------------------------------------------------- PyTorch

def _torch_dtype(dtype):
    import torch
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]


def torch_module_from_params(params, cell, I, H, L=1, bidir=False, dtype=np.float64):
    """torch.nn.LSTM / nn.GRU (batch_first=True) holding ``params``.

    Only cells PyTorch has: "lstm" and "gru" (tanh / sigmoid activations).
    """
    import torch
    if "torch" not in spec.CELLS[cell].peers:
        raise ValueError(f"PyTorch has no {cell!r} cell")
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    mod = cls(I, H, num_layers=L, bidirectional=bidir, batch_first=True,
              dtype=_torch_dtype(dtype))
    state = {name: torch.from_numpy(np.array(params[name], dtype=dtype))
             for name in param_names(cell, L, bidir)}
    mod.load_state_dict(state, strict=True)
    return mod


def torch_forward_backward(params, x, h0, c0, lengths, dy, dh_n, dc_n, cell, L=1, bidir=False,
                           dtype=np.float64):
    """Run PyTorch forward and backward of loss = sum(dy*y) + sum(dh_n*h_n) + sum(dc_n*c_n).

    x (B, T, I); h0, c0 (L*D, B, H) or None (zeros); lengths (B,) or None
    (uses pack_padded_sequence(enforce_sorted=False) and
    pad_packed_sequence(total_length=T)); dy (B, T, D*H); dh_n, dc_n
    (L*D, B, H) or None (zero); dc_n ignored for gru.

    Returns y (B, T, D*H), h_n, c_n (None for gru), grads: dict with "x", "h0",
    "c0" (lstm only) and one entry per parameter name, all numpy.
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    x = np.asarray(x)
    B, T, I = x.shape
    H = params["weight_hh_l0"].shape[1]
    D = 2 if bidir else 1
    tdt = _torch_dtype(dtype)
    mod = torch_module_from_params(params, cell, I, H, L, bidir, dtype)

    def leaf(a, shape):
        a = np.zeros(shape) if a is None else a
        return torch.tensor(np.asarray(a, dtype=dtype), dtype=tdt, requires_grad=True)

    xt = leaf(x, x.shape)
    h0t = leaf(h0, (L * D, B, H))
    c0t = leaf(c0, (L * D, B, H)) if cell == "lstm" else None
    state = (h0t, c0t) if cell == "lstm" else h0t
    if lengths is None:
        yt, st = mod(xt, state)
    else:
        packed = pack_padded_sequence(xt, torch.as_tensor(np.asarray(lengths), dtype=torch.int64),
                                      batch_first=True, enforce_sorted=False)
        yp, st = mod(packed, state)
        yt, _ = pad_packed_sequence(yp, batch_first=True, total_length=T)
    hnt, cnt = st if cell == "lstm" else (st, None)

    loss = (yt * torch.as_tensor(np.asarray(dy, dtype), dtype=tdt)).sum()
    if dh_n is not None:
        loss = loss + (hnt * torch.as_tensor(np.asarray(dh_n, dtype), dtype=tdt)).sum()
    if dc_n is not None and cnt is not None:
        loss = loss + (cnt * torch.as_tensor(np.asarray(dc_n, dtype), dtype=tdt)).sum()
    loss.backward()

    grads = {"x": xt.grad.numpy(), "h0": h0t.grad.numpy()}
    if c0t is not None:
        grads["c0"] = c0t.grad.numpy()
    for name, p in mod.named_parameters():
        grads[name] = p.grad.numpy() if p.grad is not None else np.zeros(tuple(p.shape), dtype)
    y = yt.detach().numpy()
    c_n = cnt.detach().numpy() if cnt is not None else None
    return y, hnt.detach().numpy(), c_n, grads


# ---------------------------------------------------------------- ONNX
# The ONNX graphs and the weight layout conversion are the package's
# (fastlstm.export); these helpers run one layer of a params dict through them.

def onnx_session(model):
    """A single-threaded ONNX Runtime session of an onnx ModelProto."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def layer_params(params, cell, layer, bidirectional):
    """Layer ``layer``'s parameters of ``params`` under a one-layer stack's names
    (suffix _l0)."""
    one = [name for name, _ in layer_param_shapes(cell, 1, (1,), bidirectional)]
    stack = [name for name, _ in layer_param_shapes(cell, 1, (1,) * (layer + 1), bidirectional)]
    return {name: params[theirs] for name, theirs in zip(one, stack[-len(one):])}


def onnx_lstm_run(params, x_tbi, h0, c0, lengths, cell, bidirectional=False,
                  activation="tanh", gate_activation="sigmoid", layer=0):
    """Run layer ``layer`` of ``params`` in ONNX Runtime (float32), as the ONNX LSTM
    or GRU node fastlstm.export makes of it.

    x_tbi (T, B, I); h0, c0 (D, B, H) or None (zeros); lengths (B,) or None (all T).
    Returns Y (T, B, D*H) (directions concatenated [forward, reverse], like
    the reference's layer outputs), Y_h (D, B, H), Y_c (D, B, H) or None for gru.
    """
    from fastlstm import export
    x = np.ascontiguousarray(np.transpose(x_tbi, (1, 0, 2)), dtype=np.float32)
    B, T, I = x.shape
    one = layer_params(params, cell, layer, bidirectional)
    H = one["weight_hh_l0"].shape[1]
    D = 2 if bidirectional else 1
    model = export.layer_onnx_model(one, cell, I, (H,), bidirectional, activation,
                                    gate_activation, with_lengths=True, with_state=True)
    zeros = np.zeros((D, B, H), np.float32)
    full = np.full(B, T) if lengths is None else np.asarray(lengths)
    feeds = {"x": x, "h0": zeros if h0 is None else np.asarray(h0, np.float32),
             "lengths": full.astype(np.int64)}
    has_c = spec.CELLS[cell].cell_state
    if has_c:
        feeds["c0"] = zeros if c0 is None else np.asarray(c0, np.float32)
    out = onnx_session(model).run(None, feeds)
    return np.transpose(out[0], (1, 0, 2)), out[1], out[2] if has_c else None


# ONNX Runtime against an implementation of ours (the float64 reference or the
# float32 kernels), both fed the same float32-rounded inputs. ORT computes in float32
# with its own vectorised sigmoid/tanh (within ~1e-7 of the truth) and its own
# summation order. Measured differences are a few 1e-7; atol 5e-6 + rtol 1e-5 allows
# float32 rounding (eps 6e-8) to grow over I+H-term dot products and a few time steps
# (relu cells grow values past 1, hence the relative part), while a layout or formula
# error is ~1e-1.
ONNX_ATOL, ONNX_RTOL = 5e-6, 1e-5

# The non-default activations ORT supports, as (activation, gate_activation); ORT's
# HardSigmoid uses alpha 0.2, beta 0.5 by default, like ours.
ONNX_ACTS = [("relu", "sigmoid"), ("tanh", "hard_sigmoid"), ("relu", "hard_sigmoid")]


def compare_with_onnx(ours, case, cell, bidirectional, activation="tanh",
                      gate_activation="sigmoid"):
    """ours: (y (B, T, D*H), h_n, c_n or None) of ONE layer of ours run on ``case``.

    Runs the same layer in ONNX Runtime (float32, onnx_lstm_run) and asserts that
    outputs past each length are exactly zero on both sides and that y, h_n and
    c_n agree within ONNX_RTOL / ONNX_ATOL (assert_close). Returns the max abs
    difference."""
    Y, Y_h, Y_c = onnx_lstm_run(case["params"], np.transpose(case["x"], (1, 0, 2)),
                                case["h0"], case["c0"], case["lengths"], cell,
                                bidirectional, activation, gate_activation)
    Y = np.transpose(Y, (1, 0, 2))   # (B, T, D*H) like ours
    if case["lengths"] is not None:
        for b, n in enumerate(case["lengths"]):
            assert np.all(ours[0][b, n:] == 0) and np.all(Y[b, n:] == 0)
    return assert_close_all(ours, (Y, Y_h, Y_c), ONNX_RTOL, ONNX_ATOL)


def onnx_grid(test):
    """Parametrize ``test(cell, bidirectional, use_init, use_lengths)`` over CELLS x
    uni/bi x zero/initial state x full/lengths."""
    import pytest
    return parametrize_all(
        pytest.mark.parametrize("use_lengths", [False, True], ids=["full", "lengths"]),
        pytest.mark.parametrize("use_init", [False, True], ids=["zero_state", "init_state"]),
        pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"]),
        pytest.mark.parametrize("cell", CELLS),
    )(test)


# ---------------------------------------------------------------- child interpreters
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
# The checkout or unpacked sdist that tests/ sits in, if it does (examples/ is there).
SOURCE_ROOT = os.path.dirname(TESTS_DIR)
# The directory the fastlstm under test was imported from: a checkout, or site-packages.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastlstm.__file__)))
# A child's working directory. `python -c` and `python -m` put it first on sys.path,
# so it must hold no other fastlstm: a checkout would shadow an installed wheel.
CHILD_CWD = TESTS_DIR


def _on_default_path(path):
    """Whether a fresh interpreter has ``path`` on sys.path without PYTHONPATH."""
    dirs = site.getsitepackages() + [site.getusersitepackages()]
    return any(os.path.realpath(d) == os.path.realpath(path) for d in dirs)


def child_env(**overrides):
    """os.environ plus ``overrides`` (str values), for a child interpreter that must
    import the fastlstm under test: a checkout's directory goes first on PYTHONPATH
    (an in-place build is found nowhere else); site-packages is left where it is."""
    env = dict(os.environ, **overrides)
    if not _on_default_path(PACKAGE_PARENT):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH"))
                                            if p)
    return env
