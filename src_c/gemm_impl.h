/* Packed, cache-blocked GEMM (include after real_type.h).
 *
 * C (M, N) = beta * C + op(A) (M, K) * B (K, N).
 * The output is cut into fixed MC x NC tiles that threads take in a static
 * order; each tile packs its own panels of A and B (the redundant packing costs
 * 1/MC and 1/NC of the arithmetic) and walks K in fixed KC blocks. Every
 * element of C therefore sums over k in the same order whatever the thread
 * count: results are bitwise identical for any n_threads.
 */
#define GEMM_MR 6      /* rows6_kernel */
#define GEMM_NR NRK    /* columns of the rows6_kernel register tile */
#define GEMM_MC 72     /* multiple of GEMM_MR */
#define GEMM_NC 256    /* multiple of GEMM_NR */
#define GEMM_KC 256

/* a (M, K) element (i, k) with op(A). */
static inline REAL SFX(gemm_a_at)(int trans_a, const REAL *A, long lda, long i, long k)
{
    return trans_a ? A[k * lda + i] : A[i * lda + k];
}

/* Pack rows [i0, i0+mc) x cols [k0, k0+kc) of op(A) into MR-row slivers,
 * each row contiguous in k: ap[(s + r)*kc + k]; rows past M are zero. */
static void SFX(gemm_pack_a)(REAL *ap, int trans_a, const REAL *A, long lda,
                             int M, int i0, int mc, int k0, int kc)
{
    int rows = (mc + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
    for (int r = 0; r < rows; r++) {
        REAL *dst = ap + (long)r * kc;
        int i = i0 + r;
        if (r >= mc || i >= M) {
            for (int k = 0; k < kc; k++) dst[k] = 0;
        } else if (trans_a) {
            for (int k = 0; k < kc; k++) dst[k] = A[(long)(k0 + k) * lda + i];
        } else {
            memcpy(dst, A + (long)i * lda + k0, sizeof(REAL) * kc);
        }
    }
}

/* Pack rows [k0, k0+kc) x cols [j0, j0+nc) of B into NR-column slivers:
 * bp[(s*kc + k)*NR + c]; columns past N are zero. */
static void SFX(gemm_pack_b)(REAL *bp, const REAL *B, long ldb, int N,
                             int j0, int nc, int k0, int kc)
{
    for (int s = 0; s < nc; s += GEMM_NR) {
        REAL *dst = bp + (long)s * kc;
        int cols = nc - s < GEMM_NR ? nc - s : GEMM_NR;
        if (j0 + s + cols > N) cols = N - (j0 + s) > 0 ? N - (j0 + s) : 0;
        for (int k = 0; k < kc; k++) {
            const REAL *src = B + (long)(k0 + k) * ldb + j0 + s;
            int c = 0;
            for (; c < cols; c++) dst[k * GEMM_NR + c] = src[c];
            for (; c < GEMM_NR; c++) dst[k * GEMM_NR + c] = 0;
        }
    }
}

/* One tile: C[i0:i0+mc, j0:j0+nc] over all of K. The micro-kernel keeps an
 * MR x NR block of C in registers; acc starts at zero for each KC block and
 * is added to C, so the order of the sum over k is fixed. */
FL_CLONES
void SFX(fl_gemm_tile)(int trans_a, int M, int N, int K, const REAL *A, long lda,
                       const REAL *B, long ldb, REAL beta, REAL *C, long ldc,
                       int i0, int j0, REAL *ap, REAL *bp)
{
    int mc = M - i0 < GEMM_MC ? M - i0 : GEMM_MC;
    int nc = N - j0 < GEMM_NC ? N - j0 : GEMM_NC;
    for (int k0 = 0; k0 < K || k0 == 0; k0 += GEMM_KC) {
        int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
        if (kc > 0) {
            SFX(gemm_pack_a)(ap, trans_a, A, lda, M, i0, mc, k0, kc);
            SFX(gemm_pack_b)(bp, B, ldb, N, j0, nc, k0, kc);
        }
        for (int si = 0; si < mc; si += GEMM_MR) {
            for (int sj = 0; sj < nc; sj += GEMM_NR) {
                VEC acc[GEMM_MR][2];
                const REAL *arow[GEMM_MR];
                for (int r = 0; r < GEMM_MR; r++) {
                    acc[r][0] = acc[r][1] = (VEC){0};
                    arow[r] = ap + (long)(si + r) * kc;
                }
                SFX(rows6_kernel)(kc, arow, bp + (long)sj * kc, GEMM_NR, acc);
                int rows = mc - si < GEMM_MR ? mc - si : GEMM_MR;
                int cols = nc - sj < GEMM_NR ? nc - sj : GEMM_NR;
                for (int r = 0; r < rows; r++) {
                    REAL tile[GEMM_NR];
                    SFX(vstore)(tile, acc[r][0]);
                    SFX(vstore)(tile + VL, acc[r][1]);
                    REAL *crow = C + (long)(i0 + si + r) * ldc + j0 + sj;
                    if (k0 == 0 && beta == 0) {
                        for (int c = 0; c < cols; c++) crow[c] = tile[c];
                    } else if (k0 == 0 && beta != 1) {
                        for (int c = 0; c < cols; c++) crow[c] = beta * crow[c] + tile[c];
                    } else {
                        for (int c = 0; c < cols; c++) crow[c] += tile[c];
                    }
                }
            }
        }
    }
}

int SFX(fl_gemm)(int trans_a, int M, int N, int K, const REAL *A, long lda,
                 const REAL *B, long ldb, REAL beta, REAL *C, long ldc, int n_threads)
{
    if (M < 0 || N < 0 || K < 0 || n_threads < 1) return FL_ERR_SIZE;
    if (M == 0 || N == 0) return FL_OK;
    int tm = (M + GEMM_MC - 1) / GEMM_MC, tn = (N + GEMM_NC - 1) / GEMM_NC;
    long ntiles = (long)tm * tn;
    int nt = n_threads < ntiles ? n_threads : (int)ntiles;
    long per_thread = (long)GEMM_MC * GEMM_KC + (long)GEMM_KC * GEMM_NC;
    REAL *work = fl_aligned_alloc(sizeof(REAL) * per_thread * nt);
    if (!work) return FL_ERR_NOMEM;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (long t = 0; t < ntiles; t++) {
        REAL *ap = work + per_thread * omp_get_thread_num();
        REAL *bp = ap + (long)GEMM_MC * GEMM_KC;
        SFX(fl_gemm_tile)(trans_a, M, N, K, A, lda, B, ldb, beta, C, ldc,
                          (int)(t / tn) * GEMM_MC, (int)(t % tn) * GEMM_NC, ap, bp);
    }
    free(work);
    return FL_OK;
}

int SFX(fl_gemm_naive)(int trans_a, int M, int N, int K, const REAL *A, long lda,
                       const REAL *B, long ldb, REAL beta, REAL *C, long ldc)
{
    if (M < 0 || N < 0 || K < 0) return FL_ERR_SIZE;
    for (long i = 0; i < M; i++) {
        for (long j = 0; j < N; j++) {
            REAL s = 0;
            for (long k = 0; k < K; k++) s += SFX(gemm_a_at)(trans_a, A, lda, i, k) * B[k * ldb + j];
            C[i * ldc + j] = (beta == 0 ? 0 : beta * C[i * ldc + j]) + s;
        }
    }
    return FL_OK;
}

#undef GEMM_MR
#undef GEMM_NR
#undef GEMM_MC
#undef GEMM_NC
#undef GEMM_KC
