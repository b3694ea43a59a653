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

__all__ = ["LSTM", "GRU"]

_CELL_CODES = {"lstm": 0, "peephole": 1, "cifg": 2, "gru": 3}
_ACT_CODES = {"tanh": 0, "relu": 1}
_GATE_CODES = {"sigmoid": 0, "hard_sigmoid": 1}
_DTYPES = {"float32": np.float32, "float64": np.float64}


def _positive_int(name, value, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 1 <= value <= high:
        raise ValueError(f"{name} must be in [1, {high}], got {value}")
    return int(value)


def _choice(name, value, options):
    try:
        ok = value in options
    except TypeError:          # unhashable, e.g. a list
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


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


def param_shapes(cell, input_size, hidden_size, num_layers=1, bidirectional=False):
    """[(name, shape)] of a layer stack's parameters in flat-buffer order, under
    PyTorch's names (peephole weights last in each layer-direction)."""
    G, D = (3 if cell == "gru" else 4), (2 if bidirectional else 1)
    H = hidden_size
    shapes = []
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else D * H
        for d in range(D):
            sfx = f"l{layer}" + ("_reverse" if d else "")
            shapes += [(f"weight_ih_{sfx}", (G * H, in_size)),
                       (f"weight_hh_{sfx}", (G * H, H)),
                       (f"bias_ih_{sfx}", (G * H,)),
                       (f"bias_hh_{sfx}", (G * H,))]
            if cell == "peephole":
                shapes.append((f"weight_peephole_{sfx}", (3, H)))
    return shapes


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


class _Recurrent:
    """Shared machinery of LSTM and GRU; see their docstrings."""

    _has_cell_state = True

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, cell="lstm",
                 activation="tanh", gate_activation="sigmoid", dropout=0.0,
                 dtype="float32", random_state=None, n_threads=None, _storage=None):
        self.input_size = _positive_int("input_size", input_size, MAX_WIDTH)
        self.hidden_size = _positive_int("hidden_size", hidden_size, MAX_WIDTH)
        self.num_layers = _positive_int("num_layers", num_layers, MAX_LAYERS)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional must be a bool, got {type(bidirectional).__name__}")
        self.bidirectional = bool(bidirectional)
        self.cell = cell
        self.activation = _choice("activation", activation, _ACT_CODES)
        self.gate_activation = _choice("gate_activation", gate_activation, _GATE_CODES)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating, np.integer)):
            raise TypeError(f"dropout must be a float, got {type(dropout).__name__}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        try:
            dtype_ok = dtype is not None and np.dtype(dtype).name in _DTYPES
        except TypeError:          # not a dtype at all, e.g. "nope"
            dtype_ok = False
        if not dtype_ok:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.n_threads = effective_n_threads(n_threads)
        try:
            seeds = np.random.SeedSequence(
                random_state if not isinstance(random_state, np.random.Generator)
                else random_state.integers(2**63)).spawn(2)
        except (TypeError, ValueError) as e:
            raise type(e)("random_state must be None, a non-negative int or a "
                          f"numpy Generator, got {random_state!r}") from None
        self._dropout_rng = np.random.default_rng(seeds[1])

        self.param_shapes = param_shapes(cell, self.input_size, self.hidden_size,
                                         self.num_layers, self.bidirectional)
        self.param_names = [name for name, _ in self.param_shapes]
        size = sum(math.prod(s) for _, s in self.param_shapes)
        self._lock = threading.RLock()
        if _storage is not None:
            # a network's buffer holding loaded values: used as is, not initialised
            if _storage.shape != (size,) or _storage.dtype != self.dtype:
                raise ValueError(f"_storage must be a 1-D {self.dtype} array of size {size}")
            self._bind(_storage)
        else:
            # PyTorch's default: every parameter uniform in [-1/sqrt(H), 1/sqrt(H)]
            k = 1.0 / np.sqrt(self.hidden_size)
            init = np.random.default_rng(seeds[0]).uniform(-k, k, size)
            self._bind(np.ascontiguousarray(init, dtype=self.dtype))
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
        w_ih, w_hh, b_ih, b_hh, w_peep = self._layer_params(layer, d)
        cell = _CELL_CODES[self.cell]
        packed = np.empty(_kernels.packed_len(cell, w_ih.shape[1], self.hidden_size,
                                              self.dtype == np.float64), self.dtype)
        _kernels.rnn_pack(cell, 1, 1, 1, w_ih, w_hh, b_ih, b_hh, w_peep, packed)
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

    def _work(self, B, T, pass_):
        """Scratch for the largest kernel call of this shape (None if another thread holds it)."""
        key = (B, T, pass_, self.n_threads)
        need = self._work_sizes.get(key)
        if need is None:
            need = max(_kernels.work_bytes(_CELL_CODES[self.cell], T, B,
                                           self.input_size if layer == 0 else
                                           self.num_directions * self.hidden_size,
                                           self.hidden_size, self.n_threads, pass_,
                                           self.dtype == np.float64)
                       for layer in range(min(self.num_layers, 2)))
            if len(self._work_sizes) > 64:      # many shapes seen: start over
                self._work_sizes.clear()
            self._work_sizes[key] = need
        return self._workspace.acquire(need)

    # ----- parameters -------------------------------------------------------
    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def _gates(self):
        return 3 if self.cell == "gru" else 4

    @property
    def flat_params(self):
        """All parameters in one 1-D array, in ``param_names`` order: a read-only view.
        Change parameters with ``load_state_dict`` or through ``bind_parameters``."""
        view = self._flat.view()
        view.flags.writeable = False
        return view

    def _bind(self, buf):
        self._packs = None
        self._flat = buf
        self._views = {}
        offset = 0
        for name, shape in self.param_shapes:
            n = int(np.prod(shape))
            self._views[name] = buf[offset:offset + n].reshape(shape)
            offset += n
        v = self._views
        self._layer_views = {}    # (layer, direction) -> the five views the kernels take
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                sfx = f"l{layer}" + ("_reverse" if d else "")
                self._layer_views[layer, d] = (
                    v[f"weight_ih_{sfx}"], v[f"weight_hh_{sfx}"], v[f"bias_ih_{sfx}"],
                    v[f"bias_hh_{sfx}"], v.get(f"weight_peephole_{sfx}"))

    def _slices(self):
        offset = 0
        for name, shape in self.param_shapes:
            n = math.prod(shape)
            yield name, shape, slice(offset, offset + n)
            offset += n

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

    def _layer_params(self, layer, d):
        return self._layer_views[layer, d]

    # ----- input checks -----------------------------------------------------
    def _check_x(self, x):
        x = _float_array("x", x, self.dtype, 3)
        if x.shape[2] != self.input_size:
            raise ValueError(f"x must have shape (batch, time, {self.input_size}), got {x.shape}")
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

    # ----- forward / backward -----------------------------------------------
    def _forward(self, x, h0, c0, lengths, train, reuse=None, packs=None):
        # This runs on every serving request, where one step's kernel takes ~20 us:
        # the plain case goes through in a few attribute reads and one C call.
        dt = self.dtype
        if not (_kernels.array_status(x, dt.itemsize == 8, 3) == 1
                and x.shape[2] == self.input_size):
            x = self._check_x(x)
        B, T, _ = x.shape
        if lengths is not None:
            lengths = self._check_lengths(lengths, B, T)
        if h0 is not None:
            h0 = self._check_state("h0" if self._has_cell_state else "state", h0, B)
        if c0 is not None:
            c0 = self._check_state("c0", c0, B)
        H, D, L = self.hidden_size, 2 if self.bidirectional else 1, self.num_layers
        lstm = self._has_cell_state
        h_n = np.empty((L * D, B, H), dt)
        c_n = np.empty((L * D, B, H), dt) if lstm else None
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
        gcols = _kernels.gate_cache_cols(H) if train else 0
        if not train and packs is None:
            packs = self._inference_packs()
        work = self._work(B, T, 1 if train else 0)
        try:
            y_out = self._forward_layers(inp, h0, c0, lengths, train, cache, h_n, c_n, work, gcols,
                                         recycled, packs)
        finally:
            self._workspace.release(work)
        return y_out, h_n, c_n, cache

    def _forward_layers(self, inp, h0, c0, lengths, train, cache, h_n, c_n, work, gcols, recycled,
                        packs):
        T, B, _ = inp.shape
        H, D, L, dt = self.hidden_size, 2 if self.bidirectional else 1, self.num_layers, self.dtype
        cell, act = _CELL_CODES[self.cell], _ACT_CODES[self.activation]
        gate = _GATE_CODES[self.gate_activation]
        lstm = self._has_cell_state
        for layer in range(L):
            last = layer == L - 1
            # the last layer writes batch-first output directly (no transpose)
            y = np.empty((B, T, D * H) if last else (T, B, D * H), dt)
            per_dir = []
            for d in range(D):
                k = layer * D + d
                w_ih, w_hh, b_ih, b_hh, w_peep = self._layer_params(layer, d)
                if train and recycled is not None:
                    cg, ch, cc = recycled[layer][d]   # same shapes: overwritten in full
                elif train:
                    cg = np.empty((T, B, gcols), dt)
                    ch = np.empty((T + 1, B, H), dt)
                    cc = np.empty((T + 1, B, H), dt) if lstm else None
                else:
                    cg = ch = cc = None
                _kernels.rnn_forward(cell, act, gate, d == 1, self.n_threads, inp,
                                     w_ih, w_hh, b_ih, b_hh, w_peep,
                                     None if h0 is None else h0[k],
                                     None if c0 is None else c0[k], lengths,
                                     y, d * H, h_n[k], None if c_n is None else c_n[k], cg, ch, cc,
                                     work, None if train else packs[k], last)
                per_dir.append((cg, ch, cc))
            if train:
                cache.inputs.append(inp)
                cache.layers.append(per_dir)
            if layer < L - 1 and train and self.dropout > 0:
                keep = 1.0 - self.dropout
                mask = (self._dropout_rng.random((T, B, D * H)) < keep).astype(dt) / dt.type(keep)
                cache.masks.append(mask)
                inp = y * mask
            else:
                if train and layer < L - 1:
                    cache.masks.append(None)
                inp = y
        return inp      # the last layer's y, (B, T, D*H)

    def _backward(self, cache, dy, dh_n, dc_n, grad_out, need_dx=True):
        if not isinstance(cache, _Cache):
            raise TypeError("cache must be the third value returned by forward(..., train=True)")
        if cache.layer_id != id(self):
            raise ValueError("cache was produced by a different layer")
        if cache.layers is None:
            raise ValueError("cache was recycled by a later forward(..., reuse=cache): "
                             "run backward before reusing a cache")
        B, T = cache.shape
        H, D, L, dt = self.hidden_size, self.num_directions, self.num_layers, self.dtype
        lstm = self._has_cell_state
        dy = self._check_grad("dy", dy, (B, T, D * H))
        dh_n = self._check_grad("dh_n", dh_n, (L * D, B, H))
        dc_n = self._check_grad("dc_n", dc_n, (L * D, B, H)) if lstm else None
        if grad_out is None:
            grad_out = np.empty_like(self._flat)
        elif (not isinstance(grad_out, np.ndarray) or grad_out.shape != self._flat.shape
              or grad_out.dtype != dt or not grad_out.flags.c_contiguous):
            raise ValueError(f"grad_out must be a contiguous 1-D {dt} array of size {self._flat.size}")
        gviews = {name: grad_out[s].reshape(shape) for name, shape, s in self._slices()}
        dh0 = np.empty((L * D, B, H), dt)
        dc0 = np.empty((L * D, B, H), dt) if lstm else None
        cell, act = _CELL_CODES[self.cell], _ACT_CODES[self.activation]
        gate = _GATE_CODES[self.gate_activation]
        dcur = None if dy is None else np.ascontiguousarray(dy.transpose(1, 0, 2))   # (T, B, D*H)
        work = self._work(B, T, 2)
        try:
            dcur = self._backward_layers(cache, dcur, dh_n, dc_n, gviews, dh0, dc0, work, need_dx)
        finally:
            self._workspace.release(work)
        dx = None if dcur is None else np.ascontiguousarray(dcur.transpose(1, 0, 2))
        grads = {"x": dx, "h0": dh0}
        if lstm:
            grads["c0"] = dc0
        grads.update(gviews)
        return grads

    def _backward_layers(self, cache, dcur, dh_n, dc_n, gviews, dh0, dc0, work, need_dx):
        H, D, L, dt = self.hidden_size, self.num_directions, self.num_layers, self.dtype
        cell, act = _CELL_CODES[self.cell], _ACT_CODES[self.activation]
        gate = _GATE_CODES[self.gate_activation]
        for layer in reversed(range(L)):
            inp = cache.inputs[layer]
            # the first layer's input gradient is a GEMM of its own (dG * W_ih)
            dinp = np.zeros(inp.shape, dt) if layer > 0 or need_dx else None
            for d in range(D):
                k = layer * D + d
                sfx = f"l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh, _, _, w_peep = self._layer_params(layer, d)
                cg, ch, cc = cache.layers[layer][d]
                _kernels.rnn_backward(cell, act, gate, d == 1, self.n_threads, dh0[k], dinp,
                                      None if dc0 is None else dc0[k],
                                      gviews[f"weight_ih_{sfx}"], gviews[f"weight_hh_{sfx}"],
                                      gviews[f"bias_ih_{sfx}"], gviews[f"bias_hh_{sfx}"],
                                      gviews.get(f"weight_peephole_{sfx}"),
                                      dcur, d * H, None if dh_n is None else dh_n[k],
                                      None if dc_n is None else dc_n[k],
                                      cg, ch, cc, inp, w_ih, w_hh, w_peep, cache.lengths, work)
            if dinp is not None and layer > 0 and cache.masks[layer - 1] is not None:
                dinp *= cache.masks[layer - 1]
            dcur = dinp
        return dcur

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
        return f"{type(self).__name__}({', '.join(args)})"


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
    ``lengths`` (B,) stops each sequence at its own length.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, cell="lstm",
                 activation="tanh", gate_activation="sigmoid", dropout=0.0,
                 dtype="float32", random_state=None, n_threads=None, _storage=None):
        if cell == "gru":
            raise ValueError("cell='gru' is a different layer: use fastlstm.GRU")
        _choice("cell", cell, ("lstm", "peephole", "cifg"))
        super().__init__(input_size, hidden_size, num_layers, bidirectional, cell, activation,
                         gate_activation, dropout, dtype, random_state, n_threads, _storage)

    def _split_state(self, state):
        if state is None:
            return None, None
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError("state must be a tuple (h0, c0) of arrays (num_layers*D, B, H)")
        return state

    def __call__(self, x, state=None, lengths=None):
        """Inference: returns y, (h_n, c_n); keeps no activations."""
        h0, c0 = self._split_state(state)
        y, h_n, c_n, _ = self._forward(x, h0, c0, lengths, train=False)
        return y, (h_n, c_n)

    def forward(self, x, state=None, lengths=None, train=True, reuse=None):
        """Returns y, (h_n, c_n), cache; the cache feeds ``backward`` (None when train=False).

        ``reuse``: a cache from an earlier forward of this layer that is no longer
        needed; its memory holds the new activations (a training loop then
        allocates nothing per batch), and it can no longer be used for backward.
        """
        h0, c0 = self._split_state(state)
        y, h_n, c_n, cache = self._forward(x, h0, c0, lengths, train, reuse)
        return y, (h_n, c_n), cache

    def backward(self, cache, dy, dh_n=None, dc_n=None, grad_out=None, need_dx=True):
        """Gradients of a loss given dL/dy (B, T, D*H) and optionally dL/dh_n, dL/dc_n.

        Returns a dict: "x" (B, T, I), "h0", "c0" (num_layers*D, B, H) and one
        entry per parameter name. With ``grad_out`` (a 1-D array shaped like
        ``flat_params``) the parameter gradients are written into it.
        ``need_dx=False`` skips the input gradient ("x" is then None): a model's
        first layer has no use for it, and it costs a GEMM over all T*B rows.
        """
        return self._backward(cache, dy, dh_n, dc_n, grad_out, need_dx)


class GRU(_Recurrent):
    """A stack of GRU layers (PyTorch's equations, rows r, z, n; reset applied after
    the recurrent matmul). Same interface as ``LSTM`` with ``state=h0`` and
    ``h_n`` returned alone: ``y, h_n = layer(x)``.
    """

    _has_cell_state = False

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, cell="gru",
                 activation="tanh", gate_activation="sigmoid", dropout=0.0,
                 dtype="float32", random_state=None, n_threads=None, _storage=None):
        _choice("cell", cell, ("gru",))
        super().__init__(input_size, hidden_size, num_layers, bidirectional, cell, activation,
                         gate_activation, dropout, dtype, random_state, n_threads, _storage)

    def __call__(self, x, state=None, lengths=None):
        y, h_n, _, _ = self._forward(x, state, None, lengths, train=False)
        return y, h_n

    def forward(self, x, state=None, lengths=None, train=True, reuse=None):
        y, h_n, _, cache = self._forward(x, state, None, lengths, train, reuse)
        return y, h_n, cache

    def backward(self, cache, dy, dh_n=None, grad_out=None, need_dx=True):
        return self._backward(cache, dy, dh_n, None, grad_out, need_dx)
