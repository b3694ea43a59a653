/* Internal prototypes shared between translation units. */
#ifndef FL_INTERNAL_H
#define FL_INTERNAL_H
#include "fastlstm.h"
#include <stdlib.h>

/* 64-byte aligned buffer (a cache line; full-width vector loads never split
 * lines) for packed panels; free() releases it. NULL on failure or size 0. */
static inline void *fl_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0 || posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}
/* GEMM with caller workspace (gemm.c) */
long fl_gemm_work_elems_f32(int n_threads);
long fl_gemm_work_elems_f64(int n_threads);
int fl_gemm_ws_f32(int trans_a, int M, int N, int K, const float *A, long lda,
                   const float *B, long ldb, float beta, float *C, long ldc, int n_threads,
                   float *work);
int fl_gemm_ws_f64(int trans_a, int M, int N, int K, const double *A, long lda,
                   const double *B, long ldb, double beta, double *C, long ldc, int n_threads,
                   double *work);
int fl_gemm_ws2_f32(int trans_a, int M, int N, int K, const float *A, long lda,
                    const float *B, long ldb, int n1, const float *B2, long ldb2,
                    float beta, float *C, long ldc, int n_threads, float *work);
int fl_gemm_ws2_f64(int trans_a, int M, int N, int K, const double *A, long lda,
                    const double *B, long ldb, int n1, const double *B2, long ldb2,
                    double beta, double *C, long ldc, int n_threads, double *work);

/* Take `elems` elements from a caller workspace if it is large enough,
 * otherwise allocate; *owned says whether the caller must free(). */
static inline void *fl_workspace(void *work, size_t work_bytes, size_t bytes, int *owned)
{
    if (work && work_bytes >= bytes && ((size_t)work % 64) == 0) { *owned = 0; return work; }
    *owned = 1;
    return fl_aligned_alloc(bytes);
}
#endif
