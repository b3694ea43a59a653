"""Plain-numpy reference LSTM / GRU: forward and hand-written backward (BPTT).

This module is the slow, obvious version that every C kernel is tested
against. It depends on numpy only, is vectorised over the batch and loops over
time in Python. It is proved right by ``tests/test_reference.py`` (finite
differences, PyTorch and ONNX Runtime parity).

Conventions
-----------
* Cells: ``"lstm"`` (PyTorch), ``"peephole"`` (ONNX LSTM with ``P``),
  ``"cifg"`` (ONNX ``input_forget=1``: f = 1 - i) and ``"gru"`` (PyTorch /
  cuDNN form, reset gate applied after the recurrent matmul).
* LSTM gate rows in ``w_ih`` (4H, I), ``w_hh`` (4H, H), ``b_ih``, ``b_hh``
  (4H) are in PyTorch order i, f, g, o; GRU rows are r, z, n (3H).
  ``w_peep`` (3, H) rows are p_i, p_f, p_o.
* Gate activation ``ga``: ``"sigmoid"`` or ``"hard_sigmoid"``
  (max(0, min(1, 0.2 x + 0.5)), ONNX HardSigmoid defaults).
  Cell / candidate activation ``act``: ``"tanh"`` or ``"relu"``.
* Variable lengths: ``lengths`` (B,) ints in [1, T], or None (all T). For
  sequence b only steps t < lengths[b] are real. The forward direction runs
  t = 0 .. len-1, the reverse direction t = len-1 .. 0, both starting from the
  initial state. Outputs at padded steps are zero, the final state is the state
  after the last real step, and padded steps pass no gradient (dy there is
  ignored).
* The computation dtype is the dtype of ``x`` if it is floating point,
  otherwise float64; all other arrays are cast to it.

Equations (z = W_ih x + b_ih + W_hh h + b_hh, split into gate blocks):

    lstm:      i = ga(z_i), f = ga(z_f), g = act(z_g), o = ga(z_o)
               c' = f*c + i*g;  h' = o*act(c')
    peephole:  i = ga(z_i + p_i*c), f = ga(z_f + p_f*c), g = act(z_g)
               c' = f*c + i*g;  o = ga(z_o + p_o*c');  h' = o*act(c')
    cifg:      as lstm with f = 1 - i (forget rows unused, zero gradient)
    gru:       r = ga(W_ir x + b_ir + W_hr h + b_hr)
               u = ga(W_iz x + b_iz + W_hz h + b_hz)
               n = act(W_in x + b_in + r*(W_hn h + b_hn))
               h' = (1-u)*n + u*h
"""

import numpy as np

from . import spec as _spec

# the choices and parameter names come from the cell table; the equations
# below are this module's own, written out per cell
CELLS = tuple(_spec.CELLS)
ACTIVATIONS = tuple(_spec.ACTIVATIONS)
GATE_ACTIVATIONS = tuple(_spec.GATE_ACTIVATIONS)

__all__ = ["layer_forward", "layer_backward", "stack_forward", "stack_backward",
           "CELLS", "ACTIVATIONS", "GATE_ACTIVATIONS", "num_gates"]


def num_gates(cell):
    """Number of H-row gate blocks in the weights (the cell table's G)."""
    _check_choice("cell", cell, CELLS)
    return _spec.CELLS[cell].gates


# ---------------------------------------------------------------- activations
# Each function takes the pre-activation a; each derivative also takes a.

def _sigmoid(a):
    # Stable for large |a| (no overflow in exp) and accurate in both tails.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


def _sigmoid_grad(a):
    s = _sigmoid(a)
    return s * (1 - s)


def _hard_sigmoid(a):
    return np.clip(0.2 * a + 0.5, 0.0, 1.0).astype(a.dtype, copy=False)


def _hard_sigmoid_grad(a):
    y = 0.2 * a + 0.5
    return np.where((y > 0) & (y < 1), 0.2, 0.0).astype(a.dtype, copy=False)


def _tanh(a):
    return np.tanh(a)


def _tanh_grad(a):
    t = np.tanh(a)
    return 1 - t * t


def _relu(a):
    return np.maximum(a, 0)


def _relu_grad(a):
    return (a > 0).astype(a.dtype)


_FUNCS = {
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "hard_sigmoid": (_hard_sigmoid, _hard_sigmoid_grad),
    "tanh": (_tanh, _tanh_grad),
    "relu": (_relu, _relu_grad),
}


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _as_float(a, dtype):
    return None if a is None else np.asarray(a, dtype=dtype)


def _check_lengths(lengths, T, B):
    """Validate ``lengths`` and return it as an int64 array (B,) (all T if None)."""
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},), got {arr.shape}")
    if arr.dtype.kind not in "iu" and not np.all(arr == np.round(arr)):
        raise ValueError("lengths must be integers")
    arr = arr.astype(np.int64)
    if np.any(arr < 1) or np.any(arr > T):
        raise ValueError(f"lengths must lie in [1, {T}], got {arr.tolist()}")
    return arr


# ---------------------------------------------------------------- one layer

def layer_forward(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0=None, lengths=None, reverse=False,
                  activation="tanh", gate_activation="sigmoid", w_peep=None):
    """One layer, one direction.

    x (T, B, I) time-major; w_ih (G*H, I); w_hh (G*H, H); b_ih, b_hh (G*H,)
    with G = 4 (lstm, peephole, cifg) or 3 (gru); h0, c0 (B, H) (c0 None for
    gru; None for lstm means zeros); w_peep (3, H) for peephole only;
    lengths (B,) ints in [1, T] or None.

    Returns y (T, B, H), h_n (B, H), c_n (B, H) or None, cache.
    """
    _check_choice("cell", cell, CELLS)
    _check_choice("activation", activation, ACTIVATIONS)
    _check_choice("gate_activation", gate_activation, GATE_ACTIVATIONS)
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    x = x.astype(dtype, copy=False)
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I), got shape {x.shape}")
    T, B, I = x.shape
    w_ih, w_hh, b_ih, b_hh = (_as_float(a, dtype) for a in (w_ih, w_hh, b_ih, b_hh))
    H = w_hh.shape[1]
    G = num_gates(cell)
    if w_ih.shape != (G * H, I) or w_hh.shape != (G * H, H):
        raise ValueError(f"w_ih must be {(G * H, I)} and w_hh {(G * H, H)}, "
                         f"got {w_ih.shape} and {w_hh.shape}")
    if b_ih.shape != (G * H,) or b_hh.shape != (G * H,):
        raise ValueError(f"biases must be ({G * H},), got {b_ih.shape} and {b_hh.shape}")
    h0 = np.zeros((B, H), dtype) if h0 is None else _as_float(h0, dtype)
    if h0.shape != (B, H):
        raise ValueError(f"h0 must be {(B, H)}, got {h0.shape}")
    if cell == "gru":
        if c0 is not None:
            raise ValueError("gru has no cell state; c0 must be None")
    else:
        c0 = np.zeros((B, H), dtype) if c0 is None else _as_float(c0, dtype)
        if c0.shape != (B, H):
            raise ValueError(f"c0 must be {(B, H)}, got {c0.shape}")
    if cell == "peephole":
        w_peep = _as_float(w_peep, dtype)
        if w_peep is None or w_peep.shape != (3, H):
            raise ValueError(f"peephole needs w_peep of shape (3, {H})")
    elif w_peep is not None:
        raise ValueError(f"w_peep is only used by the peephole cell, not {cell!r}")
    lens = _check_lengths(lengths, T, B)

    ga = _FUNCS[gate_activation][0]
    act = _FUNCS[activation][0]
    y = np.zeros((T, B, H), dtype)
    h = h0
    c = c0
    steps = []  # per processed step, what backward needs
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        m = (t < lens)[:, None]  # (B, 1): which sequences have a real step t
        if cell == "gru":
            gi = x[t] @ w_ih.T + b_ih  # (B, 3H)
            gh = h @ w_hh.T + b_hh     # (B, 3H)
            a_r = gi[:, :H] + gh[:, :H]
            a_u = gi[:, H:2 * H] + gh[:, H:2 * H]
            r, u = ga(a_r), ga(a_u)
            a_n = gi[:, 2 * H:] + r * gh[:, 2 * H:]
            n = act(a_n)
            h_new = (1 - u) * n + u * h
            steps.append(dict(t=t, m=m, h_prev=h, a_r=a_r, a_u=a_u, a_n=a_n,
                              r=r, u=u, n=n, gh_n=gh[:, 2 * H:]))
            h = np.where(m, h_new, h)
        else:
            z = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H)
            a_i, a_f, a_g, a_o = (z[:, k * H:(k + 1) * H] for k in range(4))
            if cell == "peephole":
                a_i = a_i + w_peep[0] * c
                a_f = a_f + w_peep[1] * c
            i = ga(a_i)
            f = 1 - i if cell == "cifg" else ga(a_f)
            g = act(a_g)
            c_new = f * c + i * g
            if cell == "peephole":
                a_o = a_o + w_peep[2] * c_new
            o = ga(a_o)
            act_c = act(c_new)
            h_new = o * act_c
            steps.append(dict(t=t, m=m, h_prev=h, c_prev=c, a_i=a_i, a_f=a_f, a_g=a_g,
                              a_o=a_o, i=i, f=f, g=g, o=o, c_new=c_new, act_c=act_c))
            h = np.where(m, h_new, h)
            c = np.where(m, c_new, c)
        y[t] = np.where(m, h_new, 0)

    cache = dict(cell=cell, x=x, w_ih=w_ih, w_hh=w_hh, w_peep=w_peep, lens=lens,
                 activation=activation, gate_activation=gate_activation,
                 steps=steps, dtype=dtype, H=H)
    return y, h, c, cache


def layer_backward(cache, dy, dh_n=None, dc_n=None):
    """Backward through one layer, one direction (BPTT).

    cache from layer_forward; dy (T, B, H) (entries at padded steps are
    ignored); dh_n, dc_n (B, H) or None (zeros); dc_n must be None for gru.

    Returns dict with keys x (T, B, I), h0 (B, H), c0 (B, H) (None for gru),
    w_ih, w_hh, b_ih, b_hh (shapes of the weights), w_peep ((3, H), None unless
    peephole).
    """
    cell, dtype, H = cache["cell"], cache["dtype"], cache["H"]
    x, w_ih, w_hh, w_peep = cache["x"], cache["w_ih"], cache["w_hh"], cache["w_peep"]
    T, B, _ = x.shape
    dy = np.asarray(dy, dtype=dtype)
    if dy.shape != (T, B, H):
        raise ValueError(f"dy must be {(T, B, H)}, got {dy.shape}")
    ga_grad = _FUNCS[cache["gate_activation"]][1]
    act_grad = _FUNCS[cache["activation"]][1]

    dx = np.zeros_like(x)
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    db_ih = np.zeros(w_ih.shape[0], dtype)
    db_hh = np.zeros(w_ih.shape[0], dtype)
    dw_peep = np.zeros_like(w_peep) if cell == "peephole" else None
    dh = np.zeros((B, H), dtype) if dh_n is None else np.asarray(dh_n, dtype).copy()
    if cell == "gru":
        if dc_n is not None:
            raise ValueError("gru has no cell state; dc_n must be None")
        dc = None
    else:
        dc = np.zeros((B, H), dtype) if dc_n is None else np.asarray(dc_n, dtype).copy()

    for s in reversed(cache["steps"]):
        t, m = s["t"], s["m"]
        # Gradient reaching h_t: from the output at t and from the next step.
        # At a padded step the state passed through unchanged, so dh and dc
        # flow through untouched and nothing reaches the gates.
        dh_t = np.where(m, dh + dy[t], 0)
        if cell == "gru":
            dn = dh_t * (1 - s["u"])
            du = dh_t * (s["h_prev"] - s["n"])
            da_n = dn * act_grad(s["a_n"])
            da_r = da_n * s["gh_n"] * ga_grad(s["a_r"])
            da_u = du * ga_grad(s["a_u"])
            dgi = np.concatenate([da_r, da_u, da_n], axis=1)              # (B, 3H)
            dgh = np.concatenate([da_r, da_u, da_n * s["r"]], axis=1)     # (B, 3H)
            dx[t] = dgi @ w_ih
            dw_ih += dgi.T @ x[t]
            db_ih += dgi.sum(axis=0)
            dw_hh += dgh.T @ s["h_prev"]
            db_hh += dgh.sum(axis=0)
            dh_prev = dh_t * s["u"] + dgh @ w_hh
            dh = np.where(m, dh_prev, dh)
        else:
            dc_t = np.where(m, dc, 0)
            do = dh_t * s["act_c"]
            da_o = do * ga_grad(s["a_o"])
            dc_t = dc_t + dh_t * s["o"] * act_grad(s["c_new"])
            if cell == "peephole":
                dc_t = dc_t + da_o * w_peep[2]
                dw_peep[2] += (da_o * s["c_new"]).sum(axis=0)
            di = dc_t * s["g"]
            dg = dc_t * s["i"]
            df = dc_t * s["c_prev"]
            dc_prev = dc_t * s["f"]
            if cell == "cifg":
                di = di - df  # f = 1 - i
                da_f = np.zeros_like(df)
            else:
                da_f = df * ga_grad(s["a_f"])
            da_i = di * ga_grad(s["a_i"])
            da_g = dg * act_grad(s["a_g"])
            if cell == "peephole":
                dc_prev = dc_prev + da_i * w_peep[0] + da_f * w_peep[1]
                dw_peep[0] += (da_i * s["c_prev"]).sum(axis=0)
                dw_peep[1] += (da_f * s["c_prev"]).sum(axis=0)
            dz = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H)
            dx[t] = dz @ w_ih
            dw_ih += dz.T @ x[t]
            dw_hh += dz.T @ s["h_prev"]
            db_ih += dz.sum(axis=0)
            dh = np.where(m, dz @ w_hh, dh)
            dc = np.where(m, dc_prev, dc)
    db_hh = db_hh if cell == "gru" else db_ih.copy()
    return dict(x=dx, h0=dh, c0=dc, w_ih=dw_ih, w_hh=dw_hh, b_ih=db_ih, b_hh=db_hh,
                w_peep=dw_peep)


# ---------------------------------------------------------------- stacks

def _suffix(k, d):
    return "_" + _spec.direction_suffix(k, d)


def stack_forward(params, x, h0=None, c0=None, lengths=None, num_layers=1, bidirectional=False,
                  cell="lstm", activation="tanh", gate_activation="sigmoid", dropout_masks=None):
    """Stacked (optionally bidirectional) layers, like torch.nn.LSTM / nn.GRU.

    params: dict with PyTorch names weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
    bias_hh_l{k} (suffix _reverse for the backward direction), plus
    weight_peephole_l{k}[_reverse] (3, H) for peephole. Layer 0 input size is I,
    layer k > 0 input size is D*H (outputs concatenated [forward, reverse]).
    x (B, T, I) batch-first. h0, c0 (L*D, B, H) or None (zeros); index =
    layer*D + direction. lengths (B,) or None.
    dropout_masks: None or list of num_layers-1 arrays (B, T, D*H), already
    scaled (0 or 1/(1-p)), multiplied onto layer k's output before it feeds
    layer k+1 (not applied to the last layer).

    Returns y (B, T, D*H), h_n (L*D, B, H), c_n (L*D, B, H) or None for gru, cache.
    """
    _check_choice("cell", cell, CELLS)
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be (B, T, I), got shape {x.shape}")
    B, T, _ = x.shape
    L, D = int(num_layers), 2 if bidirectional else 1
    H = np.asarray(params["weight_hh_l0"]).shape[1]
    if h0 is not None:
        h0 = np.asarray(h0, dtype)
        if h0.shape != (L * D, B, H):
            raise ValueError(f"h0 must be {(L * D, B, H)}, got {h0.shape}")
    if cell == "gru" and c0 is not None:
        raise ValueError("gru has no cell state; c0 must be None")
    if c0 is not None:
        c0 = np.asarray(c0, dtype)
        if c0.shape != (L * D, B, H):
            raise ValueError(f"c0 must be {(L * D, B, H)}, got {c0.shape}")
    if dropout_masks is not None and len(dropout_masks) != L - 1:
        raise ValueError(f"dropout_masks must hold {L - 1} arrays, got {len(dropout_masks)}")

    inp = np.transpose(x, (1, 0, 2)).astype(dtype)  # (T, B, I) time-major
    h_n = np.zeros((L * D, B, H), dtype)
    c_n = None if cell == "gru" else np.zeros((L * D, B, H), dtype)
    layer_caches = []
    for k in range(L):
        outs, caches = [], []
        for d in range(D):
            sfx = _suffix(k, d)
            idx = k * D + d
            y, hn, cn, cache = layer_forward(
                cell, inp, params["weight_ih" + sfx], params["weight_hh" + sfx],
                params["bias_ih" + sfx], params["bias_hh" + sfx],
                None if h0 is None else h0[idx], None if c0 is None else c0[idx],
                lengths=lengths, reverse=(d == 1), activation=activation,
                gate_activation=gate_activation,
                w_peep=params["weight_peephole" + sfx] if cell == "peephole" else None)
            outs.append(y)
            caches.append(cache)
            h_n[idx] = hn
            if c_n is not None:
                c_n[idx] = cn
        inp = np.concatenate(outs, axis=2)  # (T, B, D*H)
        mask = None
        if k < L - 1 and dropout_masks is not None:
            mask = np.transpose(np.asarray(dropout_masks[k], dtype), (1, 0, 2))
            if mask.shape != inp.shape:
                raise ValueError(f"dropout_masks[{k}] must be {(B, T, D * H)}")
            inp = inp * mask
        layer_caches.append(dict(caches=caches, mask=mask))
    y = np.transpose(inp, (1, 0, 2)).copy()  # (B, T, D*H)
    cache = dict(layers=layer_caches, cell=cell, L=L, D=D, H=H, B=B, T=T, dtype=dtype)
    return y, h_n, c_n, cache


def stack_backward(cache, dy, dh_n=None, dc_n=None):
    """Backward through stack_forward.

    dy (B, T, D*H); dh_n, dc_n (L*D, B, H) or None (zeros).
    Returns dict: "x" (B, T, I), "h0", "c0" (L*D, B, H) ("c0" absent for gru),
    and one entry per parameter name (same shape as the parameter).
    """
    cell, L, D, H, B, T, dtype = (cache[k] for k in ("cell", "L", "D", "H", "B", "T", "dtype"))
    dy = np.asarray(dy, dtype)
    if dy.shape != (B, T, D * H):
        raise ValueError(f"dy must be {(B, T, D * H)}, got {dy.shape}")
    if cell == "gru" and dc_n is not None:
        raise ValueError("gru has no cell state; dc_n must be None")
    grads = {}
    dh0 = np.zeros((L * D, B, H), dtype)
    dc0 = None if cell == "gru" else np.zeros((L * D, B, H), dtype)
    d_out = np.transpose(dy, (1, 0, 2))  # (T, B, D*H), gradient of layer L-1's output
    for k in range(L - 1, -1, -1):
        lc = cache["layers"][k]
        if lc["mask"] is not None:
            d_out = d_out * lc["mask"]
        d_in = None
        for d in range(D):
            idx = k * D + d
            g = layer_backward(lc["caches"][d], d_out[:, :, d * H:(d + 1) * H],
                               None if dh_n is None else dh_n[idx],
                               None if (dc_n is None or cell == "gru") else dc_n[idx])
            sfx = _suffix(k, d)
            grads["weight_ih" + sfx] = g["w_ih"]
            grads["weight_hh" + sfx] = g["w_hh"]
            grads["bias_ih" + sfx] = g["b_ih"]
            grads["bias_hh" + sfx] = g["b_hh"]
            if cell == "peephole":
                grads["weight_peephole" + sfx] = g["w_peep"]
            dh0[idx] = g["h0"]
            if dc0 is not None:
                dc0[idx] = g["c0"]
            d_in = g["x"] if d_in is None else d_in + g["x"]
        d_out = d_in
    grads["x"] = np.transpose(d_out, (1, 0, 2)).copy()
    grads["h0"] = dh0
    if dc0 is not None:
        grads["c0"] = dc0
    return grads
