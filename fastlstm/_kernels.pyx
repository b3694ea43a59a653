# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The only Cython in fastlstm: arrays in, one C call per layer pass.

Each function checks the shapes that keep C inside its buffers (the Python
layer has already validated values and given clear messages), releases the
GIL, calls C once and turns a status code into an exception.
Arrays marked OUT are written; all others are read only.

Functions called once per batch or less take typed memoryviews. The calls a
serving loop makes on every request (rnn_forward, array_status) read numpy's
array struct instead (_data): a memoryview costs about 0.2 us to build, and
rnn_forward takes up to 17 arrays, which was a tenth of a one-step call.
"""
import os

from libc.string cimport memset
cimport numpy as cnp

cnp.import_array()

cdef extern from "fastlstm.h" nogil:
    ctypedef struct fl_rnn_desc:
        int cell, act, gate_act, reverse, T, B, I, H, n_threads
        void *work
        size_t work_bytes
        const void *packed
        int y_batch_first
    size_t fl_rnn_packed_bytes_f32(const fl_rnn_desc *d)
    size_t fl_rnn_packed_bytes_f64(const fl_rnn_desc *d)
    int fl_rnn_pack_f32(const fl_rnn_desc *d, float *packed, const float *w_ih, const float *w_hh,
                        const float *b_ih, const float *b_hh, const float *w_peep)
    int fl_rnn_pack_f64(const fl_rnn_desc *d, double *packed, const double *w_ih, const double *w_hh,
                        const double *b_ih, const double *b_hh, const double *w_peep)
    size_t fl_rnn_work_bytes_f32(const fl_rnn_desc *d, int pass_)
    size_t fl_rnn_work_bytes_f64(const fl_rnn_desc *d, int pass_)
    long fl_gate_cache_cols(int H)
    int fl_rnn_forward_f32(const fl_rnn_desc *d, float *y, long ldy, float *h_n, float *c_n,
                           float *cache_gates, float *cache_h, float *cache_c,
                           const float *x, long ldx, const float *w_ih, const float *w_hh,
                           const float *b_ih, const float *b_hh, const float *w_peep,
                           const float *h0, const float *c0, const int *lengths)
    int fl_rnn_forward_f64(const fl_rnn_desc *d, double *y, long ldy, double *h_n, double *c_n,
                           double *cache_gates, double *cache_h, double *cache_c,
                           const double *x, long ldx, const double *w_ih, const double *w_hh,
                           const double *b_ih, const double *b_hh, const double *w_peep,
                           const double *h0, const double *c0, const int *lengths)
    int fl_rnn_backward_f32(const fl_rnn_desc *d, float *dx, long lddx, float *dh0, float *dc0,
                            float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *dw_peep,
                            const float *dy, long lddy, const float *dh_n, const float *dc_n,
                            const float *cache_gates, const float *cache_h, const float *cache_c,
                            const float *x, long ldx, const float *w_ih, const float *w_hh,
                            const float *w_peep, const int *lengths)
    int fl_rnn_backward_f64(const fl_rnn_desc *d, double *dx, long lddx, double *dh0, double *dc0,
                            double *dw_ih, double *dw_hh, double *db_ih, double *db_hh, double *dw_peep,
                            const double *dy, long lddy, const double *dh_n, const double *dc_n,
                            const double *cache_gates, const double *cache_h, const double *cache_c,
                            const double *x, long ldx, const double *w_ih, const double *w_hh,
                            const double *w_peep, const int *lengths)
    int fl_gemm_f32(int trans_a, int M, int N, int K, const float *A, long lda,
                    const float *B, long ldb, float beta, float *C, long ldc, int n_threads)
    int fl_gemm_f64(int trans_a, int M, int N, int K, const double *A, long lda,
                    const double *B, long ldb, double beta, double *C, long ldc, int n_threads)
    int fl_gemm_naive_f32(int trans_a, int M, int N, int K, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc)
    int fl_gemm_naive_f64(int trans_a, int M, int N, int K, const double *A, long lda,
                          const double *B, long ldb, double beta, double *C, long ldc)
    int fl_activation_f32(int which, long n, float *y, const float *x)
    int fl_all_finite_f32(const float *x, long n)
    int fl_all_finite_f64(const double *x, long n)
    double fl_sum_squares_f32(const float *x, long n)
    double fl_sum_squares_f64(const double *x, long n)
    int fl_activation_f64(int which, long n, double *y, const double *x)
    int fl_adam_f32(long n, float *p, const float *g, float *m, float *v, double step_size,
                    double beta1, double beta2, double eps, double bc2_sqrt,
                    double weight_decay, int n_threads)
    int fl_adam_f64(long n, double *p, const double *g, double *m, double *v, double step_size,
                    double beta1, double beta2, double eps, double bc2_sqrt,
                    double weight_decay, int n_threads)
    int fl_openmp_enabled()
    int fl_openmp_max_threads()
    int fl_usable_threads(int requested)
    int fl_single_after_fork()
    int fl_level_built(int level)
    int fl_level_supported(int level)
    const char *fl_level_name(int level)
    int fl_select_level(int level)
    int fl_active_level()
    int fl_level_unit_block()
    int fl_level_vector_bytes()

cdef extern from "fl_quant.h" nogil:
    int FL_Q_INT8_MAX_K
    size_t fl_qrnn_packed_bytes(const fl_rnn_desc *d, int qtype)
    int fl_qrnn_pack(const fl_rnn_desc *d, int qtype, void *packed, const void *w_ih,
                     const void *w_hh, const float *s_ih, const float *s_hh, const float *b_ih,
                     const float *b_hh, const float *w_peep)
    int fl_qrnn_forward(const fl_rnn_desc *d, int qtype, const void *packed, float *y, long ldy,
                        float *h_n, float *c_n, const float *x, long ldx, const float *h0,
                        const float *c0, const int *lengths)
    const char *fl_qrnn_path(int qtype)

cdef extern from "testing.h" nogil:
    int fl_test_set_step_split(int mode)
    int fl_test_step_split()
    int fl_test_step_threads_peak()
    int fl_test_set_quant_paths(int mode)
    int fl_test_quant_paths()

ctypedef fused real:
    float
    double


cdef int _raise(int status) except -1:
    if status == -1:
        raise MemoryError("fastlstm kernel could not allocate its workspace")
    if status == -4:
        raise ValueError("fastlstm: instruction-set level not available")
    if status != 0:
        raise ValueError(f"fastlstm kernel rejected its arguments (status {status})")
    return 0


cdef inline void _need(bint ok, str what) except *:
    if not ok:
        raise ValueError(f"kernel argument shape mismatch: {what}")


cdef inline bint _plain(cnp.ndarray arr, int typenum, int ndim) noexcept:
    """arr has this element type and rank, is C-contiguous, aligned and in the
    machine's byte order (the type number alone does not say '>f4' from '<f4')."""
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_NDIM(arr) == ndim
            and cnp.PyArray_ISCARRAY_RO(arr) and cnp.PyArray_ISNOTSWAPPED(arr))


cdef void *_data(object a, str name, int typenum, int ndim, bint out) except NULL:
    """The data pointer of a non-empty numpy array that _plain accepts (writable
    when out): what a typed memoryview would check."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"kernel argument {name} must be a numpy array, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise ValueError(f"kernel argument {name} has the wrong dtype ({arr.dtype})")
    if not _plain(arr, typenum, ndim):
        raise ValueError(f"kernel argument {name} must be a C-contiguous, aligned {ndim}-d "
                         f"array in native byte order")
    if cnp.PyArray_SIZE(arr) == 0:
        raise ValueError(f"kernel argument {name} is empty")
    if out and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"kernel argument {name} is read-only")
    return cnp.PyArray_DATA(arr)


cdef inline void *_opt(object a, str name, int typenum, int ndim, bint out) except? NULL:
    """_data, or NULL for None."""
    return NULL if a is None else _data(a, name, typenum, ndim, out)


cdef inline long _dim(object a, int k) noexcept:
    return cnp.PyArray_DIMS(<cnp.ndarray>a)[k]


cdef long _check_states_and_y(h0, c0, lengths, y, long y_off, h_n, c_n, long B, long T,
                              long H, bint y_batch_first) except -1:
    """Shapes of a forward's states, lengths and output (every forward takes them);
    returns y's row stride."""
    _need(h0 is None or (_dim(h0, 0) == B and _dim(h0, 1) == H), "h0")
    _need(c0 is None or (_dim(c0, 0) == B and _dim(c0, 1) == H), "c0")
    _need(lengths is None or _dim(lengths, 0) == B, "lengths")
    cdef long ldy = _dim(y, 2)
    _need(_dim(y, 0) == (B if y_batch_first else T) and _dim(y, 1) == (T if y_batch_first else B)
          and 0 <= y_off and y_off + H <= ldy, "y")
    _need(_dim(h_n, 0) == B and _dim(h_n, 1) == H, "h_n")
    _need(c_n is None or (_dim(c_n, 0) == B and _dim(c_n, 1) == H), "c_n")
    return ldy


cdef bint _state_cache_ok(const real[:, :, ::1] cache, int T, int B, int H):
    return cache is None or (cache.shape[0] == T + 1 and cache.shape[1] == B and cache.shape[2] == H)


cdef fl_rnn_desc _zero_desc() noexcept nogil:
    cdef fl_rnn_desc d
    memset(&d, 0, sizeof(d))
    return d


cdef void _set_work(fl_rnn_desc *d, unsigned char[::1] work):
    d.work = &work[0] if work is not None and work.shape[0] > 0 else NULL
    d.work_bytes = work.shape[0] if work is not None else 0


cdef size_t _packed_bytes(fl_rnn_desc *d, real dtype_tag) nogil:
    if real is float:
        return fl_rnn_packed_bytes_f32(d)
    else:
        return fl_rnn_packed_bytes_f64(d)


def rnn_pack(int cell, int T, int B, int n_threads,
             const real[:, ::1] w_ih,          # IN  (G*H, I)
             const real[:, ::1] w_hh,          # IN  (G*H, H)
             const real[::1] b_ih,             # IN  (G*H)
             const real[::1] b_hh,             # IN  (G*H)
             const real[:, ::1] w_peep,        # IN  (3, H) or None
             real[::1] packed):                # OUT packed_len(...) elements
    """Pack one layer-direction's forward weights once, for rnn_forward(packed=...)."""
    cdef fl_rnn_desc d = _zero_desc()
    d.cell, d.act, d.gate_act, d.reverse = cell, 0, 0, 0
    d.n_threads = fl_usable_threads(n_threads)
    d.T, d.B, d.I, d.H = T, B, w_ih.shape[1], w_hh.shape[1]
    cdef int G = 3 if cell == 3 else 4
    _need(w_ih.shape[0] == G * d.H and w_hh.shape[0] == G * d.H and b_ih.shape[0] == G * d.H
          and b_hh.shape[0] == G * d.H, "weights")
    _need(w_peep is not None or cell != 1, "w_peep")
    _need(<size_t>packed.shape[0] * sizeof(real) == _packed_bytes(&d, packed[0]), "packed size")
    cdef const real *p_peep = &w_peep[0, 0] if w_peep is not None else NULL
    cdef int status
    with nogil:
        if real is float:
            status = fl_rnn_pack_f32(&d, &packed[0], &w_ih[0, 0], &w_hh[0, 0], &b_ih[0], &b_hh[0], p_peep)
        else:
            status = fl_rnn_pack_f64(&d, &packed[0], &w_ih[0, 0], &w_hh[0, 0], &b_ih[0], &b_hh[0], p_peep)
    _raise(status)


def packed_len(int cell, int I, int H, bint double):
    """Elements of a packed weight buffer for this cell and size."""
    cdef fl_rnn_desc d = _zero_desc()
    d.cell, d.act, d.gate_act, d.reverse, d.n_threads = cell, 0, 0, 0, 1
    d.T, d.B, d.I, d.H = 1, 1, I, H
    if double:
        return fl_rnn_packed_bytes_f64(&d) // 8
    return fl_rnn_packed_bytes_f32(&d) // 4


def work_bytes(int cell, int T, int B, int I, int H, int n_threads, int pass_, bint double):
    """Scratch bytes a kernel call needs (pass_: 0 inference, 1 training forward, 2 backward)."""
    cdef fl_rnn_desc d = _zero_desc()
    d.cell, d.act, d.gate_act, d.reverse, d.n_threads = cell, 0, 0, 0, n_threads
    d.T, d.B, d.I, d.H = T, B, I, H
    return fl_rnn_work_bytes_f64(&d, pass_) if double else fl_rnn_work_bytes_f32(&d, pass_)


def gate_cache_cols(int H):
    return fl_gate_cache_cols(H)


# ----- for tests only (src_c/testing.h) -------------------------------------
THREAD_SPLITS = ("auto", "model", "blocks")


def set_thread_split_for_tests(mode):
    """How every later kernel call, process-wide, threads its time loops:
    "auto" (the default) lets the cost model choose, which keeps small steps
    on one thread; "model" runs every time loop on all n_threads, split as
    the cost model picks (by batch rows where W_hh is small, else by unit
    blocks); "blocks" runs it on all n_threads split by unit blocks. For the
    thread-invariance tests; returns the mode it replaces."""
    if mode not in THREAD_SPLITS:
        raise ValueError(f"thread split must be one of {THREAD_SPLITS}, got {mode!r}")
    previous = THREAD_SPLITS[fl_test_step_split()]
    _raise(fl_test_set_step_split(THREAD_SPLITS.index(mode)))
    return previous


def thread_split_peak_for_tests():
    """The most threads any time loop was planned for since the last
    set_thread_split_for_tests call (0 if none ran): tells a test that the
    split it forced took place."""
    return fl_test_step_threads_peak()


QUANT_PATHS = ("general", "cpu", "amx_emulated")   # testing.h's fl_test_qpaths


def set_quant_paths_for_tests(mode):
    """The paths every later quantized kernel call takes, process-wide:
    "cpu" (the default) the CPU's best; "general" the level's general ones,
    ignoring the CPU's dot-product instructions and AMX, so a CPU that has
    them reaches the others; "amx_emulated" the CPU's best with the avx512
    level's AMX tile path for batches of 16 rows or more, its tiles emulated
    in C. Returns the mode it replaces."""
    if mode not in QUANT_PATHS:
        raise ValueError(f"quantized paths must be one of {QUANT_PATHS}, got {mode!r}")
    previous = QUANT_PATHS[fl_test_quant_paths()]
    _raise(fl_test_set_quant_paths(QUANT_PATHS.index(mode)))
    return previous


def openmp_enabled():
    return bool(fl_openmp_enabled())


def openmp_max_threads():
    return fl_openmp_max_threads()


def single_after_fork():
    """True in a process forked after OpenMP threads ran: kernels then run on one thread."""
    return bool(fl_single_after_fork())


# ----- instruction-set levels (src_c/level.h): best first ------------------
LEVELS = ("avx512", "avx2", "baseline")


def levels_built():
    return [name for k, name in enumerate(LEVELS) if fl_level_built(k)]


def levels_supported():
    """The levels compiled in that this CPU runs, best first."""
    return [name for k, name in enumerate(LEVELS) if fl_level_supported(k)]


def isa():
    """The level every kernel call uses."""
    return fl_level_name(fl_active_level()).decode()


def level_layout():
    """(vector bytes, hidden units per block) of the active level."""
    return fl_level_vector_bytes(), fl_level_unit_block()


def _choose_level(cap, supported):
    """The best level in ``supported`` no better than ``cap`` (a LEVELS name, or
    None for no cap), and why; ImportError for a cap that is no level or that
    ``supported`` lacks."""
    if cap is None:
        return supported[0], "the best this CPU supports"
    if cap not in LEVELS:
        raise ImportError(f"FASTLSTM_MAX_ISA={cap!r} is not a level; use one of "
                          f"{', '.join(LEVELS)}")
    if cap not in supported:
        raise ImportError(f"FASTLSTM_MAX_ISA={cap!r} asks for a level this CPU or build "
                          f"lacks; it has: {', '.join(supported)}")
    return cap, f"capped by FASTLSTM_MAX_ISA={cap}"


def _select_level(cap):
    """Make every kernel call use the level _choose_level picks; runs once, at import."""
    choice, why = _choose_level(cap, levels_supported())
    _raise(fl_select_level(LEVELS.index(choice)))
    return why


SELECTED_BECAUSE = _select_level(os.environ.get("FASTLSTM_MAX_ISA", "").strip().lower() or None)


def rnn_forward(int cell, int act, int gate_act, bint reverse, int n_threads,
                x,                 # IN  (T, B, I) float32 or float64; every real array below alike
                w_ih,              # IN  (G*H, I)
                w_hh,              # IN  (G*H, H)
                b_ih,              # IN  (G*H)
                b_hh,              # IN  (G*H)
                w_peep,            # IN  (3, H) or None
                h0,                # IN  (B, H) or None
                c0,                # IN  (B, H) or None
                lengths,           # IN  (B) numpy.intc (C int), or None
                y, int y_off,      # OUT (T, B, ldy) or, y_batch_first, (B, T, ldy);
                                   #     columns [y_off, y_off + H)
                h_n,               # OUT (B, H)
                c_n,               # OUT (B, H) or None (gru)
                cache_gates,       # OUT (T, B, gate_cache_cols(H)) or None
                cache_h,           # OUT (T+1, B, H) or None
                cache_c,           # OUT (T+1, B, H) or None
                work=None,         # uint8 scratch reused across calls, or None
                packed=None,       # IN  weights from rnn_pack (same cell, I, H), or None
                bint y_batch_first=False):
    cdef int tn = cnp.NPY_DOUBLE if cnp.PyArray_Check(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_DOUBLE else cnp.NPY_FLOAT
    cdef const void *p_x = _data(x, "x", tn, 3, False)
    cdef const void *p_wih = _data(w_ih, "w_ih", tn, 2, False)
    cdef const void *p_whh = _data(w_hh, "w_hh", tn, 2, False)
    cdef const void *p_bih = _data(b_ih, "b_ih", tn, 1, False)
    cdef const void *p_bhh = _data(b_hh, "b_hh", tn, 1, False)
    cdef const void *p_peep = _opt(w_peep, "w_peep", tn, 2, False)
    cdef const void *p_h0 = _opt(h0, "h0", tn, 2, False)
    cdef const void *p_c0 = _opt(c0, "c0", tn, 2, False)
    cdef const int *p_len = <const int *>_opt(lengths, "lengths", cnp.NPY_INT, 1, False)   # C int
    cdef char *p_y = <char *>_data(y, "y", tn, 3, True)
    cdef void *p_hn = _data(h_n, "h_n", tn, 2, True)
    cdef void *p_cn = _opt(c_n, "c_n", tn, 2, True)
    cdef void *p_cg = _opt(cache_gates, "cache_gates", tn, 3, True)
    cdef void *p_ch = _opt(cache_h, "cache_h", tn, 3, True)
    cdef void *p_cc = _opt(cache_c, "cache_c", tn, 3, True)
    cdef fl_rnn_desc d = _zero_desc()
    d.cell, d.act, d.gate_act, d.reverse = cell, act, gate_act, reverse
    d.n_threads = fl_usable_threads(n_threads)
    if work is not None and cnp.PyArray_Check(work) and cnp.PyArray_SIZE(<cnp.ndarray>work) == 0:
        work = None                    # no scratch: C allocates its own
    d.work = _opt(work, "work", cnp.NPY_UINT8, 1, True)
    d.work_bytes = _dim(work, 0) if work is not None else 0
    d.T, d.B, d.I = _dim(x, 0), _dim(x, 1), _dim(x, 2)
    d.y_batch_first = y_batch_first
    d.H = _dim(w_hh, 1)
    cdef int G = 3 if cell == 3 else 4
    cdef int T = d.T, B = d.B, H = d.H
    _need(_dim(w_ih, 0) == G * H and _dim(w_ih, 1) == d.I and _dim(w_hh, 0) == G * H, "weights")
    _need(_dim(b_ih, 0) == G * H and _dim(b_hh, 0) == G * H, "biases")
    _need(w_peep is None or (_dim(w_peep, 0) == 3 and _dim(w_peep, 1) == H), "w_peep")
    cdef long ldy = _check_states_and_y(h0, c0, lengths, y, y_off, h_n, c_n, B, T, H,
                                        y_batch_first)
    _need(cache_gates is None or (_dim(cache_gates, 0) == T and _dim(cache_gates, 1) == B
                                  and _dim(cache_gates, 2) == fl_gate_cache_cols(H)), "cache_gates")
    _need(cache_h is None or (_dim(cache_h, 0) == T + 1 and _dim(cache_h, 1) == B
                              and _dim(cache_h, 2) == H), "cache_h")
    _need(cache_c is None or (_dim(cache_c, 0) == T + 1 and _dim(cache_c, 1) == B
                              and _dim(cache_c, 2) == H), "cache_c")
    cdef size_t esize = 8 if tn == cnp.NPY_DOUBLE else 4
    if packed is not None:
        d.packed = _data(packed, "packed", tn, 1, False)
        _need(<size_t>_dim(packed, 0) * esize
              == (fl_rnn_packed_bytes_f64(&d) if esize == 8 else fl_rnn_packed_bytes_f32(&d)),
              "packed")
    p_y += <long>y_off * <long>esize
    cdef int status
    with nogil:
        if esize == 4:
            status = fl_rnn_forward_f32(&d, <float *>p_y, ldy, <float *>p_hn, <float *>p_cn,
                                        <float *>p_cg, <float *>p_ch, <float *>p_cc,
                                        <const float *>p_x, d.I, <const float *>p_wih,
                                        <const float *>p_whh, <const float *>p_bih,
                                        <const float *>p_bhh, <const float *>p_peep,
                                        <const float *>p_h0, <const float *>p_c0, p_len)
        else:
            status = fl_rnn_forward_f64(&d, <double *>p_y, ldy, <double *>p_hn, <double *>p_cn,
                                        <double *>p_cg, <double *>p_ch, <double *>p_cc,
                                        <const double *>p_x, d.I, <const double *>p_wih,
                                        <const double *>p_whh, <const double *>p_bih,
                                        <const double *>p_bhh, <const double *>p_peep,
                                        <const double *>p_h0, <const double *>p_c0, p_len)
    _raise(status)


def rnn_backward(int cell, int act, int gate_act, bint reverse, int n_threads,
                 real[:, ::1] dh0,                 # OUT (B, H); first, so it picks the dtype
                 real[:, :, ::1] dx,               # OUT (T, B, I), accumulated (+=); or None
                 real[:, ::1] dc0,                 # OUT (B, H) or None (gru)
                 real[:, ::1] dw_ih,               # OUT (G*H, I)
                 real[:, ::1] dw_hh,               # OUT (G*H, H)
                 real[::1] db_ih,                  # OUT (G*H)
                 real[::1] db_hh,                  # OUT (G*H)
                 real[:, ::1] dw_peep,             # OUT (3, H) or None
                 const real[:, :, ::1] dy, int dy_off,  # IN (T, B, lddy), columns [dy_off, dy_off + H); or None
                 const real[:, ::1] dh_n,          # IN  (B, H) or None
                 const real[:, ::1] dc_n,          # IN  (B, H) or None
                 const real[:, :, ::1] cache_gates,  # IN (T, B, gate_cache_cols(H))
                 const real[:, :, ::1] cache_h,    # IN  (T+1, B, H)
                 const real[:, :, ::1] cache_c,    # IN  (T+1, B, H) or None (gru)
                 const real[:, :, ::1] x,          # IN  (T, B, I)
                 const real[:, ::1] w_ih,          # IN  (G*H, I)
                 const real[:, ::1] w_hh,          # IN  (G*H, H)
                 const real[:, ::1] w_peep,        # IN  (3, H) or None
                 const int[::1] lengths,           # IN  (B) or None
                 unsigned char[::1] work=None):    # scratch reused across calls, or None
    cdef fl_rnn_desc d = _zero_desc()
    d.cell, d.act, d.gate_act, d.reverse = cell, act, gate_act, reverse
    d.n_threads = fl_usable_threads(n_threads)
    _set_work(&d, work)
    d.T, d.B, d.I = x.shape[0], x.shape[1], x.shape[2]
    d.H = w_hh.shape[1]
    cdef int G = 3 if cell == 3 else 4
    cdef int T = d.T, B = d.B, H = d.H, I = d.I
    _need(w_ih.shape[0] == G * H and w_ih.shape[1] == I and w_hh.shape[0] == G * H, "weights")
    _need(dx is None or (dx.shape[0] == T and dx.shape[1] == B and dx.shape[2] == I), "dx")
    _need(dh0.shape[0] == B and dh0.shape[1] == H, "dh0")
    _need(dc0 is None or (dc0.shape[0] == B and dc0.shape[1] == H), "dc0")
    _need(dw_ih.shape[0] == G * H and dw_ih.shape[1] == I, "dw_ih")
    _need(dw_hh.shape[0] == G * H and dw_hh.shape[1] == H, "dw_hh")
    _need(db_ih.shape[0] == G * H and db_hh.shape[0] == G * H, "db")
    _need(dw_peep is None or (dw_peep.shape[0] == 3 and dw_peep.shape[1] == H), "dw_peep")
    _need(w_peep is None or (w_peep.shape[0] == 3 and w_peep.shape[1] == H), "w_peep")
    _need(dy is None or (dy.shape[0] == T and dy.shape[1] == B and 0 <= dy_off
                         and <long>dy_off + H <= dy.shape[2]), "dy")
    _need(dh_n is None or (dh_n.shape[0] == B and dh_n.shape[1] == H), "dh_n")
    _need(dc_n is None or (dc_n.shape[0] == B and dc_n.shape[1] == H), "dc_n")
    _need(cache_gates.shape[0] == T and cache_gates.shape[1] == B
          and cache_gates.shape[2] == fl_gate_cache_cols(H), "cache_gates")
    _need(_state_cache_ok(cache_h, T, B, H) and _state_cache_ok(cache_c, T, B, H), "cache_h/cache_c")
    _need(cache_h is not None, "cache_h")
    _need(lengths is None or lengths.shape[0] == B, "lengths")
    cdef real *p_dx = &dx[0, 0, 0] if dx is not None else NULL
    cdef real *p_dc0 = &dc0[0, 0] if dc0 is not None else NULL
    cdef real *p_dwp = &dw_peep[0, 0] if dw_peep is not None else NULL
    cdef const real *p_dy = &dy[0, 0, dy_off] if dy is not None else NULL
    cdef long lddy = dy.shape[2] if dy is not None else H
    cdef const real *p_dhn = &dh_n[0, 0] if dh_n is not None else NULL
    cdef const real *p_dcn = &dc_n[0, 0] if dc_n is not None else NULL
    cdef const real *p_cc = &cache_c[0, 0, 0] if cache_c is not None else NULL
    cdef const real *p_wp = &w_peep[0, 0] if w_peep is not None else NULL
    cdef const int *p_len = &lengths[0] if lengths is not None else NULL
    cdef int status
    with nogil:
        if real is float:
            status = fl_rnn_backward_f32(&d, p_dx, I, &dh0[0, 0], p_dc0, &dw_ih[0, 0], &dw_hh[0, 0],
                                         &db_ih[0], &db_hh[0], p_dwp, p_dy, lddy, p_dhn, p_dcn,
                                         &cache_gates[0, 0, 0], &cache_h[0, 0, 0], p_cc,
                                         &x[0, 0, 0], I, &w_ih[0, 0], &w_hh[0, 0], p_wp, p_len)
        else:
            status = fl_rnn_backward_f64(&d, p_dx, I, &dh0[0, 0], p_dc0, &dw_ih[0, 0], &dw_hh[0, 0],
                                         &db_ih[0], &db_hh[0], p_dwp, p_dy, lddy, p_dhn, p_dcn,
                                         &cache_gates[0, 0, 0], &cache_h[0, 0, 0], p_cc,
                                         &x[0, 0, 0], I, &w_ih[0, 0], &w_hh[0, 0], p_wp, p_len)
    _raise(status)


def gemm(bint trans_a, const real[:, ::1] A, const real[:, ::1] B, real beta,
         real[:, ::1] C, int n_threads=1, bint naive=False):
    """C = beta * C + op(A) @ B, for tests of the packed GEMM against the naive loop."""
    cdef int M = C.shape[0], N = C.shape[1]
    cdef int K = A.shape[0] if trans_a else A.shape[1]
    _need((A.shape[1] if trans_a else A.shape[0]) == M and B.shape[0] == K and B.shape[1] == N,
          "gemm operands")
    if M == 0 or N == 0:
        return
    cdef const real *pa = &A[0, 0] if A.shape[0] * A.shape[1] > 0 else NULL
    cdef const real *pb = &B[0, 0] if B.shape[0] * B.shape[1] > 0 else NULL
    cdef int status
    n_threads = fl_usable_threads(n_threads)
    with nogil:
        if real is float:
            if naive:
                status = fl_gemm_naive_f32(trans_a, M, N, K, pa, A.shape[1], pb, N, beta, &C[0, 0], N)
            else:
                status = fl_gemm_f32(trans_a, M, N, K, pa, A.shape[1], pb, N, beta, &C[0, 0], N, n_threads)
        else:
            if naive:
                status = fl_gemm_naive_f64(trans_a, M, N, K, pa, A.shape[1], pb, N, beta, &C[0, 0], N)
            else:
                status = fl_gemm_f64(trans_a, M, N, K, pa, A.shape[1], pb, N, beta, &C[0, 0], N, n_threads)
    _raise(status)


def activation(int which, const real[::1] x, real[::1] y):
    """y = f(x) with the kernels' own sigmoid (0), tanh (1), hard sigmoid (2), relu (3)."""
    _need(x.shape[0] == y.shape[0], "activation x/y")
    if x.shape[0] == 0:
        return
    cdef int status
    with nogil:
        if real is float:
            status = fl_activation_f32(which, x.shape[0], &y[0], &x[0])
        else:
            status = fl_activation_f64(which, x.shape[0], &y[0], &x[0])
    _raise(status)


def adam(p, g, m, v, double step_size, double beta1, double beta2, double eps,
         double bc2_sqrt, double weight_decay, int n_threads):
    """One fused Adam step on 1-D buffers of one float dtype, in place on p, m, v."""
    cdef bint double = cnp.PyArray_Check(p) and cnp.PyArray_TYPE(<cnp.ndarray>p) == cnp.NPY_DOUBLE
    cdef int tn = cnp.NPY_DOUBLE if double else cnp.NPY_FLOAT
    cdef void *pp = _data(p, "params", tn, 1, True)
    cdef const void *pg = _data(g, "grad", tn, 1, False)
    cdef void *pm = _data(m, "m", tn, 1, True)
    cdef void *pv = _data(v, "v", tn, 1, True)
    cdef long n = _dim(p, 0)
    _need(_dim(g, 0) == n, "grad length differs from params'")
    _need(_dim(m, 0) == n, "m length differs from params'")
    _need(_dim(v, 0) == n, "v length differs from params'")
    cdef int status
    n_threads = fl_usable_threads(n_threads)
    with nogil:
        if double:
            status = fl_adam_f64(n, <double *>pp, <const double *>pg, <double *>pm, <double *>pv,
                                 step_size, beta1, beta2, eps, bc2_sqrt, weight_decay, n_threads)
        else:
            status = fl_adam_f32(n, <float *>pp, <const float *>pg, <float *>pm, <float *>pv,
                                 step_size, beta1, beta2, eps, bc2_sqrt, weight_decay, n_threads)
    _raise(status)


def all_finite(x):
    """True when x (a plain float32 or float64 numpy array, any shape) holds no NaN or infinity."""
    if x.size == 0:
        return True
    status = array_status(x, x.dtype.itemsize == 8, x.ndim)
    if status == 0:
        raise ValueError("all_finite takes a C-contiguous, aligned float32 or float64 numpy array")
    return status == 1


def array_status(x, bint double, int ndim):
    """The layers' and estimators' input check in one call (a serving request's
    x, h0, c0; a training batch's X and y):
    1 when x is a non-empty numpy.ndarray of this dtype and rank, C-contiguous,
    aligned and in native byte order, with no NaN or infinity; -1 when it is
    such an array but holds one; 0 when it is anything else (the caller
    converts and checks it the slow way)."""
    cdef int tn = cnp.NPY_DOUBLE if double else cnp.NPY_FLOAT
    if not cnp.PyArray_CheckExact(x):     # subclasses (masked arrays...) go the slow way
        return 0
    cdef cnp.ndarray arr = <cnp.ndarray>x
    if not _plain(arr, tn, ndim) or cnp.PyArray_SIZE(arr) == 0:
        return 0
    cdef const void *p = cnp.PyArray_DATA(arr)
    cdef long n = cnp.PyArray_SIZE(arr)
    cdef int ok
    with nogil:
        ok = fl_all_finite_f64(<const double *>p, n) if double else fl_all_finite_f32(<const float *>p, n)
    return 1 if ok == 1 else -1


def sum_squares(const real[::1] x):
    """sum(x**2) in double, in a fixed order (gradient norms)."""
    cdef double s = 0
    if x.shape[0] == 0:
        return 0.0
    with nogil:
        if real is float:
            s = fl_sum_squares_f32(&x[0], x.shape[0])
        else:
            s = fl_sum_squares_f64(&x[0], x.shape[0])
    return s


# ----- reduced-precision inference (src_c/fl_quant.h) ------------------------
QTYPES = {"bfloat16": 1, "int8": 2}
INT8_MAX_WIDTH = FL_Q_INT8_MAX_K    # widest input or hidden size int8 takes


def qpacked_bytes(int cell, int I, int H, int qtype):
    """Bytes of one layer-direction's packed quantized weights on the active level."""
    cdef fl_rnn_desc d = _zero_desc()
    d.cell, d.n_threads, d.T, d.B, d.I, d.H = cell, 1, 1, 1, I, H
    return fl_qrnn_packed_bytes(&d, qtype)


def quant_path(int qtype):
    """The instructions the active level computes qtype's dot products with
    on this CPU (src_c/fl_quant.h, fl_qrnn_path)."""
    return fl_qrnn_path(qtype).decode()


def qrnn_pack(int cell, int qtype,
              w_ih,          # IN  (G*H, I) uint16 (bf16 bits) or int8
              w_hh,          # IN  (G*H, H) as w_ih
              s_ih, s_hh,    # IN  (G*H) float32 row scales (int8), or None (bf16)
              b_ih, b_hh,    # IN  (G*H) float32
              w_peep,        # IN  (3, H) float32 or None
              packed):       # OUT uint8 (qpacked_bytes(...)), 64-byte aligned
    cdef int wt = cnp.NPY_UINT16 if qtype == 1 else cnp.NPY_INT8
    cdef const void *p_wih = _data(w_ih, "w_ih", wt, 2, False)
    cdef const void *p_whh = _data(w_hh, "w_hh", wt, 2, False)
    cdef const float *p_sih = <const float *>_opt(s_ih, "s_ih", cnp.NPY_FLOAT, 1, False)
    cdef const float *p_shh = <const float *>_opt(s_hh, "s_hh", cnp.NPY_FLOAT, 1, False)
    cdef const float *p_bih = <const float *>_data(b_ih, "b_ih", cnp.NPY_FLOAT, 1, False)
    cdef const float *p_bhh = <const float *>_data(b_hh, "b_hh", cnp.NPY_FLOAT, 1, False)
    cdef const float *p_peep = <const float *>_opt(w_peep, "w_peep", cnp.NPY_FLOAT, 2, False)
    cdef void *p_pk = _data(packed, "packed", cnp.NPY_UINT8, 1, True)
    cdef fl_rnn_desc d = _zero_desc()
    d.cell, d.n_threads, d.T, d.B, d.I, d.H = cell, 1, 1, 1, _dim(w_ih, 1), _dim(w_hh, 1)
    cdef long GH = (3 if cell == 3 else 4) * d.H
    _need(_dim(w_ih, 0) == GH and _dim(w_hh, 0) == GH and _dim(b_ih, 0) == GH
          and _dim(b_hh, 0) == GH, "weights")
    _need(qtype == 1 or (s_ih is not None and s_hh is not None and _dim(s_ih, 0) == GH
                         and _dim(s_hh, 0) == GH), "scales")
    _need(w_peep is None or (_dim(w_peep, 0) == 3 and _dim(w_peep, 1) == d.H), "w_peep")
    _need(<size_t>_dim(packed, 0) == fl_qrnn_packed_bytes(&d, qtype)
          and (<size_t>p_pk) % 64 == 0, "packed")
    cdef int status
    with nogil:
        status = fl_qrnn_pack(&d, qtype, p_pk, p_wih, p_whh, p_sih, p_shh, p_bih, p_bhh, p_peep)
    _raise(status)


def qrnn_forward(int cell, int act, int gate_act, bint reverse, int qtype,
                 x,                 # IN  (T, B, I) float32
                 packed,            # IN  uint8 from qrnn_pack (same cell, I, H, qtype, level)
                 int H,
                 h0, c0,            # IN  (B, H) float32 or None
                 lengths,           # IN  (B) numpy.intc or None
                 y, int y_off,      # OUT (T, B, ldy) or (B, T, ldy) with y_batch_first
                 h_n, c_n,          # OUT (B, H); c_n None for gru
                 bint y_batch_first=False, int n_threads=1):
    cdef const float *p_x = <const float *>_data(x, "x", cnp.NPY_FLOAT, 3, False)
    cdef const void *p_pk = _data(packed, "packed", cnp.NPY_UINT8, 1, False)
    cdef const float *p_h0 = <const float *>_opt(h0, "h0", cnp.NPY_FLOAT, 2, False)
    cdef const float *p_c0 = <const float *>_opt(c0, "c0", cnp.NPY_FLOAT, 2, False)
    cdef const int *p_len = <const int *>_opt(lengths, "lengths", cnp.NPY_INT, 1, False)
    cdef float *p_y = <float *>_data(y, "y", cnp.NPY_FLOAT, 3, True)
    cdef float *p_hn = <float *>_data(h_n, "h_n", cnp.NPY_FLOAT, 2, True)
    cdef float *p_cn = <float *>_opt(c_n, "c_n", cnp.NPY_FLOAT, 2, True)
    cdef fl_rnn_desc d = _zero_desc()
    d.cell, d.act, d.gate_act, d.reverse = cell, act, gate_act, reverse
    d.n_threads = fl_usable_threads(n_threads)
    d.T, d.B, d.I, d.H = _dim(x, 0), _dim(x, 1), _dim(x, 2), H
    d.y_batch_first = y_batch_first
    cdef int T = d.T, B = d.B
    _need(<size_t>_dim(packed, 0) == fl_qrnn_packed_bytes(&d, qtype)
          and (<size_t>p_pk) % 64 == 0, "packed")
    _need(cell == 3 or c_n is not None, "c_n")
    cdef long ldy = _check_states_and_y(h0, c0, lengths, y, y_off, h_n, c_n, B, T, H,
                                        y_batch_first)
    cdef int status
    with nogil:
        status = fl_qrnn_forward(&d, qtype, p_pk, p_y + y_off, ldy, p_hn, p_cn, p_x, d.I,
                                 p_h0, p_c0, p_len)
    _raise(status)
