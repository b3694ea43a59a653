"""Helpers shared by the kernel test files (test_gradcheck, test_kernels_vs_reference,
test_torch_parity, test_onnx_parity, test_threads): build an ``LSTM``/``GRU`` layer
holding given parameters, draw random cases, run forward + backward through the C
kernels or through the numpy reference, and measure errors.

A "case" is a dict with params (reference / PyTorch names), x (B, T, I), h0, c0
(L*D, B, H) or None, lengths (B,) or None, and the loss projections dy (B, T, D*H),
dh_n, dc_n (L*D, B, H). The loss whose gradients every test compares is

    loss = sum(dy * y) + sum(dh_n * h_n) + sum(dc_n * c_n).
"""
import zlib

import numpy as np

import helpers
from helpers import reference as ref
from fastlstm import GRU, LSTM


def seed_of(*parts):
    """A stable per-test seed, so each parametrisation draws different data."""
    return zlib.crc32(repr(parts).encode())


def make_layer(cell, I, H, num_layers=1, bidirectional=False, activation="tanh",
               gate_activation="sigmoid", dtype="float64", params=None, n_threads=1, **kw):
    """An LSTM (cell lstm / peephole / cifg) or GRU layer, optionally loaded with params.

    n_threads defaults to 1 here: these tests check arithmetic, and test_threads.py
    proves that any thread count gives bitwise the same results (a per-step OpenMP
    barrier on a busy 2-core machine only makes tiny cases slow)."""
    common = dict(n_threads=n_threads, num_layers=num_layers, bidirectional=bidirectional, activation=activation,
                  gate_activation=gate_activation, dtype=dtype, **kw)
    if cell == "gru":
        layer = GRU(I, H, **common)
    else:
        layer = LSTM(I, H, cell=cell, **common)
    if params is not None:
        layer.load_state_dict(params)
    return layer


def random_lengths(rng, B, T):
    """Lengths in [1, T] that include T and (for B > 1, T > 1) 1 as well."""
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    if B > 1:
        lengths[-1] = 1
    return lengths


def make_case(cell, B, T, I, H, num_layers=1, bidirectional=False, use_lengths=False,
              use_init=False, seed=0, scale=None, dtype=np.float64, lengths=None):
    """Random parameters, inputs and loss projections; every array has ``dtype``.

    scale: parameter range (default PyTorch's 1/sqrt(H)); scale=1.0 pushes some
    pre-activations into the saturated / dead regions of hard_sigmoid and relu.
    """
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    LD = num_layers * D
    has_c = cell != "gru"
    if use_lengths and lengths is None:
        lengths = random_lengths(rng, B, T)
    params = helpers.random_params(cell, I, H, num_layers, bidirectional, rng, dtype=dtype,
                                   scale=scale)
    f = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
    return dict(
        params=params,
        x=f(rng.standard_normal((B, T, I))),
        h0=f(rng.standard_normal((LD, B, H))) if use_init else None,
        c0=f(rng.standard_normal((LD, B, H))) if (use_init and has_c) else None,
        lengths=np.asarray(lengths) if use_lengths else None,
        dy=f(rng.standard_normal((B, T, D * H))),   # nonzero at padded steps: must be ignored
        dh_n=f(rng.standard_normal((LD, B, H))),
        dc_n=f(rng.standard_normal((LD, B, H))) if has_c else None,
    )


def lstm_state(h0, c0):
    return None if h0 is None and c0 is None else (h0, c0)


def kernel_infer(layer, x, h0=None, c0=None, lengths=None):
    """Inference call; returns y, h_n, c_n (None for GRU)."""
    if isinstance(layer, GRU):
        y, h_n = layer(x, h0, lengths)
        return y, h_n, None
    y, (h_n, c_n) = layer(x, lstm_state(h0, c0), lengths)
    return y, h_n, c_n


def kernel_train(layer, case):
    """Training forward + backward on ``case``; returns y, h_n, c_n, grads, cache."""
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
    """The numpy reference on ``case`` (in the case's dtype); returns y, h_n, c_n, grads."""
    y, h_n, c_n, cache = ref.stack_forward(
        case["params"], case["x"], case["h0"], case["c0"], case["lengths"], num_layers,
        bidirectional, cell, activation, gate_activation, dropout_masks=dropout_masks)
    grads = ref.stack_backward(cache, case["dy"], case["dh_n"],
                               None if cell == "gru" else case["dc_n"])
    # The kernel always returns h0 / c0 gradients (zeros-state case included) and so does
    # the reference; nothing to add.
    return y, h_n, c_n, grads


def projected_loss(case, y, h_n, c_n):
    loss = float(np.sum(case["dy"] * y)) + float(np.sum(case["dh_n"] * h_n))
    if c_n is not None:
        loss += float(np.sum(case["dc_n"] * c_n))
    return loss


def rel_err(a, b):
    """max |a - b| / max(1, max |b|): absolute below magnitude 1, relative to the
    largest entry above it (relu stacks and weight gradients summed over B*T rows
    reach magnitudes of 10..1000, where a fixed absolute tolerance means nothing)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def compare_all(got, want):
    """got / want: (y, h_n, c_n, grads). Returns (forward error, {grad key: error})
    with rel_err, checking that both sides have the same gradient keys."""
    y, h, c, g = got
    ry, rh, rc, rg = want
    fwd = max(rel_err(y, ry), rel_err(h, rh))
    if rc is not None or c is not None:
        fwd = max(fwd, rel_err(c, rc))
    assert set(g) == set(rg), set(g) ^ set(rg)
    return fwd, {k: rel_err(g[k], rg[k]) for k in rg}
