"""Export and import: fitted models leave fastlstm as state dicts, ONNX graphs
and PyTorch modules, and Keras weights come in.

The estimators and layers only delegate here (``state_dict``,
``load_state_dict``, ``to_onnx``, ``to_torch``, ``load_keras_weights``); every
conversion is in this module. onnx and torch are imported only by the
functions that need them.

Weight layouts (rows of W_ih, W_hh and the biases are H-row gate blocks)
------------------------------------------------------------------------
* ours (PyTorch's): LSTM blocks i, f, g, o; GRU blocks r, z, n; peephole
  weights (3, H) rows p_i, p_f, p_o.
* ONNX: LSTM blocks i, o, f, c; GRU blocks z, r, h; ``B`` is [Wb, Rb] =
  [b_ih, b_hh]; ``P`` is [P_i, P_o, P_f]. ``ONNX_GATES[layer][k]`` is the
  block of ours that becomes ONNX block k.
* Keras: ``kernel`` (I, G*H) and ``recurrent_kernel`` (H, G*H) are W_ih.T and
  W_hh.T; LSTM columns i, f, c, o (ours), GRU columns z, r, h; an LSTM's
  bias (4H,) is one bias (b_hh = 0), a GRU's with ``reset_after=True`` is
  (2, 3H) = [input bias, recurrent bias].
The cell table (``spec.CELLS``) says which cells each peer has (``peers``) and
which ONNX attributes make a cell (``onnx_attrs``); the ONNX operator is the
one named like the cell's layer class (LSTM or GRU).

What the ONNX models compute
----------------------------
Graphs are float32 (ONNX Runtime's LSTM and GRU run float32 only; a float64
model's weights are rounded to float32), with dynamic batch and time axes.

* Layer (``LSTM.to_onnx``/``GRU.to_onnx``): input ``x`` (batch, time, I);
  with ``with_lengths=True`` also ``lengths`` (batch,) int64 in [1, time];
  with ``with_state=True`` also ``h0`` (and ``c0`` for an LSTM cell),
  (num_layers*D, batch, H). Outputs ``y`` (batch, time, D*H), zero past each
  length, ``h_n`` and (LSTM cells) ``c_n`` (num_layers*D, batch, H): what the
  layer's ``__call__`` returns.
* Estimators, input ``X``: float features (batch, time, d) float32 (with
  ``with_lengths=True`` also ``lengths`` (batch,) int64: the lengths of
  sequences padded at the end, as a list of variable-length sequences gives
  ``predict``); or, with an embedding, token ids (batch, time) int64 in
  [0, vocab_size_): 0 is padding wherever it stands and is skipped, exactly
  as ``predict`` does (the graph moves the real tokens to the front and
  counts them; a row of zeros gives the head a zero state).
  ``LSTMRegressor``: output ``predictions`` shaped like ``predict``'s: (batch,)
  for 1-D y, (batch, k) for 2-D y, (batch, time, k) for sequence targets
  (zero past each length). ``LSTMClassifier``: ``probabilities`` (batch,
  n_classes), ``predict_proba``'s, columns in the order of ``classes_`` (also
  in the model's metadata ``classes`` as JSON). ``LSTMForecaster``: input
  ``history`` float64, (batch, n_time) for a univariate model or (batch,
  n_time, n_vars), n_time >= window (+ 1 with ``difference``); output
  ``forecast`` float64, (batch, horizon) or (batch, horizon, n_vars):
  ``predict(history)`` for each row. The graph holds the whole pipeline: the
  last window (+1) steps, first differences, standardisation (Sub/Div with
  ``mean_``, ``scale_``), the float32 network, unscaling (Mul/Add) and the
  cumulative sum back onto the last value; the direct strategy runs the
  network once, the recursive one in an ONNX ``Loop`` of ``horizon`` steps
  feeding each forecast back into the window.
"""
import inspect
import json

import numpy as np

from ._version import __version__
from .spec import CELLS, direction_suffix, layer_param_shapes

__all__ = ["ONNX_GATES", "ONNX_PEEPHOLE", "KERAS_GATES", "DEFAULT_OPSET", "MIN_OPSET",
           "reorder_gates", "onnx_layer_weights", "layer_onnx_model", "estimator_onnx_model",
           "layer_to_onnx", "estimator_to_onnx",
           "network_state_dict", "load_network_state_dict", "estimator_state_dict",
           "load_estimator_state_dict", "layer_to_torch", "estimator_to_torch",
           "keras_activations", "keras_state_dict", "layer_load_keras_weights",
           "layer_from_keras_weights"]

# ---------------------------------------------------------------- layouts

# ONNX block k = our block ONNX_GATES[layer][k]
ONNX_GATES = {"LSTM": [0, 3, 1, 2],     # ours i, f, g, o  ->  ONNX i, o, f, c
              "GRU": [1, 0, 2]}         # ours r, z, n     ->  ONNX z, r, h
ONNX_PEEPHOLE = [0, 2, 1]               # ours p_i, p_f, p_o  ->  ONNX P = [P_i, P_o, P_f]
# our block k = Keras block KERAS_GATES[layer][k]
KERAS_GATES = {"LSTM": [0, 1, 2, 3],    # Keras i, f, c, o is ours
               "GRU": [1, 0, 2]}        # Keras z, r, h  ->  ours r, z, n
# ONNX inputs of the cells' extra parameters (spec.Cell.extra), row order into ONNX's
_ONNX_EXTRA = {"weight_peephole": "P"}
_ONNX_ACT = {"sigmoid": "Sigmoid", "hard_sigmoid": "HardSigmoid", "tanh": "Tanh", "relu": "Relu"}

MIN_OPSET = 13          # Squeeze, Unsqueeze, ReduceSum take their axes as inputs
DEFAULT_OPSET = 17


def reorder_gates(w, H, order):
    """The H-row blocks of w (G*H, ...) in ``order`` along axis 0."""
    return np.concatenate([w[k * H:(k + 1) * H] for k in order], axis=0)


def _peers(peer):
    return sorted(c for c, row in CELLS.items() if peer in row.peers)


def _check_onnx_cell(cell):
    if "onnx" not in CELLS[cell].peers:
        raise ValueError(f"cell={cell!r} has no ONNX operator; cells ONNX can express: "
                         f"{_peers('onnx')}")


def _suffixes(layer, bidirectional):
    return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if bidirectional else [])


def onnx_layer_weights(params, cell, layer, bidirectional):
    """The ONNX LSTM/GRU initializers of layer ``layer`` of ``params`` (our names):
    {"W": (D, G*H, I), "R": (D, G*H, H), "B": (D, 2*G*H), and "P": (D, 3H) for a
    peephole cell}, float32."""
    c = CELLS[cell]
    _check_onnx_cell(cell)
    order = ONNX_GATES[c.layer]
    sfxs = _suffixes(layer, bidirectional)
    H = np.shape(params["weight_hh" + sfxs[0]])[1]

    def blocks(name, s):
        return reorder_gates(np.asarray(params[name + s]), H, order)

    out = {"W": np.stack([blocks("weight_ih", s) for s in sfxs]),
           "R": np.stack([blocks("weight_hh", s) for s in sfxs]),
           "B": np.stack([np.concatenate([blocks("bias_ih", s), blocks("bias_hh", s)])
                          for s in sfxs])}
    for name, _ in c.extra:
        if _ONNX_EXTRA.get(name) != "P":
            raise ValueError(f"cell={cell!r}: no ONNX input for its parameter {name!r}")
        out["P"] = np.stack([np.asarray(params[name + s])[ONNX_PEEPHOLE].reshape(-1)
                             for s in sfxs])
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


# ---------------------------------------------------------------- state dicts

def _export_name(name):
    """Our flat-buffer name -> the state-dict name (PyTorch's module naming)."""
    return "embedding.weight" if name == "embedding" else name


def network_state_dict(net):
    """Copies of a Network's parameters under PyTorch's names: ``embedding.weight``
    (token ids only), the recurrent layers' ``weight_ih_l0``, ..., ``head.weight``,
    ``head.bias``."""
    return {_export_name(name): value for name, value in _network_params(net).items()}


def load_network_state_dict(net, state_dict):
    """Write ``state_dict`` (network_state_dict's names and shapes; arrays or torch
    tensors) into a Network's parameters, under ``net.updating()`` so that
    concurrent inference sees the old or the new weights, never a mix."""
    from .layers import _float_array

    if not hasattr(state_dict, "keys"):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    expected = {_export_name(name): (a, b, shape) for name, (a, b, shape) in net.slices.items()}
    keys = set(state_dict.keys())
    missing = [k for k in expected if k not in keys]
    unexpected = sorted(map(str, keys - set(expected)))
    if missing or unexpected:
        raise ValueError(f"state_dict does not match this model: missing {missing}, "
                         f"unexpected {unexpected}")
    arrays = {k: _float_array(f"state_dict[{k!r}]", state_dict[k], net.dtype, len(shape), shape)
              for k, (_, _, shape) in expected.items()}
    with net.updating():
        for k, (a, b, _) in expected.items():
            net.params[a:b] = arrays[k].reshape(-1)


def estimator_state_dict(est):
    est._check_fitted()
    return network_state_dict(est._network)


def load_estimator_state_dict(est, state_dict):
    est._check_fitted()
    load_network_state_dict(est._network, state_dict)


# ---------------------------------------------------------------- ONNX graphs

def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("to_onnx needs the onnx package: pip install onnx "
                          "(or pip install 'fastlstm[onnx]')") from None
    return onnx


def _check_opset(onnx, opset):
    top = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= top:
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, {top}] (the installed onnx "
                         f"supports up to {top}), got {opset!r}")
    return int(opset)


class _Graph:
    """Nodes and initializers of an ONNX graph under construction, with unique
    names; ``sub()`` starts a subgraph (a Loop body) that shares the names and
    puts its constants in the outer graph."""

    def __init__(self, onnx, parent=None):
        self.onnx = onnx
        self.nodes = []
        self._count = parent._count if parent is not None else [0]
        self.inits = parent.inits if parent is not None else []

    def sub(self):
        return _Graph(self.onnx, self)

    def name(self, hint):
        self._count[0] += 1
        return f"{hint}_{self._count[0]}"

    def const(self, array, hint="const"):
        name = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def i64(self, values):
        return self.const(np.asarray(values, np.int64), "i64")

    def op(self, op_type, inputs, n_out=1, out=None, **attrs):
        while inputs and inputs[-1] == "":        # trailing optional inputs are left out
            inputs = inputs[:-1]
        outs = [out] if out is not None else [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), outs,
                                                     name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    # a few compound steps
    def batch_first(self, Y):
        """ONNX LSTM/GRU output Y (T, D, B, H) -> (B, T, D*H), directions concatenated."""
        return self.op("Reshape", [self.op("Transpose", [Y], perm=[2, 0, 1, 3]),
                                   self.i64([0, 0, -1])])

    def time_major(self, Y):
        """Y (T, D, B, H) -> (T, B, D*H): the next layer's input."""
        return self.op("Reshape", [self.op("Transpose", [Y], perm=[0, 2, 1, 3]),
                                   self.i64([0, 0, -1])])

    def last_state(self, Y_h):
        """Y_h (D, B, H) -> (B, D*H) = [forward h_n, reverse h_n]."""
        return self.op("Reshape", [self.op("Transpose", [Y_h], perm=[1, 0, 2]),
                                   self.i64([0, -1])])

    def float_(self, x):
        return self.op("Cast", [x], to=self.onnx.TensorProto.FLOAT)


def _emit_stack(g, x_tbi, params, cell, hidden_sizes, bidirectional, activation,
                gate_activation, seq_lens="", h0=None, c0=None):
    """The recurrent stack on x_tbi (T, B, I) float32: one ONNX LSTM/GRU node per
    layer. h0, c0: per-layer (D, B, H) names or None (zeros); seq_lens: an int32
    (B,) name or "" (all T). Returns (Y of the last layer (T, D, B, H), [Y_h of
    each layer], [Y_c of each layer] or None)."""
    c = CELLS[cell]
    _check_onnx_cell(cell)
    D = 2 if bidirectional else 1
    acts = [_ONNX_ACT[gate_activation], _ONNX_ACT[activation]]
    if c.cell_state:
        acts.append(_ONNX_ACT[activation])
    inp, hs, cs = x_tbi, [], []
    for k, H in enumerate(hidden_sizes):
        w = onnx_layer_weights(params, cell, k, bidirectional)
        ins = [inp, g.const(w["W"], f"W_l{k}"), g.const(w["R"], f"R_l{k}"),
               g.const(w["B"], f"B_l{k}"), seq_lens, "" if h0 is None else h0[k]]
        if c.cell_state:
            ins.append("" if c0 is None else c0[k])
        if "P" in w:
            ins.append(g.const(w["P"], f"P_l{k}"))
        outs = g.op(c.layer, ins, n_out=3 if c.cell_state else 2, hidden_size=H,
                    direction="bidirectional" if bidirectional else "forward",
                    activations=acts * D, **dict(c.onnx_attrs))
        hs.append(outs[1])
        if c.cell_state:
            cs.append(outs[2])
        if k < len(hidden_sizes) - 1:
            inp = g.time_major(outs[0])
    return outs[0], hs, (cs if c.cell_state else None)


def _value_info(onnx, name, elem, shape):
    return onnx.helper.make_tensor_value_info(name, elem, shape)


def _model(onnx, g, name, inputs, outputs, opset, doc, metadata=None):
    graph = onnx.helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.inits)
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="fastlstm",
                                   producer_version=__version__, doc_string=doc)
    model.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def _save(onnx, model, path):
    if path is not None:
        onnx.save_model(model, str(path) if not hasattr(path, "write") else path)
    return model


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def layer_onnx_model(params, cell, input_size, hidden_sizes, bidirectional,
                     activation="tanh", gate_activation="sigmoid", opset=DEFAULT_OPSET,
                     with_lengths=False, with_state=False, name="fastlstm_layer",
                     batch_first=True):
    """An ONNX model of a stack of recurrent layers holding ``params`` (our names
    and shapes, see ``spec.layer_param_shapes``); inputs and outputs as the
    module docstring's "Layer" says."""
    onnx = _onnx()
    opset = _check_opset(onnx, opset)
    with_lengths = _check_flag("with_lengths", with_lengths)
    with_state = _check_flag("with_state", with_state)
    _check_onnx_cell(cell)
    hidden_sizes = tuple(hidden_sizes)
    shapes = layer_param_shapes(cell, input_size, hidden_sizes, bidirectional)
    for pname, shape in shapes:
        if pname not in params or np.shape(params[pname]) != shape:
            raise ValueError(f"params[{pname!r}] must have shape {shape}, got "
                             f"{np.shape(params[pname]) if pname in params else 'nothing'}")
    if len(set(hidden_sizes)) != 1:
        raise ValueError(f"layers of different widths {hidden_sizes} have no (num_layers*D, "
                         "batch, H) state arrays; export the estimator instead")
    c = CELLS[cell]
    F32, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    D, L, H = (2 if bidirectional else 1), len(hidden_sizes), hidden_sizes[-1]
    g = _Graph(onnx)
    axes = ["batch", "time"] if batch_first else ["time", "batch"]
    inputs = [_value_info(onnx, "x", F32, axes + [input_size])]
    seq = ""
    if with_lengths:
        inputs.append(_value_info(onnx, "lengths", I64, ["batch"]))
        seq = g.op("Cast", ["lengths"], to=onnx.TensorProto.INT32)
    h0 = c0 = None
    if with_state:
        state_names = ["h0", "c0"] if c.cell_state else ["h0"]
        per_layer = []
        for sname in state_names:
            inputs.append(_value_info(onnx, sname, F32, [L * D, "batch", H]))
            per_layer.append([g.op("Slice", [sname, g.i64([k * D]), g.i64([(k + 1) * D]),
                                             g.i64([0])]) for k in range(L)])
        h0 = per_layer[0]
        c0 = per_layer[1] if c.cell_state else None
    x_tbi = g.op("Transpose", ["x"], perm=[1, 0, 2]) if batch_first else "x"
    Y, hs, cs = _emit_stack(g, x_tbi, params, cell, hidden_sizes, bidirectional, activation,
                            gate_activation, seq, h0, c0)
    g.op("Identity", [g.batch_first(Y) if batch_first else g.time_major(Y)], out="y")
    outputs = [_value_info(onnx, "y", F32, axes + [D * H])]
    for oname, states in (("h_n", hs), ("c_n", cs)):
        if states is None:
            continue
        g.op("Concat", states, out=oname, axis=0)
        outputs.append(_value_info(onnx, oname, F32, [L * D, "batch", H]))
    doc = (f"fastlstm {c.layer}(cell={cell!r}, input_size={input_size}, hidden_size={H}, "
           f"num_layers={L}, bidirectional={bidirectional}, activation={activation!r}, "
           f"gate_activation={gate_activation!r}): x (batch, time, {input_size}) -> y (batch, "
           f"time, {D * H}), final states ({L * D}, batch, {H}); float32.")
    return _model(onnx, g, name, inputs, outputs, opset, doc)


def layer_to_onnx(layer, path=None, opset=None, with_lengths=False, with_state=False):
    """``LSTM.to_onnx`` / ``GRU.to_onnx``: the layer's ONNX model, also written to
    ``path`` when given."""
    onnx = _onnx()
    with layer._lock:
        params = layer.state_dict()
    model = layer_onnx_model(params, layer.cell, layer.input_size, layer.hidden_sizes,
                             layer.bidirectional, layer.activation, layer.gate_activation,
                             DEFAULT_OPSET if opset is None else opset, with_lengths,
                             with_state, name=type(layer).__name__,
                             batch_first=layer.batch_first)
    return _save(onnx, model, path)


def estimator_to_onnx(est, path=None, opset=None, with_lengths=False):
    """The estimators' ``to_onnx``: their ONNX model, also written to ``path`` when given."""
    model = estimator_onnx_model(est, DEFAULT_OPSET if opset is None else opset, with_lengths)
    return _save(_onnx(), model, path)


def _emit_compact(g, ids):
    """Token ids (B, T) int64 -> (ids with the non-zero ids of each row moved to
    the front in their order, zeros after; lengths (B,) int64): the estimators'
    ``data._compact_token_ids``. Each position's destination is its rank among
    the real tokens, or (padding) the number of real tokens plus its rank among
    the padding; a ScatterElements with that permutation compacts the row."""
    onnx = g.onnx
    I64 = onnx.TensorProto.INT64
    zero, one, axis = g.i64(0), g.i64(1), g.i64(1)
    real = g.op("Not", [g.op("Equal", [ids, zero])])
    real_i = g.op("Cast", [real], to=I64)
    lengths = g.op("ReduceSum", [real_i, g.i64([1])], keepdims=0)
    rank_real = g.op("Sub", [g.op("CumSum", [real_i, axis]), one])
    pad_i = g.op("Sub", [one, real_i])
    rank_pad = g.op("Add", [g.op("CumSum", [pad_i, axis]),
                            g.op("Sub", [g.op("Unsqueeze", [lengths, g.i64([1])]), one])])
    dest = g.op("Where", [real, rank_real, rank_pad])
    return g.op("ScatterElements", [ids, dest, ids], axis=1), lengths


def _emit_network(g, spec, params, x, lengths):
    """The network (``Network.forward`` in eval mode, as ``predict_raw`` returns it) on
    x: (B, T, I) float32 features or (B, T) int64 token ids (with an embedding);
    lengths: a (B,) int64 name or None (all T; token ids count their own).
    Returns the name of out, (B, K) or (B, T, K)."""
    onnx = g.onnx
    if spec.embedding_dim is not None:
        x, lengths = _emit_compact(g, x)
        x = g.op("Gather", [g.const(params["embedding"], "embedding"), x])     # (B, T, E)
    seq = ""
    if lengths is not None:
        # length 0 runs one step and the head gets a zero state (Network.forward)
        seq = g.op("Cast", [g.op("Max", [lengths, g.i64(1)])], to=onnx.TensorProto.INT32)
    Y, hs, _ = _emit_stack(g, g.op("Transpose", [x], perm=[1, 0, 2]), params, spec.cell,
                           spec.hidden_sizes, spec.bidirectional, spec.activation,
                           spec.gate_activation, seq)
    W = np.asarray(params["head.weight"], np.float32)
    b = np.asarray(params["head.bias"], np.float32)
    if spec.sequence_output:
        out = g.op("Add", [g.op("MatMul", [g.batch_first(Y), g.const(W.T.copy(), "head_wT")]),
                           g.const(b, "head_b")])
        if lengths is not None:        # predict_raw: outputs past each length are zero
            T = g.op("Gather", [g.op("Shape", [x]), g.i64(1)])
            steps = g.op("Range", [g.i64(0), T, g.i64(1)])
            real = g.op("Less", [g.op("Unsqueeze", [steps, g.i64([0])]),
                                 g.op("Unsqueeze", [lengths, g.i64([1])])])
            out = g.op("Mul", [out, g.op("Unsqueeze", [g.float_(real), g.i64([2])])])
        return out
    feat = g.last_state(hs[-1])
    if lengths is not None:
        nonempty = g.float_(g.op("Greater", [lengths, g.i64(0)]))
        feat = g.op("Mul", [feat, g.op("Unsqueeze", [nonempty, g.i64([1])])])
    return g.op("Gemm", [feat, g.const(W, "head_w"), g.const(b, "head_b")], transB=1)


def _estimator_params(est):
    """The network's parameters with the estimator's input standardisation
    (scale_inputs) folded into the first layer, so the exported model takes the
    raw features: W_ih' = W_ih / scale per input column, b_ih' = b_ih -
    W_ih' @ mean (the same function, to rounding)."""
    params = _network_params(est._network)
    mean = getattr(est, "input_mean_", None)
    if mean is None:
        return params
    for d in range(est._network.spec.num_directions):
        sfx = direction_suffix(0, d)
        w = params[f"weight_ih_{sfx}"].astype(np.float64) / est.input_scale_
        params[f"bias_ih_{sfx}"] = (params[f"bias_ih_{sfx}"] - w @ mean).astype(
            params[f"bias_ih_{sfx}"].dtype)
        params[f"weight_ih_{sfx}"] = w.astype(params[f"weight_ih_{sfx}"].dtype)
    return params


def _check_plain_forecaster(est):
    """The exported forecaster graph takes a history alone and outputs one value
    per step: refuse models that need covariates or output quantiles."""
    if getattr(est, "n_past_covariates_", 0) or getattr(est, "n_future_covariates_", 0):
        raise ValueError("a LSTMForecaster fitted with covariates cannot be exported yet (the "
                         "exported graph takes the history alone); export one without them")
    if getattr(est, "_quantiles", None) is not None:
        raise ValueError("a LSTMForecaster fitted with loss='quantile' cannot be exported yet "
                         "(the exported graph outputs one forecast per step)")


def _network_params(net):
    """{flat-buffer name: copy} of a Network's parameters, of one version (taken
    under the lock its writers hold)."""
    with net._lock:
        return {name: net.params[a:b].reshape(shape).copy()
                for name, (a, b, shape) in net.slices.items()}


def estimator_onnx_model(est, opset=DEFAULT_OPSET, with_lengths=False):
    """The ONNX model of a fitted estimator; inputs and outputs as the module
    docstring's "Estimators" says."""
    onnx = _onnx()
    opset = _check_opset(onnx, opset)
    with_lengths = _check_flag("with_lengths", with_lengths)
    est._check_fitted()
    net = est._network
    spec = net.spec
    _check_onnx_cell(spec.cell)
    params = _estimator_params(est)
    kind = type(est).__name__
    if kind == "LSTMForecaster":
        _check_plain_forecaster(est)
        if with_lengths:
            raise ValueError("with_lengths does not apply to LSTMForecaster: its input is "
                             "one history per row")
        return _forecaster_onnx(onnx, est, spec, params, opset)
    F32, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    g = _Graph(onnx)
    ids = spec.embedding_dim is not None
    if ids:
        if with_lengths:
            raise ValueError("with_lengths=True does not apply to token ids: their lengths "
                             "are the counts of non-zero ids (0 is padding)")
        inputs = [_value_info(onnx, "X", I64, ["batch", "time"])]
        x_doc = "X (batch, time) int64 token ids, 0 = padding (anywhere)"
    else:
        inputs = [_value_info(onnx, "X", F32, ["batch", "time", spec.input_size])]
        x_doc = f"X (batch, time, {spec.input_size}) float32"
    lengths = None
    if with_lengths:
        inputs.append(_value_info(onnx, "lengths", I64, ["batch"]))
        lengths = "lengths"
        x_doc += ", lengths (batch,) int64"
    out = _emit_network(g, spec, params, "X", lengths)
    K = spec.n_outputs
    metadata = {}
    if kind == "LSTMRegressor":
        oname = "predictions"
        if est._y_ndim == 1:
            g.op("Squeeze", [out, g.i64([1])], out=oname)
            shape = ["batch"]
        else:
            g.op("Identity", [out], out=oname)
            shape = ["batch", "time", K] if spec.sequence_output else ["batch", K]
    elif kind == "LSTMClassifier":
        oname = "probabilities"
        n_classes = len(est.classes_)
        if n_classes == 2:
            p1 = g.op("Sigmoid", [out])
            g.op("Concat", [g.op("Sub", [g.const(np.float32(1.0)), p1]), p1], out=oname, axis=1)
        else:
            g.op("Softmax", [out], out=oname, axis=1)
        shape = ["batch", n_classes]
        try:
            metadata["classes"] = json.dumps(np.asarray(est.classes_).tolist())
        except TypeError:
            pass        # labels that are not JSON: the column order is classes_ anyway
    else:
        raise TypeError(f"to_onnx does not know the estimator {kind}")
    outputs = [_value_info(onnx, oname, F32, shape)]
    doc = (f"fastlstm {kind}: {x_doc} -> {oname} {tuple(shape)} float32 "
           f"(cell={spec.cell!r}, hidden_sizes={spec.hidden_sizes}, "
           f"bidirectional={spec.bidirectional}).")
    return _model(onnx, g, kind, inputs, outputs, opset, doc, metadata)


def _forecaster_onnx(onnx, est, spec, params, opset):
    F64 = onnx.TensorProto.DOUBLE
    w, h = est._fit_window, est._fit_horizon
    diff, univariate = bool(est._fit_difference), bool(est._univariate)
    v = est.n_features_in_
    need = w + int(diff)
    g = _Graph(onnx)
    hist = "history"
    inputs = [_value_info(onnx, hist, F64, ["batch", "time"] if univariate
                          else ["batch", "time", v])]
    if univariate:
        hist = g.op("Unsqueeze", [hist, g.i64([2])])
    hist = g.op("Slice", [hist, g.i64([-need]), g.i64([np.iinfo(np.int64).max]),
                          g.i64([1])])                                    # (B, need, v)
    base = hist
    if diff:
        base = g.op("Sub", [g.op("Slice", [hist, g.i64([1]), g.i64([need]), g.i64([1])]),
                            g.op("Slice", [hist, g.i64([0]), g.i64([need - 1]), g.i64([1])])])
    mean = np.asarray(est.mean_, np.float64)
    scale = np.asarray(est.scale_, np.float64)
    z = g.float_(g.op("Div", [g.op("Sub", [base, g.const(mean, "mean")]),
                              g.const(scale, "scale")]))                  # (B, w, v) float32
    if est._fit_strategy == "direct":
        out = _emit_network(g, spec, params, z, None)                     # (B, h*v)
        fz = g.op("Reshape", [out, g.i64([0, h, v])])
    else:
        fz = _emit_recursive(g, spec, params, z, h, v)
    f = g.op("Add", [g.op("Mul", [g.op("Cast", [fz], to=F64), g.const(scale, "scale")]),
                     g.const(mean, "mean")])
    if diff:
        last = g.op("Slice", [hist, g.i64([need - 1]), g.i64([need]), g.i64([1])])
        f = g.op("Add", [g.op("CumSum", [f, g.i64(1)]), last])
    if univariate:
        g.op("Squeeze", [f, g.i64([2])], out="forecast")
        shape = ["batch", h]
    else:
        g.op("Identity", [f], out="forecast")
        shape = ["batch", h, v]
    outputs = [_value_info(onnx, "forecast", F64, shape)]
    hist_doc = "(batch, n_time)" if univariate else f"(batch, n_time, {v})"
    doc = (f"fastlstm LSTMForecaster (window={w}, horizon={h}, strategy="
           f"{est._fit_strategy!r}, difference={diff}): history {hist_doc} float64, "
           f"n_time >= {need} -> forecast {tuple(shape)} float64, predict(history) per row.")
    return _model(onnx, g, "LSTMForecaster", inputs, outputs, opset, doc)


def _emit_recursive(g, spec, params, z, h, v):
    """The recursive strategy: a Loop of h one-step forecasts, each appended to the
    window (dropping its oldest step). Returns (B, h, v) float32."""
    onnx = g.onnx
    F32, BOOL, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.BOOL, onnx.TensorProto.INT64
    body = g.sub()
    it, cond_in, buf = body.name("iter"), body.name("cond_in"), body.name("window")
    nxt = _emit_network(body, spec, params, buf, None)                     # (B, v)
    shifted = body.op("Slice", [buf, body.i64([1]), body.i64([np.iinfo(np.int64).max]),
                                body.i64([1])])
    new_buf = body.op("Concat", [shifted, body.op("Unsqueeze", [nxt, body.i64([1])])], axis=1)
    cond_out = body.op("Identity", [cond_in])
    step = body.op("Identity", [nxt])
    graph = onnx.helper.make_graph(
        body.nodes, "recursive_step",
        [_value_info(onnx, it, I64, []), _value_info(onnx, cond_in, BOOL, []),
         _value_info(onnx, buf, F32, None)],
        [_value_info(onnx, cond_out, BOOL, []), _value_info(onnx, new_buf, F32, None),
         _value_info(onnx, step, F32, None)])
    _, steps = g.op("Loop", [g.i64(h), "", z], n_out=2, body=graph)       # steps (h, B, v)
    return g.op("Transpose", [steps], perm=[1, 0, 2])


# ---------------------------------------------------------------- PyTorch

def _torch_modules():
    try:
        from . import _torch_modules
    except ImportError as e:
        if getattr(e, "name", None) != "torch":
            raise
        raise ImportError("to_torch needs PyTorch: pip install torch") from None
    return _torch_modules


def _check_torch(cell, activation, gate_activation):
    if "torch" not in CELLS[cell].peers:
        raise ValueError(f"PyTorch has no cell={cell!r}; cells it has: {_peers('torch')} "
                         "(to_onnx exports every cell)")
    layer = CELLS[cell].layer
    if activation != "tanh":
        raise ValueError(f"PyTorch's nn.{layer} has no activation={activation!r} (tanh only); "
                         "to_onnx exports it")
    if gate_activation != "sigmoid":
        raise ValueError(f"PyTorch's nn.{layer} has no gate_activation={gate_activation!r} "
                         "(sigmoid only); to_onnx exports it")


def layer_to_torch(layer):
    """``torch.nn.LSTM`` / ``nn.GRU`` (batch_first=True, the layer's dtype, eval mode)
    holding the layer's weights: ``mod(x)`` computes what ``layer(x)`` does, and
    with lengths what ``pack_padded_sequence`` gives."""
    _check_torch(layer.cell, layer.activation, layer.gate_activation)
    if len(set(layer.hidden_sizes)) != 1:
        raise ValueError(f"layers of different widths {layer.hidden_sizes} are not one "
                         "torch module; export the estimator instead")
    tm = _torch_modules()
    mod = tm.rnn_module(CELLS[layer.cell].layer, layer.input_size, layer.hidden_size,
                        layer.num_layers, layer.bidirectional, layer.dropout, layer.dtype.name,
                        batch_first=layer.batch_first)
    tm.load(mod, layer.state_dict())
    return mod.eval()


def estimator_to_torch(est):
    """An ``nn.Module`` (eval mode, the estimator's dtype) computing what the ONNX
    model does: regressor ``predictions``, classifier ``probabilities``, forecaster
    ``forecast``; its ``.network`` is the embedding -> recurrent -> head network
    (raw outputs: regression values, logits)."""
    est._check_fitted()
    spec = est._network.spec
    _check_torch(spec.cell, spec.activation, spec.gate_activation)
    tm = _torch_modules()
    net = tm.Network(spec, CELLS[spec.cell].layer)
    tm.load(net, {net.param_name(name): value
                  for name, value in _estimator_params(est).items()})
    kind = type(est).__name__
    if kind == "LSTMRegressor":
        mod = tm.Regressor(net, squeeze=est._y_ndim == 1)
    elif kind == "LSTMClassifier":
        mod = tm.Classifier(net)
    elif kind == "LSTMForecaster":
        _check_plain_forecaster(est)
        mod = tm.Forecaster(net, est.mean_, est.scale_, est._fit_window, est._fit_horizon,
                            est._fit_strategy, est._fit_difference, est._univariate)
    else:
        raise TypeError(f"to_torch does not know the estimator {kind}")
    return mod.eval()


# ---------------------------------------------------------------- Keras weights

def keras_activations(obj):
    """(activation, gate_activation) of a Keras LSTM/GRU layer object (for a
    ``Bidirectional``, its forward layer), found by evaluating its functions at a
    few points, so no Keras import is needed; None for anything else (a list of
    arrays). ValueError for a function fastlstm does not have, such as Keras 3's
    hard_sigmoid (x/6 + 0.5; fastlstm's, ONNX's and Keras 2's is 0.2x + 0.5), and
    for ``go_backwards=True`` (a layer that reads its input reversed)."""
    from ._reference import _FUNCS
    from .spec import ACTIVATIONS, GATE_ACTIVATIONS

    rnn = getattr(obj, "forward_layer", obj)
    if not (callable(getattr(rnn, "activation", None))
            and callable(getattr(rnn, "recurrent_activation", None))):
        return None
    if getattr(obj, "forward_layer", None) is None and getattr(rnn, "go_backwards", False):
        raise ValueError("the Keras layer has go_backwards=True (it reads and returns its "
                         "sequence reversed); fastlstm's one-directional layer reads it "
                         "forward: reverse x yourself, or use a Bidirectional layer")
    probe = np.array([-4.0, -1.0, -0.25, 0.5, 2.0, 3.5], np.float32)
    found = []
    for what, fn, names in (("activation", rnn.activation, ACTIVATIONS),
                            ("recurrent_activation", rnn.recurrent_activation, GATE_ACTIVATIONS)):
        got = np.asarray(fn(probe), np.float64)
        match = [n for n in names if np.allclose(got, _FUNCS[n][0](probe.astype(np.float64)),
                                                 rtol=0, atol=1e-5)]
        if not match:
            raise ValueError(f"the Keras layer's {what} ({getattr(fn, '__name__', fn)}) is none "
                             f"of fastlstm's {list(names)} (Keras 3's hard_sigmoid is x/6 + 0.5, "
                             "fastlstm's, ONNX's and Keras 2's is 0.2x + 0.5)")
        found.append(match[0])
    return tuple(found)


def keras_state_dict(weights, cell, num_layers=1, bidirectional=False, reset_after=True,
                     dtype=np.float32):
    """Our parameters (PyTorch names) from Keras weights; pure numpy.

    weights: a Keras layer (anything with ``get_weights()``) or the list its
    ``get_weights()`` returns, for a stack the lists of its layers one after
    the other (nested or flat): per layer and direction (a ``Bidirectional``
    layer gives forward then backward) ``kernel`` (I, G*H), ``recurrent_kernel``
    (H, G*H) and ``bias``, (4H,) for an LSTM, (2, 3H) for a GRU with
    ``reset_after=True``; without ``bias`` (``use_bias=False``) two arrays.
    A Keras layer object also gives its own ``reset_after``.

    The weights do not hold the activations: a layer loading a list of arrays
    must be built with Keras' ``activation`` (tanh or relu) and
    ``recurrent_activation`` (sigmoid; Keras 2's hard_sigmoid) itself; a
    Keras layer object is checked (``keras_activations``). A ``Bidirectional``
    layer's outputs are fastlstm's with ``merge_mode="concat"`` (Keras'
    default).
    """
    rnn = getattr(weights, "forward_layer", weights)
    reset_after = getattr(rnn, "reset_after", reset_after)
    c = CELLS.get(cell) if isinstance(cell, str) else None
    if c is None or "keras" not in c.peers:
        raise ValueError(f"Keras has no cell={cell!r}; Keras weights load into the cells "
                         f"{_peers('keras')}")
    if c.layer == "GRU" and not reset_after:
        raise ValueError("Keras GRU with reset_after=False applies the reset gate before the "
                         "recurrent matmul; fastlstm's GRU (PyTorch's, cuDNN's) applies it "
                         "after, and cannot express it: build the Keras GRU with "
                         "reset_after=True (Keras' default)")
    if hasattr(weights, "get_weights"):
        weights = weights.get_weights()
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError("weights must be a list of arrays (a Keras layer's get_weights()) "
                        f"or a Keras layer, got {type(weights).__name__}")
    flat = []
    for item in weights:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    D = 2 if bidirectional else 1
    n = num_layers * D
    if len(flat) not in (3 * n, 2 * n):
        raise ValueError(f"weights must hold 3 arrays (kernel, recurrent_kernel, bias), or 2 "
                         f"without bias, per layer and direction: {3 * n} (or {2 * n}) for "
                         f"num_layers={num_layers}, bidirectional={bidirectional}; got "
                         f"{len(flat)}")
    per = len(flat) // n
    G, order = c.gates, KERAS_GATES[c.layer]
    out = {}
    for idx in range(n):
        k, d = divmod(idx, D)
        where = f"layer {k} {'backward' if d else 'forward'}"
        arrs = []
        for j, what in enumerate(("kernel", "recurrent_kernel", "bias")[:per]):
            pos = idx * per + j
            a = np.asarray(flat[pos])
            if a.dtype == object or a.dtype.kind not in "biuf":
                raise TypeError(f"weights[{pos}] ({where} {what}) must hold real numbers, "
                                f"got dtype {a.dtype}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"weights[{pos}] ({where} {what}) contains NaN or infinity")
            arrs.append(a)
        kernel, rec = arrs[0], arrs[1]
        base = idx * per
        if rec.ndim != 2 or rec.shape[1] != G * rec.shape[0]:
            raise ValueError(f"weights[{base + 1}] ({where} recurrent_kernel) must be (H, {G}*H) "
                             f"for a Keras {c.layer}, got shape {rec.shape}")
        H = rec.shape[0]
        if kernel.ndim != 2 or kernel.shape[1] != G * H:
            raise ValueError(f"weights[{base}] ({where} kernel) must be (input_size, {G * H}), "
                             f"got shape {kernel.shape}")
        GH = G * H
        if per == 3:
            bias = arrs[2]
            if c.layer == "GRU" and bias.shape == (GH,):
                raise ValueError(f"weights[{base + 2}] ({where} bias) has shape ({GH},): a Keras "
                                 "GRU with reset_after=False, which applies the reset gate "
                                 "before the recurrent matmul; fastlstm's GRU (PyTorch's) "
                                 "cannot express it: use reset_after=True")
            want = (2, GH) if c.layer == "GRU" else (GH,)
            if bias.shape != want:
                raise ValueError(f"weights[{base + 2}] ({where} bias) must have shape {want}, "
                                 f"got {bias.shape}")
            b_ih, b_hh = (bias[0], bias[1]) if c.layer == "GRU" else (bias, np.zeros(GH))
        else:
            b_ih = b_hh = np.zeros(GH)
        sfx = _suffixes(k, bidirectional)[d]
        for name, value in (("weight_ih", kernel.T), ("weight_hh", rec.T), ("bias_ih", b_ih),
                            ("bias_hh", b_hh)):
            out[name + sfx] = np.ascontiguousarray(reorder_gates(value, H, order), dtype=dtype)
    return out


def layer_load_keras_weights(layer, weights, reset_after=True):
    acts = keras_activations(weights)
    if acts is not None and acts != (layer.activation, layer.gate_activation):
        raise ValueError(f"the Keras layer computes activation={acts[0]!r}, gate_activation="
                         f"{acts[1]!r}; this layer has activation={layer.activation!r}, "
                         f"gate_activation={layer.gate_activation!r}")
    layer.load_state_dict(keras_state_dict(weights, layer.cell, layer.num_layers,
                                           layer.bidirectional, reset_after, layer.dtype))


def layer_from_keras_weights(cls, weights, num_layers=1, bidirectional=False, reset_after=True,
                             **kwargs):
    acts = keras_activations(weights)
    if acts is not None:
        for name, value in zip(("activation", "gate_activation"), acts):
            if kwargs.setdefault(name, value) != value:
                raise ValueError(f"{name}={kwargs[name]!r}, but the Keras layer computes "
                                 f"{name}={value!r}")
    cell = kwargs.get("cell", inspect.signature(cls.__init__).parameters["cell"].default)
    sd = keras_state_dict(weights, cell, num_layers, bidirectional, reset_after, np.float64)
    layer = cls(sd["weight_ih_l0"].shape[1], sd["weight_hh_l0"].shape[1], num_layers,
                bidirectional, **kwargs)
    layer.load_state_dict(sd)
    return layer
