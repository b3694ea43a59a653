/* fastlstm C kernels: public interface.
 *
 * Plain C99 + OpenMP, no Python headers. Every function returns a status code
 * (FL_OK or a negative FL_ERR_*); nothing here prints, exits or aborts.
 * Sizes are validated by the Python layer; C re-checks only what would make it
 * touch memory it does not own.
 *
 * Layouts (all row-major):
 *   sequences are time-major: x (T, B, ldx) with the first I columns used,
 *   so a bidirectional layer writes its two directions into one y (T, B, 2H)
 *   by passing y and y + H with ldy = 2H.
 *   weights are PyTorch's: w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H),
 *   G = 4 for lstm/peephole/cifg (rows i, f, g, o), G = 3 for gru (r, z, n);
 *   w_peep (3, H), rows i, f, o (peephole cell only).
 */
#ifndef FASTLSTM_H
#define FASTLSTM_H

#include <stddef.h>

#define FL_OK 0
#define FL_ERR_NOMEM (-1)
#define FL_ERR_SIZE (-2)      /* a size is negative, zero where it must not be, or overflows */
#define FL_ERR_ARG (-3)       /* a required pointer is NULL or an enum is out of range */

enum fl_cell { FL_CELL_LSTM = 0, FL_CELL_PEEPHOLE = 1, FL_CELL_CIFG = 2, FL_CELL_GRU = 3 };
enum fl_act { FL_ACT_TANH = 0, FL_ACT_RELU = 1 };
enum fl_gate { FL_GATE_SIGMOID = 0, FL_GATE_HARD_SIGMOID = 1 };

/* <complex.h>, which numpy's headers include ahead of this one in the Cython
 * module, defines I as the imaginary unit; here it is a field name */
#undef I

typedef struct {
    int cell;        /* enum fl_cell */
    int act;         /* enum fl_act: candidate and cell-output activation */
    int gate_act;    /* enum fl_gate */
    int reverse;     /* 0: t = 0..len-1, 1: t = len-1..0 */
    int T, B, I, H;
    int n_threads;   /* >= 1 */
    void *work;      /* optional caller workspace (64-byte aligned), reused across calls */
    size_t work_bytes;
    const void *packed;  /* optional forward weights packed by fl_rnn_pack (NULL: pack per call) */
    int y_batch_first;   /* fl_rnn_forward's y rows: 0 time-major, row (t, b) at y + (t*B + b)*ldy;
                            1 batch-first, at y + (b*T + t)*ldy (saves the caller a transpose) */
} fl_rnn_desc;

/* Pack one layer-direction's weights once (per model load or optimizer step)
 * for fl_rnn_forward; `packed` holds fl_rnn_packed_bytes(d) bytes. The packed
 * form depends on cell, H and I only. */
size_t fl_rnn_packed_bytes_f32(const fl_rnn_desc *d);
size_t fl_rnn_packed_bytes_f64(const fl_rnn_desc *d);
int fl_rnn_pack_f32(const fl_rnn_desc *d, float *packed, const float *w_ih, const float *w_hh,
                    const float *b_ih, const float *b_hh, const float *w_peep);
int fl_rnn_pack_f64(const fl_rnn_desc *d, double *packed, const double *w_ih, const double *w_hh,
                    const double *b_ih, const double *b_hh, const double *w_peep);

/* Bytes of workspace a call needs (pass: 0 inference forward, 1 training
 * forward, 2 backward); with d->work at least this large, the call allocates
 * nothing. Without it the call allocates and frees its own. */
size_t fl_rnn_work_bytes_f32(const fl_rnn_desc *d, int pass);
size_t fl_rnn_work_bytes_f64(const fl_rnn_desc *d, int pass);

/* 1 if all n values are finite (no NaN or infinity), else 0. */
int fl_all_finite_f32(const float *x, long n);
int fl_all_finite_f64(const double *x, long n);

/* sum of x[i]^2, accumulated in double in a fixed order (gradient norms). */
double fl_sum_squares_f32(const float *x, long n);
double fl_sum_squares_f64(const double *x, long n);

/* Width of one row of the training cache of gates: 4 * (H rounded up to the
 * level's unit block, fl_level_unit_block()) (lstm: i, f, g, o after
 * activation; gru: r, z, n and the recurrent part of n). */
long fl_gate_cache_cols(int H);

/* One layer, one direction, forward.
 * y       (T, B, ldy)  OUT  columns [0, H); zero at steps past a sequence's length;
 *                      (B, T, ldy) when d->y_batch_first
 * h_n,c_n (B, H)       OUT  state after each sequence's last real step (c_n NULL for gru)
 * cache_gates (T, B, fl_gate_cache_cols(H))  OUT  NULL in inference
 * cache_h, cache_c (T+1, B, H)  OUT  NULL in inference; slot order is time order
 *                      with the initial state in slot 0 (forward) or slot T (reverse)
 * x       (T, B, ldx)  IN   columns [0, I)
 * h0, c0  (B, H)       IN   NULL = zeros
 * lengths (B)          IN   each in [1, T]; NULL = all T
 */
int fl_rnn_forward_f32(const fl_rnn_desc *d,
                       float *y, long ldy, float *h_n, float *c_n,
                       float *cache_gates, float *cache_h, float *cache_c,
                       const float *x, long ldx,
                       const float *w_ih, const float *w_hh,
                       const float *b_ih, const float *b_hh, const float *w_peep,
                       const float *h0, const float *c0, const int *lengths);
int fl_rnn_forward_f64(const fl_rnn_desc *d,
                       double *y, long ldy, double *h_n, double *c_n,
                       double *cache_gates, double *cache_h, double *cache_c,
                       const double *x, long ldx,
                       const double *w_ih, const double *w_hh,
                       const double *b_ih, const double *b_hh, const double *w_peep,
                       const double *h0, const double *c0, const int *lengths);

/* One layer, one direction, backward through time, from the forward's caches.
 * dx      (T, B, lddx) OUT  ACCUMULATED (+=) into columns [0, I); NULL to skip
 * dh0,dc0 (B, H)       OUT  (dc0 NULL for gru)
 * dw_ih (G*H, I), dw_hh (G*H, H), db_ih, db_hh (G*H), dw_peep (3, H)  OUT overwritten
 * dy      (T, B, lddy) IN   NULL = zeros; ignored past each length
 * dh_n, dc_n (B, H)    IN   NULL = zeros
 * the rest as passed to the forward call that filled the caches.
 */
int fl_rnn_backward_f32(const fl_rnn_desc *d,
                        float *dx, long lddx, float *dh0, float *dc0,
                        float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *dw_peep,
                        const float *dy, long lddy, const float *dh_n, const float *dc_n,
                        const float *cache_gates, const float *cache_h, const float *cache_c,
                        const float *x, long ldx,
                        const float *w_ih, const float *w_hh, const float *w_peep,
                        const int *lengths);
int fl_rnn_backward_f64(const fl_rnn_desc *d,
                        double *dx, long lddx, double *dh0, double *dc0,
                        double *dw_ih, double *dw_hh, double *db_ih, double *db_hh, double *dw_peep,
                        const double *dy, long lddy, const double *dh_n, const double *dc_n,
                        const double *cache_gates, const double *cache_h, const double *cache_c,
                        const double *x, long ldx,
                        const double *w_ih, const double *w_hh, const double *w_peep,
                        const int *lengths);

/* C (M, N) = beta * C + op(A) (M, K) * B (K, N); op(A) = A, or A^T for A stored (K, M).
 * beta == 0 ignores what C held. Deterministic for any n_threads. */
int fl_gemm_f32(int trans_a, int M, int N, int K, const float *A, long lda,
                const float *B, long ldb, float beta, float *C, long ldc, int n_threads);
int fl_gemm_f64(int trans_a, int M, int N, int K, const double *A, long lda,
                const double *B, long ldb, double beta, double *C, long ldc, int n_threads);
/* The obvious triple loop, kept as the reference the fast GEMM is tested against. */
int fl_gemm_naive_f32(int trans_a, int M, int N, int K, const float *A, long lda,
                      const float *B, long ldb, float beta, float *C, long ldc);
int fl_gemm_naive_f64(int trans_a, int M, int N, int K, const double *A, long lda,
                      const double *B, long ldb, double beta, double *C, long ldc);

/* One Adam step (torch.optim.Adam's formula; optim_impl.h) on n parameters:
 * p, m, v (n) IN/OUT, g (n) IN. step_size = lr / (1 - beta1^t), bc2_sqrt =
 * sqrt(1 - beta2^t). Elementwise, so the same for any n_threads. */
int fl_adam_f32(long n, float *p, const float *g, float *m, float *v, double step_size,
                double beta1, double beta2, double eps, double bc2_sqrt, double weight_decay,
                int n_threads);
int fl_adam_f64(long n, double *p, const double *g, double *m, double *v, double step_size,
                double beta1, double beta2, double eps, double bc2_sqrt, double weight_decay,
                int n_threads);

/* Elementwise activations exactly as the kernels compute them (for accuracy tests).
 * which: 0 sigmoid, 1 tanh, 2 hard_sigmoid, 3 relu.  y (n) OUT, x (n) IN. */
int fl_activation_f32(int which, long n, float *y, const float *x);
int fl_activation_f64(int which, long n, double *y, const double *x);

/* Instruction-set levels. Every kernel is compiled once per level (AVX-512,
 * AVX2+FMA, the compiler's baseline; only the baseline off x86-64 or with
 * -DFASTLSTM_NO_DISPATCH) with that level's vector width and unit block;
 * one level serves every call. The first call picks the best level the
 * CPU supports; fl_select_level picks one explicitly, before any kernel
 * runs (packed weights and gate caches are laid out for one level).
 * Levels: 0 avx512, 1 avx2, 2 baseline. */
#define FL_ERR_LEVEL (-4)     /* the level is not built in, or the CPU lacks it */
int fl_level_built(int level);       /* 1 if compiled into this library */
int fl_level_supported(int level);   /* 1 if built and the CPU (and OS) supports it */
const char *fl_level_name(int level);   /* "avx512", "avx2", "baseline"; NULL out of range */
int fl_select_level(int level);      /* FL_OK or FL_ERR_LEVEL */
int fl_active_level(void);           /* the level calls use (picking the best if none was) */
int fl_level_unit_block(void);       /* the active level's hidden units per block */
int fl_level_vector_bytes(void);     /* the active level's vector width */

/* Build information. */
int fl_openmp_enabled(void);
int fl_openmp_max_threads(void);

/* The thread count to pass to a kernel for `requested` threads: 1 in a
 * process forked from one that had started OpenMP threads (libgomp cannot
 * start threads there) when more were asked for, `requested` otherwise. */
int fl_usable_threads(int requested);
int fl_single_after_fork(void);   /* 1 when fl_usable_threads caps at 1 */

#endif
