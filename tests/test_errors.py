"""Bad input to the layers gives a ValueError / TypeError whose message names the
argument; odd but valid input (non-contiguous, another float dtype, ints, lists) is
accepted and gives the same result as the clean copy. The Cython entry points also
refuse arguments that would make C touch memory it does not own, with an exception
rather than a crash.
"""
import numpy as np
import pytest

from fastlstm import GRU, LSTM, _kernels

B, T, I, H = 3, 4, 2, 5


@pytest.fixture(params=["lstm", "gru"])
def layer(request):
    if request.param == "gru":
        return GRU(I, H, num_layers=2, bidirectional=True, random_state=0)
    return LSTM(I, H, num_layers=2, bidirectional=True, random_state=0)


def _x(*shape, dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape or (B, T, I)).astype(dtype)


def _state(layer, shape=None, fill=0.5):
    shape = shape or (layer.num_layers * layer.num_directions, B, H)
    s = np.full(shape, fill, np.float32)
    return s if isinstance(layer, GRU) else (s, s.copy())


def _call_all(layer, x, state=None, lengths=None):
    """The error must come from the inference call and from forward() alike."""
    for fn in (lambda: layer(x, state, lengths),
               lambda: layer.forward(x, state, lengths),
               lambda: layer.forward(x, state, lengths, train=False)):
        fn()


# ---------------------------------------------------------------- x

@pytest.mark.parametrize("x", [
    np.zeros((T, I), np.float32), np.zeros((B, T, I, 1), np.float32), np.zeros(3, np.float32),
    np.float32(1.0)], ids=["rank2", "rank4", "rank1", "scalar"])
def test_x_wrong_rank(layer, x):
    with pytest.raises(ValueError, match=r"\bx\b.*dimensions"):
        _call_all(layer, x)


def test_x_wrong_feature_size(layer):
    with pytest.raises(ValueError, match=r"\bx\b.*\(batch, time, 2\).*\(3, 4, 3\)"):
        _call_all(layer, _x(B, T, I + 1))


@pytest.mark.parametrize("shape", [(0, T, I), (B, 0, I)], ids=["B0", "T0"])
def test_x_empty(layer, shape):
    with pytest.raises(ValueError, match=r"\bx\b.*empty"):
        _call_all(layer, np.zeros(shape, np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_x_not_finite(layer, bad):
    x = _x()
    x[1, 2, 0] = bad
    with pytest.raises(ValueError, match=r"\bx\b.*NaN or inf"):
        _call_all(layer, x)


def test_x_overflowing_the_layer_dtype(layer):
    """float64 values beyond float32's range become inf in a float32 layer: rejected."""
    x = _x(dtype=np.float64)
    x[0, 0, 0] = 1e300
    with pytest.raises(ValueError, match=r"\bx\b.*NaN or inf"):
        layer(x)


@pytest.mark.parametrize("x", [
    np.zeros((B, T, I), object), np.zeros((B, T, I), np.complex64),
    np.full((B, T, I), "a"), np.zeros((B, T, I), "datetime64[s]"), None, "abc"],
    ids=["object", "complex", "str", "datetime", "None", "string"])
def test_x_bad_dtype(layer, x):
    with pytest.raises(TypeError, match=r"\bx\b.*real numbers"):
        _call_all(layer, x)


# ---------------------------------------------------------------- lengths

@pytest.mark.parametrize("lengths", [[0, 1, 2], [1, 2, T + 1], [-1, 2, 3]],
                         ids=["zero", "above_T", "negative"])
def test_lengths_out_of_range(layer, lengths):
    with pytest.raises(ValueError, match=r"lengths.*\[1, 4\]"):
        _call_all(layer, _x(), lengths=np.array(lengths))


@pytest.mark.parametrize("lengths", [[1, 2], [1, 2, 3, 4], [[1, 2, 3]], 3],
                         ids=["short", "long", "2d", "scalar"])
def test_lengths_wrong_shape(layer, lengths):
    with pytest.raises(ValueError, match=r"lengths.*shape \(3,\)"):
        _call_all(layer, _x(), lengths=np.array(lengths))


@pytest.mark.parametrize("lengths", [np.array([1.0, 2.0, 3.0]), np.array([True, True, True]),
                                     np.array(["1", "2", "3"]), np.array([1, 2, 3], object)],
                         ids=["float", "bool", "str", "object"])
def test_lengths_wrong_dtype(layer, lengths):
    with pytest.raises(TypeError, match=r"lengths.*integers"):
        _call_all(layer, _x(), lengths=lengths)


# ---------------------------------------------------------------- state

def test_state_wrong_shape(layer):
    LD = layer.num_layers * layer.num_directions
    for shape in [(LD, B + 1, H), (LD - 1, B, H), (LD, B, H + 1), (B, H)]:
        name = r"state" if isinstance(layer, GRU) else r"h0"
        with pytest.raises(ValueError, match=rf"{name}.*shape|{name}.*dimensions"):
            _call_all(layer, _x(), state=_state(layer, shape))


def test_lstm_c0_wrong_shape_and_not_finite():
    layer = LSTM(I, H, random_state=0)
    h0 = np.zeros((1, B, H), np.float32)
    with pytest.raises(ValueError, match=r"c0.*shape"):
        _call_all(layer, _x(), state=(h0, np.zeros((1, B, H + 1), np.float32)))
    c0 = np.zeros((1, B, H), np.float32)
    c0[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"c0.*NaN"):
        _call_all(layer, _x(), state=(h0, c0))
    h0n = h0.copy()
    h0n[0, 1, 1] = np.inf
    with pytest.raises(ValueError, match=r"h0.*NaN"):
        _call_all(layer, _x(), state=(h0n, c0 * 0))


@pytest.mark.parametrize("state", [np.zeros((1, B, H), np.float32), (np.zeros((1, B, H)),),
                                   (np.zeros((1, B, H)),) * 3, "h0"],
                         ids=["array", "1-tuple", "3-tuple", "str"])
def test_lstm_state_not_a_pair(state):
    layer = LSTM(I, H, random_state=0)
    with pytest.raises(TypeError, match=r"state.*tuple"):
        _call_all(layer, _x(), state=state)


def test_gru_state_given_as_pair():
    layer = GRU(I, H, random_state=0)
    z = np.zeros((1, B, H), np.float32)
    with pytest.raises(ValueError, match=r"state"):
        _call_all(layer, _x(), state=(z, z))


# ---------------------------------------------------------------- constructor

@pytest.mark.parametrize("kwargs,exc,name", [
    (dict(hidden_size=0), ValueError, "hidden_size"),
    (dict(hidden_size=-3), ValueError, "hidden_size"),
    (dict(hidden_size=2.5), TypeError, "hidden_size"),
    (dict(hidden_size=True), TypeError, "hidden_size"),
    (dict(input_size=0), ValueError, "input_size"),
    (dict(input_size="3"), TypeError, "input_size"),
    (dict(num_layers=0), ValueError, "num_layers"),
    (dict(cell="nope"), ValueError, "cell"),
    (dict(cell="gru"), ValueError, "cell"),
    (dict(cell=None), ValueError, "cell"),
    (dict(activation="sigmoid"), ValueError, "activation"),
    (dict(activation=["tanh"]), ValueError, "activation"),
    (dict(gate_activation="tanh"), ValueError, "gate_activation"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(dropout=-0.1), ValueError, "dropout"),
    (dict(dropout=float("nan")), ValueError, "dropout"),
    (dict(dropout="0.5"), TypeError, "dropout"),
    (dict(dtype="int8"), ValueError, "dtype"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(dtype="nope"), ValueError, "dtype"),
    (dict(dtype=None), ValueError, "dtype"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(n_threads=1.5), TypeError, "n_threads"),
    (dict(n_threads="2"), TypeError, "n_threads"),
    (dict(bidirectional="yes"), TypeError, "bidirectional"),
    (dict(random_state="seed"), TypeError, "random_state"),
], ids=lambda v: repr(v) if isinstance(v, dict) else "")
def test_bad_constructor_args(kwargs, exc, name):
    args = dict(input_size=I, hidden_size=H)
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        LSTM(**args)


def test_gru_rejects_lstm_cells():
    with pytest.raises(ValueError, match="cell"):
        GRU(I, H, cell="lstm")


# ---------------------------------------------------------------- load_state_dict

def test_load_state_dict_missing_and_unexpected(layer):
    sd = layer.state_dict()
    before = layer.flat_params.copy()
    missing = dict(sd)
    del missing["weight_hh_l1_reverse"]
    with pytest.raises(ValueError, match=r"missing \['weight_hh_l1_reverse'\]"):
        layer.load_state_dict(missing)
    extra = dict(sd, weight_ih_l2=sd["weight_ih_l1"])
    with pytest.raises(ValueError, match=r"unexpected \['weight_ih_l2'\]"):
        layer.load_state_dict(extra)
    with pytest.raises(TypeError, match="state_dict"):
        layer.load_state_dict([("weight_ih_l0", sd["weight_ih_l0"])])
    np.testing.assert_array_equal(layer.flat_params, before)   # nothing half-loaded


@pytest.mark.parametrize("bad", ["transposed", "short", "nan", "rank", "complex"])
def test_load_state_dict_bad_arrays(layer, bad):
    sd = layer.state_dict()
    before = layer.flat_params.copy()
    w = sd["weight_hh_l1"]
    sd["weight_hh_l1"] = {"transposed": w.T, "short": w[:-1], "rank": w[None],
                          "nan": np.where(np.eye(*w.shape, dtype=bool), np.nan, w),
                          "complex": w.astype(np.complex64)}[bad]
    exc = TypeError if bad == "complex" else ValueError
    with pytest.raises(exc, match=r"weight_hh_l1"):
        layer.load_state_dict(sd)
    np.testing.assert_array_equal(layer.flat_params, before)   # nothing half-loaded


def test_load_state_dict_of_a_peephole_layer_needs_peepholes():
    plain = LSTM(I, H, random_state=0).state_dict()
    peep = LSTM(I, H, cell="peephole", random_state=0)
    with pytest.raises(ValueError, match=r"missing \['weight_peephole_l0'\]"):
        peep.load_state_dict(plain)
    with pytest.raises(ValueError, match=r"unexpected \['weight_peephole_l0'\]"):
        LSTM(I, H).load_state_dict(peep.state_dict())


# ---------------------------------------------------------------- backward

def _fwd(layer, x):
    out = layer.forward(x)
    return out[0], out[-1]


def test_backward_with_a_foreign_cache(layer):
    other = type(layer)(I, H, num_layers=2, bidirectional=True, random_state=0)
    y, cache = _fwd(other, _x())
    with pytest.raises(ValueError, match="cache.*different layer"):
        layer.backward(cache, np.ones_like(y))
    for bad in (None, {}, "cache", (y,)):
        with pytest.raises(TypeError, match="cache"):
            layer.backward(bad, np.ones_like(y))
    # an inference forward has no cache
    cache_none = layer.forward(_x(), train=False)[-1]
    assert cache_none is None
    with pytest.raises(TypeError, match="cache"):
        layer.backward(cache_none, np.ones_like(y))


def test_backward_bad_gradients(layer):
    y, cache = _fwd(layer, _x())
    LD = layer.num_layers * layer.num_directions
    with pytest.raises(ValueError, match=r"dy.*shape \(3, 4, 10\)"):
        layer.backward(cache, np.ones((B, T, H)))
    with pytest.raises(ValueError, match=r"dy.*shape"):
        layer.backward(cache, np.ones((B, T + 1, 2 * H)))
    dy = np.ones_like(y)
    dy[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"dy.*NaN"):
        layer.backward(cache, dy)
    with pytest.raises(TypeError, match=r"dy.*real"):
        layer.backward(cache, np.ones(y.shape, object))
    with pytest.raises(ValueError, match=r"dh_n.*shape"):
        layer.backward(cache, np.ones_like(y), np.ones((LD, B, H + 1)))
    if isinstance(layer, LSTM):
        with pytest.raises(ValueError, match=r"dc_n.*shape"):
            layer.backward(cache, np.ones_like(y), None, np.ones((LD + 1, B, H)))
    with pytest.raises(ValueError, match="grad_out"):
        layer.backward(cache, np.ones_like(y), grad_out=np.zeros(3, layer.dtype))
    with pytest.raises(ValueError, match="grad_out"):
        layer.backward(cache, np.ones_like(y),
                       grad_out=np.zeros(layer.flat_params.size, np.float64))


# ---------------------------------------------------------------- accepted input

def _infer(layer, x, state=None, lengths=None):
    out = layer(x, state, lengths)
    return [out[0], out[1]] if isinstance(layer, GRU) else [out[0], *out[1]]


def _assert_same(a, b):
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_non_contiguous_input_accepted(layer):
    base = _x(B, 2 * T, I)
    x = base[:, ::2]
    assert not x.flags.c_contiguous
    lengths = np.array([4, 9, 1, 9, 3, 9])[::2]          # non-contiguous lengths too
    LD = layer.num_layers * layer.num_directions
    s = np.random.default_rng(1).standard_normal((LD, 2 * B, H)).astype(np.float32)[:, ::2]
    state = s if isinstance(layer, GRU) else (s, s)
    want = _infer(layer, np.ascontiguousarray(x), np.ascontiguousarray(s) if
                  isinstance(layer, GRU) else (np.ascontiguousarray(s),) * 2,
                  np.ascontiguousarray(lengths))
    _assert_same(_infer(layer, x, state, lengths), want)
    _assert_same(_infer(layer, np.asfortranarray(x)), _infer(layer, np.ascontiguousarray(x)))
    # x transposed from a time-major array
    tb = np.ascontiguousarray(x.transpose(1, 0, 2))
    _assert_same(_infer(layer, tb.transpose(1, 0, 2)), _infer(layer, np.ascontiguousarray(x)))


def test_other_dtypes_accepted(layer):
    x64 = _x(dtype=np.float64)
    want = _infer(layer, x64.astype(np.float32))
    got = _infer(layer, x64)
    _assert_same(got, want)
    assert all(a.dtype == np.float32 for a in got)
    xi = np.arange(B * T * I).reshape(B, T, I) % 5 - 2
    for x in (xi, xi.astype(np.int8), xi.astype(np.uint16) % 3, xi.tolist(), xi > 0):
        _assert_same(_infer(layer, x), _infer(layer, np.asarray(x, np.float32)))
    lengths = [4, 1, 3]
    for lens in (lengths, np.array(lengths, np.uint8), np.array(lengths, np.int64)):
        _assert_same(_infer(layer, x64, lengths=lens),
                     _infer(layer, x64, lengths=np.array(lengths, np.int32)))
    # float64 state into a float32 layer
    LD = layer.num_layers * layer.num_directions
    s64 = np.random.default_rng(2).standard_normal((LD, B, H))
    st64 = s64 if isinstance(layer, GRU) else (s64, s64)
    s32 = s64.astype(np.float32)
    st32 = s32 if isinstance(layer, GRU) else (s32, s32)
    _assert_same(_infer(layer, x64, st64), _infer(layer, x64, st32))


def test_inputs_are_not_modified(layer):
    x = _x()
    x0 = x.copy()
    s = _state(layer)
    s0 = [a.copy() for a in (s if isinstance(s, tuple) else (s,))]
    out = layer.forward(x, s)
    y, cache = out[0], out[-1]
    dy = np.ones_like(y)
    layer.backward(cache, dy)
    np.testing.assert_array_equal(x, x0)
    for a, b in zip(s if isinstance(s, tuple) else (s,), s0):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dy, np.ones_like(y))


# ---------------------------------------------------------------- Cython / C guards

def test_kernel_entry_points_refuse_bad_shapes():
    """Direct calls into _kernels with inconsistent shapes raise instead of crashing."""
    a = np.ones((3, 4))
    with pytest.raises(ValueError, match="gemm"):
        _kernels.gemm(False, a, np.ones((5, 2)), 0.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="gemm"):
        _kernels.gemm(True, a, np.ones((4, 2)), 0.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="activation"):
        _kernels.activation(0, np.ones(3), np.zeros(4))
    with pytest.raises(ValueError):
        _kernels.activation(7, np.ones(3), np.zeros(3))         # no such activation
    with pytest.raises((ValueError, TypeError)):
        _kernels.gemm(False, a, np.ones((4, 2), np.float32), 0.0, np.zeros((3, 2)))


def test_kernel_rejects_bad_lengths_directly():
    """C re-checks lengths (they index the sequences): a value past T, passed straight
    to the Cython function, is refused with an error instead of reading out of bounds."""
    H_, T_, B_, I_ = 4, 3, 2, 2
    x = np.ones((T_, B_, I_))
    w_ih, w_hh, b = np.ones((4 * H_, I_)), np.ones((4 * H_, H_)), np.ones(4 * H_)
    y = np.empty((T_, B_, H_))
    h_n, c_n = np.empty((B_, H_)), np.empty((B_, H_))
    for bad in ([1, T_ + 1], [0, 1], [-5, 1]):
        with pytest.raises(ValueError):
            _kernels.rnn_forward(0, 0, 0, False, 1, x, w_ih, w_hh, b, b, None, None, None,
                                 np.array(bad, np.int32), y, 0, h_n, c_n, None, None, None)
    with pytest.raises(ValueError, match="shape"):
        _kernels.rnn_forward(0, 0, 0, False, 1, x, w_ih[:-1], w_hh, b, b, None, None, None,
                             None, y, 0, h_n, c_n, None, None, None)
    with pytest.raises(ValueError):       # unknown cell code
        _kernels.rnn_forward(9, 0, 0, False, 1, x, w_ih, w_hh, b, b, None, None, None,
                             None, y, 0, h_n, c_n, None, None, None)
    with pytest.raises(ValueError):       # n_threads < 1
        _kernels.rnn_forward(0, 0, 0, False, 0, x, w_ih, w_hh, b, b, None, None, None,
                             None, y, 0, h_n, c_n, None, None, None)


def test_kernel_checks_every_array_it_takes():
    """rnn_forward reads numpy's array struct instead of building memoryviews: each
    array's type, dtype, rank, layout and (for outputs) writability is still checked
    before C sees a pointer, and the error names the argument."""
    H_, T_, B_, I_ = 4, 3, 2, 2
    args = dict(x=np.ones((T_, B_, I_)), w_ih=np.ones((4 * H_, I_)), w_hh=np.ones((4 * H_, H_)),
                b_ih=np.ones(4 * H_), b_hh=np.ones(4 * H_), y=np.empty((T_, B_, H_)),
                h_n=np.empty((B_, H_)), c_n=np.empty((B_, H_)))

    def call(**over):
        a = dict(args, **over)
        _kernels.rnn_forward(0, 0, 0, False, 1, a["x"], a["w_ih"], a["w_hh"], a["b_ih"],
                             a["b_hh"], None, None, None, None, a["y"], 0, a["h_n"], a["c_n"],
                             None, None, None)

    call()                                               # the well-formed call runs
    assert np.isfinite(args["y"]).all()
    ro = np.empty((B_, H_))
    ro.flags.writeable = False
    cases = {"w_hh": [args["w_hh"].astype(np.float32), args["w_hh"].tolist(),
                      np.ones((4 * H_, 2 * H_))[:, ::2], np.ones((1, 4 * H_, H_))],
             "h_n": [ro], "b_ih": [np.ones((0,))], "c_n": [np.empty((B_, H_), np.float32)]}
    for name, bads in cases.items():
        for bad in bads:
            with pytest.raises((TypeError, ValueError), match=name):
                call(**{name: bad})
    with pytest.raises(ValueError, match="lengths"):
        _kernels.rnn_forward(0, 0, 0, False, 1, args["x"], args["w_ih"], args["w_hh"],
                             args["b_ih"], args["b_hh"], None, None, None,
                             np.array([1, 2], np.int64), args["y"], 0, args["h_n"], args["c_n"],
                             None, None, None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_array_status_is_the_fast_input_check(dtype):
    """array_status: 1 only for a plain, C-contiguous, non-empty, finite array of the
    dtype and rank asked for; -1 for such an array holding NaN or inf; 0 for anything
    else, which the layer then converts and checks in full."""
    from fastlstm import _kernels
    dbl = dtype == np.float64
    x = np.ones((2, 3, 4), dtype)
    assert _kernels.array_status(x, dbl, 3) == 1
    x[1, 2, 3] = np.nan
    assert _kernels.array_status(x, dbl, 3) == -1
    other = np.float32 if dbl else np.float64
    for not_fast in (np.ones((2, 3, 4), other), np.ones((2, 3)), np.ones((2, 3, 4), dtype)[:, ::2],
                     np.ones((0, 3, 4), dtype), np.ma.masked_array(np.ones((2, 3, 4), dtype)),
                     [[[1.0]]], None):
        assert _kernels.array_status(not_fast, dbl, 3) == 0
    assert _kernels.array_status(np.ones((2, 3), dtype), dbl, 2) == 1
    swapped = np.ones((2, 3, 4), np.dtype(dtype).newbyteorder())
    assert _kernels.array_status(swapped, dbl, 3) == 0           # '>f4' has float's type number
    raw = np.zeros(2 * 3 * 4 * np.dtype(dtype).itemsize + 1, np.uint8)
    odd = np.frombuffer(raw.data, dtype, offset=1).reshape(2, 3, 4)
    assert not odd.flags.aligned and _kernels.array_status(odd, dbl, 3) == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_foreign_byte_order_and_misaligned_input_are_converted(dtype):
    """Big-endian data (FITS, HDF5, .npy from another machine) and arrays at odd
    byte offsets give the same output as the native array: the layer converts them
    (the kernels would read the bytes as they lie), and the kernel call refuses
    them outright when handed one directly."""
    layer = LSTM(3, 5, dtype=dtype, random_state=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(dtype)
    y, (h, c) = layer(x)
    big = x.astype(x.dtype.newbyteorder())
    raw = np.zeros(x.nbytes + 1, np.uint8)
    odd = np.frombuffer(raw.data, x.dtype, offset=1).reshape(x.shape)
    raw[1:] = np.frombuffer(x.tobytes(), np.uint8)
    assert not odd.flags.aligned
    for other in (big, odd):
        y2, (h2, c2) = layer(other)
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(h2, h)
    bad = big.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layer(bad)
    w = layer.state_dict()
    layer.load_state_dict({k: v.astype(v.dtype.newbyteorder()) for k, v in w.items()})
    np.testing.assert_array_equal(layer(x)[0], y)
    H_, T_, B_, I_ = 4, 3, 2, 2
    args = [np.ones((T_, B_, I_)), np.ones((4 * H_, I_)), np.ones((4 * H_, H_)),
            np.ones(4 * H_), np.ones(4 * H_)]
    args[2] = args[2].astype(">f8")
    with pytest.raises(ValueError, match="w_hh.*byte order"):
        _kernels.rnn_forward(0, 0, 0, False, 1, *args, None, None, None, None,
                             np.empty((T_, B_, H_)), 0, np.empty((B_, H_)), np.empty((B_, H_)),
                             None, None, None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finiteness_check_sees_every_position(dtype):
    """The layers' input check is a vectorised one-pass C loop: a NaN or infinity is
    caught wherever it sits (vector body or tail), and finite extremes pass."""
    from fastlstm import _kernels
    n = 37
    big = np.finfo(dtype).max
    assert _kernels.all_finite(np.full(n, big, dtype))
    assert _kernels.all_finite(np.full(n, -np.finfo(dtype).tiny / 2, dtype))   # subnormal
    for bad in (np.nan, np.inf, -np.inf):
        for pos in range(n):
            a = np.ones(n, dtype)
            a[pos] = bad
            assert not _kernels.all_finite(a), (bad, pos)
