"""numpy-in, numpy-out recurrent layers on the C kernels: ``LSTM`` and ``GRU``.

A layer holds its parameters in one flat buffer; each PyTorch-named weight is
a view into it, so an optimizer updates everything with one loop and a
network can bind several layers into one larger buffer. Inputs are
batch-first (B, T, I) as users pass them; internally sequences are
time-major (T, B, .), so each direction of a bidirectional layer writes its
half of one output array and stacked layers feed each other without copies.
"""
import contextlib
import math
import threading

import numpy as np

from . import _kernels
from ._limits import MAX_LAYERS, MAX_WIDTH
from ._threads import effective_n_threads
from ._threads import give as give_threads
from ._threads import take as take_threads
from ._validation import Bool, Choice, DType, Int, Real
from .spec import (ACTIVATIONS, CELLS, GATE_ACTIVATIONS, direction_suffix, layer_param_shapes,
                   param_count)

__all__ = ["LSTM", "GRU", "StreamState"]

_INPUT_SIZE = Int(1, MAX_WIDTH)
_NUM_LAYERS = Int(1, MAX_LAYERS)
_DROPOUT = Real(0.0, 1.0, high_open=True)
_ACTIVATION = Choice(ACTIVATIONS)
_GATE_ACTIVATION = Choice(GATE_ACTIVATIONS)
_DTYPE = DType()
_N_STREAMS = Int(1)


def uniform_init(seed, hidden_size, size, dtype):
    """PyTorch's default initialisation of a recurrent layer: every parameter
    uniform in [-1/sqrt(H), 1/sqrt(H)], drawn in float64 from ``seed`` (a
    SeedSequence or int) and rounded to ``dtype``."""
    k = 1.0 / np.sqrt(hidden_size)
    init = np.random.default_rng(seed).uniform(-k, k, size)
    return np.ascontiguousarray(init, dtype=dtype)


def _float_array(name, value, dtype, ndim, shape=None):
    """Cast value to a C-contiguous array of dtype, with clear errors for bad input."""
    # the common case (a serving call's x and states) in one C call
    status = _kernels.array_status(value, dtype.itemsize == 8, ndim)
    if status == 1 and (shape is None or value.shape == shape):
        return value
    if status == -1:
        raise ValueError(f"{name} contains NaN or infinity")
    if hasattr(value, "detach") and hasattr(value, "cpu"):      # a torch tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype != dtype:
        with np.errstate(over="ignore"):       # float64 beyond float32's range -> inf, caught below
            arr = np.ascontiguousarray(arr, dtype=dtype)
    else:
        arr = np.ascontiguousarray(arr)
    if not arr.flags.aligned:              # np.frombuffer at an odd offset: C wants aligned data
        arr = arr.copy()
    if not _kernels.all_finite(arr):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


class _Cache:
    """What a training forward pass keeps for backward."""
    __slots__ = ("inputs", "layers", "lengths", "masks", "shape", "dtype", "layer_id")

    @property
    def dropout_masks(self):
        """Masks applied between layers, batch-first (B, T, D*H), already scaled by 1/(1-p)."""
        return [None if m is None else m.transpose(1, 0, 2) for m in self.masks]


class _Workspace:
    """Kernel scratch memory kept between calls, so steady-state calls neither
    allocate nor fault in fresh pages. One caller at a time holds it; a
    concurrent caller (another thread) gets None and the kernel allocates."""

    def __init__(self):
        self._lock = threading.Lock()
        self._buf = None

    def acquire(self, nbytes):
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._buf is None or self._buf.size < nbytes:
                self._buf = None                      # let the old one go first
                raw = np.empty(nbytes + 64, np.uint8)
                offset = (-raw.ctypes.data) % 64      # the kernels want 64-byte alignment
                self._buf = raw[offset:offset + nbytes]
        except BaseException:      # MemoryError, KeyboardInterrupt: never keep the lock
            self._lock.release()
            raise
        return self._buf

    def release(self, buf):
        if buf is not None:
            self._lock.release()


class StreamState:
    """The recurrent state of n independent streams, for ``step``: ``h`` (and ``c``
    for LSTM cells), one (n, H_k) array per layer. ``step`` updates it in place.
    """
    __slots__ = ("h", "c")

    def __init__(self, h, c):
        self.h, self.c = h, c

    @property
    def n_streams(self):
        return self.h[0].shape[0]

    def reset(self, streams=None):
        """Zero the state of ``streams`` (indices; default all): their next step
        starts a new sequence."""
        idx = self._rows(streams)
        for arrays in (self.h, self.c or ()):
            for a in arrays:
                a[slice(None) if idx is None else idx] = 0

    def copy(self):
        return StreamState([a.copy() for a in self.h],
                           None if self.c is None else [a.copy() for a in self.c])

    def _rows(self, streams):
        if streams is None:
            return None
        idx = np.asarray(streams)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise TypeError("streams must be a 1-D sequence of stream indices")
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.n_streams:
            raise ValueError(f"streams must be indices in [0, {self.n_streams}), got {streams!r}")
        if np.unique(idx).size != idx.size:
            raise ValueError("streams must not repeat an index")
        return idx

    def _check(self, layer):
        ok = (isinstance(self.h, list) and len(self.h) == layer.num_layers
              and (self.c is None) != layer._has_cell_state)
        if ok:
            n, dt = self.h[0].shape[0], layer.dtype
            for arrays in (self.h, self.c or ()):
                for a, H in zip(arrays, layer.hidden_sizes):
                    if not (type(a) is np.ndarray and a.dtype == dt and a.shape == (n, H)
                            and a.flags.c_contiguous):
                        ok = False
        if not ok:
            raise ValueError("state does not fit this model: make it with this model's "
                             "init_state")

    def __repr__(self):
        return f"StreamState(n_streams={self.n_streams}, layers={len(self.h)})"


class _Recurrent:
    """Shared machinery of LSTM and GRU; see their docstrings.

    One object runs a whole stack of layers: ``LSTM(num_layers=k)`` stacks k
    layers of one width, and the estimators' network builds one stack of
    layers of its own widths (``_stack``), so stacking, the dropout between
    layers and the binding to a flat buffer exist only here.
    """

    # x is (batch, time, features) unless a layer is made with batch_first=False
    batch_first = True

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, cell="lstm",
                 activation="tanh", gate_activation="sigmoid", dropout=0.0,
                 dtype="float32", random_state=None, n_threads=None, batch_first=True):
        self.batch_first = Bool().check("batch_first", batch_first)
        input_size = _INPUT_SIZE.check("input_size", input_size)
        hidden_size = _INPUT_SIZE.check("hidden_size", hidden_size)
        num_layers = _NUM_LAYERS.check("num_layers", num_layers)
        self.dropout = _DROPOUT.check("dropout", dropout)
        try:
            seeds = np.random.SeedSequence(
                random_state if not isinstance(random_state, np.random.Generator)
                else random_state.integers(2**63)).spawn(2)
        except (TypeError, ValueError) as e:
            raise type(e)("random_state must be None, a non-negative int or a "
                          f"numpy Generator, got {random_state!r}") from None
        self._setup(cell, input_size, (hidden_size,) * num_layers, bidirectional, activation,
                    gate_activation, dtype, n_threads)
        self._dropout_rng = np.random.default_rng(seeds[1])
        self._bind(uniform_init(seeds[0], hidden_size, self._size, self.dtype))

    @classmethod
    def _stack(cls, cell, input_size, hidden_sizes, bidirectional, activation, gate_activation,
               dtype, n_threads, storage, lock):
        """A stack computing with ``storage`` (its flat parameters, used as they are)
        whose writers hold ``lock``: the network's layers. No dropout of its own:
        the network passes the masks."""
        self = cls.__new__(cls)
        self.dropout = 0.0
        self._dropout_rng = None
        self._setup(cell, input_size, tuple(hidden_sizes), bidirectional, activation,
                    gate_activation, dtype, n_threads)
        if storage.shape != (self._size,) or storage.dtype != self.dtype:
            raise ValueError(f"storage must be a 1-D {self.dtype} array of size {self._size}")
        self._lock = lock
        self._bind(storage)
        return self

    def _setup(self, cell, input_size, hidden_sizes, bidirectional, activation, gate_activation,
               dtype, n_threads):
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional must be a bool, got {type(bidirectional).__name__}")
        self.cell = cell
        self._cell = CELLS[cell]
        self.input_size = input_size
        self.hidden_sizes = hidden_sizes
        self.hidden_size = hidden_sizes[-1]
        self.num_layers = len(hidden_sizes)
        self.bidirectional = bool(bidirectional)
        self.activation = _ACTIVATION.check("activation", activation)
        self.gate_activation = _GATE_ACTIVATION.check("gate_activation", gate_activation)
        self.dtype = np.dtype(_DTYPE.check("dtype", dtype))
        self.n_threads = n_threads
        self.param_shapes = layer_param_shapes(cell, input_size, hidden_sizes, self.bidirectional)
        self.param_names = [name for name, _ in self.param_shapes]
        self._size = param_count(self.param_shapes)
        self._lock = threading.RLock()
        self._workspace = _Workspace()
        self._work_sizes = {}

    # ----- weights seen by inference ----------------------------------------
    # Inference runs on packed copies of the weights (the kernels read nothing
    # else), made once per parameter change. ``_lock`` orders the writers of
    # the parameters against the packing: a writer holds it while it writes
    # and drops the packs; a pack is made while holding it, for all layers at
    # once. A call takes the tuple of packs in one read, so it computes with
    # one consistent set of weights, the old or the new, whatever writes
    # while it runs.

    @contextlib.contextmanager
    def updating(self):
        """Hold while changing the parameters in place (e.g. an optimizer step on a
        buffer given to ``bind_parameters``): inference calls in other threads
        then use the weights before or after the change, never a mix."""
        with self._lock:
            try:
                yield
            finally:
                self._packs = None

    def params_updated(self):
        """Tell the layer its parameters changed in place, so inference repacks them.
        (Writers that may run while other threads infer use ``updating()`` instead.)"""
        with self._lock:
            self._packs = None

    def _inference_packs(self):
        """One packed weight array per (layer, direction), index layer * D + d."""
        packs = self._packs
        if packs is None:
            with self._lock:
                packs = self._packs
                if packs is None:
                    packs = self._packs = tuple(self._pack(layer, d)
                                                for layer in range(self.num_layers)
                                                for d in range(self.num_directions))
        return packs

    def _pack(self, layer, d):
        w_ih, w_hh, b_ih, b_hh, w_peep = self._layer_views[layer, d]
        code = self._cell.code
        packed = np.empty(_kernels.packed_len(code, w_ih.shape[1], w_hh.shape[1],
                                              self.dtype == np.float64), self.dtype)
        _kernels.rnn_pack(code, 1, 1, 1, w_ih, w_hh, b_ih, b_hh, w_peep, packed)
        return packed

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_workspace", "_views", "_layer_views", "_packs", "_work_sizes", "_lock"):
            del state[key]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._bind(self._flat)
        self._workspace = _Workspace()
        self._work_sizes = {}

    def _layer_sizes(self, layer):
        """(input features, hidden units) of one layer of the stack."""
        D = self.num_directions
        return (self.input_size if layer == 0 else D * self.hidden_sizes[layer - 1],
                self.hidden_sizes[layer])

    def _work(self, B, T, pass_, nt):
        """Scratch for the largest kernel call of this shape on ``nt`` threads (None if
        another thread holds it)."""
        key = (B, T, pass_, nt)
        need = self._work_sizes.get(key)
        if need is None:
            sizes = {self._layer_sizes(layer) for layer in range(self.num_layers)}
            need = max(_kernels.work_bytes(self._cell.code, T, B, I, H, nt, pass_,
                                           self.dtype == np.float64) for I, H in sizes)
            if len(self._work_sizes) > 64:      # many shapes seen: start over
                self._work_sizes.clear()
            self._work_sizes[key] = need
        return self._workspace.acquire(need)

    # ----- parameters -------------------------------------------------------
    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def n_threads(self):
        """The threads a call asks for (None at construction: the process default,
        fastlstm.set_num_threads); calls running at once share the cores."""
        return effective_n_threads(self._n_threads)

    @n_threads.setter
    def n_threads(self, value):
        effective_n_threads(value)    # checked now, resolved at each call
        self._n_threads = value

    @property
    def _has_cell_state(self):
        return self._cell.cell_state

    @property
    def flat_params(self):
        """All parameters in one 1-D array, in ``param_names`` order: a read-only view.
        Change parameters with ``load_state_dict`` or through ``bind_parameters``."""
        view = self._flat.view()
        view.flags.writeable = False
        return view

    def _named_views(self, buf):
        """{name: view of buf shaped as the parameter} in ``param_shapes`` order."""
        views, offset = {}, 0
        for name, shape in self.param_shapes:
            n = math.prod(shape)
            views[name] = buf[offset:offset + n].reshape(shape)
            offset += n
        return views

    def _per_direction(self, views):
        """{(layer, direction): (w_ih, w_hh, b_ih, b_hh, w_peep or None)} of ``views``,
        the five arrays the kernels take."""
        extra = [name for name, _ in self._cell.extra]
        out = {}
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                sfx = direction_suffix(layer, d)
                peep = views[f"{extra[0]}_{sfx}"] if extra else None
                out[layer, d] = (views[f"weight_ih_{sfx}"], views[f"weight_hh_{sfx}"],
                                 views[f"bias_ih_{sfx}"], views[f"bias_hh_{sfx}"], peep)
        return out

    def _bind(self, buf):
        self._packs = None
        self._flat = buf
        self._views = self._named_views(buf)
        self._layer_views = self._per_direction(self._views)

    def bind_parameters(self, buf, lock=None, copy=True):
        """Use ``buf`` (1-D, this layer's dtype and size) as the parameters' storage,
        first copying the current values into it unless ``copy=False``.

        The owner of ``buf`` writes into it inside ``updating()``. ``lock``: an
        RLock to order writes and packing by (a network passes one lock for
        all its layers, so one update covers every layer at once).
        """
        if not isinstance(buf, np.ndarray) or buf.ndim != 1 or buf.dtype != self.dtype \
                or buf.size != self._flat.size or not buf.flags.c_contiguous or not buf.flags.writeable:
            raise ValueError(f"buf must be a writeable contiguous 1-D {self.dtype} array of size "
                             f"{self._flat.size}")
        with self._lock:
            if copy:
                buf[...] = self._flat
            if lock is not None:
                self._lock = lock
            self._bind(buf)

    def state_dict(self):
        """Copies of the parameters under PyTorch's names and shapes."""
        return {name: v.copy() for name, v in self._views.items()}

    def load_state_dict(self, state_dict):
        """Load parameters from a dict of arrays or torch tensors (e.g. ``nn.LSTM.state_dict()``)."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        keys = set(state_dict.keys())
        missing = [n for n in self.param_names if n not in keys]
        unexpected = sorted(keys - set(self.param_names))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match this layer: missing {missing}, "
                             f"unexpected {unexpected}")
        arrays = {name: _float_array(f"state_dict[{name!r}]", state_dict[name], self.dtype,
                                     len(shape), shape)
                  for name, shape in self.param_shapes}
        with self.updating():
            for name, arr in arrays.items():
                self._views[name][...] = arr

    # ----- input checks -----------------------------------------------------
    def _check_x(self, x):
        x = _float_array("x", x, self.dtype, 3)
        if x.shape[2] != self.input_size:
            layout = "batch, time" if self.batch_first else "time, batch"
            raise ValueError(f"x must have shape ({layout}, {self.input_size}), got {x.shape}")
        return x

    def _check_lengths(self, lengths, B, T):
        if lengths is None:
            return None
        arr = np.asarray(lengths)
        if arr.dtype == object or arr.dtype.kind not in "iu":
            raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
        if arr.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},) for x of batch {B}, got {arr.shape}")
        if arr.min() < 1 or arr.max() > T:
            raise ValueError(f"lengths must be in [1, {T}] (x has {T} time steps), "
                             f"got values in [{arr.min()}, {arr.max()}]")
        return np.ascontiguousarray(arr, dtype=np.intc)    # C int, as the kernels take

    def _check_state(self, name, value, B):
        if value is None:
            return None
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        return _float_array(name, value, self.dtype, 3, shape)

    def _check_grad(self, name, value, shape):
        if value is None:
            return None
        return _float_array(name, value, self.dtype, len(shape), shape)

    def _state_arrays(self, B):
        """Per-layer (D, B, H_k) arrays for states: views of one (L*D, B, H) array
        when every layer has the same width (what the public API returns)."""
        D, L, dt = self.num_directions, self.num_layers, self.dtype
        if L == 1:   # every serving call of a one-layer model: no set, no slices
            whole = np.empty((D, B, self.hidden_size), dt)
            return whole, [whole]
        if len(set(self.hidden_sizes)) == 1:
            whole = np.empty((L * D, B, self.hidden_size), dt)
            return whole, [whole[k * D:(k + 1) * D] for k in range(L)]
        return None, [np.empty((D, B, H), dt) for H in self.hidden_sizes]

    @staticmethod
    def _split_layers(arr, L, D):
        """(L*D, B, H) -> per-layer (D, B, H) views, or L Nones (a per-layer list as is)."""
        if isinstance(arr, list):
            return arr
        return [None] * L if arr is None else [arr[k * D:(k + 1) * D] for k in range(L)]

    # ----- streaming ----------------------------------------------------------
    def init_state(self, n_streams=1):
        """The state of ``n_streams`` independent streams before their first step
        (zeros), for ``step``."""
        n = _N_STREAMS.check("n_streams", n_streams)
        if self.bidirectional:
            raise ValueError("a bidirectional layer needs each whole sequence (its reverse "
                             "direction starts at the end); streaming needs a forward-only "
                             "model")
        z = [np.zeros((n, H), self.dtype) for H in self.hidden_sizes]
        return StreamState(z, [a.copy() for a in z] if self._has_cell_state else None)

    def step(self, x_t, state, streams=None):
        """One time step of several streams: x_t (n, I) -> y_t (n, H), the last
        layer's output; ``state`` (from ``init_state``) is updated in place and
        returned: ``y_t, state = layer.step(x_t, state)``. ``streams``: the rows
        of ``state`` that x_t's rows belong to (default: all, in order), so
        requests for any subset of the streams can be stepped together. T steps
        give what one call on the T-step sequences gives."""
        return self._stream(x_t, state, streams, None), state

    def _stream(self, x_t, state, streams, packs):
        """Run one step of ``state``'s streams ``streams``; returns y (n, H_last)."""
        if not isinstance(state, StreamState):
            raise TypeError(f"state must come from init_state, got {type(state).__name__}")
        if self.bidirectional:
            self.init_state()        # raises the explanation
        state._check(self)
        idx = state._rows(streams)
        x_t = _float_array("x_t", x_t, self.dtype, 2)
        n = state.n_streams if idx is None else idx.size
        if x_t.shape != (n, self.input_size):
            raise ValueError(f"x_t must have shape ({n}, {self.input_size}) for "
                             f"{'the' if idx is None else 'the selected'} {n} streams, "
                             f"got {x_t.shape}")
        h0 = [(h if idx is None else h[idx])[None] for h in state.h]
        c0 = None if state.c is None else [(c if idx is None else c[idx])[None] for c in state.c]
        x3 = x_t[:, None, :] if self.batch_first else x_t[None]
        y, h_n, c_n, _, _, _ = self._forward(x3, h0, c0, None, False, packs=packs)
        for k in range(self.num_layers):
            if idx is None:
                state.h[k][...] = h_n[k][0]
                if c_n is not None:
                    state.c[k][...] = c_n[k][0]
            else:
                state.h[k][idx] = h_n[k][0]
                if c_n is not None:
                    state.c[k][idx] = c_n[k][0]
        return y[:, 0] if self.batch_first else y[0]     # (n, H_last)

    # ----- forward / backward -----------------------------------------------
    def _forward(self, x, h0, c0, lengths, train, reuse=None, packs=None, dropout_mask=None):
        """Run the stack: returns y (B, T, D*H_last), h_n and c_n (per-layer lists of
        (D, B, H_k); c_n None for gru), the (L*D, B, H) arrays behind them (None
        for a stack of mixed widths), and the training cache (or None).

        dropout_mask(k, shape): the mask for layer k's output (T, B, D*H_k),
        time-major, scaled; None for no dropout. Default: the layer's own
        ``dropout``, in training only."""
        # This runs on every serving request, where one step's kernel takes ~20 us:
        # the plain case goes through in a few attribute reads and one C call.
        dt = self.dtype
        if not (_kernels.array_status(x, dt.itemsize == 8, 3) == 1
                and x.shape[2] == self.input_size):
            x = self._check_x(x)
        if not self.batch_first:
            x = x.transpose(1, 0, 2)      # a view (B, T, I): the kernels read (T, B, I)
        B, T, _ = x.shape
        if lengths is not None:
            lengths = self._check_lengths(lengths, B, T)
        # (per-layer lists come from _stream, which has checked them)
        if h0 is not None and not isinstance(h0, list):
            h0 = self._check_state("h0" if self._has_cell_state else "state", h0, B)
        if c0 is not None and not isinstance(c0, list):
            c0 = self._check_state("c0", c0, B)
        L, D = self.num_layers, self.num_directions
        lstm = self._has_cell_state
        h_all, h_n = self._state_arrays(B)
        c_all, c_n = self._state_arrays(B) if lstm else (None, None)
        if dropout_mask is None and train and self.dropout > 0:
            dropout_mask = self._own_dropout_mask
        cache = None
        recycled = None
        if train:
            cache = _Cache()
            cache.inputs, cache.layers, cache.masks = [], [], []
            cache.lengths, cache.shape, cache.dtype, cache.layer_id = lengths, (B, T), dt, id(self)
            if reuse is not None:
                if not isinstance(reuse, _Cache) or reuse.layer_id != id(self):
                    raise ValueError("reuse must be a cache returned by this layer's forward")
                if reuse.layers is not None and reuse.shape == (B, T) and reuse.dtype == dt:
                    recycled = reuse.layers
                reuse.layers = None          # its memory now belongs to the new cache
        inp = np.ascontiguousarray(x.transpose(1, 0, 2))          # (T, B, I)
        if not train and packs is None:
            packs = self._inference_packs()
        nt = take_threads(self._n_threads)
        work = None
        try:
            work = self._work(B, T, 1 if train else 0, nt)
            y_out = self._forward_layers(inp, self._split_layers(h0, L, D),
                                         self._split_layers(c0, L, D), lengths, train, cache,
                                         h_n, c_n, work, recycled, packs, dropout_mask, nt)
        finally:
            self._workspace.release(work)
            give_threads(nt)
        return y_out, h_n, c_n, h_all, c_all, cache

    def _own_dropout_mask(self, k, shape):
        keep = 1.0 - self.dropout
        dt = self.dtype
        return (self._dropout_rng.random(shape) < keep).astype(dt) / dt.type(keep)

    def _forward_layers(self, inp, h0, c0, lengths, train, cache, h_n, c_n, work, recycled,
                        packs, dropout_mask, nt):
        T, B, _ = inp.shape
        D, L, dt = self.num_directions, self.num_layers, self.dtype
        code = self._cell.code
        act, gate = ACTIVATIONS[self.activation], GATE_ACTIVATIONS[self.gate_activation]
        lstm = self._has_cell_state
        for layer in range(L):
            H = self.hidden_sizes[layer]
            last = layer == L - 1
            # the last layer writes the caller's layout directly (no transpose)
            out_bf = last and self.batch_first
            gcols = _kernels.gate_cache_cols(H) if train else 0
            # the last layer writes batch-first output directly (no transpose)
            y = np.empty((B, T, D * H) if out_bf else (T, B, D * H), dt)
            per_dir = []
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh, w_peep = self._layer_views[layer, d]
                if train and recycled is not None:
                    cg, ch, cc = recycled[layer][d]   # same shapes: overwritten in full
                elif train:
                    cg = np.empty((T, B, gcols), dt)
                    ch = np.empty((T + 1, B, H), dt)
                    cc = np.empty((T + 1, B, H), dt) if lstm else None
                else:
                    cg = ch = cc = None
                _kernels.rnn_forward(code, act, gate, d == 1, nt, inp,
                                     w_ih, w_hh, b_ih, b_hh, w_peep,
                                     None if h0[layer] is None else h0[layer][d],
                                     None if c0[layer] is None else c0[layer][d], lengths,
                                     y, d * H, h_n[layer][d],
                                     None if c_n is None else c_n[layer][d], cg, ch, cc,
                                     work, None if train else packs[layer * D + d],
                                     out_bf)
                per_dir.append((cg, ch, cc))
            if train:
                cache.inputs.append(inp)
                cache.layers.append(per_dir)
            if last:
                break
            mask = None if dropout_mask is None else dropout_mask(layer, y.shape)
            if train:
                cache.masks.append(mask)
            inp = y if mask is None else np.ascontiguousarray(y * mask)
        return y      # the last layer's output, (B, T, D*H) or (T, B, D*H)

    def _backward(self, cache, dy, dh_n, dc_n, grad_out, need_dx=True):
        """Gradients from a training cache. dy (B, T, D*H_last) or None; dh_n, dc_n:
        per-layer lists of (D, B, H_k) or None. Writes the parameter gradients
        into grad_out (allocated if None); returns (dx or None, per-layer dh0,
        per-layer dc0 or None, dh0 and dc0 as (L*D, B, H) arrays or None,
        {name: gradient view})."""
        if not isinstance(cache, _Cache):
            raise TypeError("cache must be the third value returned by forward(..., train=True)")
        if cache.layer_id != id(self):
            raise ValueError("cache was produced by a different layer")
        if cache.layers is None:
            raise ValueError("cache was recycled by a later forward(..., reuse=cache): "
                             "run backward before reusing a cache")
        B, T = cache.shape
        dt = self.dtype
        if grad_out is None:
            grad_out = np.empty_like(self._flat)
        elif (not isinstance(grad_out, np.ndarray) or grad_out.shape != self._flat.shape
              or grad_out.dtype != dt or not grad_out.flags.c_contiguous):
            raise ValueError(f"grad_out must be a contiguous 1-D {dt} array of size {self._flat.size}")
        gviews = self._named_views(grad_out)
        dh0_all, dh0 = self._state_arrays(B)
        dc0_all, dc0 = self._state_arrays(B) if self._has_cell_state else (None, None)
        dcur = None if dy is None else np.ascontiguousarray(dy.transpose(1, 0, 2))   # (T, B, D*H)
        nt = take_threads(self._n_threads)
        work = None
        try:
            work = self._work(B, T, 2, nt)
            dcur = self._backward_layers(cache, dcur, dh_n, dc_n, self._per_direction(gviews),
                                         dh0, dc0, work, need_dx, nt)
        finally:
            self._workspace.release(work)
            give_threads(nt)
        dx = None if dcur is None else np.ascontiguousarray(dcur.transpose(1, 0, 2))
        return dx, dh0_all, dc0_all, gviews

    def _backward_layers(self, cache, dcur, dh_n, dc_n, grads, dh0, dc0, work, need_dx, nt):
        D, dt = self.num_directions, self.dtype
        code = self._cell.code
        act, gate = ACTIVATIONS[self.activation], GATE_ACTIVATIONS[self.gate_activation]
        for layer in reversed(range(self.num_layers)):
            H = self.hidden_sizes[layer]
            inp = cache.inputs[layer]
            # the first layer's input gradient is a GEMM of its own (dG * W_ih)
            dinp = np.zeros(inp.shape, dt) if layer > 0 or need_dx else None
            for d in range(D):
                w_ih, w_hh, _, _, w_peep = self._layer_views[layer, d]
                gw_ih, gw_hh, gb_ih, gb_hh, gw_peep = grads[layer, d]
                cg, ch, cc = cache.layers[layer][d]
                _kernels.rnn_backward(code, act, gate, d == 1, nt, dh0[layer][d], dinp,
                                      None if dc0 is None else dc0[layer][d],
                                      gw_ih, gw_hh, gb_ih, gb_hh, gw_peep,
                                      dcur, d * H, None if dh_n[layer] is None else dh_n[layer][d],
                                      None if dc_n[layer] is None else dc_n[layer][d],
                                      cg, ch, cc, inp, w_ih, w_hh, w_peep, cache.lengths, work)
            if dinp is not None and layer > 0 and cache.masks[layer - 1] is not None:
                dinp *= cache.masks[layer - 1]
            dcur = dinp
        return dcur

    def _public_backward(self, cache, dy, dh_n, dc_n, grad_out, need_dx):
        """backward() of the public API: (L*D, B, H) states in, a dict out."""
        if not isinstance(cache, _Cache):
            raise TypeError("cache must be the third value returned by forward(..., train=True)")
        B, T = cache.shape
        L, D, H = self.num_layers, self.num_directions, self.hidden_size
        dy = self._check_grad("dy", dy, (B, T, D * H) if self.batch_first else (T, B, D * H))
        if dy is not None and not self.batch_first:
            dy = dy.transpose(1, 0, 2)
        dh_n = self._check_grad("dh_n", dh_n, (L * D, B, H))
        dc_n = self._check_grad("dc_n", dc_n, (L * D, B, H)) if self._has_cell_state else None
        dx, dh0, dc0, gviews = self._backward(cache, dy, self._split_layers(dh_n, L, D),
                                              self._split_layers(dc_n, L, D), grad_out, need_dx)
        if dx is not None and not self.batch_first:
            dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
        grads = {"x": dx, "h0": dh0}
        if self._has_cell_state:
            grads["c0"] = dc0
        grads.update(gviews)
        return grads

    def __repr__(self):
        args = [f"{self.input_size}", f"{self.hidden_size}"]
        if self.num_layers != 1:
            args.append(f"num_layers={self.num_layers}")
        if self.bidirectional:
            args.append("bidirectional=True")
        if type(self) is LSTM and self.cell != "lstm":
            args.append(f"cell={self.cell!r}")
        if self.activation != "tanh":
            args.append(f"activation={self.activation!r}")
        if self.gate_activation != "sigmoid":
            args.append(f"gate_activation={self.gate_activation!r}")
        if self.dropout:
            args.append(f"dropout={self.dropout}")
        if self.dtype != np.float32:
            args.append(f"dtype={self.dtype.name!r}")
        if not self.batch_first:
            args.append("batch_first=False")
        return f"{type(self).__name__}({', '.join(args)})"

    # ----- reduced precision: fastlstm.quantize ---------------------------------
    def quantize(self, dtype):
        """An inference-only copy with weights in ``"bfloat16"`` or ``"int8"`` (per-row
        scales); same call and ``step`` API, float32 in and out. See fastlstm.quantize."""
        from . import quantize
        return quantize.quantize_layer(self, dtype)

    # ----- export and import: fastlstm.export -------------------------------
    def to_onnx(self, path=None, opset=None, with_lengths=False, with_state=False):
        """The layer as an ONNX model (float32; opset None: 17), also written to
        ``path`` when given; needs the onnx package. Input ``x`` (batch, time, I),
        with ``with_lengths`` also ``lengths`` (batch,) int64, with ``with_state``
        also ``h0`` (and ``c0``); outputs ``y``, ``h_n`` (and ``c_n``) as
        ``__call__`` returns them. See fastlstm.export."""
        from . import export
        return export.layer_to_onnx(self, path, opset, with_lengths, with_state)

    def to_torch(self):
        """``torch.nn.LSTM`` / ``nn.GRU`` (batch_first, eval mode) with these weights;
        ValueError for a cell or activation PyTorch lacks."""
        from . import export
        return export.layer_to_torch(self)

    def load_keras_weights(self, weights, reset_after=True):
        """Load a Keras LSTM/GRU's weights (``keras_layer.get_weights()``, or the layer
        itself; a stack's lists one after the other). Pure numpy. Keras GRUs need
        ``reset_after=True``. See fastlstm.export.keras_state_dict."""
        from . import export
        export.layer_load_keras_weights(self, weights, reset_after)

    @classmethod
    def from_keras_weights(cls, weights, num_layers=1, bidirectional=False, reset_after=True,
                           **kwargs):
        """A new layer holding Keras weights (input and hidden sizes read from them);
        ``kwargs`` go to the constructor (activation, dtype, ...)."""
        from . import export
        return export.layer_from_keras_weights(cls, weights, num_layers, bidirectional,
                                               reset_after, **kwargs)


class LSTM(_Recurrent):
    """A stack of LSTM layers over numpy arrays, trained and run by the C kernels.

    Parameters follow ``torch.nn.LSTM`` (batch-first): ``cell`` is ``"lstm"``
    (PyTorch's equations, gate order i, f, g, o), ``"peephole"`` (ONNX's
    diagonal peepholes, extra ``weight_peephole_l{k}`` of shape (3, H) in order
    i, f, o) or ``"cifg"`` (coupled input-forget gate f = 1 - i, ONNX's
    ``input_forget=1``; the forget rows stay in the 4H layout and get zero
    gradient). ``activation`` (tanh or relu) is the candidate and cell-output
    activation, ``gate_activation`` sigmoid or hard_sigmoid. ``dropout``
    applies between stacked layers in training mode only.

    ``y, (h_n, c_n) = layer(x, state=None, lengths=None)`` with x (B, T, I),
    y (B, T, D*H), h_n and c_n (num_layers*D, B, H); ``state = (h0, c0)``.
    ``lengths`` (B,) stops each sequence at its own length. With
    ``batch_first=False`` (PyTorch's default) x, y, dy and dx are time-major,
    (T, B, I) and (T, B, D*H): nothing can tell the two layouts apart from
    the shapes, so a model ported from ``nn.LSTM(batch_first=False)`` needs it.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, cell="lstm",
                 activation="tanh", gate_activation="sigmoid", dropout=0.0,
                 dtype="float32", random_state=None, n_threads=None, batch_first=True):
        _check_layer_cell(cell, "LSTM")
        super().__init__(input_size, hidden_size, num_layers, bidirectional, cell, activation,
                         gate_activation, dropout, dtype, random_state, n_threads, batch_first)

    def _split_state(self, state):
        if state is None:
            return None, None
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError("state must be a tuple (h0, c0) of arrays (num_layers*D, B, H)")
        return state

    def __call__(self, x, state=None, lengths=None):
        """Inference: returns y, (h_n, c_n); keeps no activations."""
        h0, c0 = self._split_state(state)
        y, _, _, h_n, c_n, _ = self._forward(x, h0, c0, lengths, train=False)
        return y, (h_n, c_n)

    def forward(self, x, state=None, lengths=None, train=True, reuse=None):
        """Returns y, (h_n, c_n), cache; the cache feeds ``backward`` (None when train=False).

        ``reuse``: a cache from an earlier forward of this layer that is no longer
        needed; its memory holds the new activations (a training loop then
        allocates nothing per batch), and it can no longer be used for backward.
        """
        h0, c0 = self._split_state(state)
        y, _, _, h_n, c_n, cache = self._forward(x, h0, c0, lengths, train, reuse)
        return y, (h_n, c_n), cache

    def backward(self, cache, dy, dh_n=None, dc_n=None, grad_out=None, need_dx=True):
        """Gradients of a loss given dL/dy (B, T, D*H) and optionally dL/dh_n, dL/dc_n.

        Returns a dict: "x" (B, T, I), "h0", "c0" (num_layers*D, B, H) and one
        entry per parameter name. With ``grad_out`` (a 1-D array shaped like
        ``flat_params``) the parameter gradients are written into it.
        ``need_dx=False`` skips the input gradient ("x" is then None): a model's
        first layer has no use for it, and it costs a GEMM over all T*B rows.
        """
        return self._public_backward(cache, dy, dh_n, dc_n, grad_out, need_dx)


class GRU(_Recurrent):
    """A stack of GRU layers (PyTorch's equations, rows r, z, n; reset applied after
    the recurrent matmul). Same interface as ``LSTM`` with ``state=h0`` and
    ``h_n`` returned alone: ``y, h_n = layer(x)``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, cell="gru",
                 activation="tanh", gate_activation="sigmoid", dropout=0.0,
                 dtype="float32", random_state=None, n_threads=None, batch_first=True):
        _check_layer_cell(cell, "GRU")
        super().__init__(input_size, hidden_size, num_layers, bidirectional, cell, activation,
                         gate_activation, dropout, dtype, random_state, n_threads, batch_first)

    def __call__(self, x, state=None, lengths=None):
        y, _, _, h_n, _, _ = self._forward(x, state, None, lengths, train=False)
        return y, h_n

    def forward(self, x, state=None, lengths=None, train=True, reuse=None):
        y, _, _, h_n, _, cache = self._forward(x, state, None, lengths, train, reuse)
        return y, h_n, cache

    def backward(self, cache, dy, dh_n=None, grad_out=None, need_dx=True):
        return self._public_backward(cache, dy, dh_n, None, grad_out, need_dx)


_LAYER_CLASSES = {"LSTM": LSTM, "GRU": GRU}


def _check_layer_cell(cell, layer):
    """A cell of the table that ``layer`` (a class name) runs; other cells are named."""
    ok = isinstance(cell, str) and cell in CELLS and CELLS[cell].layer == layer
    if not ok:
        if isinstance(cell, str) and cell in CELLS:
            raise ValueError(f"cell={cell!r} is a different layer: use "
                             f"fastlstm.{CELLS[cell].layer}")
        raise ValueError(f"cell must be one of "
                         f"{sorted(c for c in CELLS if CELLS[c].layer == layer)}, got {cell!r}")


def layer_class(cell):
    """The layer class (LSTM or GRU) that runs ``cell``."""
    return _LAYER_CLASSES[CELLS[cell].layer]
