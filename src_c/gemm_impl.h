/* Packed, cache-blocked GEMM (include after real_type.h).
 *
 * C (M, N) = beta * C + op(A) (M, K) * B (K, N).
 * The output is cut into fixed MC x NC tiles that threads take in a static
 * order; each tile packs its own panels of A and B (the redundant packing costs
 * 1/MC and 1/NC of the arithmetic) and walks K in fixed KC blocks. Every
 * element of C therefore sums over k in the same order whatever the thread
 * count: results are bitwise identical for any n_threads.
 */
#ifdef FL_F32
#define GEMM_MR 6
#define GEMM_NR 16
#else
#define GEMM_MR 6
#define GEMM_NR 8
#endif
#define GEMM_MC 72     /* multiple of GEMM_MR */
#define GEMM_NC 256    /* multiple of GEMM_NR */
#define GEMM_KC 256

/* a (M, K) element (i, k) with op(A). */
static inline REAL SFX(gemm_a_at)(int trans_a, const REAL *A, long lda, long i, long k)
{
    return trans_a ? A[k * lda + i] : A[i * lda + k];
}

/* Pack rows [i0, i0+mc) x cols [k0, k0+kc) of op(A) into MR-row slivers,
 * sliver-major then k then row: ap[(s*kc + k)*MR + r]; rows past M are zero. */
static void SFX(gemm_pack_a)(REAL *ap, int trans_a, const REAL *A, long lda,
                             int M, int i0, int mc, int k0, int kc)
{
    for (int s = 0; s < mc; s += GEMM_MR) {
        REAL *dst = ap + (long)s * kc;
        for (int k = 0; k < kc; k++) {
            for (int r = 0; r < GEMM_MR; r++) {
                int i = i0 + s + r;
                dst[k * GEMM_MR + r] = (s + r < mc && i < M)
                    ? SFX(gemm_a_at)(trans_a, A, lda, i, k0 + k) : 0;
            }
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
        for (int k = 0; k < kc; k++) {
            const REAL *src = B + (long)(k0 + k) * ldb;
            for (int c = 0; c < GEMM_NR; c++) {
                int j = j0 + s + c;
                dst[k * GEMM_NR + c] = (s + c < nc && j < N) ? src[j] : 0;
            }
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
                REAL acc[GEMM_MR][GEMM_NR];
                for (int r = 0; r < GEMM_MR; r++)
                    for (int c = 0; c < GEMM_NR; c++) acc[r][c] = 0;
                const REAL *a = ap + (long)si * kc;
                const REAL *b = bp + (long)sj * kc;
                for (int k = 0; k < kc; k++) {
                    for (int r = 0; r < GEMM_MR; r++) {
                        REAL ar = a[k * GEMM_MR + r];
                        for (int c = 0; c < GEMM_NR; c++) acc[r][c] += ar * b[k * GEMM_NR + c];
                    }
                }
                int rows = mc - si < GEMM_MR ? mc - si : GEMM_MR;
                int cols = nc - sj < GEMM_NR ? nc - sj : GEMM_NR;
                for (int r = 0; r < rows; r++) {
                    REAL *crow = C + (long)(i0 + si + r) * ldc + j0 + sj;
                    if (k0 == 0 && beta == 0) {
                        for (int c = 0; c < cols; c++) crow[c] = acc[r][c];
                    } else if (k0 == 0 && beta != 1) {
                        for (int c = 0; c < cols; c++) crow[c] = beta * crow[c] + acc[r][c];
                    } else {
                        for (int c = 0; c < cols; c++) crow[c] += acc[r][c];
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
    REAL *work = malloc(sizeof(REAL) * per_thread * nt);
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
