/* Portable SIMD through GCC's generic vectors (include after real_type.h).
 * A vec is FL_VBYTES bytes, set per instruction-set level: 64 for AVX-512
 * (one zmm register), 32 for AVX2 (one ymm) and for the baseline (two SSE2
 * or NEON registers). Every level compiles this same source; there are no
 * intrinsics. */
#include <string.h>

#undef VEC
#undef VL
#undef NRK
typedef REAL SFX(vec) __attribute__((vector_size(FL_VBYTES)));
#define VEC SFX(vec)
#define VL ((int)(FL_VBYTES / sizeof(REAL)))   /* lanes: 8 floats or 4 doubles at 32 bytes */

static inline VEC SFX(vload)(const REAL *p) { VEC v; memcpy(&v, p, sizeof v); return v; }
static inline void SFX(vstore)(REAL *p, VEC v) { memcpy(p, &v, sizeof v); }

#define NRK (2 * VL)   /* columns of the register tile: two vectors per row */

/* acc[r] (+)= sum_k a_r[k] * w[k*ldw .. +NRK) for 6 rows at once: the
 * register tile (6 x 2 vectors, 12 accumulators) of the GEMM, of the
 * recurrent step (rows of h_{t-1} times a column group of W_hh) and of
 * backward's dh = dG * W_hh. A is packed: ap[k*6 + r] holds row r's k-th
 * value. One contiguous A stream instead of six strided rows is worth about
 * 20% on this kernel (89 vs 74 GFLOP/s on one Zen 3 core), so the GEMM packs
 * A blocks and the time loops keep h_t and dG_t in this form as they write
 * them. FL_INLINE: compiled out of line it would get the baseline ISA (no
 * FMA), and rows would round differently depending on the path they took. */
FL_INLINE void SFX(rows6p_kernel)(int K, const REAL *ap, const REAL *w, long ldw, VEC acc[6][2])
{
    VEC c00 = acc[0][0], c01 = acc[0][1], c10 = acc[1][0], c11 = acc[1][1];
    VEC c20 = acc[2][0], c21 = acc[2][1], c30 = acc[3][0], c31 = acc[3][1];
    VEC c40 = acc[4][0], c41 = acc[4][1], c50 = acc[5][0], c51 = acc[5][1];
    for (int k = 0; k < K; k++) {
        const REAL *wk = w + (long)k * ldw, *a = ap + 6L * k;
        VEC w0 = SFX(vload)(wk), w1 = SFX(vload)(wk + VL);
        REAL x;
        x = a[0]; c00 += x * w0; c01 += x * w1;
        x = a[1]; c10 += x * w0; c11 += x * w1;
        x = a[2]; c20 += x * w0; c21 += x * w1;
        x = a[3]; c30 += x * w0; c31 += x * w1;
        x = a[4]; c40 += x * w0; c41 += x * w1;
        x = a[5]; c50 += x * w0; c51 += x * w1;
    }
    acc[0][0] = c00; acc[0][1] = c01; acc[1][0] = c10; acc[1][1] = c11;
    acc[2][0] = c20; acc[2][1] = c21; acc[3][0] = c30; acc[3][1] = c31;
    acc[4][0] = c40; acc[4][1] = c41; acc[5][0] = c50; acc[5][1] = c51;
}

/* The left half of rows6p_kernel's tile (6 x 1 vector): a partial last unit
 * block of at most VL units (H = 50: 2 of 16) needs no more of its column
 * groups, and the full tile would spend 28% of shape a's step on padding. */
FL_INLINE void SFX(rows6p_half)(int K, const REAL *ap, const REAL *w, long ldw, VEC acc[6][2])
{
    VEC c0 = acc[0][0], c1 = acc[1][0], c2 = acc[2][0], c3 = acc[3][0], c4 = acc[4][0], c5 = acc[5][0];
    for (int k = 0; k < K; k++) {
        const VEC w0 = SFX(vload)(w + (long)k * ldw);
        const REAL *a = ap + 6L * k;
        c0 += a[0] * w0; c1 += a[1] * w0; c2 += a[2] * w0;
        c3 += a[3] * w0; c4 += a[4] * w0; c5 += a[5] * w0;
    }
    acc[0][0] = c0; acc[1][0] = c1; acc[2][0] = c2; acc[3][0] = c3; acc[4][0] = c4; acc[5][0] = c5;
}

/* The first R (2 to 5) rows of rows6p_kernel's tile (half: of rows6p_half's),
 * for a partial last tile (of a batch, or of a thread's share of the rows):
 * a batch of 32 rows then costs 32 rows of FMAs, not 36 (a lone row goes
 * through row1_kernel). Each row's sum is the full tile's, bit for bit. R is a constant in every call rows_part makes,
 * so the accumulators stay in registers. */
FL_INLINE void SFX(rows_r)(int K, const REAL *ap, const REAL *w, long ldw, VEC acc[6][2],
                           const int R, const int half)
{
    VEC c[5][2];   /* R <= 5 */
    for (int r = 0; r < R; r++) { c[r][0] = acc[r][0]; c[r][1] = acc[r][1]; }
    for (int k = 0; k < K; k++) {
        const REAL *wk = w + (long)k * ldw, *a = ap + 6L * k;
        const VEC w0 = SFX(vload)(wk), w1 = half ? w0 : SFX(vload)(wk + VL);
        for (int r = 0; r < R; r++) {
            c[r][0] += a[r] * w0;
            if (!half) c[r][1] += a[r] * w1;
        }
    }
    for (int r = 0; r < R; r++) { acc[r][0] = c[r][0]; acc[r][1] = c[r][1]; }
}

/* rows6p_kernel (half: rows6p_half) on the first R rows of the tile, 2 <= R <= 6. */
FL_INLINE void SFX(rows_part)(int R, int half, int K, const REAL *ap, const REAL *w, long ldw,
                              VEC acc[6][2])
{
    switch (R) {
    case 2: SFX(rows_r)(K, ap, w, ldw, acc, 2, half); break;
    case 3: SFX(rows_r)(K, ap, w, ldw, acc, 3, half); break;
    case 4: SFX(rows_r)(K, ap, w, ldw, acc, 4, half); break;
    case 5: SFX(rows_r)(K, ap, w, ldw, acc, 5, half); break;
    default:
        if (half) SFX(rows6p_half)(K, ap, w, ldw, acc);
        else SFX(rows6p_kernel)(K, ap, w, ldw, acc);
    }
}

/* One row: acc[v] += sum_k a[k] * w[v/2 * pstride + k*NRK + (v%2)*VL] for
 * nv vectors, i.e. nv/2 column groups stored as (K, NRK) slabs pstride apart.
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
        for (int v = 0; v < nv; v++) c[v] += x * SFX(vload)(wk + (v / 2) * pstride + (v % 2) * VL);
    }
    for (int v = 0; v < nv; v++) acc[v] = c[v];
}

/* acc (ncols / VL vectors) += a (K) * the ncols / NRK slabs at w; ncols a multiple of NRK. */
FL_INLINE void SFX(row1_kernel)(int K, const REAL *a, const REAL *w, long pstride, VEC *acc,
                                    int ncols)
{
    int v = 0, nvec = ncols / VL;
    for (; nvec - v >= 8; v += 8) SFX(row1_nv)(K, a, w + (v / 2) * pstride, pstride, acc + v, 8);
    switch (nvec - v) {
    case 6: SFX(row1_nv)(K, a, w + (v / 2) * pstride, pstride, acc + v, 6); break;
    case 4: SFX(row1_nv)(K, a, w + (v / 2) * pstride, pstride, acc + v, 4); break;
    case 2: SFX(row1_nv)(K, a, w + (v / 2) * pstride, pstride, acc + v, 2); break;
    default: break;
    }
}
