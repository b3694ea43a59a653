"""Reduced-precision inference: ``layer.quantize(dtype)`` and ``estimator.quantize(dtype)``.

At batch 1 an LSTM step is bound by streaming W_hh (and W_ih) through the
core, so storing the weights in fewer bytes lowers that floor. Two forms:

``"bfloat16"``
    Each weight rounded to bfloat16 (nearest even). The dot products take
    their input vector (x_t, h_{t-1}) rounded to bfloat16 as well, as the
    AVX512_BF16 instruction does, on every level, so all levels compute the
    same sums; products are exact in float32 and accumulate in float32.
``"int8"``
    Each weight row (one gate unit's row of W_ih or W_hh) stored as int8
    q in [-127, 127] with one float32 scale s = max|w_row| / 127, w ~ q * s.
    Each step's inputs (x_t, h_{t-1}) are quantized per batch row as well,
    q_a = rint(a * 127 / max|a|) with scale s_a = max|a| / 127 (dynamic
    quantization), so the dot products are exact integer sums on every
    level. Input and hidden sizes up to 65536 (the sums stay below 2^31).

Biases, peepholes, the state and the gate math stay float32. The quantized
objects run inference only (``__call__``, ``step``, ``predict``); their
``state_dict()`` holds the dequantized weights.

Accuracy (tests/test_quantize.py checks it): the pre-activation error of
gate row n at a step is bounded by
    bfloat16: |dz_n| <= (2^-7 + 2^-16) * sum_k |w_nk| |a_k|   (weights and
              inputs each within 2^-8 relative, bfloat16 keeping 8 significant
              bits: (1 + 2^-8)^2 - 1),
    int8:     |dz_n| <= (s_n / 2) sum_k |a_k| + (s_a / 2) sum_k |w_nk|
              + K s_n s_a / 4   (each weight within s_n / 2 and each input
              within s_a / 2 of its int8 value),
summed over the input and recurrent parts (a = x_t, then h_{t-1}). The
gates' slopes are at most 1/4 (sigmoid) and 1 (tanh), so one step moves h
and c by at most a few times max_n |dz_n|; the deviation of outputs over
many steps then depends on how contractive the model is, which the tests
measure on the benchmark shapes.
"""
import numpy as np

from . import _kernels
from .spec import ACTIVATIONS, GATE_ACTIVATIONS

__all__ = ["QUANT_DTYPES", "quantize_weights", "dequantize"]

QUANT_DTYPES = tuple(_kernels.QTYPES)


def _check_dtype(dtype):
    if not isinstance(dtype, str) or dtype not in _kernels.QTYPES:
        raise ValueError(f"dtype must be one of {list(QUANT_DTYPES)}, got {dtype!r}")
    return dtype


def bf16_bits(w):
    """float32 array -> uint16 bfloat16 bit patterns, rounded to nearest even."""
    u = np.ascontiguousarray(w, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits):
    """uint16 bfloat16 bit patterns -> their float32 values."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def quantize_weights(w, dtype):
    """(stored, scale) of a weight matrix (rows, K): bfloat16 bits (uint16) and
    None, or int8 values and float32 row scales (rows,)."""
    w = np.asarray(w, np.float32)
    if _check_dtype(dtype) == "bfloat16":
        return bf16_bits(w), None
    scale = (np.abs(w).max(axis=1) / np.float32(127)).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    q = np.clip(np.rint(w / safe[:, None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize(stored, scale):
    """The float32 weights a quantized matrix stands for."""
    if scale is None:
        return bf16_value(stored)
    return (stored.astype(np.float32) * scale[:, None]).astype(np.float32)


def _aligned_bytes(n):
    raw = np.empty(n + 64, np.uint8)
    off = (-raw.ctypes.data) % 64        # the kernels want 64-byte alignment
    return raw[off:off + n]


class _Quantized:
    """Inference-only behaviour of QuantizedLSTM / QuantizedGRU (mixed in
    before the float layer class, whose call, step and state handling it
    keeps). ``_qweights[layer, d]``: (w_ih, w_hh, s_ih, s_hh) as stored."""

    def _set_quantized(self, quant_dtype, qweights):
        self.quant_dtype = quant_dtype
        self._qweights = qweights
        flat = np.array(self._flat, np.float32)
        views = self._per_direction(self._named_views(flat))
        for key, (wi, wh, si, sh) in qweights.items():
            views[key][0][...] = dequantize(wi, si)
            views[key][1][...] = dequantize(wh, sh)
        self._bind(flat)
        self._flat.flags.writeable = False

    def _pack(self, layer, d):
        wi, wh, si, sh = self._qweights[layer, d]
        _, _, b_ih, b_hh, w_peep = self._layer_views[layer, d]
        I, H = self._layer_sizes(layer)
        qt = _kernels.QTYPES[self.quant_dtype]
        packed = _aligned_bytes(_kernels.qpacked_bytes(self._cell.code, I, H, qt))
        _kernels.qrnn_pack(self._cell.code, qt, wi, wh, si, sh, b_ih, b_hh, w_peep, packed)
        return packed

    def _work(self, B, T, pass_, nt):
        return None          # the quantized kernel sizes its own small scratch

    def _forward_layers(self, inp, h0, c0, lengths, train, cache, h_n, c_n, work, recycled,
                        packs, dropout_mask, nt):
        if train:
            self._no_training()
        T, B, _ = inp.shape
        D, L = self.num_directions, self.num_layers
        code, qt = self._cell.code, _kernels.QTYPES[self.quant_dtype]
        act, gate = ACTIVATIONS[self.activation], GATE_ACTIVATIONS[self.gate_activation]
        for layer in range(L):
            H = self.hidden_sizes[layer]
            last = layer == L - 1
            out_bf = last and self.batch_first
            y = np.empty((B, T, D * H) if out_bf else (T, B, D * H), np.float32)
            for d in range(D):
                _kernels.qrnn_forward(code, act, gate, d == 1, qt, inp, packs[layer * D + d], H,
                                      None if h0[layer] is None else h0[layer][d],
                                      None if c0[layer] is None else c0[layer][d], lengths,
                                      y, d * H, h_n[layer][d],
                                      None if c_n is None else c_n[layer][d], out_bf, nt)
            if last:
                return y
            inp = y

    def __getstate__(self):
        state = super().__getstate__()
        state["_flat"] = np.array(self._flat)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._flat.flags.writeable = False

    def _no_training(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} ({self.quant_dtype}) runs inference only: "
                        "train the float32 model, then quantize it")

    forward = backward = _no_training
    load_state_dict = bind_parameters = load_keras_weights = _no_training

    def updating(self):
        self._no_training()

    def params_updated(self):
        self._no_training()

    def quantize(self, dtype):
        raise TypeError(f"this layer is already quantized ({self.quant_dtype}); quantize "
                        "the float32 layer")

    def to_onnx(self, *args, **kwargs):
        raise NotImplementedError(
            f"a {self.quant_dtype} layer does not export: ONNX's LSTM/GRU operators take "
            "float weights only. Export the float32 layer, or its dequantized weights "
            "(state_dict()) through a float32 layer")

    to_torch = to_onnx

    def __repr__(self):
        return super().__repr__()[:-1] + f", quantized={self.quant_dtype!r})"


def quantize_layer(layer, dtype):
    """A quantized inference-only copy of a float layer stack (LSTM or GRU)."""
    from .layers import GRU, LSTM
    _check_dtype(dtype)
    if isinstance(layer, _Quantized):
        layer.quantize(dtype)
    cls = QuantizedGRU if isinstance(layer, GRU) else QuantizedLSTM
    assert isinstance(layer, (LSTM, GRU))
    widest = max(layer.input_size, *(layer.num_directions * h for h in layer.hidden_sizes))
    if dtype == "int8" and widest > _kernels.INT8_MAX_WIDTH:
        raise ValueError(f"dtype='int8' takes input and hidden sizes up to "
                         f"{_kernels.INT8_MAX_WIDTH} (its integer dot products must stay "
                         f"below 2^31); this layer has {widest}: use 'bfloat16'")
    qweights = {}
    for key, (w_ih, w_hh, _, _, _) in layer._layer_views.items():
        wi, si = quantize_weights(w_ih, dtype)
        wh, sh = quantize_weights(w_hh, dtype)
        qweights[key] = (wi, wh, si, sh)
    return _build(cls, layer, dtype, qweights, np.array(layer._flat, np.float32))


def _build(cls, layer, dtype, qweights, flat):
    q = cls.__new__(cls)
    q.dropout = 0.0
    q._dropout_rng = None
    q._setup(layer.cell, layer.input_size, tuple(layer.hidden_sizes), layer.bidirectional,
             layer.activation, layer.gate_activation, "float32", layer._n_threads)
    q.batch_first = layer.batch_first
    q._bind(flat)
    q._set_quantized(dtype, qweights)
    return q


def _qstate(q):
    return {"quant_dtype": q.quant_dtype, "qweights": q._qweights}


# The classes: the float layer's API with the quantized kernels underneath.
from .layers import GRU as _GRU, LSTM as _LSTM   # noqa: E402


class QuantizedLSTM(_Quantized, _LSTM):
    """An LSTM stack with bfloat16 or int8 weights, for inference (``layer(x)``,
    ``init_state``/``step``); made by ``LSTM.quantize``."""


class QuantizedGRU(_Quantized, _GRU):
    """A GRU stack with bfloat16 or int8 weights, for inference; made by
    ``GRU.quantize``."""


def quantize_network(net, dtype):
    """A copy of a Network whose recurrent stack is quantized (head, embedding float32)."""
    from .network import Network
    q = Network.from_params(net.spec, net.params, net.n_threads, copy=True)
    qrec = quantize_layer(q.recurrent, dtype)
    _attach(q, qrec)
    return q


def _attach(net, qrec):
    """Make net compute with the quantized stack qrec (its params hold the dequantized weights)."""
    a, b = net._recurrent_range()
    net.params[a:b] = qrec._flat
    qrec._lock = net._lock
    net.recurrent = qrec
    net.quant_dtype = qrec.quant_dtype
    net._snapshot = None


def quantize_stored(net, dtype, qweights):
    """Make a Network built from dequantized params compute with stored quantized
    weights (pickle and model-file loading)."""
    from .layers import GRU
    _check_dtype(dtype)
    cls = QuantizedGRU if isinstance(net.recurrent, GRU) else QuantizedLSTM
    _attach(net, _build(cls, net.recurrent, dtype, qweights, np.array(net.recurrent._flat)))
