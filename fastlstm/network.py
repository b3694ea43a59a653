"""The network behind the estimators: embedding -> recurrent layers -> dense head.

All parameters live in ONE flat buffer (``Network.params``) and all gradients
in ONE mirror of it (``Network.grad``); every layer's parameters are views
into it (``layer.bind_parameters``), so the optimizer is one loop over one
array and a model file is one array.

Layout of the flat buffer, in order::

    embedding   (vocab_size, embedding_dim)     only with token-id input; row 0 is
                                                padding: kept at zero, never trained
    layer k     layer.flat_params of recurrent layer k (its own layout,
                layer.param_shapes), k = 0 .. len(hidden_sizes) - 1
    head.weight (n_outputs, F)                  F = D * hidden_sizes[-1]
    head.bias   (n_outputs,)

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

from ._limits import MAX_LAYERS, MAX_WIDTH

__all__ = ["Network", "loss_and_grad", "LOSSES", "build_spec"]

CELLS = ("lstm", "peephole", "cifg", "gru")
ACTIVATIONS = ("tanh", "relu")
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
LOSSES = ("mse", "mae", "huber", "binary_log_loss", "log_loss")

_SPEC_KEYS = (
    "input_size", "vocab_size", "embedding_dim", "hidden_sizes", "cell",
    "activation", "gate_activation", "bidirectional", "dropout", "n_outputs",
    "sequence_output", "dtype",
)


def build_spec(input_size, hidden_sizes, n_outputs, *, cell="lstm", activation="tanh",
               gate_activation="sigmoid", bidirectional=False, dropout=0.0,
               vocab_size=None, embedding_dim=None, sequence_output=False,
               dtype="float32"):
    """A plain dict (JSON-able) that fully describes a network's architecture."""
    spec = dict(
        input_size=None if embedding_dim is not None else int(input_size),
        vocab_size=None if vocab_size is None else int(vocab_size),
        embedding_dim=None if embedding_dim is None else int(embedding_dim),
        hidden_sizes=[int(h) for h in hidden_sizes],
        cell=str(cell),
        activation=str(activation),
        gate_activation=str(gate_activation),
        bidirectional=bool(bidirectional),
        dropout=float(dropout),
        n_outputs=int(n_outputs),
        sequence_output=bool(sequence_output),
        dtype=np.dtype(dtype).name,
    )
    check_spec(spec)
    return spec


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_spec(spec):
    """Validate a spec dict (types and ranges); raises ValueError."""
    if not isinstance(spec, dict) or set(spec) != set(_SPEC_KEYS):
        raise ValueError(f"network spec must have exactly the keys {sorted(_SPEC_KEYS)}")
    emb = spec["embedding_dim"]
    if emb is None:
        if not _is_int(spec["input_size"]) or not 1 <= spec["input_size"] <= MAX_WIDTH:
            raise ValueError(f"input_size must be an int in [1, {MAX_WIDTH}], "
                             f"got {spec['input_size']!r}")
        if spec["vocab_size"] is not None:
            raise ValueError("vocab_size is only used with embedding_dim")
    else:
        if not _is_int(emb) or not 1 <= emb <= MAX_WIDTH:
            raise ValueError(f"embedding_dim must be an int in [1, {MAX_WIDTH}], got {emb!r}")
        if not _is_int(spec["vocab_size"]) or spec["vocab_size"] < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {spec['vocab_size']!r}")
        if spec["input_size"] is not None:
            raise ValueError("input_size must be None with embedding_dim")
    hs = spec["hidden_sizes"]
    if not isinstance(hs, (list, tuple)) or not 1 <= len(hs) <= MAX_LAYERS or not all(
            _is_int(h) and 1 <= h <= MAX_WIDTH for h in hs):
        raise ValueError(f"hidden_sizes must be a list of 1 to {MAX_LAYERS} ints in "
                         f"[1, {MAX_WIDTH}], got {hs!r}")
    for key, choices in (("cell", CELLS), ("activation", ACTIVATIONS),
                         ("gate_activation", GATE_ACTIVATIONS), ("dtype", ("float32", "float64"))):
        if spec[key] not in choices:
            raise ValueError(f"{key} must be one of {choices}, got {spec[key]!r}")
    for key in ("bidirectional", "sequence_output"):
        if not isinstance(spec[key], (bool, np.bool_)):
            raise ValueError(f"{key} must be a bool, got {spec[key]!r}")
    p = spec["dropout"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 <= p < 1.0):
        raise ValueError(f"dropout must be a float in [0, 1), got {p!r}")
    if not _is_int(spec["n_outputs"]) or not 1 <= spec["n_outputs"] <= MAX_WIDTH:
        raise ValueError(f"n_outputs must be an int in [1, {MAX_WIDTH}], "
                         f"got {spec['n_outputs']!r}")


def buffer_layout(spec):
    """[(name, shape)] of the flat parameter buffer, in order: computed from the
    spec alone (nothing is allocated), so a model file's array can be checked
    against its config before anything is built."""
    from .layers import param_shapes

    D = 2 if spec["bidirectional"] else 1
    layout = []
    if spec["embedding_dim"] is not None:
        layout.append(("embedding", (spec["vocab_size"], spec["embedding_dim"])))
        inp = spec["embedding_dim"]
    else:
        inp = spec["input_size"]
    for k, h in enumerate(spec["hidden_sizes"]):
        n = sum(math.prod(shape) for _, shape in
                param_shapes(spec["cell"], inp, h, 1, spec["bidirectional"]))
        layout.append((f"layer{k}", (n,)))
        inp = D * h
    layout += [("head.weight", (spec["n_outputs"], inp)), ("head.bias", (spec["n_outputs"],))]
    return layout


def param_count(spec):
    """Length of the flat parameter buffer of this architecture."""
    return sum(math.prod(shape) for _, shape in buffer_layout(spec))


def _layer_classes():
    # imported lazily: building the estimator layer does not load the kernels
    from .layers import GRU, LSTM

    return LSTM, GRU


def _final_h(state):
    """h_n from a layer's returned state: (h_n, c_n) for LSTM cells, h_n for GRU."""
    return state[0] if isinstance(state, tuple) else state


class Network:
    """Embedding (optional) -> stacked recurrent layers -> dense head.

    Parameters
    ----------
    spec : dict from :func:`build_spec`.
    seed : int, seeds every layer's initialisation (and the head's and the
        embedding's), so two networks built from the same seed are identical.
    n_threads : passed to the recurrent layers.
    """

    def __init__(self, spec, seed=0, n_threads=None):
        check_spec(spec)
        self.spec = dict(spec)
        self.dtype = np.dtype(spec["dtype"])
        self.n_threads = n_threads
        children = np.random.SeedSequence(int(seed)).spawn(len(spec["hidden_sizes"]) + 2)
        layer_seeds = [int(c.generate_state(1)[0]) for c in children[:-2]]
        self._allocate(np.zeros(param_count(self.spec), self.dtype))
        self.layers = self._make_layers(layer_seeds)
        # initial values: layers keep their own initialisation (bind copies it
        # in); embedding uniform(-0.05, 0.05) like Keras, head Glorot uniform
        init_rng = np.random.default_rng(children[-1])
        if self.embedding is not None:
            self.embedding[...] = init_rng.uniform(-0.05, 0.05, self.embedding.shape)
            self.embedding[0] = 0.0
        K, F = self.head_weight.shape
        limit = np.sqrt(6.0 / (K + F))
        self.head_weight[...] = init_rng.uniform(-limit, limit, (K, F))
        self.head_bias[...] = 0.0

    # ------------------------------------------------------------ construction

    def _allocate(self, params):
        """Use ``params`` (1-D, the spec's size) as the flat buffer; views into it."""
        self.params = params
        self._grad = None
        self.slices = {}
        off = 0
        for name, shape in buffer_layout(self.spec):
            n = math.prod(shape)
            self.slices[name] = (off, off + n, shape)
            off += n
        self.embedding = self._view(self.params, "embedding")
        self.head_weight = self._view(self.params, "head.weight")
        self.head_bias = self._view(self.params, "head.bias")
        self._lock = threading.RLock()
        self._snapshot = None

    def _make_layers(self, seeds=None):
        """The recurrent layers, bound to their slices of ``self.params``: initialised
        from ``seeds`` (the values are copied in), or with ``seeds=None`` computing
        with the values already in the buffer (a loaded model: no initialisation)."""
        LSTM, GRU = _layer_classes()
        spec = self.spec
        D = 2 if spec["bidirectional"] else 1
        inp = spec["embedding_dim"] if spec["embedding_dim"] is not None else spec["input_size"]
        layers = []
        for k, h in enumerate(spec["hidden_sizes"]):
            a, b, _ = self.slices[f"layer{k}"]
            kw = dict(num_layers=1, bidirectional=spec["bidirectional"],
                      activation=spec["activation"], gate_activation=spec["gate_activation"],
                      dropout=0.0, dtype=spec["dtype"], n_threads=self.n_threads,
                      random_state=None if seeds is None else seeds[k],
                      _storage=self.params[a:b] if seeds is None else None)
            if spec["cell"] == "gru":
                layer = GRU(inp, h, **kw)
            else:
                layer = LSTM(inp, h, cell=spec["cell"], **kw)
            layer.bind_parameters(self.params[a:b], lock=self._lock, copy=seeds is not None)
            layers.append(layer)
            inp = D * h
        return layers

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

        Inference packs each layer's weights and copies the head once per
        change, all under the same lock, and a call uses one such snapshot
        throughout: a predict running in another thread sees the weights
        before or after the change, never a mix.
        """
        with self._lock:
            try:
                yield
            finally:
                self._snapshot = None
                for layer in self.layers:
                    layer._packs = None

    def _inference_snapshot(self):
        """(per-layer packed weights, head weight, head bias) of one parameter version;
        call with ``self._lock`` held."""
        snap = self._snapshot
        if snap is None:
            snap = self._snapshot = ([layer._inference_packs() for layer in self.layers],
                                     self.head_weight.copy(), self.head_bias.copy())
        return snap

    @property
    def n_params(self):
        return self.params.size

    def set_n_threads(self, n_threads):
        """Use another OpenMP thread count from now on (parameters untouched)."""
        if n_threads == self.n_threads:
            return
        from ._threads import effective_n_threads

        resolved = effective_n_threads(n_threads)
        for layer in self.layers:
            layer.n_threads = resolved
        self.n_threads = n_threads

    def __getstate__(self):
        # the layers hold views into self.params; pickle the flat buffer and
        # rebuild the views on load instead of pickling them as copies
        return {"spec": self.spec, "params": self.params, "n_threads": self.n_threads}

    def __setstate__(self, state):
        net = Network.from_params(state["spec"], state["params"], state["n_threads"], copy=False)
        self.__dict__.update(net.__dict__)

    @classmethod
    def from_params(cls, spec, params, n_threads=None, copy=True):
        """A network computing with a flat parameter array (checked against the spec).

        Nothing is initialised: the layers are views into the array. With
        ``copy=False`` a C-contiguous, writeable array of the spec's dtype is
        used as the buffer itself (the loader's fresh array: no second copy).
        """
        check_spec(spec)
        net = cls.__new__(cls)
        net.spec = dict(spec)
        net.dtype = np.dtype(spec["dtype"])
        net.n_threads = n_threads
        n = param_count(net.spec)
        if not isinstance(params, np.ndarray) or params.shape != (n,):
            raise ValueError(f"params has shape {np.shape(params)}, but this architecture "
                             f"has {n} parameters")
        usable = (params.dtype == net.dtype and params.flags.c_contiguous
                  and params.flags.writeable and params.flags.aligned)
        net._allocate(params if usable and not copy else np.array(params, net.dtype))
        net.layers = net._make_layers()
        return net

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
        B, T = X.shape[0], X.shape[1]
        p = spec["dropout"] if train else 0.0
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
        caches, masks = [], []
        y = state = None
        for k, layer in enumerate(self.layers):
            if train:
                old = reuse["caches"][k] if reuse is not None else None
                y, state, cache = layer.forward(inp, None, klen, train=True, reuse=old)
                caches.append(cache)
            else:
                y, h_n, c_n, _ = layer._forward(inp, None, None, klen, False, packs=packs[k])
                state = h_n if c_n is None else (h_n, c_n)
            if k < len(self.layers) - 1:
                m = self._dropout_mask(rng, y.shape, p)
                masks.append(m)
                inp = y if m is None else y * m
        if spec["sequence_output"]:
            feat = y  # (B, T, F), zero past each length
        else:
            h_n = _final_h(state)  # (D, B, H)
            feat = h_n[0] if h_n.shape[0] == 1 else np.concatenate([h_n[0], h_n[1]], axis=1)
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
        cache = dict(X=X, klen=klen, empty=empty, caches=caches, masks=masks,
                     feat=feat, head_mask=head_mask, B=B, T=T, y_shape=y.shape)
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
        LSTM, GRU = _layer_classes()
        if spec["sequence_output"]:
            dy, dh_n = dfeat, None
        else:
            if cache["empty"] is not None:
                dfeat[cache["empty"]] = 0.0
            dy = None  # the head reads h_n only
            D = 2 if spec["bidirectional"] else 1
            H = F // D
            dh_n = np.ascontiguousarray(dfeat.reshape(dfeat.shape[0], D, H).transpose(1, 0, 2))
        dx = None
        for k in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[k]
            a, b, _ = self.slices[f"layer{k}"]
            need_dx = k > 0 or self.embedding is not None
            g = layer.backward(cache["caches"][k], dy, dh_n=dh_n, grad_out=self.grad[a:b],
                               need_dx=need_dx)
            dx = g["x"]
            if k > 0:
                m = cache["masks"][k - 1]
                dy = dx if m is None else dx * m
                dh_n = None
        if self.embedding is not None:
            gE = self._view(self.grad, "embedding")
            gE[...] = 0.0
            X = cache["X"]
            np.add.at(gE, X.reshape(-1), dx.reshape(-1, gE.shape[1]))
            gE[0] = 0.0  # padding row stays zero
        return self.grad

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
            if self.spec["sequence_output"] and out.shape[1] < X.shape[1]:
                pad = np.zeros((out.shape[0], X.shape[1] - out.shape[1], out.shape[2]), out.dtype)
                out = np.concatenate([out, pad], axis=1)
            outs.append(out)
        out = np.concatenate(outs, axis=0)
        if self.spec["sequence_output"] and lengths is not None:
            out[np.arange(out.shape[1])[None, :] >= lengths[:, None]] = 0.0
        return out


# ---------------------------------------------------------------- losses


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def loss_and_grad(loss, out, target, mask=None):
    """Mean loss over real elements and its gradient w.r.t. ``out``.

    out : (B, K) or (B, T, K) network outputs (logits for the log-losses).
    target : same shape as out for mse/mae/huber/binary_log_loss (binary:
        0/1 values); class indices (B,) or (B, T) ints for ``log_loss``.
    mask : None, or (B, T) bool of real steps (sequence outputs).

    The mean is over samples (and real steps) and, for the regression
    losses, over outputs. Returns (loss as a Python float, dout like out).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite losses are the caller's
        return _loss_and_grad(loss, out, target, mask)


def _loss_and_grad(loss, out, target, mask):
    dtype = out.dtype
    w = None if mask is None else mask.astype(dtype)[..., None]
    # rows = samples (and time steps): every axis but the last
    n_rows = math.prod(out.shape[:-1]) if mask is None else float(mask.sum())
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
