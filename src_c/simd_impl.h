/* Portable SIMD through GCC's generic vectors (include after real_type.h).
 * A vec is 32 bytes: one AVX2 register (AVX-512 clones use the 32-register
 * file with AVX-512VL encodings), two SSE2 registers. The FL_CLONES variants
 * of a function compile the same source for each ISA, so there are no
 * intrinsics and no per-ISA code paths. (64-byte generic vectors would match
 * AVX-512, but GCC lowers them through memory on AVX2.) */
#include <string.h>

#undef VEC
#undef VL
#undef NRK
typedef REAL SFX(vec) __attribute__((vector_size(32)));
#define VEC SFX(vec)
#define VL ((int)(32 / sizeof(REAL)))   /* lanes: 8 floats or 4 doubles */

static inline VEC SFX(vload)(const REAL *p) { VEC v; memcpy(&v, p, sizeof v); return v; }
static inline void SFX(vstore)(REAL *p, VEC v) { memcpy(p, &v, sizeof v); }

#define NRK (2 * VL)   /* columns of the register tile: two vectors per row */

/* acc[r] (+)= sum_k a[r][k] * w[k*ldw .. +NRK) for 6 rows at once: the
 * register tile (6 x 2 vectors, 12 accumulators) of the GEMM, of the
 * recurrent step (rows of h_{t-1} times a column group of W_hh) and of
 * backward's dh = dG * W_hh. Rows are given by pointers so callers can pass
 * strided rows without packing; spare rows may repeat a valid row. */
static inline void SFX(rows6_kernel)(int K, const REAL *const a[6], const REAL *w, long ldw,
                                     VEC acc[6][2])
{
    VEC c00 = acc[0][0], c01 = acc[0][1], c10 = acc[1][0], c11 = acc[1][1];
    VEC c20 = acc[2][0], c21 = acc[2][1], c30 = acc[3][0], c31 = acc[3][1];
    VEC c40 = acc[4][0], c41 = acc[4][1], c50 = acc[5][0], c51 = acc[5][1];
    const REAL *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int k = 0; k < K; k++) {
        const REAL *wk = w + (long)k * ldw;
        VEC w0 = SFX(vload)(wk), w1 = SFX(vload)(wk + VL);
        REAL x;
        x = a0[k]; c00 += x * w0; c01 += x * w1;
        x = a1[k]; c10 += x * w0; c11 += x * w1;
        x = a2[k]; c20 += x * w0; c21 += x * w1;
        x = a3[k]; c30 += x * w0; c31 += x * w1;
        x = a4[k]; c40 += x * w0; c41 += x * w1;
        x = a5[k]; c50 += x * w0; c51 += x * w1;
    }
    acc[0][0] = c00; acc[0][1] = c01; acc[1][0] = c10; acc[1][1] = c11;
    acc[2][0] = c20; acc[2][1] = c21; acc[3][0] = c30; acc[3][1] = c31;
    acc[4][0] = c40; acc[4][1] = c41; acc[5][0] = c50; acc[5][1] = c51;
}

/* The same tile from a packed A: ap[k*6 + r] holds row r's k-th value. One
 * contiguous A stream instead of six is worth about 20% on this kernel (89
 * vs 74 GFLOP/s on one Zen 3 core), so the GEMM packs A this way and the
 * recurrent step packs h_{t-1} (and backward dG) in k-chunks. */
static inline void SFX(rows6p_kernel)(int K, const REAL *ap, const REAL *w, long ldw, VEC acc[6][2])
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

/* ap[k*6 + r] = a[r][k0 + k] for k < kc: six strided rows into the packed form. */
static inline void SFX(pack_rows6)(REAL *ap, const REAL *const a[6], int k0, int kc)
{
    for (int k = 0; k < kc; k++)
        for (int r = 0; r < 6; r++) ap[6L * k + r] = a[r][k0 + k];
}

/* acc[cg] (+)= sum over all K of rows a[0..5] times the column-group slabs
 * w + cg*slab (each (K, NRK), row stride NRK), for ncg groups; A is packed
 * KCHUNK values of k at a time on the stack. */
#define KCHUNK 128
static inline void SFX(rows6_slabs)(int K, const REAL *const a[6], const REAL *w, long slab,
                                    int ncg, VEC acc[][6][2])
{
    REAL ap[6 * KCHUNK];
    for (int k0 = 0; k0 < K; k0 += KCHUNK) {
        const int kc = K - k0 < KCHUNK ? K - k0 : KCHUNK;
        SFX(pack_rows6)(ap, a, k0, kc);
        for (int cg = 0; cg < ncg; cg++)
            SFX(rows6p_kernel)(kc, ap, w + cg * slab + (long)k0 * NRK, NRK, acc[cg]);
    }
}
#undef KCHUNK

/* One row: acc[v] += sum_k a[k] * w[v/2 * pstride + k*NRK + (v%2)*VL] for
 * nv vectors, i.e. nv/2 column groups stored as (K, NRK) slabs pstride apart.
 * A single row needs many columns in flight to hide FMA latency, so it takes
 * up to 8 vectors at once (batch-1 inference, the serving case). Called
 * through row1_kernel so nv is a constant and the accumulators stay in
 * registers. */
static inline void SFX(row1_nv)(int K, const REAL *a, const REAL *w, long pstride, VEC *acc, int nv)
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
static inline void SFX(row1_kernel)(int K, const REAL *a, const REAL *w, long pstride, VEC *acc,
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
