/* The public kernel API, forwarded to one instruction-set level's table
 * (kernels_<level>.c). The level is picked once: by fl_select_level before
 * the first kernel call (the Python module does this at import, honouring
 * FASTLSTM_MAX_ISA), or else the best the CPU supports at the first call. */
#include <pthread.h>
#include "fastlstm.h"
#include "level.h"

static const fl_level *const levels[FL_LEVEL_COUNT] = {
#if FL_X86_LEVELS
    &fl_level_avx512, &fl_level_avx2,
#else
    NULL, NULL,
#endif
    &fl_level_baseline,
};

static const fl_level *active;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

int fl_level_built(int level)
{
    return level >= 0 && level < FL_LEVEL_COUNT && levels[level] != NULL;
}

int fl_level_supported(int level)
{
    if (!fl_level_built(level)) return 0;
#if FL_X86_LEVELS
    __builtin_cpu_init();   /* libgcc's checks include the OS's support for the registers */
    switch (level) {
    case FL_LEVEL_AVX512:
#ifdef FASTLSTM_WIDE_AS_AVX2
        return fl_level_supported(FL_LEVEL_AVX2);
#endif
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
               && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               && __builtin_cpu_supports("bmi2");
    case FL_LEVEL_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
               && __builtin_cpu_supports("bmi2");
    default:
        return 1;
    }
#else
    return 1;
#endif
}

const char *fl_level_name(int level)
{
    static const char *const names[FL_LEVEL_COUNT] = { "avx512", "avx2", "baseline" };
    return level >= 0 && level < FL_LEVEL_COUNT ? names[level] : NULL;
}

int fl_select_level(int level)
{
    if (!fl_level_supported(level)) return FL_ERR_LEVEL;
    active = levels[level];
    return FL_OK;
}

static void select_best(void)
{
    if (active) return;
    for (int level = 0; level < FL_LEVEL_COUNT; level++)
        if (fl_select_level(level) == FL_OK) return;
}

static const fl_level *lv(void)
{
    if (!active) pthread_once(&default_once, select_best);
    return active;
}

int fl_active_level(void)
{
    const fl_level *l = lv();
    for (int level = 0; level < FL_LEVEL_COUNT; level++)
        if (levels[level] == l) return level;
    return FL_LEVEL_BASELINE;
}

int fl_level_unit_block(void) { return lv()->unit_block; }
int fl_level_vector_bytes(void) { return lv()->vector_bytes; }
long fl_gate_cache_cols(int H) { return lv()->fl_gate_cache_cols(H); }

size_t fl_rnn_packed_bytes_f32(const fl_rnn_desc *d) { return lv()->fl_rnn_packed_bytes_f32(d); }
size_t fl_rnn_packed_bytes_f64(const fl_rnn_desc *d) { return lv()->fl_rnn_packed_bytes_f64(d); }

int fl_rnn_pack_f32(const fl_rnn_desc *d, float *packed, const float *w_ih, const float *w_hh,
                    const float *b_ih, const float *b_hh, const float *w_peep)
{
    return lv()->fl_rnn_pack_f32(d, packed, w_ih, w_hh, b_ih, b_hh, w_peep);
}

int fl_rnn_pack_f64(const fl_rnn_desc *d, double *packed, const double *w_ih, const double *w_hh,
                    const double *b_ih, const double *b_hh, const double *w_peep)
{
    return lv()->fl_rnn_pack_f64(d, packed, w_ih, w_hh, b_ih, b_hh, w_peep);
}

size_t fl_rnn_work_bytes_f32(const fl_rnn_desc *d, int pass) { return lv()->fl_rnn_work_bytes_f32(d, pass); }
size_t fl_rnn_work_bytes_f64(const fl_rnn_desc *d, int pass) { return lv()->fl_rnn_work_bytes_f64(d, pass); }

int fl_rnn_forward_f32(const fl_rnn_desc *d,
                       float *y, long ldy, float *h_n, float *c_n,
                       float *cache_gates, float *cache_h, float *cache_c,
                       const float *x, long ldx,
                       const float *w_ih, const float *w_hh,
                       const float *b_ih, const float *b_hh, const float *w_peep,
                       const float *h0, const float *c0, const int *lengths)
{
    return lv()->fl_rnn_forward_f32(d, y, ldy, h_n, c_n, cache_gates, cache_h, cache_c, x, ldx,
                                    w_ih, w_hh, b_ih, b_hh, w_peep, h0, c0, lengths);
}

int fl_rnn_forward_f64(const fl_rnn_desc *d,
                       double *y, long ldy, double *h_n, double *c_n,
                       double *cache_gates, double *cache_h, double *cache_c,
                       const double *x, long ldx,
                       const double *w_ih, const double *w_hh,
                       const double *b_ih, const double *b_hh, const double *w_peep,
                       const double *h0, const double *c0, const int *lengths)
{
    return lv()->fl_rnn_forward_f64(d, y, ldy, h_n, c_n, cache_gates, cache_h, cache_c, x, ldx,
                                    w_ih, w_hh, b_ih, b_hh, w_peep, h0, c0, lengths);
}

int fl_rnn_backward_f32(const fl_rnn_desc *d,
                        float *dx, long lddx, float *dh0, float *dc0,
                        float *dw_ih, float *dw_hh, float *db_ih, float *db_hh, float *dw_peep,
                        const float *dy, long lddy, const float *dh_n, const float *dc_n,
                        const float *cache_gates, const float *cache_h, const float *cache_c,
                        const float *x, long ldx,
                        const float *w_ih, const float *w_hh, const float *w_peep,
                        const int *lengths)
{
    return lv()->fl_rnn_backward_f32(d, dx, lddx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_peep,
                                     dy, lddy, dh_n, dc_n, cache_gates, cache_h, cache_c, x, ldx,
                                     w_ih, w_hh, w_peep, lengths);
}

int fl_rnn_backward_f64(const fl_rnn_desc *d,
                        double *dx, long lddx, double *dh0, double *dc0,
                        double *dw_ih, double *dw_hh, double *db_ih, double *db_hh, double *dw_peep,
                        const double *dy, long lddy, const double *dh_n, const double *dc_n,
                        const double *cache_gates, const double *cache_h, const double *cache_c,
                        const double *x, long ldx,
                        const double *w_ih, const double *w_hh, const double *w_peep,
                        const int *lengths)
{
    return lv()->fl_rnn_backward_f64(d, dx, lddx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_peep,
                                     dy, lddy, dh_n, dc_n, cache_gates, cache_h, cache_c, x, ldx,
                                     w_ih, w_hh, w_peep, lengths);
}

int fl_gemm_f32(int trans_a, int M, int N, int K, const float *A, long lda,
                const float *B, long ldb, float beta, float *C, long ldc, int n_threads)
{
    return lv()->fl_gemm_f32(trans_a, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads);
}

int fl_gemm_f64(int trans_a, int M, int N, int K, const double *A, long lda,
                const double *B, long ldb, double beta, double *C, long ldc, int n_threads)
{
    return lv()->fl_gemm_f64(trans_a, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads);
}

int fl_gemm_naive_f32(int trans_a, int M, int N, int K, const float *A, long lda,
                      const float *B, long ldb, float beta, float *C, long ldc)
{
    return lv()->fl_gemm_naive_f32(trans_a, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

int fl_gemm_naive_f64(int trans_a, int M, int N, int K, const double *A, long lda,
                      const double *B, long ldb, double beta, double *C, long ldc)
{
    return lv()->fl_gemm_naive_f64(trans_a, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

int fl_adam_f32(long n, float *p, const float *g, float *m, float *v, double step_size,
                double beta1, double beta2, double eps, double bc2_sqrt, double weight_decay,
                int n_threads)
{
    return lv()->fl_adam_f32(n, p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt,
                             weight_decay, n_threads);
}

int fl_adam_f64(long n, double *p, const double *g, double *m, double *v, double step_size,
                double beta1, double beta2, double eps, double bc2_sqrt, double weight_decay,
                int n_threads)
{
    return lv()->fl_adam_f64(n, p, g, m, v, step_size, beta1, beta2, eps, bc2_sqrt,
                             weight_decay, n_threads);
}

int fl_activation_f32(int which, long n, float *y, const float *x)
{
    return lv()->fl_activation_f32(which, n, y, x);
}

int fl_activation_f64(int which, long n, double *y, const double *x)
{
    return lv()->fl_activation_f64(which, n, y, x);
}

size_t fl_qrnn_packed_bytes(const fl_rnn_desc *d, int qtype) { return lv()->fl_qrnn_packed_bytes(d, qtype); }
size_t fl_qrnn_work_bytes(const fl_rnn_desc *d, int qtype) { return lv()->fl_qrnn_work_bytes(d, qtype); }
const char *fl_qrnn_path(int qtype) { return lv()->fl_qrnn_path(qtype); }

int fl_qrnn_pack(const fl_rnn_desc *d, int qtype, void *packed, const void *w_ih,
                 const void *w_hh, const float *s_ih, const float *s_hh, const float *b_ih,
                 const float *b_hh, const float *w_peep)
{
    return lv()->fl_qrnn_pack(d, qtype, packed, w_ih, w_hh, s_ih, s_hh, b_ih, b_hh, w_peep);
}

int fl_qrnn_forward(const fl_rnn_desc *d, int qtype, const void *packed, float *y, long ldy,
                    float *h_n, float *c_n, const float *x, long ldx, const float *h0,
                    const float *c0, const int *lengths)
{
    return lv()->fl_qrnn_forward(d, qtype, packed, y, ldy, h_n, c_n, x, ldx, h0, c0, lengths);
}
