/* Portable SIMD through GCC's generic vectors (include after real_type.h).
 * A vec is FL_VBYTES bytes, set per instruction-set level: 64 for AVX-512
 * (one zmm register), 32 for AVX2 (one ymm) and for the baseline (two SSE2
 * or NEON registers). Every level compiles this same source; there are no
 * intrinsics. */
#include <string.h>

#undef VEC
#undef VL
#undef TV
#undef NRK
typedef REAL SFX(vec) __attribute__((vector_size(FL_VBYTES)));
#define VEC SFX(vec)
#define VL ((int)(FL_VBYTES / sizeof(REAL)))   /* lanes: 8 floats or 4 doubles at 32 bytes */

static inline VEC SFX(vload)(const REAL *p) { VEC v; memcpy(&v, p, sizeof v); return v; }
static inline void SFX(vstore)(REAL *p, VEC v) { memcpy(p, &v, sizeof v); }

/* The register tile: 6 rows by TV vectors, set per level so that its
 * 6 * TV accumulators, TV weight vectors and a broadcast fill the register
 * file: 6 x 2 on AVX2's 16 registers (12 accumulators), 6 x 4 on AVX-512's
 * 32 (24). With fewer accumulators than that, too few FMAs are in flight to
 * hide their latency, and AVX-512 falls far short of its FMA rate
 * (bench/RESULTS.md, design measurements). */
#ifndef FL_TILE_NV
#define FL_TILE_NV 2
#endif
#define TV FL_TILE_NV
#define NRK (TV * VL)   /* columns of the register tile */

/* acc[r][v] (+)= sum_k a_r[k] * w[k*ldw + v*VL ..] for the first R rows
 * (1 to 6) and the first nv vectors (1, or TV): the register tile of the
 * GEMM, of the recurrent step (rows of h_{t-1} times a column group of
 * W_hh) and of backward's dh = dG * W_hh. A is packed: ap[k*6 + r] holds
 * row r's k-th value (one contiguous stream instead of six strided rows, the
 * faster form: bench/RESULTS.md, design measurements), so the GEMM packs A
 * blocks and the time loops keep h_t and dG_t in this form as they write
 * them. A row's sum is the same
 * whatever R and nv are: a partial tile costs only its own rows. R and nv
 * are constants wherever rows_part calls this, so the accumulators stay in
 * registers. FL_INLINE: compiled out of line it could lose the level's
 * target and round differently. */
FL_INLINE void SFX(rows_rv)(int K, const REAL *ap, const REAL *w, long ldw, VEC acc[6][TV],
                            const int R, const int nv)
{
    VEC c[6][TV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < nv; v++) c[r][v] = acc[r][v];
    for (int k = 0; k < K; k++) {
        const REAL *wk = w + (long)k * ldw, *a = ap + 6L * k;
        VEC wv[TV];
        for (int v = 0; v < nv; v++) wv[v] = SFX(vload)(wk + v * VL);
        for (int r = 0; r < R; r++) {
            const REAL x = a[r];
            for (int v = 0; v < nv; v++) c[r][v] += x * wv[v];
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = c[r][v];
}

/* The full tile: 6 rows, TV vectors. */
FL_INLINE void SFX(rows6p_kernel)(int K, const REAL *ap, const REAL *w, long ldw, VEC acc[6][TV])
{
    SFX(rows_rv)(K, ap, w, ldw, acc, 6, TV);
}

/* rows_rv on the first R rows (1 to 6); narrow: the first vector only (a
 * partial last unit block of at most VL units, where a column group is one
 * gate's units: H = 50 on AVX2 needs 1 vector of 2 in its last block, and
 * the full tile would spend a large share of such a step on padding:
 * bench/RESULTS.md, design measurements). */
FL_INLINE void SFX(rows_part)(int R, int narrow, int K, const REAL *ap, const REAL *w, long ldw,
                              VEC acc[6][TV])
{
#define FL_ROWS_CASE(R_)                                                    \
    case R_:                                                                \
        if (narrow) SFX(rows_rv)(K, ap, w, ldw, acc, R_, 1);                \
        else SFX(rows_rv)(K, ap, w, ldw, acc, R_, TV);                      \
        break;
    switch (R) {
    FL_ROWS_CASE(1) FL_ROWS_CASE(2) FL_ROWS_CASE(3) FL_ROWS_CASE(4) FL_ROWS_CASE(5)
    default:
        if (narrow) SFX(rows_rv)(K, ap, w, ldw, acc, 6, 1);
        else SFX(rows_rv)(K, ap, w, ldw, acc, 6, TV);
    }
#undef FL_ROWS_CASE
}

/* One row: acc[v] += sum_k a[k] * w[v/TV * pstride + k*NRK + (v%TV)*VL] for
 * nv vectors, i.e. nv/TV column groups stored as (K, NRK) slabs pstride apart.
 * A single row needs many columns in flight to hide FMA latency, so it takes
 * up to 8 vectors at once (batch-1 inference, the serving case). Called
 * through row1_kernel so nv is a constant and the accumulators stay in
 * registers. */
FL_INLINE void SFX(row1_nv)(int K, const REAL *a, const REAL *w, long pstride, VEC *acc, int nv)
{
    VEC c[8];
    for (int v = 0; v < nv; v++) c[v] = acc[v];
    for (int k = 0; k < K; k++) {
        const REAL x = a[k];
        const REAL *wk = w + (long)k * NRK;
        for (int v = 0; v < nv; v++) c[v] += x * SFX(vload)(wk + (v / TV) * pstride + (v % TV) * VL);
    }
    for (int v = 0; v < nv; v++) acc[v] = c[v];
}

/* acc (ncols / VL vectors) += a (K) * the ncols / NRK slabs at w; ncols a multiple of NRK. */
FL_INLINE void SFX(row1_kernel)(int K, const REAL *a, const REAL *w, long pstride, VEC *acc,
                                    int ncols)
{
    int v = 0, nvec = ncols / VL;
    /* 8 is a multiple of TV (2 or 4), and so is nvec */
    for (; nvec - v >= 8; v += 8) SFX(row1_nv)(K, a, w + (v / TV) * pstride, pstride, acc + v, 8);
    switch (nvec - v) {
    case 6: SFX(row1_nv)(K, a, w + (v / TV) * pstride, pstride, acc + v, 6); break;
    case 4: SFX(row1_nv)(K, a, w + (v / TV) * pstride, pstride, acc + v, 4); break;
    case 2: SFX(row1_nv)(K, a, w + (v / TV) * pstride, pstride, acc + v, 2); break;
    default: break;
    }
}
