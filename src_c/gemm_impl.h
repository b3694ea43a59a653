/* Packed, cache-blocked GEMM (include after real_type.h).
 *
 * C (M, N) = beta * C + op(A) (M, K) * B (K, N), blocked as in GotoBLAS:
 * B panels (KC x NC) packed into NR-wide slivers shared by all threads, A
 * blocks (MC x KC) packed per thread, a 6 x NR register tile (rows6p_kernel).
 * K is walked in fixed KC blocks, so every element of C sums over k in the
 * same order whatever the thread count: bitwise identical for any n_threads.
 */
#define GEMM_MR 6      /* rows6p_kernel */
#define GEMM_NR NRK    /* columns of the rows6p_kernel register tile */
#ifndef GEMM_MC
#define GEMM_MC 72     /* multiple of GEMM_MR; 144 and 288 were no faster at one thread and
                          slower at two, and the A block stays far below the L2
                          (bench/RESULTS.md, design measurements) */
#endif
#ifndef GEMM_NC
#define GEMM_NC 4096   /* multiple of GEMM_NR; a B panel (KC x NC) lives in L3, and A is
                          packed once per N panel, so wide panels pack A less often */
#endif
#define GEMM_FLOPS_PER_THREAD 4000000L

/* The K block: one tile's K loop streams a 6-row A sliver and an NR-column
 * B sliver (its B sliver is then reused by every A sliver of the block), so
 * both get three quarters of the L1 data cache the CPU reports (32 KiB where
 * it reports none, fl_cache_bytes): 272 on a 32 KiB L1 with AVX2's 16 columns, 128 on a
 * 48 KiB L1 with AVX-512's 64 (the time is flat around it: bench/RESULTS.md,
 * design measurements).
 * Every C element sums its K blocks in order, so the block size changes
 * rounding between machines, never between thread counts. */
static int SFX(gemm_kc)(void)
{
    long k = 3 * fl_cache_bytes(1) / 4 / ((GEMM_MR + GEMM_NR) * (long)sizeof(REAL)) / 16 * 16;
    return k < 64 ? 64 : k > 512 ? 512 : (int)k;
}
#define GEMM_KC SFX(gemm_kc)()

/* a (M, K) element (i, k) with op(A). */
static inline REAL SFX(gemm_a_at)(int trans_a, const REAL *A, long lda, long i, long k)
{
    return trans_a ? A[k * lda + i] : A[i * lda + k];
}

/* Pack rows [i0, i0+mc) x cols [k0, k0+kc) of op(A) into MR-row slivers,
 * k-major inside a sliver: ap[(s*kc + k)*MR + r]; rows past mc are zero. */
static void SFX(gemm_pack_a)(REAL *ap, int trans_a, const REAL *A, long lda,
                             int i0, int mc, int k0, int kc)
{
    for (int s = 0; s < mc; s += GEMM_MR) {
        REAL *dst = ap + (long)s * kc;
        const int rows = mc - s < GEMM_MR ? mc - s : GEMM_MR;
        if (trans_a && rows == GEMM_MR) {
            /* op(A) row i is column i of A: each k copies MR adjacent values
             * (the weight-gradient GEMMs pack all of dG^T this way) */
            for (int k = 0; k < kc; k++)
                memcpy(dst + k * GEMM_MR, A + (long)(k0 + k) * lda + i0 + s, sizeof(REAL) * GEMM_MR);
        } else if (trans_a) {
            for (int k = 0; k < kc; k++) {
                const REAL *src = A + (long)(k0 + k) * lda + i0 + s;
                for (int r = 0; r < GEMM_MR; r++) dst[k * GEMM_MR + r] = r < rows ? src[r] : 0;
            }
        } else if (rows == GEMM_MR) {
            /* k outer: MR read streams and one contiguous write stream */
            const REAL *src = A + (long)(i0 + s) * lda + k0;
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < GEMM_MR; r++) dst[k * GEMM_MR + r] = src[r * lda + k];
        } else {
            for (int r = 0; r < GEMM_MR; r++) {
                const REAL *src = A + (long)(i0 + s + r) * lda + k0;
                if (r < rows) for (int k = 0; k < kc; k++) dst[k * GEMM_MR + r] = src[k];
                else for (int k = 0; k < kc; k++) dst[k * GEMM_MR + r] = 0;
            }
        }
    }
}

/* Pack sliver s (columns [j0 + s*NR, +NR)) of rows [k0, k0+kc) of the B
 * operand [B | B2]: columns [0, n1) from B, [n1, N) from B2 (NULL when
 * n1 == N): bp[(s*kc + k)*NR + c]; columns past N are zero. */
static void SFX(gemm_pack_b_sliver)(REAL *bp, const REAL *B, long ldb, int n1, const REAL *B2,
                                    long ldb2, int N, int j0, int s, int k0, int kc)
{
    REAL *dst = bp + (long)s * kc * GEMM_NR;
    int j = j0 + s * GEMM_NR, cols = N - j < GEMM_NR ? N - j : GEMM_NR;
    if (cols == GEMM_NR && (j + GEMM_NR <= n1 || j >= n1)) {   /* from one source */
        const REAL *src = j < n1 ? B + j : B2 + (j - n1);
        const long ld = j < n1 ? ldb : ldb2;
        for (int k = 0; k < kc; k++)
            memcpy(dst + k * GEMM_NR, src + (long)(k0 + k) * ld, sizeof(REAL) * GEMM_NR);
    } else {
        for (int k = 0; k < kc; k++)
            for (int c = 0; c < GEMM_NR; c++) {
                const int jc = j + c;
                dst[k * GEMM_NR + c] = c >= cols ? 0
                                       : jc < n1 ? B[(long)(k0 + k) * ldb + jc]
                                                 : B2[(long)(k0 + k) * ldb2 + jc - n1];
            }
    }
}

/* C[i0:i0+mc, j0:j0+nc] (+)= packed A block (mc, kc) * packed B panel (kc, nc).
 * first: this is the first K block, so apply beta instead of adding. */
static void SFX(fl_gemm_block)(int mc, int nc, int kc, const REAL *ap, const REAL *bp,
                        REAL beta, int first, REAL *C, long ldc)
{
    for (int sj = 0; sj < nc; sj += GEMM_NR) {
        const REAL *b = bp + (long)sj * kc;
        for (int si = 0; si < mc; si += GEMM_MR) {
            int rows = mc - si < GEMM_MR ? mc - si : GEMM_MR;
            int cols = nc - sj < GEMM_NR ? nc - sj : GEMM_NR;
            /* the tile's C lines, asked for while its K loop runs: C is
             * revisited once per K block, long out of cache, and the tile's
             * end otherwise waits on those misses (bench/RESULTS.md, design
             * measurements) */
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c += 64 / (int)sizeof(REAL))
                    __builtin_prefetch(C + (long)(si + r) * ldc + sj + c, 1, 3);
            VEC acc[GEMM_MR][TV];
            for (int r = 0; r < GEMM_MR; r++)
                for (int v = 0; v < TV; v++) acc[r][v] = (VEC){0};
            SFX(rows6p_kernel)(kc, ap + (long)si * kc, b, GEMM_NR, acc);
            if (cols == GEMM_NR) {   /* full-width tile: vector stores */
                for (int r = 0; r < rows; r++) {
                    REAL *crow = C + (long)(si + r) * ldc + sj;
                    for (int v = 0; v < TV; v++) {
                        VEC cv = acc[r][v];
                        if (!(first && beta == 0)) {
                            const VEC s = (VEC){0} + (first ? beta : 1);
                            cv += s * SFX(vload)(crow + v * VL);
                        }
                        SFX(vstore)(crow + v * VL, cv);
                    }
                }
                continue;
            }
            for (int r = 0; r < rows; r++) {
                REAL tile[GEMM_NR];
                for (int v = 0; v < TV; v++) SFX(vstore)(tile + v * VL, acc[r][v]);
                REAL *crow = C + (long)(si + r) * ldc + sj;
                if (first && beta == 0) {
                    for (int c = 0; c < cols; c++) crow[c] = tile[c];
                } else if (first && beta != 1) {
                    for (int c = 0; c < cols; c++) crow[c] = beta * crow[c] + tile[c];
                } else {
                    for (int c = 0; c < cols; c++) crow[c] += tile[c];
                }
            }
        }
    }
}

/* Goto-style loop nest (fl_gemm_ws below): for each NC panel of columns and KC block of K, the
 * threads pack the B panel together (one sliver each), then each packs its own
 * MC x KC block of A and multiplies it by the shared panel. M blocks are
 * dealt to threads statically; every element of C sums over k in the same
 * order whatever the thread count. */
/* A few rows of A (batch-1 serving, one streaming step): C rows are axpys over
 * B's rows, read once, with no packing. Sums over k in order. */
static void SFX(fl_gemm_few_rows)(int M, int N, int K, const REAL *A, long lda, const REAL *B, long ldb,
                           REAL beta, REAL *C, long ldc)
{
    for (int i = 0; i < M; i++) {
        REAL *c = C + (long)i * ldc;
        if (beta == 0) for (int j = 0; j < N; j++) c[j] = 0;
        else if (beta != 1) for (int j = 0; j < N; j++) c[j] *= beta;
        for (int k = 0; k < K; k++) {
            const REAL a = A[(long)i * lda + k];
            const REAL *b = B + (long)k * ldb;
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

/* A few columns of B (N <= 2: the input weight gradient and dX of a layer
 * with one or two inputs): matrix-vector products over rows [i0, i1) of C,
 * reading A once per column with no packing (packing A would cost as much as
 * the product). trans_a: axpys over A's contiguous rows, into acc (i1 - i0);
 * else dot products over VL interleaved partial sums (one vector). Each
 * element's sum runs in a fixed order, whatever the split of rows between
 * threads. */
#define GEMM_FEW_COLS_ROWS 512   /* rows of C per work item */
static void SFX(fl_gemm_few_cols)(int trans_a, int i0, int i1, int N, int K, const REAL *A, long lda,
                           const REAL *B, long ldb, REAL beta, REAL *C, long ldc)
{
    REAL acc[GEMM_FEW_COLS_ROWS];
    const int m = i1 - i0;
    for (int j = 0; j < N; j++) {
        if (trans_a) {
            for (int i = 0; i < m; i++) acc[i] = 0;
            for (int k = 0; k < K; k++) {
                const REAL b = B[(long)k * ldb + j], *a = A + (long)k * lda + i0;
                for (int i = 0; i < m; i++) acc[i] += a[i] * b;
            }
        } else {
            for (int i = 0; i < m; i++) {
                /* written on vectors: the compiler left the scalar form of this loop
                 * scalar, a visible share of a narrow input's training step */
                const REAL *a = A + (long)(i0 + i) * lda;
                VEC sv = { 0 };
                int k = 0;
                for (; k + VL <= K; k += VL) {
                    VEC bv;
                    if (ldb == 1) bv = SFX(vload)(B + k + j);   /* N == 1: a contiguous column */
                    else for (int l = 0; l < VL; l++) bv[l] = B[(long)(k + l) * ldb + j];
                    sv += SFX(vload)(a + k) * bv;
                }
                REAL s[VL];
                SFX(vstore)(s, sv);
                for (; k < K; k++) s[k % VL] += a[k] * B[(long)k * ldb + j];
                for (int w = VL / 2; w >= 1; w /= 2)   /* pairwise: lanes l and l + w */
                    for (int l = 0; l < w; l++) s[l] += s[l + w];
                acc[i] = s[0];
            }
        }
        for (int i = 0; i < m; i++) {
            REAL *c = C + (long)(i0 + i) * ldc + j;
            *c = beta == 0 ? acc[i] : beta * *c + acc[i];
        }
    }
}

/* Elements of workspace fl_gemm_ws needs for n_threads threads. */
long SFX(fl_gemm_work_elems)(int n_threads)
{
    return (long)GEMM_KC * GEMM_NC + (long)GEMM_MC * GEMM_KC * n_threads;
}

/* fl_gemm_ws with B given as two column blocks, B (K, n1) and B2 (K, N - n1)
 * (B2 NULL when n1 == N): training's weight gradient dG^T [X | H_prev] is
 * then one product, dG^T packed once, with no narrow product for a few input
 * columns. The packed path only: small products (N <= 2, or M <= 2 without
 * trans_a) take one block. */
int SFX(fl_gemm_ws2)(int trans_a, int M, int N, int K, const REAL *A, long lda,
                     const REAL *B, long ldb, int n1, const REAL *B2, long ldb2,
                     REAL beta, REAL *C, long ldc, int n_threads, REAL *work)
{
    if (M < 0 || N < 0 || K < 0 || n_threads < 1 || n1 < 0 || n1 > N) return FL_ERR_SIZE;
    if (n1 < N && (!B2 || N <= 2 || (M <= 2 && !trans_a))) return FL_ERR_ARG;
    if (M == 0 || N == 0) return FL_OK;
    if (K == 0) {
        for (long i = 0; i < M; i++)
            for (long j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return FL_OK;
    }
    if (M <= 2 && !trans_a) {
        SFX(fl_gemm_few_rows)(M, N, K, A, lda, B, ldb, beta, C, ldc);
        return FL_OK;
    }
    /* a thread per GEMM_FLOPS_PER_THREAD flops: small products (a small batch
     * in training) skip the fork and the barriers, which dominate there and
     * are very costly when another process holds a core */
    const double flops = 2.0 * M * N * K;
    if (N <= 2) {
        const int items = (M + GEMM_FEW_COLS_ROWS - 1) / GEMM_FEW_COLS_ROWS;
        const double by_work = flops / GEMM_FLOPS_PER_THREAD;
        int nt = by_work < n_threads ? (int)by_work : n_threads;
        if (nt > items) nt = items;
        #pragma omp parallel for schedule(static) if (nt > 1) num_threads(nt > 1 ? nt : 1)
        for (int it = 0; it < items; it++) {
            const int i0 = it * GEMM_FEW_COLS_ROWS;
            const int i1 = i0 + GEMM_FEW_COLS_ROWS < M ? i0 + GEMM_FEW_COLS_ROWS : M;
            SFX(fl_gemm_few_cols)(trans_a, i0, i1, N, K, A, lda, B, ldb, beta, C, ldc);
        }
        return FL_OK;
    }
    const int mblocks = (M + GEMM_MC - 1) / GEMM_MC;
    int nt = n_threads < mblocks ? n_threads : mblocks;
    if (nt > 1 && flops < (double)GEMM_FLOPS_PER_THREAD * nt) {
        int by_work = (int)(flops / GEMM_FLOPS_PER_THREAD);
        nt = by_work < 1 ? 1 : by_work;
    }
    const int KC = GEMM_KC;
    const long a_size = (long)GEMM_MC * KC, b_size = (long)KC * GEMM_NC;
    REAL *bp = work;
    #pragma omp parallel num_threads(nt)
    {
        REAL *ap = work + b_size + a_size * omp_get_thread_num();
        for (int j0 = 0; j0 < N; j0 += GEMM_NC) {
            const int nc = N - j0 < GEMM_NC ? N - j0 : GEMM_NC;
            const int slivers = (nc + GEMM_NR - 1) / GEMM_NR;
            for (int k0 = 0; k0 < K; k0 += KC) {
                const int kc = K - k0 < KC ? K - k0 : KC;
                #pragma omp for schedule(static)
                for (int s = 0; s < slivers; s++)
                    SFX(gemm_pack_b_sliver)(bp, B, ldb, n1, B2, ldb2, N, j0, s, k0, kc);
                #pragma omp for schedule(static)
                for (int mb = 0; mb < mblocks; mb++) {
                    const int i0 = mb * GEMM_MC, mc = M - i0 < GEMM_MC ? M - i0 : GEMM_MC;
                    SFX(gemm_pack_a)(ap, trans_a, A, lda, i0, mc, k0, kc);
                    SFX(fl_gemm_block)(mc, nc, kc, ap, bp, beta, k0 == 0, C + (long)i0 * ldc + j0, ldc);
                }
            }
        }
    }
    return FL_OK;
}

/* fl_gemm with a caller-provided workspace of fl_gemm_work_elems(n_threads)
 * elements (64-byte aligned), so callers inside a time loop allocate nothing. */
int SFX(fl_gemm_ws)(int trans_a, int M, int N, int K, const REAL *A, long lda,
                    const REAL *B, long ldb, REAL beta, REAL *C, long ldc, int n_threads,
                    REAL *work)
{
    return SFX(fl_gemm_ws2)(trans_a, M, N, K, A, lda, B, ldb, N, NULL, 0, beta, C, ldc,
                            n_threads, work);
}

/* Defines fl_gemm_f32_<level> and fl_gemm_f64_<level> (fastlstm.h). */
int SFX(fl_gemm)(int trans_a, int M, int N, int K, const REAL *A, long lda,
                 const REAL *B, long ldb, REAL beta, REAL *C, long ldc, int n_threads)
{
    if (n_threads < 1) return FL_ERR_SIZE;
    REAL *work = fl_aligned_alloc(sizeof(REAL) * SFX(fl_gemm_work_elems)(n_threads));
    if (!work) return FL_ERR_NOMEM;
    int st = SFX(fl_gemm_ws)(trans_a, M, N, K, A, lda, B, ldb, beta, C, ldc, n_threads, work);
    free(work);
    return st;
}

/* Defines fl_gemm_naive_f32_<level> and fl_gemm_naive_f64_<level> (fastlstm.h). */
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
#undef GEMM_FLOPS_PER_THREAD
#undef GEMM_FEW_COLS_ROWS
