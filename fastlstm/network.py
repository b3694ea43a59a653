"""The network behind the estimators: embedding -> recurrent layers -> dense head.

All parameters live in ONE flat buffer (``Network.params``) and all gradients
in ONE mirror of it (``Network.grad``); the recurrent stack (one
``fastlstm.LSTM`` or ``GRU`` object running every layer, ``Network.recurrent``)
and the head are views into it, so the optimizer is one loop over one array
and a model file is one array. The layout is ``NetworkSpec.param_shapes()``:
the embedding (token-id input only; row 0 is padding, kept at zero), the
recurrent layers under PyTorch's names, ``head.weight`` (K, F), ``head.bias``.

Shapes in this module: B batch, T time steps, I input features per step,
H hidden units, D = 2 if bidirectional else 1, F = D * H of the last layer,
K outputs.

Dropout (train mode only) multiplies the output of every recurrent layer,
including the last one where it feeds the head, by an inverted-dropout mask
(0 or 1 / (1 - p)), as a Keras stack ``LSTM -> Dropout -> LSTM -> Dropout ->
Dense`` does. The masks come from the caller's numpy Generator, so training is
reproducible from one seed.

Head input ("last" mode): the final hidden state of the last layer, h_n,
which for the forward direction is the output at each sequence's last real
step; bidirectional layers concatenate [forward h_n, reverse h_n] (the
reverse direction's final state is its output at t = 0), as Keras'
``Bidirectional(LSTM(...))`` does without ``return_sequences``.
("sequence" mode): the whole output sequence (B, T, F); steps past a
sequence's length are zero there and excluded from the loss.
"""

import contextlib
import math
import threading

import numpy as np

from .spec import NetworkSpec, layer_param_shapes, param_count

__all__ = ["Network", "loss_and_grad", "LOSSES"]

LOSSES = ("mse", "mae", "huber", "binary_log_loss", "log_loss", "quantile")


def _layer_class(cell):
    # imported lazily: building the estimator layer does not load the kernels
    from .layers import layer_class

    return layer_class(cell)


class Network:
    """Embedding (optional) -> stacked recurrent layers -> dense head.

    Parameters
    ----------
    spec : :class:`fastlstm.spec.NetworkSpec`.
    seed : int, seeds every layer's initialisation (and the head's and the
        embedding's), so two networks built from the same seed are identical.
    n_threads : passed to the recurrent layers.
    """

    def __init__(self, spec, seed=0, n_threads=None):
        if not isinstance(spec, NetworkSpec):
            raise TypeError(f"spec must be a NetworkSpec, got {type(spec).__name__}")
        from .layers import uniform_init

        self._build(spec, np.zeros(spec.param_count(), np.dtype(spec.dtype)), n_threads)
        # initial values: each recurrent layer PyTorch's uniform(-1/sqrt(H), 1/sqrt(H))
        # from a seed of its own; embedding uniform(-0.05, 0.05) like Keras, head
        # Glorot uniform
        children = np.random.SeedSequence(int(seed)).spawn(len(spec.hidden_sizes) + 2)
        off, in_size = 0, spec.recurrent_input_size
        for k, H in enumerate(spec.hidden_sizes):
            n = param_count(layer_param_shapes(spec.cell, in_size, (H,), spec.bidirectional))
            layer_seed = np.random.SeedSequence(int(children[k].generate_state(1)[0])).spawn(2)[0]
            self.recurrent._flat[off:off + n] = uniform_init(layer_seed, H, n, self.dtype)
            off, in_size = off + n, spec.num_directions * H
        init_rng = np.random.default_rng(children[-1])
        if self.embedding is not None:
            self.embedding[...] = init_rng.uniform(-0.05, 0.05, self.embedding.shape)
            self.embedding[0] = 0.0
        K, F = self.head_weight.shape
        limit = np.sqrt(6.0 / (K + F))
        self.head_weight[...] = init_rng.uniform(-limit, limit, (K, F))
        self.head_bias[...] = 0.0

    @classmethod
    def from_params(cls, spec, params, n_threads=None, copy=True):
        """A network computing with a flat parameter array (checked against the spec).

        Nothing is initialised: the layers are views into the array. With
        ``copy=False`` a C-contiguous, writeable array of the spec's dtype is
        used as the buffer itself (the loader's fresh array: no second copy).
        """
        if not isinstance(spec, NetworkSpec):
            raise TypeError(f"spec must be a NetworkSpec, got {type(spec).__name__}")
        n = spec.param_count()
        dtype = np.dtype(spec.dtype)
        if not isinstance(params, np.ndarray) or params.shape != (n,):
            raise ValueError(f"params has shape {np.shape(params)}, but this architecture "
                             f"has {n} parameters")
        usable = (params.dtype == dtype and params.flags.c_contiguous
                  and params.flags.writeable and params.flags.aligned)
        net = cls.__new__(cls)
        net._build(spec, params if usable and not copy else np.array(params, dtype), n_threads)
        return net

    # ------------------------------------------------------------ construction

    def _build(self, spec, params, n_threads):
        """Use ``params`` (1-D, the spec's size) as the flat buffer: the embedding,
        the recurrent stack and the head are views into it."""
        self.spec = spec
        self.dtype = np.dtype(spec.dtype)
        self.n_threads = n_threads
        self.params = params
        self._grad = None
        self.slices = {}
        off = 0
        for name, shape in spec.param_shapes():
            n = math.prod(shape)
            self.slices[name] = (off, off + n, shape)
            off += n
        self.embedding = self._view(self.params, "embedding")
        self.head_weight = self._view(self.params, "head.weight")
        self.head_bias = self._view(self.params, "head.bias")
        self._lock = threading.RLock()
        self._snapshot = None
        a, b = self._recurrent_range()
        self.recurrent = _layer_class(spec.cell)._stack(
            spec.cell, spec.recurrent_input_size, spec.hidden_sizes, spec.bidirectional,
            spec.activation, spec.gate_activation, spec.dtype, n_threads, params[a:b], self._lock)

    def _recurrent_range(self):
        """[a, b) of the recurrent layers' parameters in the flat buffer."""
        a = self.slices["embedding"][1] if "embedding" in self.slices else 0
        return a, self.slices["head.weight"][0]

    @property
    def grad(self):
        """The flat gradient buffer, shaped like ``params``; allocated on first use
        (a model that only predicts never needs it)."""
        if self._grad is None:
            self._grad = np.zeros_like(self.params)
        return self._grad

    def _view(self, buf, name):
        if name not in self.slices:
            return None
        a, b, shape = self.slices[name]
        return buf[a:b].reshape(shape)

    @contextlib.contextmanager
    def updating(self):
        """Hold while changing ``self.params`` in place (an optimizer step,
        restoring or loading weights).

        Inference packs the recurrent weights and copies the head once per
        change, all under the same lock, and a call uses one such snapshot
        throughout: a predict running in another thread sees the weights
        before or after the change, never a mix.
        """
        with self._lock:
            try:
                yield
            finally:
                self._snapshot = None
                self.recurrent._packs = None

    def _inference_snapshot(self):
        """(packed recurrent weights, head weight, head bias) of one parameter version;
        call with ``self._lock`` held."""
        snap = self._snapshot
        if snap is None:
            snap = self._snapshot = (self.recurrent._inference_packs(),
                                     self.head_weight.copy(), self.head_bias.copy())
        return snap

    @property
    def n_params(self):
        return self.params.size

    def set_n_threads(self, n_threads):
        """Use another OpenMP thread count from now on (parameters untouched)."""
        if n_threads == self.n_threads:
            return
        self.recurrent.n_threads = n_threads
        self.n_threads = n_threads

    def with_dropout(self, dropout):
        """Train with another dropout rate from now on (the architecture is unchanged)."""
        self.spec = self.spec.replace(dropout=dropout)

    def __getstate__(self):
        # the layers hold views into self.params; pickle the flat buffer and
        # rebuild the views on load instead of pickling them as copies
        state = {"spec": self.spec.to_json(), "params": self.params, "n_threads": self.n_threads}
        if getattr(self, "quant_dtype", None):
            from .quantize import _qstate
            state["quant"] = _qstate(self.recurrent)
        return state

    def __setstate__(self, state):
        self._build(NetworkSpec.from_json(state["spec"]), state["params"], state["n_threads"])
        if state.get("quant"):
            from .quantize import quantize_stored
            quantize_stored(self, state["quant"]["quant_dtype"], state["quant"]["qweights"])

    # ------------------------------------------------------------ forward

    def forward(self, X, lengths=None, train=False, rng=None, reuse=None):
        """Forward one batch.

        X : (B, T, I) floats of the network dtype, or (B, T) int token ids
            (real tokens first, 0 after them) with an embedding.
        lengths : (B,) int64 in [0, T] or None (all T). Length 0 (no real
            token) gives the head a zero state, as a fully masked Keras input.
        train : dropout on, and a cache for :meth:`backward` is returned.
        rng : numpy Generator for the dropout masks (train mode).
        reuse : a cache from an earlier training forward that is no longer
            needed; the layers recycle its activation memory.

        Returns (out, cache): out (B, K) or (B, T, K); cache None unless train.
        """
        spec = self.spec
        T = X.shape[1]
        p = spec.dropout if train else 0.0
        empty = None
        klen = None
        if lengths is not None:
            lengths = np.asarray(lengths, dtype=np.int64)
            if np.any(lengths == 0):
                empty = lengths == 0
            klen = np.maximum(lengths, 1)
            if np.all(klen == T):
                klen = None
        if train:
            # training reads the live parameters: the trainer is their only writer
            packs, W, b = None, self.head_weight, self.head_bias
            inp = X if self.embedding is None else self.embedding[X]  # (B, T, E), a new array
        else:
            with self._lock:
                packs, W, b = self._inference_snapshot()
                inp = X if self.embedding is None else self.embedding[X]

        def between_layers(k, shape):
            # drawn batch-first (B, T, F) from the caller's generator; the
            # layers run time-major (T, B, F)
            m = self._dropout_mask(rng, (shape[1], shape[0], shape[2]), p)
            return None if m is None else m.transpose(1, 0, 2)

        y, h_n, _, _, _, rcache = self.recurrent._forward(
            inp, None, None, klen, train, reuse=None if reuse is None else reuse["recurrent"],
            packs=packs, dropout_mask=between_layers if p > 0 else None)
        if spec.sequence_output:
            feat = y  # (B, T, F), zero past each length
        else:
            h_last = h_n[-1]  # (D, B, H)
            feat = h_last[0] if h_last.shape[0] == 1 else np.concatenate([h_last[0], h_last[1]],
                                                                         axis=1)
            if empty is not None:
                feat = feat.copy()
                feat[empty] = 0.0
        head_mask = self._dropout_mask(rng, feat.shape, p)
        if head_mask is not None:
            feat = feat * head_mask
        F = W.shape[1]
        out = (feat.reshape(-1, F) @ W.T + b).reshape(feat.shape[:-1] + (W.shape[0],))
        if not train:
            return out, None
        cache = dict(X=X, empty=empty, recurrent=rcache, feat=feat, head_mask=head_mask)
        return out, cache

    def _dropout_mask(self, rng, shape, p):
        if p <= 0.0:
            return None
        keep = 1.0 - p
        m = rng.random(shape) < keep
        return m.astype(self.dtype) * self.dtype.type(1.0 / keep)

    # ------------------------------------------------------------ backward

    def backward(self, cache, dout):
        """Backward one batch; writes every parameter gradient into ``self.grad``.

        dout : gradient of the loss w.r.t. ``out`` (same shape as out).
        """
        spec = self.spec
        dout = np.asarray(dout, dtype=self.dtype)
        W = self.head_weight
        K, F = W.shape
        feat = cache["feat"]
        d2 = dout.reshape(-1, K)
        f2 = feat.reshape(-1, F)
        gW = self._view(self.grad, "head.weight")
        gb = self._view(self.grad, "head.bias")
        np.matmul(d2.T, f2, out=gW)
        np.sum(d2, axis=0, out=gb)
        dfeat = (d2 @ W).reshape(feat.shape)
        if cache["head_mask"] is not None:
            dfeat *= cache["head_mask"]
        L = len(spec.hidden_sizes)
        dh_n = [None] * L
        if spec.sequence_output:
            dy = dfeat
        else:
            if cache["empty"] is not None:
                dfeat[cache["empty"]] = 0.0
            dy = None  # the head reads the last layer's h_n only
            D = spec.num_directions
            dh_n[-1] = np.ascontiguousarray(
                dfeat.reshape(dfeat.shape[0], D, F // D).transpose(1, 0, 2))
        a, b = self._recurrent_range()
        dx, _, _, _ = self.recurrent._backward(cache["recurrent"], dy, dh_n, [None] * L,
                                               self.grad[a:b], need_dx=self.embedding is not None)
        if self.embedding is not None:
            gE = self._view(self.grad, "embedding")
            gE[...] = 0.0
            X = cache["X"]
            np.add.at(gE, X.reshape(-1), dx.reshape(-1, gE.shape[1]))
            gE[0] = 0.0  # padding row stays zero
        return self.grad

    # ------------------------------------------------------------ streaming

    def init_state(self, n_streams=1):
        return self.recurrent.init_state(n_streams)

    def step(self, x_t, state, streams=None):
        """One time step of ``state``'s streams (``streams``: which rows; default
        all): x_t (n, I) floats, or (n,) token ids with an embedding. Updates the
        state in place; returns out (n, K), what ``forward`` gives for sequences
        that end at this step."""
        with self._lock:
            packs, W, b = self._inference_snapshot()
            inp = x_t if self.embedding is None else self.embedding[x_t]
        self.recurrent._stream(inp, state, streams, packs)
        idx = state._rows(streams)
        feat = state.h[-1] if idx is None else state.h[-1][idx]   # (n, H): D = 1
        return feat @ W.T + b

    # ------------------------------------------------------------ inference

    def predict_raw(self, X, lengths=None, chunk=2048):
        """Forward in eval mode over chunks of rows; returns out (n, K) or (n, T, K)."""
        n = X.shape[0]
        outs = []
        for s in range(0, n, chunk):
            Xc = X[s:s + chunk]
            lc = None
            if lengths is not None:
                lc = lengths[s:s + chunk]
                Tc = max(int(lc.max()), 1)
                Xc = Xc[:, :Tc]
            out, _ = self.forward(Xc, lc, train=False)
            if self.spec.sequence_output and out.shape[1] < X.shape[1]:
                pad = np.zeros((out.shape[0], X.shape[1] - out.shape[1], out.shape[2]), out.dtype)
                out = np.concatenate([out, pad], axis=1)
            outs.append(out)
        out = np.concatenate(outs, axis=0)
        if self.spec.sequence_output and lengths is not None:
            out[np.arange(out.shape[1])[None, :] >= lengths[:, None]] = 0.0
        return out


# ---------------------------------------------------------------- losses


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def loss_and_grad(loss, out, target, mask=None, sample_weight=None, quantiles=None):
    """Mean loss over real elements and its gradient w.r.t. ``out``.

    out : (B, K) or (B, T, K) network outputs (logits for the log-losses).
    target : same shape as out for mse/mae/huber/binary_log_loss (binary:
        0/1 values); class indices (B,) or (B, T) ints for ``log_loss``;
        for ``quantile``, (B, K/Q) or (B, T, K/Q): one value per Q outputs.
    mask : None, or (B, T) bool of real steps (sequence outputs).
    sample_weight : None, or (B,) non-negative weights of the samples.
    quantiles : the Q probabilities of the ``quantile`` (pinball) loss.
        Output ``k*Q + j`` is quantile ``quantiles[j]`` of target ``k``;
        with r = target - output the loss is max(q r, (q - 1) r), whose
        gradient w.r.t. the output is -q where r > 0 and 1 - q where r < 0
        (1/2 - q, the middle of the subgradient, where r = 0).

    The mean is over samples (and real steps) and, for the regression
    losses, over outputs (for ``quantile``: over targets and quantiles);
    with weights it is the weighted mean sum(w * loss) / sum(w) (a sample's
    weight applies to each of its steps). Returns (loss as a Python float,
    dout like out).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite losses are the caller's
        return _loss_and_grad(loss, out, target, mask, sample_weight, quantiles)


def _pinball(out, target, q, w):
    """Elementwise pinball loss and gradient, shaped like out (..., K)."""
    Q = q.shape[0]
    K = out.shape[-1]
    if K % Q:
        raise ValueError(f"quantile loss: {K} outputs are not a multiple of {Q} quantiles")
    o = out.reshape(out.shape[:-1] + (K // Q, Q))
    r = target[..., None] - o
    el = np.maximum(q * r, (q - 1.0) * r)
    g = np.where(r > 0, -q, np.where(r < 0, 1.0 - q, 0.5 - q)).astype(out.dtype)
    if w is not None:
        el = el * w[..., None]
        g = g * w[..., None]
    return el.reshape(out.shape), g.reshape(out.shape)


def _row_weights(out, mask, sample_weight):
    """(weights of the rows (B,) or (B, T), or None, and the number of rows they count)."""
    dtype = out.dtype
    if sample_weight is None:
        # rows = samples (and time steps): every axis but the last
        w = None if mask is None else mask.astype(dtype)
        return w, math.prod(out.shape[:-1]) if mask is None else float(mask.sum())
    w = np.asarray(sample_weight, dtype=dtype)
    if out.ndim == 3:
        w = np.broadcast_to(w[:, None], out.shape[:2])
        if mask is not None:
            w = w * mask.astype(dtype)
    return w, float(np.sum(w, dtype=np.float64))


def _loss_and_grad(loss, out, target, mask, sample_weight, quantiles=None):
    dtype = out.dtype
    w, n_rows = _row_weights(out, mask, sample_weight)
    if w is not None:
        w = w[..., None]
    if n_rows == 0:
        return 0.0, np.zeros_like(out)
    if loss in ("mse", "mae", "huber", "binary_log_loss"):
        denom = n_rows * out.shape[-1]
        diff = out - target
        if loss == "mse":
            el = diff * diff
            g = 2.0 * diff
        elif loss == "mae":
            el = np.abs(diff)
            g = np.sign(diff)
        elif loss == "huber":  # delta = 1, as Keras' and PyTorch's defaults
            a = np.abs(diff)
            el = np.where(a <= 1.0, 0.5 * diff * diff, a - 0.5)
            g = np.clip(diff, -1.0, 1.0)
        else:
            z = out
            el = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
            g = _sigmoid(z).astype(dtype) - target
        if w is not None:
            el = el * w
            g = g * w
        value = float(np.sum(el, dtype=np.float64)) / denom
        return value, (g / denom).astype(dtype, copy=False)
    if loss == "quantile":
        if quantiles is None:
            raise ValueError("the quantile loss needs quantiles")
        el, g = _pinball(out, target, np.asarray(quantiles, dtype=dtype), w)
        denom = n_rows * out.shape[-1]
        value = float(np.sum(el, dtype=np.float64)) / denom
        return value, (g / denom).astype(dtype, copy=False)
    if loss == "log_loss":
        z = out - out.max(axis=-1, keepdims=True)
        ez = np.exp(z)
        s = ez.sum(axis=-1, keepdims=True)
        logp = z - np.log(s)
        idx = np.asarray(target, dtype=np.int64)[..., None]
        el = -np.take_along_axis(logp, idx, axis=-1)
        g = ez / s
        np.put_along_axis(g, idx, np.take_along_axis(g, idx, axis=-1) - 1.0, axis=-1)
        if w is not None:
            el = el * w
            g = g * w
        value = float(np.sum(el, dtype=np.float64)) / n_rows
        return value, (g / n_rows).astype(dtype, copy=False)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
