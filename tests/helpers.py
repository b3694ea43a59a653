"""Shared helpers for the numerical tests: random parameters, PyTorch and ONNX
Runtime runners that speak the reference's layout and names.

Layout used everywhere here (same as fastlstm._reference):
* params: dict with PyTorch names weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
  bias_hh_l{k} (suffix _reverse for the backward direction) and, for the
  peephole cell, weight_peephole_l{k}[_reverse] (3, H) in order i, f, o.
  LSTM gate rows are i, f, g, o (PyTorch); GRU rows are r, z, n.
* x (B, T, I) batch-first for the stack functions, (T, B, I) for one layer.
* h0, c0, h_n, c_n (L*D, B, H), index = layer*D + direction.

torch and onnxruntime are imported lazily, so importing this module never
needs them.
"""

import importlib.util
import os

import numpy as np

try:
    from fastlstm import _reference as reference
except ImportError:  # package not built / extension missing: load the file itself
    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "fastlstm", "_reference.py")
    _spec = importlib.util.spec_from_file_location("fastlstm_reference_fallback", _path)
    reference = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(reference)


# ---------------------------------------------------------------- error log
# Tests record the largest error they measured per comparison; conftest.py
# prints the table at the end of the run (pytest_terminal_summary).
MAX_ERRORS = {}


def record_error(name, value):
    """Keep the maximum of ``value`` seen under ``name``; returns value."""
    value = float(value)
    MAX_ERRORS[name] = max(MAX_ERRORS.get(name, 0.0), value)
    return value


def max_abs_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


# ---------------------------------------------------------------- parameters

def param_names(cell, num_layers, bidirectional):
    """Parameter names in the order PyTorch lists them (plus peephole weights)."""
    names = []
    for k in range(num_layers):
        for sfx in [""] + (["_reverse"] if bidirectional else []):
            s = f"_l{k}{sfx}"
            names += ["weight_ih" + s, "weight_hh" + s, "bias_ih" + s, "bias_hh" + s]
            if cell == "peephole":
                names.append("weight_peephole" + s)
    return names


def random_params(cell, I, H, num_layers=1, bidirectional=False, rng=None,
                  dtype=np.float64, scale=None):
    """Random parameters, uniform in [-scale, scale] (default 1/sqrt(H), PyTorch's init).

    Returns a dict in the reference's names and shapes.
    """
    rng = np.random.default_rng(rng)
    G = reference.num_gates(cell)
    D = 2 if bidirectional else 1
    scale = 1.0 / np.sqrt(H) if scale is None else scale
    params = {}
    for k in range(num_layers):
        in_size = I if k == 0 else D * H
        for sfx in [""] + (["_reverse"] if bidirectional else []):
            s = f"_l{k}{sfx}"
            shapes = {"weight_ih": (G * H, in_size), "weight_hh": (G * H, H),
                      "bias_ih": (G * H,), "bias_hh": (G * H,)}
            if cell == "peephole":
                shapes["weight_peephole"] = (3, H)
            for name, shape in shapes.items():
                params[name + s] = rng.uniform(-scale, scale, shape).astype(dtype)
    return params


# ---------------------------------------------------------------- PyTorch

def _torch_dtype(dtype):
    import torch
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]


def torch_module_from_params(params, cell, I, H, L=1, bidir=False, dtype=np.float64):
    """torch.nn.LSTM / nn.GRU (batch_first=True) holding ``params``.

    Only cells PyTorch has: "lstm" and "gru" (tanh / sigmoid activations).
    """
    import torch
    if cell not in ("lstm", "gru"):
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

# Row-block permutations from the reference order to ONNX's order.
ONNX_LSTM_GATES = [0, 3, 1, 2]   # ours i, f, g, o  ->  ONNX i, o, f, c
ONNX_PEEPHOLE = [0, 2, 1]        # ours p_i, p_f, p_o  ->  ONNX P = [P_i, P_o, P_f]
ONNX_GRU_GATES = [1, 0, 2]       # ours r, z, n  ->  ONNX z, r, h

_ONNX_ACT = {"sigmoid": "Sigmoid", "hard_sigmoid": "HardSigmoid", "tanh": "Tanh", "relu": "Relu"}


def _reorder_rows(w, H, order):
    """Reorder the H-row blocks of w (G*H, ...) along axis 0."""
    return np.concatenate([w[k * H:(k + 1) * H] for k in order], axis=0)


def onnx_lstm_model(cell, I, H, bidirectional=False, dtype=np.float32, activation="tanh",
                    gate_activation="sigmoid", opset=14):
    """An onnx ModelProto with one LSTM (cell "lstm", "peephole", "cifg") or GRU node.

    Graph inputs: X (T, B, I), W, R, B, sequence_lens (B,) int32, initial_h
    and (LSTM) initial_c (D, B, H), and P (D, 3H) for peephole.
    Outputs Y (T, D, B, H), Y_h (D, B, H), Y_c (LSTM only).
    """
    import onnx
    from onnx import TensorProto, helper
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[np.dtype(dtype)]
    D = 2 if bidirectional else 1
    G = 3 if cell == "gru" else 4
    inputs = [("X", elem, ["T", "B", I]), ("W", elem, [D, G * H, I]),
              ("R", elem, [D, G * H, H]), ("B", elem, [D, 2 * G * H]),
              ("sequence_lens", TensorProto.INT32, ["B"]), ("initial_h", elem, [D, "B", H])]
    if cell != "gru":
        inputs.append(("initial_c", elem, [D, "B", H]))
    if cell == "peephole":
        inputs.append(("P", elem, [D, 3 * H]))
    node_inputs = [n for n, _, _ in inputs]
    outputs = [("Y", elem, ["T", D, "B", H]), ("Y_h", elem, [D, "B", H])]
    if cell != "gru":
        outputs.append(("Y_c", elem, [D, "B", H]))
    acts = [_ONNX_ACT[gate_activation], _ONNX_ACT[activation]]
    if cell != "gru":
        acts.append(_ONNX_ACT[activation])
    attrs = dict(hidden_size=H, direction="bidirectional" if bidirectional else "forward",
                 activations=acts * D)
    if cell == "gru":
        attrs["linear_before_reset"] = 1  # PyTorch / cuDNN GRU
        op = "GRU"
    else:
        attrs["input_forget"] = 1 if cell == "cifg" else 0
        op = "LSTM"
    node = helper.make_node(op, node_inputs, [n for n, _, _ in outputs], **attrs)
    graph = helper.make_graph(
        [node], f"{cell}_graph",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)  # keep loadable by older onnxruntime
    onnx.checker.check_model(model)
    return model


def onnx_feeds(params, x_tbi, h0, c0, lengths, cell, bidirectional=False, layer=0,
               dtype=np.float32):
    """ONNX input arrays for layer ``layer`` of ``params`` (ONNX ops are one layer).

    x_tbi (T, B, I); h0, c0 (D, B, H) or None (zeros); lengths (B,) or None (all T).
    """
    x_tbi = np.asarray(x_tbi)
    T, B, _ = x_tbi.shape
    H = params[f"weight_hh_l{layer}"].shape[1]
    D = 2 if bidirectional else 1
    order = ONNX_GRU_GATES if cell == "gru" else ONNX_LSTM_GATES
    sfxs = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if bidirectional else [])
    W = np.stack([_reorder_rows(params["weight_ih" + s], H, order) for s in sfxs])
    R = np.stack([_reorder_rows(params["weight_hh" + s], H, order) for s in sfxs])
    Bias = np.stack([np.concatenate([_reorder_rows(params["bias_ih" + s], H, order),
                                     _reorder_rows(params["bias_hh" + s], H, order)])
                     for s in sfxs])
    feeds = {"X": x_tbi, "W": W, "R": R, "B": Bias,
             "initial_h": np.zeros((D, B, H)) if h0 is None else np.asarray(h0)}
    if cell != "gru":
        feeds["initial_c"] = np.zeros((D, B, H)) if c0 is None else np.asarray(c0)
    if cell == "peephole":
        feeds["P"] = np.stack([np.asarray(params["weight_peephole" + s])[ONNX_PEEPHOLE].reshape(-1)
                               for s in sfxs])
    feeds = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in feeds.items()}
    feeds["sequence_lens"] = (np.full(B, T) if lengths is None else np.asarray(lengths)).astype(np.int32)
    return feeds


def onnx_lstm_run(params, x_tbi, h0, c0, lengths, cell, bidirectional=False,
                  activation="tanh", gate_activation="sigmoid", layer=0, dtype=np.float32):
    """Run one ONNX LSTM (or GRU for cell="gru") layer in ONNX Runtime on ``params``.

    x_tbi (T, B, I); h0, c0 (D, B, H) or None; lengths (B,) or None.
    Returns Y (T, B, D*H) (directions concatenated [forward, reverse], like
    the reference's layer outputs), Y_h (D, B, H), Y_c (D, B, H) or None for gru.
    """
    import onnxruntime as ort
    I = np.asarray(x_tbi).shape[2]
    H = params[f"weight_hh_l{layer}"].shape[1]
    model = onnx_lstm_model(cell, I, H, bidirectional, dtype, activation, gate_activation)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feeds = onnx_feeds(params, x_tbi, h0, c0, lengths, cell, bidirectional, layer, dtype)
    out = sess.run(None, feeds)
    Y = out[0]                                   # (T, D, B, H)
    T, D, B, _ = Y.shape
    Y = np.transpose(Y, (0, 2, 1, 3)).reshape(T, B, D * H)
    Y_c = out[2] if cell != "gru" else None
    return Y, out[1], Y_c


# The (cell, activation, gate_activation) combinations the finite-difference
# tests cover: every cell with both cell activations and the sigmoid gate, plus
# hard_sigmoid where the gates differ most (peephole feeds c into the gates,
# gru multiplies the reset gate after the matmul, lstm with relu).
FD_CELL_ACTS = [(c, a, "sigmoid") for c in ("lstm", "peephole", "cifg", "gru")
                for a in ("tanh", "relu")] + [
    ("peephole", "tanh", "hard_sigmoid"), ("gru", "tanh", "hard_sigmoid"),
    ("lstm", "relu", "hard_sigmoid")]
