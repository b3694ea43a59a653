/* Reduced-precision inference forward (fl_quant.h) for one instruction-set
 * level. Included once from kernels_level.h in the float32 block, after
 * cells_impl.h: the gates and state updates are the float32 kernels' own
 * cell functions; only the matrix products differ.
 *
 * Layout. Weight row r = g*H + h becomes column n = blk*G*U + g*U + u
 * (h = blk*U + u, U the level's unit block), so the product's output is
 * the cells' (G, U) blocks as they are; columns are padded to Np, a multiple
 * of QCB = QNV vectors, the column block one pass of the product runs.
 * Weights are grouped by P consecutive k (bf16: P = 2, a uint32 per column
 * and pair; int8: P = 4, a uint32 per column and quad, the operand orders of
 * vdpbf16ps and vpdpbusd). Block j of W^T is a contiguous stream of (Kq, QCB)
 * uint32, Kq = K / P rounded up; padding columns and k are zero.
 * Float parts: bias_x, bias_h, scale_x, scale_h (Np each), peep (3, Hp);
 * int8 also csum_x, csum_h (Np int32): 128 * the column's weight sum, what
 * vpdpbusd's unsigned activations (q + 128) add on top of the signed sum.
 *
 * int8 quantizes the activations too, once per step and row (dynamic
 * quantization, as PyTorch's and ONNX Runtime's int8 LSTMs): q_a =
 * rint(a * (127 / max|a|)), scale max|a| / 127. The integer sums
 * D_n = sum_k q_a,k q_w,nk are exact on every path (vpdpbusd, vpmaddwd,
 * vpmaddubsw, pmaddwd, generic vectors, AMX's tdpbssd; |D| < 2^31 while
 * K <= FL_Q_INT8_MAX_K), so every level computes the same D; the
 * pre-activation is (float)D * (scale_a * s_n) + bias.
 *
 * Threads split the batch rows; each runs the whole sequence for its rows,
 * with no synchronisation between steps. A row's sums do not depend on
 * which rows share its register tile or its thread, so results are bitwise
 * the same for any thread count. A batch of one splits its unit blocks
 * instead (qcols), with a barrier a step. Rows are processed in panels whose
 * accumulators fit half the L2 cache, and K in chunks whose weights fit half
 * the L1 data cache, so a block's weights are reused by a panel's tiles.
 */
#include <stdint.h>
#if (FL_VBYTES == 64 && FL_X86_LEVELS && !defined(FASTLSTM_WIDE_AS_AVX2)) \
    || (FL_VBYTES == 32 && FL_X86_LEVELS && defined(__AVX2__))
#include <immintrin.h>
#endif
#if FL_VBYTES == 64 && FL_X86_LEVELS && !defined(FASTLSTM_WIDE_AS_AVX2)
#define FL_Q_NATIVE 1            /* vdpbf16ps and vpdpbusd, when the CPU has them */
#define FL_Q_MADD 1              /* int8 without VNNI: vpmaddwd on zmm */
#define FL_Q_SIGN 0
#elif FL_VBYTES == 32 && FL_X86_LEVELS && defined(__AVX2__)
#define FL_Q_NATIVE 0
#define FL_Q_MADD 0
#define FL_Q_SIGN 1              /* int8: vpsignb + vpmaddubsw on ymm; AVX-VNNI's
                                    vpdpbusd on ymm when the CPU has it */
#elif FL_VBYTES == 16 && defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define FL_Q_NATIVE 0
#define FL_Q_MADD 1              /* the x86-64 baseline's int8: SSE2's pmaddwd */
#define FL_Q_SIGN 0
#else
#define FL_Q_NATIVE 0
#define FL_Q_MADD 0              /* generic vectors: ARM64, the wide test build */
#define FL_Q_SIGN 0
#endif

#define QNV 8                        /* vectors per column block */
#define QCB (QNV * VL)               /* columns per block */
/* accumulator vectors a register tile may use: of 32 zmm, of 16 ymm, of the
 * x86-64 baseline's 16 xmm, and of ARM64's 32 NEON registers, two to its
 * 32-byte vector */
#if FL_VBYTES == 64
#define QACC 24
#elif defined(__AVX2__) || FL_VBYTES == 16
#define QACC 12
#else
#define QACC 6
#endif
#define QMR 3                        /* rows per register tile */
#define QFN(name) FL_CAT(name, FL_LEVEL_SFX)

typedef int32_t SFX(qvi) __attribute__((vector_size(FL_VBYTES)));   /* VL int32 */
typedef uint32_t SFX(qvu) __attribute__((vector_size(FL_VBYTES)));  /* VL uint32 */
typedef uint8_t SFX(qb) __attribute__((vector_size(FL_VBYTES / 4)));  /* VL bytes */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the quantized groups are built as little-endian bytes"
#endif

/* How a call computes its products (chosen once per call from the qtype,
 * the level and the CPU). */
enum { Q_BF16_WIDEN, Q_BF16_NATIVE, Q_BF16_AMX, Q_I8_GENERIC, Q_I8_MADD, Q_I8_SIGN, Q_I8_VNNI,
       Q_I8_AMX };

static inline int SFX(qis_bf16)(int path)
{
    return path == Q_BF16_WIDEN || path == Q_BF16_NATIVE || path == Q_BF16_AMX;
}

typedef struct {
    int G, NB, Hp, Np, nblk, P, KqX, KqH;   /* KqX, KqH: k groups of W_ih, W_hh */
    size_t off_csum, off_wx, off_wh, bytes; /* byte offsets in the packed buffer, its size */
} SFX(qlayout);

static size_t SFX(qalign)(size_t n) { return (n + 63) / 64 * 64; }

static int SFX(qlayout_of)(const fl_rnn_desc *d, int qtype, SFX(qlayout) *L)
{
    if (!d || (qtype != FL_Q_BF16 && qtype != FL_Q_INT8)) return FL_ERR_ARG;
    if (d->cell < FL_CELL_LSTM || d->cell > FL_CELL_GRU) return FL_ERR_ARG;
    const int kmax = qtype == FL_Q_INT8 ? FL_Q_INT8_MAX_K : (1 << 24);
    if (d->I < 1 || d->H < 1 || d->I > kmax || d->H > kmax) return FL_ERR_SIZE;
    L->G = SFX(cell_gates)(d->cell);
    L->NB = (d->H + U - 1) / U;
    L->Hp = L->NB * U;
    L->Np = (L->NB * L->G * U + QCB - 1) / QCB * QCB;
    L->nblk = L->Np / QCB;
    L->P = qtype == FL_Q_BF16 ? 2 : 4;
    L->KqX = (d->I + L->P - 1) / L->P;
    L->KqH = (d->H + L->P - 1) / L->P;
    const size_t floats = SFX(qalign)(sizeof(float) * (4L * L->Np + 3L * L->Hp));
    const size_t csum = qtype == FL_Q_INT8 ? SFX(qalign)(sizeof(int32_t) * 2L * L->Np) : 0;
    const size_t wx = SFX(qalign)(4 * (size_t)L->KqX * L->Np);
    const size_t wh = SFX(qalign)(4 * (size_t)L->KqH * L->Np);
    L->off_csum = floats;
    L->off_wx = floats + csum;
    L->off_wh = L->off_wx + wx;
    L->bytes = L->off_wh + wh;
    return FL_OK;
}

size_t QFN(fl_qrnn_packed_bytes)(const fl_rnn_desc *d, int qtype)
{
    SFX(qlayout) L;
    return SFX(qlayout_of)(d, qtype, &L) == FL_OK ? L.bytes : 0;
}

/* Column of canonical weight row r = g*H + h. */
static inline long SFX(qcol)(long r, int H, int G)
{
    const long g = r / H, h = r % H;
    return (h / U) * G * U + g * U + h % U;
}

/* dst: W^T blocks of one weight matrix w (G*H, K) in the layout above;
 * csum (Np): 128 * each column's sum (int8), or NULL. */
static void SFX(qpack_w)(uint32_t *dst, int32_t *csum, const void *w, int qtype, int H, int K,
                         int Kq, const SFX(qlayout) *L)
{
    memset(dst, 0, 4 * (size_t)Kq * L->Np);
    unsigned char *o = (unsigned char *)dst;
    const int esz = qtype == FL_Q_BF16 ? 2 : 1;
    for (long r = 0; r < (long)L->G * H; r++) {
        const long n = SFX(qcol)(r, H, L->G), j = n / QCB, c = n % QCB;
        long sum = 0;
        for (int k = 0; k < K; k++) {
            const unsigned char *src = (const unsigned char *)w + (r * K + k) * esz;
            memcpy(o + ((j * Kq + k / L->P) * QCB + c) * 4 + (k % L->P) * esz, src, esz);
            if (qtype == FL_Q_INT8) sum += ((const int8_t *)w)[r * K + k];
        }
        if (csum) csum[n] = (int32_t)(128 * sum);
    }
}

int QFN(fl_qrnn_pack)(const fl_rnn_desc *d, int qtype, void *packed, const void *w_ih,
                      const void *w_hh, const float *s_ih, const float *s_hh, const float *b_ih,
                      const float *b_hh, const float *w_peep)
{
    SFX(qlayout) L;
    int st = SFX(qlayout_of)(d, qtype, &L);
    if (st != FL_OK) return st;
    if (!packed || !w_ih || !w_hh || !b_ih || !b_hh) return FL_ERR_ARG;
    if (qtype == FL_Q_INT8 && (!s_ih || !s_hh)) return FL_ERR_ARG;
    if (d->cell == FL_CELL_PEEPHOLE && !w_peep) return FL_ERR_ARG;
    const int G = L.G, H = d->H, Hp = L.Hp, Np = L.Np, apart = SFX(cell_x_apart)(d->cell);
    float *bx = packed, *bh = bx + Np, *sx = bh + Np, *sh = sx + Np, *pp = sh + Np;
    for (long n = 0; n < 4L * Np + 3L * Hp; n++) bx[n] = 0;
    for (long r = 0; r < (long)G * H; r++) {
        const long n = SFX(qcol)(r, H, G);
        /* the cells take both biases with the recurrent part, or each with
         * its own side where the input part is kept apart (gru) */
        bx[n] = apart ? b_ih[r] : b_ih[r] + b_hh[r];
        bh[n] = apart ? b_hh[r] : 0;
        sx[n] = qtype == FL_Q_INT8 ? s_ih[r] : 1;
        sh[n] = qtype == FL_Q_INT8 ? s_hh[r] : 1;
    }
    if (d->cell == FL_CELL_PEEPHOLE)
        for (int g = 0; g < 3; g++)
            for (int h = 0; h < H; h++) pp[(long)g * Hp + h] = w_peep[(long)g * H + h];
    int32_t *csum = qtype == FL_Q_INT8 ? (int32_t *)((char *)packed + L.off_csum) : NULL;
    if (csum) memset(csum, 0, sizeof(int32_t) * 2 * (size_t)Np);   /* padding columns too */
    SFX(qpack_w)((uint32_t *)((char *)packed + L.off_wx), csum, w_ih, qtype, H, d->I, L.KqX, &L);
    SFX(qpack_w)((uint32_t *)((char *)packed + L.off_wh), csum ? csum + Np : NULL, w_hh, qtype,
                 H, H, L.KqH, &L);
    return FL_OK;
}

/* ------------------------------------------------------------ the CPU's paths */

/* Does the CPU have the level's dot product for bf16 ('b') or int8 ('v')?
 * The AVX-512 level: AVX512_BF16, AVX512_VNNI; the AVX2 level: AVX-VNNI
 * (int8 only; its bf16 instructions need AVX-512). */
static int SFX(qcpu)(char feature)
{
    if (fl_test_quant_paths() == FL_QPATHS_GENERAL) return 0;   /* testing.h */
#if FL_Q_NATIVE
    __builtin_cpu_init();
    if (feature == 'b') return __builtin_cpu_supports("avx512bf16");
    return __builtin_cpu_supports("avx512vnni");
#elif FL_Q_SIGN
    __builtin_cpu_init();
    return feature == 'v' && __builtin_cpu_supports("avxvnni");
#else
    (void)feature;
    return 0;
#endif
}

static int SFX(qpath)(int qtype)
{
    if (qtype == FL_Q_BF16) return SFX(qcpu)('b') ? Q_BF16_NATIVE : Q_BF16_WIDEN;
    if (SFX(qcpu)('v')) return Q_I8_VNNI;
    return FL_Q_MADD ? Q_I8_MADD : FL_Q_SIGN ? Q_I8_SIGN : Q_I8_GENERIC;
}

/* ---------------------------------------------------------- register tiles */

/* Every tile: acc (R rows, NA vectors at acc + r * lda) = (first ? init :
 * acc) + the rows' activation groups a[r][0 .. nk) times nk group rows of one
 * block's columns, w[k * QCB + ..] (uint32), from the tile's first column;
 * init (NA vectors, the same for every row) is the columns' bias for bf16,
 * NULL (zeros) for int8, whose integer sums take their bias after scaling.
 * R and NA are constants where qtile calls them. Lane sums run over k in
 * order, whatever R, NA and the K chunks: a row's result does not depend on
 * the tile it was in. */

FL_INLINE VEC SFX(qbits)(SFX(qvu) b) { VEC v; memcpy(&v, &b, sizeof v); return v; }
FL_INLINE SFX(qvu) SFX(qload_u)(const void *p) { SFX(qvu) v; memcpy(&v, p, sizeof v); return v; }
FL_INLINE SFX(qvi) SFX(qload_i)(const void *p) { SFX(qvi) v; memcpy(&v, p, sizeof v); return v; }

/* bf16 widened to float32: the odd k goes in first, as vdpbf16ps adds it;
 * products of two bf16 are exact, so both paths round the same sums. */
FL_INLINE void SFX(qk_bf16)(const int R, const int NA, int first, int nk,
                            const uint32_t *const *a, const uint32_t *w, float *acc, long lda,
                            const float *init)
{
    VEC c[QMR][2 * QNV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++)
            c[r][v] = !first ? SFX(vload)(acc + r * lda + v * VL)
                      : init ? SFX(vload)(init + v * VL) : (VEC){0};
    for (int k = 0; k < nk; k++) {
        const uint32_t *wk = w + (long)k * QCB;
        float a0[QMR], a1[QMR];
        for (int r = 0; r < R; r++) {
            const uint32_t p = a[r][k], plo = p << 16, phi = p & 0xffff0000u;
            memcpy(&a0[r], &plo, 4);
            memcpy(&a1[r], &phi, 4);
        }
        for (int v = 0; v < NA; v++) {
            const SFX(qvu) b = SFX(qload_u)(wk + v * VL);
            const VEC hi = SFX(qbits)(b & 0xffff0000u), lo = SFX(qbits)(b << 16);
            for (int r = 0; r < R; r++) {
                c[r][v] += a1[r] * hi;
                c[r][v] += a0[r] * lo;
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++) SFX(vstore)(acc + r * lda + v * VL, c[r][v]);
}

/* int8 on generic vectors: each int32 lane holds a column's quad; shifting
 * a byte to the top and back sign-extends it. */
FL_INLINE void SFX(qk_i8)(const int R, const int NA, int first, int nk,
                          const uint32_t *const *a, const uint32_t *w, int32_t *acc, long lda,
                          const float *init)
{
    (void)init;
    SFX(qvi) c[QMR][2 * QNV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++)
            c[r][v] = first ? (SFX(qvi)){0} : SFX(qload_i)(acc + r * lda + v * VL);
    for (int k = 0; k < nk; k++) {
        const uint32_t *wk = w + (long)k * QCB;
        int32_t q[QMR][4];
        for (int r = 0; r < R; r++)
            for (int e = 0; e < 4; e++) q[r][e] = (int8_t)(a[r][k] >> (8 * e));
        for (int v = 0; v < NA; v++) {
            const SFX(qvu) b = SFX(qload_u)(wk + v * VL);
            for (int e = 0; e < 4; e++) {
                const SFX(qvi) we = (SFX(qvi))(b << (24 - 8 * e)) >> 24;
                for (int r = 0; r < R; r++) c[r][v] += q[r][e] * we;
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++) memcpy(acc + r * lda + v * VL, &c[r][v], sizeof c[r][v]);
}

#if FL_Q_SIGN
/* int8 on AVX2: vpmaddubsw multiplies unsigned by signed bytes, so each
 * row's |q_a| meets the weights with q_a's sign moved onto them (vpsignb);
 * pairs of products stay within int16 (2 * 127 * 127), and vpmaddwd by ones
 * sums a column's quad into its int32 lane. */
FL_INLINE void SFX(qk_sign)(const int R, const int NA, int first, int nk,
                            const uint32_t *const *a, const uint32_t *w, int32_t *acc, long lda,
                            const float *init)
{
    (void)init;
    __m256i c[QMR][QNV];
    const __m256i ones = _mm256_set1_epi16(1);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++)
            c[r][v] = first ? _mm256_setzero_si256()
                            : _mm256_loadu_si256((const __m256i *)(acc + r * lda + v * 8));
    for (int k = 0; k < nk; k++) {
        const uint32_t *wk = w + (long)k * QCB;
        __m256i q[QMR], qabs[QMR];
        for (int r = 0; r < R; r++) {
            q[r] = _mm256_set1_epi32((int)a[r][k]);
            qabs[r] = _mm256_abs_epi8(q[r]);
        }
        for (int v = 0; v < NA; v++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(wk + v * 8));
            for (int r = 0; r < R; r++) {
                const __m256i p = _mm256_maddubs_epi16(qabs[r], _mm256_sign_epi8(wv, q[r]));
                c[r][v] = _mm256_add_epi32(c[r][v], _mm256_madd_epi16(p, ones));
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++)
            _mm256_storeu_si256((__m256i *)(acc + r * lda + v * 8), c[r][v]);
}
#endif

#if FL_Q_SIGN
/* int8 with AVX-VNNI: as qk_vnni, on ymm (the caller subtracts csum). */
__attribute__((target("avxvnni")))
FL_INLINE void SFX(qk_avxvnni)(const int R, const int NA, int first, int nk,
                               const uint32_t *const *a, const uint32_t *w, int32_t *acc, long lda,
                               const float *init)
{
    (void)init;
    __m256i c[QMR][QNV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++)
            c[r][v] = first ? _mm256_setzero_si256()
                            : _mm256_loadu_si256((const __m256i *)(acc + r * lda + v * 8));
    for (int k = 0; k < nk; k++) {
        const uint32_t *wk = w + (long)k * QCB;
        __m256i q[QMR];
        for (int r = 0; r < R; r++) q[r] = _mm256_set1_epi32((int)a[r][k]);
        for (int v = 0; v < NA; v++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(wk + v * 8));
            for (int r = 0; r < R; r++) c[r][v] = _mm256_dpbusd_avx_epi32(c[r][v], q[r], wv);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++)
            _mm256_storeu_si256((__m256i *)(acc + r * lda + v * 8), c[r][v]);
}
#endif

#if FL_Q_MADD && FL_VBYTES == 64
typedef __m512i SFX(qreg);
#define QMADD_LOAD(p) _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(p)))
#define QMADD_A(q) _mm512_set1_epi64(_mm_cvtsi128_si64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(q))))
#define QMADD(c, w, a) _mm512_add_epi32(c, _mm512_madd_epi16(w, a))
#elif FL_Q_MADD
typedef __m128i SFX(qreg);   /* SSE2 */
/* two columns' quads, their bytes sign-extended to int16 (each to the top, then down) */
static inline __m128i SFX(qmadd_load)(const void *p)
{
    const __m128i b = _mm_loadl_epi64((const __m128i *)p);
    return _mm_srai_epi16(_mm_unpacklo_epi8(b, b), 8);
}
/* a row's quad as four int16, twice */
static inline __m128i SFX(qmadd_a)(int q)
{
    uint64_t v = 0;
    for (int e = 0; e < 4; e++) v |= (uint64_t)(uint16_t)(int8_t)(q >> (8 * e)) << (16 * e);
    return _mm_set1_epi64x((long long)v);
}
#define QMADD_LOAD(p) SFX(qmadd_load)(p)
#define QMADD_A(q) SFX(qmadd_a)(q)
#define QMADD(c, w, a) _mm_add_epi32(c, _mm_madd_epi16(w, a))
#endif
#if FL_Q_MADD
/* int8 with (v)pmaddwd: a vector's VL / 2 columns' quads widened to int16,
 * times the row's quad repeated; lanes hold partial sums of k pairs. */
FL_INLINE void SFX(qk_madd)(const int R, const int NA, int first, int nk,
                            const uint32_t *const *a, const uint32_t *w, int32_t *acc, long lda,
                            const float *init)
{
    (void)init;
    SFX(qreg) c[QMR][2 * QNV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++) {
            memset(&c[r][v], 0, sizeof c[r][v]);
            if (!first) memcpy(&c[r][v], acc + r * lda + v * VL, sizeof c[r][v]);
        }
    for (int k = 0; k < nk; k++) {
        const uint32_t *wk = w + (long)k * QCB;
        SFX(qreg) q[QMR];
        for (int r = 0; r < R; r++) q[r] = QMADD_A((int)a[r][k]);
        for (int v = 0; v < NA; v++) {
            const SFX(qreg) wv = QMADD_LOAD(wk + v * (VL / 2));
            for (int r = 0; r < R; r++) c[r][v] = QMADD(c[r][v], wv, q[r]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++) memcpy(acc + r * lda + v * VL, &c[r][v], sizeof c[r][v]);
}
#undef QMADD_LOAD
#undef QMADD_A
#undef QMADD
#endif

#if FL_Q_NATIVE
__attribute__((target("avx512bf16")))
FL_INLINE void SFX(qk_bf16_native)(const int R, const int NA, int first, int nk,
                                   const uint32_t *const *a, const uint32_t *w, float *acc,
                                   long lda, const float *init)
{
    __m512 c[QMR][QNV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++)
            c[r][v] = !first ? _mm512_loadu_ps(acc + r * lda + v * 16)
                      : init ? _mm512_loadu_ps(init + v * 16) : _mm512_setzero_ps();
    for (int k = 0; k < nk; k++) {
        const uint32_t *wk = w + (long)k * QCB;
        __m512bh q[QMR];
        for (int r = 0; r < R; r++) q[r] = (__m512bh)_mm512_set1_epi32((int)a[r][k]);
        for (int v = 0; v < NA; v++) {
            const __m512bh wv = (__m512bh)_mm512_loadu_si512(wk + v * 16);
            for (int r = 0; r < R; r++) c[r][v] = _mm512_dpbf16_ps(c[r][v], q[r], wv);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++) _mm512_storeu_ps(acc + r * lda + v * 16, c[r][v]);
}

/* Activations unsigned (q + 128): the caller subtracts csum. */
__attribute__((target("avx512vnni")))
FL_INLINE void SFX(qk_vnni)(const int R, const int NA, int first, int nk,
                            const uint32_t *const *a, const uint32_t *w, int32_t *acc, long lda,
                            const float *init)
{
    (void)init;
    __m512i c[QMR][QNV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++)
            c[r][v] = first ? _mm512_setzero_si512() : _mm512_loadu_si512(acc + r * lda + v * 16);
    for (int k = 0; k < nk; k++) {
        const uint32_t *wk = w + (long)k * QCB;
        __m512i q[QMR];
        for (int r = 0; r < R; r++) q[r] = _mm512_set1_epi32((int)a[r][k]);
        for (int v = 0; v < NA; v++) {
            const __m512i wv = _mm512_loadu_si512(wk + v * 16);
            for (int r = 0; r < R; r++) c[r][v] = _mm512_dpbusd_epi32(c[r][v], q[r], wv);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NA; v++) _mm512_storeu_si512(acc + r * lda + v * 16, c[r][v]);
}
#endif

#define QPOW2(x) ((x) >= 16 ? 16 : (x) >= 8 ? 8 : (x) >= 4 ? 4 : (x) >= 2 ? 2 : 1)

/* One path's tile on R rows (1 to QMR) of a block's k chunk: the block's
 * QCB columns in passes of NA accumulators, as many as the register file
 * holds for R rows. acc: (R, lda) of the block's accumulators, float or
 * int32 by path (the vpmaddwd path's twice as wide). */
#define QTILE_PASSES(KERNEL, T_, NB_, R_, ACC_)                                       \
    do {                                                                            \
        const int na_ = QPOW2((ACC_) / (R_) < (NB_) ? (ACC_) / (R_) : (NB_));        \
        for (int v0_ = 0; v0_ < (NB_); v0_ += na_)                                    \
            KERNEL(R_, na_, first, nk, a, w + v0_ * (QCB / (NB_)), (T_ *)acc + v0_ * VL, lda, \
                   init ? init + v0_ * VL : NULL);                                   \
    } while (0)
#define QTILE_ROWS_ACC(KERNEL, T_, NB_, ACC_)                         \
    switch (R) {                                                      \
    case 1: QTILE_PASSES(KERNEL, T_, NB_, 1, ACC_); break;            \
    case 2: QTILE_PASSES(KERNEL, T_, NB_, 2, ACC_); break;            \
    default: QTILE_PASSES(KERNEL, T_, NB_, 3, ACC_); break;           \
    }
#define QTILE_ROWS(KERNEL, T_, NB_) QTILE_ROWS_ACC(KERNEL, T_, NB_, QACC)

#if FL_Q_NATIVE
/* Out of line with the instructions' targets, which the kernels inline into. */
__attribute__((target("avx512bf16"))) static FL_NOINLINE void
SFX(qtile_bf16_native)(int R, int first, int nk, const uint32_t *const *a, const uint32_t *w, void *acc,
                       long lda, const float *init)
{
    QTILE_ROWS(SFX(qk_bf16_native), float, QNV);
}
__attribute__((target("avx512vnni"))) static FL_NOINLINE void
SFX(qtile_vnni)(int R, int first, int nk, const uint32_t *const *a, const uint32_t *w, void *acc, long lda,
                const float *init)
{
    QTILE_ROWS(SFX(qk_vnni), int32_t, QNV);
}
#endif
#if FL_Q_SIGN
__attribute__((target("avxvnni"))) static FL_NOINLINE void
SFX(qtile_avxvnni)(int R, int first, int nk, const uint32_t *const *a, const uint32_t *w, void *acc,
                   long lda, const float *init)
{
    QTILE_ROWS(SFX(qk_avxvnni), int32_t, QNV);
}
#endif

static FL_NOINLINE void SFX(qtile)(int path, int R, int first, int nk, const uint32_t *const *a,
                                   const uint32_t *w, void *acc, long lda, const float *init)
{
    switch (path) {
#if FL_Q_NATIVE
    case Q_BF16_NATIVE: SFX(qtile_bf16_native)(R, first, nk, a, w, acc, lda, init); break;
    case Q_I8_VNNI: SFX(qtile_vnni)(R, first, nk, a, w, acc, lda, NULL); break;
#endif
#if FL_Q_MADD
    case Q_I8_MADD: QTILE_ROWS(SFX(qk_madd), int32_t, 2 * QNV); break;
#endif
#if FL_Q_SIGN
    case Q_I8_VNNI: SFX(qtile_avxvnni)(R, first, nk, a, w, acc, lda, NULL); break;
    /* 8 accumulators: each row also holds its quad and |quad| in registers */
    case Q_I8_SIGN: QTILE_ROWS_ACC(SFX(qk_sign), int32_t, QNV, 8); break;
#endif
    case Q_BF16_WIDEN: QTILE_ROWS(SFX(qk_bf16), float, QNV); break;
    default: QTILE_ROWS(SFX(qk_i8), int32_t, QNV); break;
    }
}
#undef QTILE_PASSES
#undef QTILE_ROWS
#undef QTILE_ROWS_ACC
#undef QPOW2

/* ------------------------------------------------------------- AMX tiles */

/* Batches of QAMX_MIN_B rows or more take AMX tiles on the avx512 level
 * where the process may run them (fl_amx_ready): 16 rows of 64 bytes a
 * tile, so a tile holds a 16-row block of activation groups (A), 16 k
 * groups of 16 columns of the packed weights as they are (B: a group's 16
 * columns are a 64-byte row, QCB * 4 bytes apart), or 16 rows of 16 column
 * accumulators (C). bf16 takes tdpbf16ps, int8 tdpbssd on signed codes
 * (q_a as Q_I8_GENERIC's, no column sums). The tiles run whole 16-group
 * stretches of k; a K tail goes to the vector tiles (q->tail). Rows come
 * in 16s: a panel's last block reads zeroed activation rows and writes
 * accumulator rows nobody reads.
 * Where the path is chosen by the batch size alone, a row's bits never
 * depend on the thread count; they may depend on whether its batch reaches
 * QAMX_MIN_B rows (tdpbf16ps may round its sums differently from
 * vdpbf16ps; int8's sums are exact on every path). */
#define QAMX_MIN_B 16
#define QAMX_ROWS 16             /* a tile's rows */
#define QAMX_K 16                /* k groups a tile row holds (64 bytes) */

/* The eight tile registers, for the emulation (testing.h). */
typedef struct { uint32_t t[8][QAMX_ROWS][QAMX_K]; } SFX(qamx_regs);

#if FL_VBYTES == 64
static void SFX(qemu_load)(SFX(qamx_regs) *E, int t, const void *p, long stride)
{
    for (int r = 0; r < QAMX_ROWS; r++) memcpy(E->t[t][r], (const char *)p + r * stride, 64);
}

static void SFX(qemu_store)(const SFX(qamx_regs) *E, int t, void *p, long stride)
{
    for (int r = 0; r < QAMX_ROWS; r++) memcpy((char *)p + r * stride, E->t[t][r], 64);
}

/* c += a b: tdpbf16ps as the SDM's pseudocode has it (per k pair the even
 * product added, then the odd, each sum rounded to float32; the hardware
 * also flushes denormals, which the emulation does not), or tdpbssd
 * (exact int32 sums of signed bytes). */
static void SFX(qemu_dp)(SFX(qamx_regs) *E, int bf16, int c, int a, int b)
{
    /* a row of C in one vector (VL is 16 here), as the vector tiles hold theirs */
    for (int m = 0; m < QAMX_ROWS; m++) {
        if (bf16) {
            VEC acc = SFX(qbits)(SFX(qload_u)(E->t[c][m]));
            for (int k = 0; k < QAMX_K; k++) {
                const uint32_t p = E->t[a][m][k], plo = p << 16, phi = p & 0xffff0000u;
                float a0, a1;
                memcpy(&a0, &plo, 4);
                memcpy(&a1, &phi, 4);
                const SFX(qvu) w = SFX(qload_u)(E->t[b][k]);
                acc += a0 * SFX(qbits)(w << 16);
                acc += a1 * SFX(qbits)(w & 0xffff0000u);
            }
            memcpy(E->t[c][m], &acc, sizeof acc);
        } else {
            SFX(qvi) acc = SFX(qload_i)(E->t[c][m]);
            for (int k = 0; k < QAMX_K; k++) {
                const SFX(qvu) w = SFX(qload_u)(E->t[b][k]);
                for (int e = 0; e < 4; e++) {
                    const int32_t qa = (int8_t)(E->t[a][m][k] >> (8 * e));
                    acc += qa * ((SFX(qvi))(w << (24 - 8 * e)) >> 24);
                }
            }
            memcpy(E->t[c][m], &acc, sizeof acc);
        }
    }
}

#if FL_Q_NATIVE
#define QAMX_OP(HW, EMU) do { if (emu) { EMU; } else { HW; } } while (0)
#else
#define QAMX_OP(HW, EMU) do { EMU; } while (0)
#endif
#define QT_LOAD(t, p, s) QAMX_OP(_tile_loadd(t, p, s), SFX(qemu_load)(E, t, p, s))
#define QT_STORE(t, p, s) QAMX_OP(_tile_stored(t, p, s), SFX(qemu_store)(E, t, p, s))
#define QT_DP(c, a, b)                                                                   \
    QAMX_OP(if (bf16) _tile_dpbf16ps(c, a, b); else _tile_dpbssd(c, a, b),             \
            SFX(qemu_dp)(E, bf16, c, a, b))

/* acc (rows16, accw) += the rows' groups ag (rows16, Kq) [0, kv) times W^T,
 * column blocks [jb0, jb1): C blocks of 32 rows and 32 columns in tiles
 * 0-3 over all kv groups (A in tiles 4, 5; B in 6, 7), kv a multiple of
 * QAMX_K, rows16 of QAMX_ROWS. emu: the tiles in E (testing.h), or the
 * CPU's (tile configuration loaded by qamx_begin). */
FL_INLINE void SFX(qamx_body)(const int emu, const int bf16, SFX(qamx_regs) *E, const uint32_t *w,
                              int Kq, int kv, const uint32_t *ag, int rows16, void *acc, long accw,
                              int jb0, int jb1)
{
    (void)E;
    const long lda = 4L * Kq, ldw = 4L * QCB, ldc = 4 * accw;
    for (int j = jb0; j < jb1; j++) {
        const uint32_t *wj = w + (long)j * Kq * QCB;
        for (int c0 = 0; c0 < QCB; c0 += 32)
            for (int r0 = 0; r0 < rows16; r0 += 2 * QAMX_ROWS) {
                const int two = rows16 - r0 >= 2 * QAMX_ROWS;
                char *c = (char *)acc + ldc * r0 + 4 * ((long)j * QCB + c0);
                QT_LOAD(0, c, ldc);
                QT_LOAD(1, c + 64, ldc);
                if (two) {
                    QT_LOAD(2, c + QAMX_ROWS * ldc, ldc);
                    QT_LOAD(3, c + QAMX_ROWS * ldc + 64, ldc);
                }
                for (int k0 = 0; k0 < kv; k0 += QAMX_K) {
                    const uint32_t *ak = ag + (long)r0 * Kq + k0, *wk = wj + (long)k0 * QCB + c0;
                    QT_LOAD(4, ak, lda);
                    QT_LOAD(6, wk, ldw);
                    QT_LOAD(7, wk + 16, ldw);
                    QT_DP(0, 4, 6);
                    QT_DP(1, 4, 7);
                    if (two) {
                        QT_LOAD(5, ak + QAMX_ROWS * Kq, lda);
                        QT_DP(2, 5, 6);
                        QT_DP(3, 5, 7);
                    }
                }
                QT_STORE(0, c, ldc);
                QT_STORE(1, c + 64, ldc);
                if (two) {
                    QT_STORE(2, c + QAMX_ROWS * ldc, ldc);
                    QT_STORE(3, c + QAMX_ROWS * ldc + 64, ldc);
                }
            }
    }
}
#undef QT_LOAD
#undef QT_STORE
#undef QT_DP
#undef QAMX_OP

static FL_NOINLINE void SFX(qamx_emu)(int bf16, SFX(qamx_regs) *E, const uint32_t *w, int Kq,
                                      int kv, const uint32_t *ag, int rows16, void *acc,
                                      long accw, int jb0, int jb1)
{
    SFX(qamx_body)(1, bf16, E, w, Kq, kv, ag, rows16, acc, accw, jb0, jb1);
}

#if FL_Q_NATIVE
__attribute__((target("amx-tile,amx-bf16,amx-int8"))) static FL_NOINLINE void
SFX(qamx_hw)(int bf16, const uint32_t *w, int Kq, int kv, const uint32_t *ag, int rows16,
             void *acc, long accw, int jb0, int jb1)
{
    SFX(qamx_body)(0, bf16, NULL, w, Kq, kv, ag, rows16, acc, accw, jb0, jb1);
}

/* ldtilecfg's operand: palette 1, every tile 16 rows of 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} SFX(qamx_cfg);
_Static_assert(sizeof(SFX(qamx_cfg)) == 64, "ldtilecfg takes 64 bytes");

/* Every tile 16 rows of 64 bytes. Static and constant: GCC 12's
 * _tile_loadconfig tells the compiler ldtilecfg reads only 8 bytes of its
 * operand, so stores building a local configuration were dropped as dead. */
static const SFX(qamx_cfg) SFX(qamx_config) = {
    .palette = 1,
    .colsb = { 64, 64, 64, 64, 64, 64, 64, 64 },
    .rows = { QAMX_ROWS, QAMX_ROWS, QAMX_ROWS, QAMX_ROWS, QAMX_ROWS, QAMX_ROWS, QAMX_ROWS,
              QAMX_ROWS },
};

/* A thread's tile configuration, before its first tile instruction; the
 * release after its last returns the tiles' state to init, so the OS does
 * not save and restore 8 KiB at each switch. */
__attribute__((target("amx-tile"))) static void SFX(qamx_begin)(void)
{
    _tile_loadconfig(&SFX(qamx_config));
}

__attribute__((target("amx-tile"))) static void SFX(qamx_end)(void) { _tile_release(); }
#endif
#endif

/* The tiles for a call on B rows: 1 the CPU's, 2 emulated (testing.h), 0 none. */
static int SFX(qamx)(int B)
{
    if (B < QAMX_MIN_B) return 0;
#if FL_VBYTES == 64
    const int mode = fl_test_quant_paths();
    if (mode == FL_QPATHS_AMX_EMULATED) return 2;
#if FL_Q_NATIVE
    if (mode == FL_QPATHS_CPU && fl_amx_ready()) return 1;
#endif
#endif
    return 0;
}

/* ------------------------------------------------------- the forward pass */

/* How many rows a panel holds and k groups a chunk: a panel's accumulators
 * (acc_row_bytes a row) in half the L2 cache, a chunk of a block's weights
 * in three quarters of the L1 data cache (fl_cache_bytes). At shapes c and
 * d, panels of 15 to 240 rows and chunks of 48 to 256 groups were within 5%
 * of each other (bench/RESULTS.md). */
static void SFX(qblocking)(long acc_row_bytes, int *panel_rows, int *chunk_groups)
{
    const long mp = fl_cache_bytes(2) / 2 / acc_row_bytes / QMR * QMR;
    const long kc = fl_cache_bytes(1) * 3 / 4 / (4L * QCB);
    *panel_rows = mp < QMR ? QMR : mp > 240 ? 240 : (int)mp;
    *chunk_groups = kc < 16 ? 16 : (int)kc;
}

/* Thresholds of the split by unit blocks at batch 1 (qcall_of). Between
 * them lie int8 H = 128 (82 KB a step: one thread was faster) and bf16
 * H = 128 (164 KB: two were), and one step of int8 H = 256 (295 KB: one)
 * and of int8 H = 512 (1.1 MB: two) (bench/RESULTS.md, design measurements). */
#define QCOL_STEP_BYTES 65536L
#define QCOL_LOOP_BYTES 262144L

/* Where a thread has few rows, each step's input product would stream all
 * of W_ih for those few rows. Instead one product a chunk of tc steps covers
 * tc * rows rows, up to QHOIST_ROWS (16 tiles' rows: W_ih streamed once a
 * chunk), and each step streams W_hh alone. A row's sums are the same
 * either way. */
#define QHOIST_ROWS 48

/* What one call shares with its threads. */
typedef struct {
    const fl_rnn_desc *d;
    SFX(qlayout) L;
    int path, nt, panel, chunk;
    int tc;                    /* steps a chunk whose input products one call computes
                                  first (hoisted, tc >= 2), or 1: each step its own */
    int amx;                   /* qamx: 1 the CPU's tiles, 2 emulated, 0 none */
    int tail;                  /* with tiles, the vector tiles' path for a K tail */
    int cols;                  /* batch 1: threads splitting the unit blocks, or 0 (nt
                                  threads split the rows) */
    fl_barrier *bar;           /* theirs, once a step */
    int sides;                 /* accumulator sets a row: 1 where both products sum into
                                  one (bf16 without cell_x_apart), else 2 */
    long accw;                 /* accumulator columns a row (Np, or 2 Np for vpmaddwd) */
    const float *bx, *bh, *sx, *sh;
    const int32_t *csx, *csh;  /* NULL unless vpdpbusd */
    const uint32_t *wx, *wh;
    SFX(cell_cfg) cfg;
    float *hs, *cs;            /* (B, Hp) states */
    float *hs2;                /* (B, Hp) h's other buffer, for a split by unit blocks */
    char *scratch;             /* per thread: thread_bytes */
    size_t thread_bytes;
    float *y; long ldy;
    const float *x; long ldx;
    const int *lengths;
} SFX(qcall);

/* Per thread, for up to `rows` rows: x's groups and scales for tc steps
 * (ax, sa), h's (ah, sa + tc * rows), the input side's accumulators (acc: a
 * panel's, or all tc * rows rows' when hoisted; with one side, both products
 * sum there), the recurrent side's for a panel (acch, two sides only), and
 * the pre-activations. */
typedef struct { size_t ax, ah, sa, acc, acch, pre, total; } SFX(qthread_offs);

static SFX(qthread_offs) SFX(qthread_layout)(const SFX(qlayout) *L, int rows, int tc, int panel,
                                             long accw, int sides)
{
    const size_t xrows = (size_t)tc * rows;
    SFX(qthread_offs) o;
    o.ax = 0;
    o.ah = o.ax + SFX(qalign)(4 * xrows * L->KqX);
    o.sa = o.ah + SFX(qalign)(4 * (size_t)rows * L->KqH);
    o.acc = o.sa + SFX(qalign)(sizeof(float) * (xrows + rows));
    o.acch = o.acc + SFX(qalign)(4 * (tc > 1 ? xrows : (size_t)panel) * accw);
    o.pre = o.acch + (sides == 2 ? SFX(qalign)(4 * (size_t)panel * accw) : 0);
    o.total = o.pre + SFX(qalign)(sizeof(float) * 2 * (size_t)L->Np);
    return o;
}

/* float32 -> bf16 bits, rounded to nearest even (inputs are finite). */
static inline uint32_t SFX(to_bf16)(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* int8 code of a * inv: rint, clamped to [-127, 127] (NaN: 0, not UB). */
static inline uint32_t SFX(q8)(float a, float inv, uint32_t bias)
{
    float v = rintf(a * inv);
    v = v > 127 ? 127 : v < -127 ? -127 : v == v ? v : 0;
    return ((uint32_t)(int32_t)v + bias) & 0xffu;
}

/* ag (Kq) = a (K) in the path's groups: bf16 pairs (element k in the low
 * half of pair k/2 for even k), or int8 quads of q_a, element k in byte
 * k % 4 (plus 128 for vpdpbusd's unsigned operand); *scale: the int8
 * activation scale (1 for bf16). Padding is q_a = 0. Loops over whole
 * groups, then the tail, so the compiler vectorizes them. */
/* fp-contract off: a fused a * inv + 1.5 * 2^23 would round the exact
 * product once, where q8 (and the scalar tail) rounds the float product,
 * then rints it: codes would differ between levels with and without FMA. */
__attribute__((optimize("fp-contract=off")))
static void SFX(qgroups)(uint32_t *ag, float *scale, const float *a, int K, int Kq, int path)
{
    if (SFX(qis_bf16)(path)) {
        const int full = K / 2;
        for (int g = 0; g < full; g++)
            ag[g] = SFX(to_bf16)(a[2 * g]) | SFX(to_bf16)(a[2 * g + 1]) << 16;
        if (full < Kq) ag[full] = SFX(to_bf16)(a[K - 1]);
        *scale = 1;
        return;
    }
    VEC m = (VEC){0};
    int k = 0;
    for (; k + VL <= K; k += VL) {
        const VEC v = SFX(vload)(a + k);
        const VEC av = SFX(vsel)(v < 0, -v, v);
        m = SFX(vsel)(av > m, av, m);
    }
    float amax = 0;
    for (int l = 0; l < VL; l++) amax = m[l] > amax ? m[l] : amax;
    for (; k < K; k++) amax = fabsf(a[k]) > amax ? fabsf(a[k]) : amax;
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    const uint32_t bias = path == Q_I8_VNNI ? 128u : 0u;
    /* element k is byte k of ag (x86-64 and ARM64 are little-endian); a
     * vector of codes at a time: rint as q8's, by adding and subtracting
     * 1.5 * 2^23 (exact round-to-nearest-even below 2^22 in magnitude) */
    uint8_t *bytes = (uint8_t *)ag;
    const VEC big = (VEC){0} + 12582912.0f, hi = (VEC){0} + 127.0f;
    for (k = 0; k + VL <= K; k += VL) {
        VEC v = SFX(vload)(a + k) * inv;
        v = (v + big) - big;
        v = SFX(vsel)(v > hi, hi, v);
        v = SFX(vsel)(v < -hi, -hi, v);
        v = SFX(vsel)(v == v, v, (VEC){0});   /* NaN: 0 */
        const SFX(qvi) code = __builtin_convertvector(v, SFX(qvi)) + (int32_t)bias;
        const SFX(qb) b = __builtin_convertvector(code & 0xff, SFX(qb));
        memcpy(bytes + k, &b, sizeof b);
    }
    for (; k < K; k++) bytes[k] = (uint8_t)SFX(q8)(a[k], inv, bias);
    for (; k < 4 * Kq; k++) bytes[k] = (uint8_t)bias;   /* padding: q_a = 0 */
    *scale = amax / 127.0f;
}

/* The input side's groups and scales for batch rows [r0, r0 + rows) of
 * steps [s0, s1): step s's row r in row (s - s0) * rows + r of ax and sax. */
static void SFX(qxgroups)(const SFX(qcall) *q, int s0, int s1, int r0, int rows, uint32_t *ax,
                          float *sax)
{
    const fl_rnn_desc *d = q->d;
    for (int s = s0; s < s1; s++) {
        const int t = d->reverse ? d->T - 1 - s : s;
        for (int r = 0; r < rows; r++) {
            const long i = (long)(s - s0) * rows + r;
            SFX(qgroups)(ax + i * q->L.KqX, &sax[i], q->x + ((long)t * d->B + r0 + r) * q->ldx,
                         d->I, q->L.KqX, q->path);
        }
    }
}

/* One side's products for a panel's rows: acc (rows, accw) = (add ? acc :
 * bias) + the rows' groups ag (rows, Kq) times W^T, column blocks [jb0, jb1)
 * one by one, K chunk by chunk, the panel's tiles in each. bias (Np) for
 * bf16, whose sums are then the pre-activations themselves; NULL (zeros)
 * for int8. With AMX tiles, rows reach the next multiple of QAMX_ROWS in
 * ag and acc (E: the emulated tiles, or NULL). */
static void SFX(qproduct)(const SFX(qcall) *q, SFX(qamx_regs) *E, const uint32_t *w, int Kq,
                          const uint32_t *ag, int rows, void *acc, int add, const float *bias,
                          int jb0, int jb1)
{
    const long accw = q->accw, ablk = accw / q->L.nblk;   /* accumulator columns a block */
    int path = q->path, kv = 0;   /* the vector tiles' path and first k group */
#if FL_VBYTES == 64
    if (q->amx) {
        const int rows16 = (rows + QAMX_ROWS - 1) / QAMX_ROWS * QAMX_ROWS;
        if (!add)
            for (long r = 0; r < rows16; r++) {
                char *row = (char *)acc + 4 * (r * accw + (long)jb0 * QCB);
                const size_t n = 4 * (size_t)(jb1 - jb0) * QCB;
                if (bias) memcpy(row, bias + (long)jb0 * QCB, n);
                else memset(row, 0, n);
            }
        kv = Kq / QAMX_K * QAMX_K;
#if FL_Q_NATIVE
        if (kv && q->amx == 1)
            SFX(qamx_hw)(SFX(qis_bf16)(path), w, Kq, kv, ag, rows16, acc, accw, jb0, jb1);
#endif
        if (kv && q->amx == 2 && E)
            SFX(qamx_emu)(SFX(qis_bf16)(path), E, w, Kq, kv, ag, rows16, acc, accw, jb0, jb1);
        add = 1;
        path = q->tail;
    }
#else
    (void)E;
#endif
    for (int j = jb0; j < jb1; j++) {
        const uint32_t *wj = w + (long)j * Kq * QCB;
        for (int k0 = kv; k0 < Kq; k0 += q->chunk) {
            const int nk = Kq - k0 < q->chunk ? Kq - k0 : q->chunk;
            for (int r0 = 0; r0 < rows; r0 += QMR) {
                const int R = rows - r0 < QMR ? rows - r0 : QMR;
                const uint32_t *a[QMR];
                for (int r = 0; r < R; r++) a[r] = ag + (long)(r0 + r) * Kq + k0;
                SFX(qtile)(path, R, k0 == kv && !add, nk, a, wj + (long)k0 * QCB,
                           (int32_t *)acc + (long)r0 * accw + j * ablk, accw,
                           bias ? bias + j * ablk : NULL);
            }
        }
    }
}

/* An int8 side's sums, scaled: (float)D * (scale_a * s_n), D exact
 * (vpdpbusd: minus csum; vpmaddwd: its two partials added). */
FL_INLINE float SFX(qsum)(int path, const void *acc, const float *s, const int32_t *csum,
                          float sa, int n)
{
    const int32_t *D = acc;
    switch (path) {
    case Q_I8_MADD: return (float)(D[2 * n] + D[2 * n + 1]) * (sa * s[n]);
    case Q_I8_VNNI: return (float)(D[n] - csum[n]) * (sa * s[n]);
    default: return (float)D[n] * (sa * s[n]);
    }
}

/* One int8 row's pre-activations [n0, n1) from both sides' accumulators
 * ax, ah: pre (Np) with both biases, or for cell_x_apart pre the recurrent
 * side with b_hh and px the input side with b_ih (the cells' arguments).
 * A loop a side and path, so each vectorizes with few streams (one loop
 * for both sides spilled its pointers). (bf16's accumulators start from the
 * biases and are the pre-activations as they are.) */
static void SFX(qpre)(const SFX(qcall) *q, const void *ax, const void *ah, float sax, float sah,
                      float *pre, float *px, long n0, long n1)
{
    const int apart = SFX(cell_x_apart)(q->d->cell);
    float *zx = apart ? px : pre;
    const float *bx = q->bx, *sx = q->sx, *sh = q->sh;
    const int32_t *csx = q->csx, *csh = q->csh;
#define QPRE_LOOP(PATH)                                                               \
    do {                                                                              \
        for (long n = n0; n < n1; n++) zx[n] = SFX(qsum)(PATH, ax, sx, csx, sax, n) + bx[n]; \
        const float *zh0 = apart ? q->bh : pre;   /* b_hh, or the input side */       \
        for (long n = n0; n < n1; n++) pre[n] = zh0[n] + SFX(qsum)(PATH, ah, sh, csh, sah, n); \
    } while (0)
    switch (q->path) {
    case Q_I8_MADD: QPRE_LOOP(Q_I8_MADD); break;
    case Q_I8_VNNI: QPRE_LOOP(Q_I8_VNNI); break;
    default: QPRE_LOOP(Q_I8_GENERIC); break;
    }
#undef QPRE_LOOP
}

/* One row's cells on unit blocks [j0, j1): h_t into h from the
 * pre-activations zp (and, for cell_x_apart, the input side zx), reading
 * h_{t-1} from hprev (a GRU; may be h) or updating c in place (an LSTM). */
static void SFX(qcells)(const SFX(qcall) *q, int j0, int j1, const float *zp, const float *zx,
                        float *h, const float *hprev, float *c)
{
    for (int j = j0; j < j1; j++) {
        const long g0 = (long)j * q->L.G * U;
        const SFX(h_dest) out = { h + j * U, NULL };
        if (q->d->cell == FL_CELL_GRU)
            SFX(cell_forward_row)(SFX(gru_cell_forward), &q->cfg, j * U, out, NULL, NULL, zp + g0,
                                  zx + g0, hprev + j * U, U);
        else
            SFX(cell_forward_row)(SFX(lstm_cell_forward), &q->cfg, j * U, out, c + j * U, NULL,
                                  zp + g0, NULL, c + j * U, U);
    }
}

/* Rows [r0, r1) of the batch, every step (one thread's share). */
static void SFX(qrows)(const SFX(qcall) *q, int tid, int r0, int r1)
{
    const fl_rnn_desc *d = q->d;
    const SFX(qlayout) *L = &q->L;
    const int T = d->T, B = d->B, H = d->H, Hp = L->Hp, Np = L->Np, tc = q->tc;
    const int has_c = SFX(cell_has_c)(d->cell), rows = r1 - r0, hoist = tc > 1;
    const int rows_pad = q->amx ? (rows + QAMX_ROWS - 1) / QAMX_ROWS * QAMX_ROWS : rows;
    const SFX(qthread_offs) o = SFX(qthread_layout)(L, rows_pad, tc, q->panel, q->accw, q->sides);
    char *base = q->scratch + (size_t)tid * q->thread_bytes;
    uint32_t *ax = (uint32_t *)(base + o.ax), *ah = (uint32_t *)(base + o.ah);
    float *sax = (float *)(base + o.sa), *sah = sax + (long)tc * rows_pad;
    float *pre = (float *)(base + o.pre), *px = pre + Np;
    char *accx = base + o.acc;
    void *acch = q->sides == 2 ? base + o.acch : NULL;
    const int bf16 = SFX(qis_bf16)(q->path);
    const float *bias_x = bf16 ? q->bx : NULL, *bias_h = bf16 && acch ? q->bh : NULL;
    SFX(qamx_regs) *E = NULL;
#if FL_VBYTES == 64
    SFX(qamx_regs) regs;   /* the emulated tiles */
    if (q->amx == 2) E = &regs;
#if FL_Q_NATIVE
    if (q->amx == 1) SFX(qamx_begin)();
#endif
#endif
    /* the tiles' padding rows: zero activations (no hoisting with tiles) */
    memset(ax + (long)rows * L->KqX, 0, 4 * (size_t)(rows_pad - rows) * L->KqX);
    memset(ah + (long)rows * L->KqH, 0, 4 * (size_t)(rows_pad - rows) * L->KqH);
    for (int s0 = 0; s0 < T; s0 += tc) {
        const int s1 = s0 + tc < T ? s0 + tc : T;
        if (hoist) {
            SFX(qxgroups)(q, s0, s1, r0, rows, ax, sax);
            SFX(qproduct)(q, E, q->wx, L->KqX, ax, (s1 - s0) * rows, accx, 0, bias_x, 0, L->nblk);
        }
        for (int s = s0; s < s1; s++) {
            const int t = d->reverse ? T - 1 - s : s;
            const long xr = (long)(s - s0) * rows;   /* the step's first row in ax, sax (hoisted: accx) */
            if (!hoist) SFX(qxgroups)(q, s, s + 1, r0, rows, ax, sax);
            for (int r = 0; r < rows; r++)
                SFX(qgroups)(ah + (long)r * L->KqH, &sah[r], q->hs + (long)(r0 + r) * Hp, H,
                             L->KqH, q->path);
            for (int p0 = 0; p0 < rows; p0 += q->panel) {
                const int np = rows - p0 < q->panel ? rows - p0 : q->panel;
                char *pacc = hoist ? accx + 4 * (xr + p0) * q->accw : accx;   /* the panel's x side */
                if (!hoist)
                    SFX(qproduct)(q, E, q->wx, L->KqX, ax + (xr + p0) * L->KqX, np, pacc, 0, bias_x,
                                  0, L->nblk);
                SFX(qproduct)(q, E, q->wh, L->KqH, ah + (long)p0 * L->KqH, np, acch ? acch : pacc,
                              !acch, bias_h, 0, L->nblk);
                for (int r = p0; r < p0 + np; r++) {
                    const int b = r0 + r;
                    float *yrow = q->y + (d->y_batch_first ? (long)b * T + t : (long)t * B + b) * q->ldy;
                    if (q->lengths && t >= q->lengths[b]) {   /* past the end: carry the state, output 0 */
                        for (int u = 0; u < H; u++) yrow[u] = 0;
                        continue;
                    }
                    const char *rx = pacc + 4 * (size_t)(r - p0) * q->accw;
                    const char *rh = acch ? (char *)acch + 4 * (size_t)(r - p0) * q->accw : NULL;
                    const float *zp = pre, *zx = px;   /* the cells' pre and px */
                    if (bf16) {
                        zp = (const float *)(rh ? rh : rx);
                        zx = (const float *)rx;
                    } else {
                        SFX(qpre)(q, rx, rh, sax[xr + r], sah[r], pre, px, 0, Np);
                    }
                    float *hb = q->hs + (long)b * Hp, *cb = has_c ? q->cs + (long)b * Hp : NULL;
                    SFX(qcells)(q, 0, L->NB, zp, zx, hb, hb, cb);
                    memcpy(yrow, hb, sizeof(float) * H);
                }
            }
        }
    }
#if FL_Q_NATIVE
    if (q->amx == 1) SFX(qamx_end)();
#endif
}

/* Shared part, then the threads' scratch: fl_qrnn_work_bytes. */
/* Batch 1 on nth threads: thread tid runs unit blocks [j0, j1) of the one
 * row, every step, its products on the column blocks those units' columns
 * touch (a block two threads share, both compute). Each quantizes the whole
 * h_{t-1} itself, so every thread and every step sees the same q_a as one
 * thread would: bitwise the same result. h ping-pongs between hs and hs2
 * and every step ends in a barrier (the next step reads all of h_t); c and
 * a GRU's h_{t-1} are each thread's own units. */
static void SFX(qcols)(const SFX(qcall) *q, int tid, int nth)
{
    const fl_rnn_desc *d = q->d;
    const SFX(qlayout) *L = &q->L;
    const int T = d->T, H = d->H, G = L->G, Np = L->Np, tc = q->tc, hoist = tc > 1;
    const int j0 = (int)((long)L->NB * tid / nth), j1 = (int)((long)L->NB * (tid + 1) / nth);
    const long n0 = (long)j0 * G * U, n1 = (long)j1 * G * U;
    const int kb0 = (int)(n0 / QCB), kb1 = (int)((n1 + QCB - 1) / QCB);
    const int u0 = j0 * U, u1 = j1 * U < H ? j1 * U : H;
    const SFX(qthread_offs) o = SFX(qthread_layout)(L, 1, tc, q->panel, q->accw, q->sides);
    char *base = q->scratch + (size_t)tid * q->thread_bytes;
    uint32_t *ax = (uint32_t *)(base + o.ax), *ah = (uint32_t *)(base + o.ah);
    float *sax = (float *)(base + o.sa), *sah = sax + tc;
    float *pre = (float *)(base + o.pre), *px = pre + Np;
    char *accx = base + o.acc;
    void *acch = q->sides == 2 ? base + o.acch : NULL;
    const int bf16 = SFX(qis_bf16)(q->path);
    const float *bias_x = bf16 ? q->bx : NULL, *bias_h = bf16 && acch ? q->bh : NULL;
    float *hin = q->hs, *hout = q->hs2;
    int phase = 0;
    for (int s0 = 0; s0 < T; s0 += tc) {
        const int s1 = s0 + tc < T ? s0 + tc : T;
        if (hoist && j0 < j1) {
            SFX(qxgroups)(q, s0, s1, 0, 1, ax, sax);
            SFX(qproduct)(q, NULL, q->wx, L->KqX, ax, s1 - s0, accx, 0, bias_x, kb0, kb1);
        }
        for (int s = s0; s < s1; s++) {
            const int t = d->reverse ? T - 1 - s : s;
            float *yrow = q->y + (long)t * q->ldy;   /* B = 1: either layout */
            char *xacc = accx + 4 * (size_t)(s - s0) * q->accw;   /* the step's x side */
            if (j0 < j1) {
                if (!hoist) {
                    SFX(qxgroups)(q, s, s + 1, 0, 1, ax, sax);
                    SFX(qproduct)(q, NULL, q->wx, L->KqX, ax, 1, xacc, 0, bias_x, kb0, kb1);
                }
                SFX(qgroups)(ah, &sah[0], hin, H, L->KqH, q->path);
                SFX(qproduct)(q, NULL, q->wh, L->KqH, ah, 1, acch ? acch : xacc, !acch, bias_h,
                              kb0, kb1);
                if (q->lengths && t >= q->lengths[0]) {   /* past the end: carry, output 0 */
                    for (int u = u0; u < u1; u++) { hout[u] = hin[u]; yrow[u] = 0; }
                } else {
                    const float *zp = pre, *zx = px;
                    if (bf16) {
                        zp = (const float *)(acch ? acch : xacc);
                        zx = (const float *)xacc;
                    } else {
                        SFX(qpre)(q, xacc, acch, sax[s - s0], sah[0], pre, px, n0, n1);
                    }
                    SFX(qcells)(q, j0, j1, zp, zx, hout, hin, q->cs);
                    memcpy(yrow + u0, hout + u0, sizeof(float) * (u1 - u0));
                }
            }
            fl_barrier_wait(q->bar, nth, &phase);
            float *tmp = hin; hin = hout; hout = tmp;
        }
    }
    if (hin != q->hs && u0 < u1) memcpy(q->hs + u0, hin + u0, sizeof(float) * (u1 - u0));
}

static int SFX(qcall_of)(const fl_rnn_desc *d, int qtype, SFX(qcall) *q, size_t *bytes)
{
    int st = SFX(qlayout_of)(d, qtype, &q->L);
    if (st != FL_OK) return st;
    if (d->T < 1 || d->B < 1 || d->n_threads < 1) return FL_ERR_SIZE;
    q->d = d;
    q->nt = d->n_threads < d->B ? d->n_threads : d->B;
    q->path = q->tail = SFX(qpath)(qtype);
    q->amx = SFX(qamx)(d->B);
    if (q->amx) {   /* int8's tiles take signed codes, as the generic vectors do */
        q->path = qtype == FL_Q_BF16 ? Q_BF16_AMX : Q_I8_AMX;
        if (qtype == FL_Q_INT8) q->tail = Q_I8_GENERIC;
        /* a thread's tiles stream all the weights for up to 16 rows at the
         * cost of 16: more threads than 16-row blocks would only share them */
        const int blocks = (d->B + QAMX_ROWS - 1) / QAMX_ROWS;
        if (q->nt > blocks) q->nt = blocks;
    }
    q->accw = (long)q->L.Np * (q->path == Q_I8_MADD ? 2 : 1);
    q->sides = SFX(qis_bf16)(q->path) && !SFX(cell_x_apart)(d->cell) ? 1 : 2;
    SFX(qblocking)(4 * q->accw * q->sides, &q->panel, &q->chunk);
    const int rows = (d->B + q->nt - 1) / q->nt;
    /* hoisting (not with tiles, whose rows come in 16s): its rows within
     * QHOIST_ROWS and a panel */
    q->tc = 1;
    if (!q->amx) {
        const int cap = q->panel < QHOIST_ROWS ? q->panel : QHOIST_ROWS;
        const int tc = cap / (d->B == 1 ? 1 : rows);
        if (tc >= 2) q->tc = tc < d->T ? tc : d->T;
    }
    /* batch 1: threads split the unit blocks, a thread per QCOL_STEP_BYTES
     * of weights a step streams and per QCOL_LOOP_BYTES over the sequence
     * (each step ends in a barrier, the call forks once), at most one per
     * unit block */
    q->cols = 0;
    if (d->B == 1 && d->n_threads > 1 && q->L.NB > 1) {
        const long k = (q->tc > 1 ? 0 : (long)d->I) + d->H;   /* weight rows a step streams */
        const long bytes = (long)q->L.G * d->H * k * (qtype == FL_Q_INT8 ? 1 : 2);
        long nt = bytes / QCOL_STEP_BYTES;
        if (nt > bytes * d->T / QCOL_LOOP_BYTES) nt = bytes * d->T / QCOL_LOOP_BYTES;
        if (nt > d->n_threads) nt = d->n_threads;
        if (nt > q->L.NB) nt = q->L.NB;
        q->cols = nt >= 2 ? (int)nt : 0;
    }
    /* a thread's rows in panels of even height: each panel streams all the
     * weights once, which a short last panel (126 + 2 rows at shape c) does
     * for few rows' work; AMX tiles take rows in 16s */
    const int mr = q->amx ? QAMX_ROWS : QMR;
    const int rows_pad = (rows + mr - 1) / mr * mr;
    const int npanels = (rows + q->panel - 1) / q->panel;
    q->panel = ((rows + npanels - 1) / npanels + mr - 1) / mr * mr;
    q->thread_bytes = SFX(qthread_layout)(&q->L, rows_pad, q->tc, q->panel, q->accw,
                                          q->sides).total;
    *bytes = SFX(qalign)(sizeof(float) * 3 * (size_t)d->B * q->L.Hp)
             + (size_t)(q->cols ? q->cols : q->nt) * q->thread_bytes;
    return FL_OK;
}

size_t QFN(fl_qrnn_work_bytes)(const fl_rnn_desc *d, int qtype)
{
    SFX(qcall) q;
    size_t bytes;
    return SFX(qcall_of)(d, qtype, &q, &bytes) == FL_OK ? bytes : 0;
}

int QFN(fl_qrnn_forward)(const fl_rnn_desc *d, int qtype, const void *packed, float *y, long ldy,
                         float *h_n, float *c_n, const float *x, long ldx, const float *h0,
                         const float *c0, const int *lengths)
{
    SFX(qcall) q;
    size_t bytes;
    int st = SFX(qcall_of)(d, qtype, &q, &bytes);
    if (st != FL_OK) return st;
    const int B = d->B, H = d->H, Hp = q.L.Hp, Np = q.L.Np, has_c = SFX(cell_has_c)(d->cell);
    if (!packed || !y || !h_n || !x || (has_c && !c_n)) return FL_ERR_ARG;
    if (ldy < H || ldx < d->I) return FL_ERR_SIZE;
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 1 || lengths[b] > d->T) return FL_ERR_SIZE;
    int owned;
    char *work = fl_workspace(d->work, d->work_bytes, bytes, &owned);
    if (!work) return FL_ERR_NOMEM;
    const float *pk = packed;
    q.bx = pk; q.bh = pk + Np; q.sx = pk + 2L * Np; q.sh = pk + 3L * Np;
    const int32_t *csum = (const int32_t *)((const char *)packed + q.L.off_csum);
    q.csx = q.path == Q_I8_VNNI ? csum : NULL;
    q.csh = q.path == Q_I8_VNNI ? csum + Np : NULL;
    q.wx = (const uint32_t *)((const char *)packed + q.L.off_wx);
    q.wh = (const uint32_t *)((const char *)packed + q.L.off_wh);
    q.cfg = SFX(cell_config)(d, pk + 4L * Np, q.L.NB);
    q.hs = (float *)work;
    q.cs = q.hs + (long)B * Hp;
    q.hs2 = q.cs + (long)B * Hp;
    q.scratch = work + SFX(qalign)(sizeof(float) * 3 * (size_t)B * Hp);
    q.y = y; q.ldy = ldy; q.x = x; q.ldx = ldx; q.lengths = lengths;
    /* the states' padding units start at zero (no masked loads from a NULL
     * h0 or c0: their fault suppression costs microcode assists) */
    memset(q.hs, 0, sizeof(float) * 3 * (size_t)B * Hp);
    for (long b = 0; b < B; b++) {
        if (h0) memcpy(q.hs + b * Hp, h0 + b * H, sizeof(float) * H);
        if (c0 && has_c) memcpy(q.cs + b * Hp, c0 + b * H, sizeof(float) * H);
    }
    fl_test_note_step_threads(q.cols ? q.cols : q.nt);   /* testing.h */
    if (q.cols) {
        fl_barrier bar;
        fl_barrier_init(&bar, q.cols);
        q.bar = &bar;
        #pragma omp parallel num_threads(q.cols)
        SFX(qcols)(&q, omp_get_thread_num(), omp_get_num_threads());
    } else if (q.nt > 1) {
        #pragma omp parallel num_threads(q.nt)
        {
            const int tid = omp_get_thread_num(), n = omp_get_num_threads();
            /* fewer threads than asked (OMP_THREAD_LIMIT): each runs several shares */
            for (int share = tid; share < q.nt; share += n)
                SFX(qrows)(&q, share, (int)((long)B * share / q.nt),
                           (int)((long)B * (share + 1) / q.nt));
        }
    } else {
        SFX(qrows)(&q, 0, 0, B);
    }
    for (long b = 0; b < B; b++) {
        memcpy(h_n + b * H, q.hs + b * Hp, sizeof(float) * H);
        if (has_c) memcpy(c_n + b * H, q.cs + b * Hp, sizeof(float) * H);
    }
    if (owned) free(work);
    return FL_OK;
}

#define QN_BF16_NATIVE "AVX512_BF16 vdpbf16ps"
#ifdef __FMA__
#define QN_BF16_WIDEN "widened to float32, FMA"
#else
#define QN_BF16_WIDEN "widened to float32"   /* the x86-64 baseline: SSE2 */
#endif
#define QN_I8_VNNI (FL_VBYTES == 64 ? "AVX512_VNNI vpdpbusd" : "AVX-VNNI vpdpbusd")
#define QN_I8_MADD "AVX-512BW vpmaddwd"
#define QN_I8_SIGN "AVX2 vpsignb, vpmaddubsw"
#define QN_I8_GENERIC "generic integer vectors"
/* The tiles' part of a name, then the vector path smaller batches take. */
#define QN_AMX(TILES)                                                                   \
    switch (path) {                                                                     \
    case Q_BF16_NATIVE: return TILES "tdpbf16ps for 16+ rows, else " QN_BF16_NATIVE;    \
    case Q_BF16_WIDEN: return TILES "tdpbf16ps for 16+ rows, else " QN_BF16_WIDEN;      \
    case Q_I8_VNNI: return TILES "tdpbssd for 16+ rows, else AVX512_VNNI vpdpbusd";     \
    case Q_I8_MADD: return TILES "tdpbssd for 16+ rows, else " QN_I8_MADD;              \
    default: return TILES "tdpbssd for 16+ rows, else " QN_I8_GENERIC;                  \
    }

const char *QFN(fl_qrnn_path)(int qtype)
{
    if (qtype != FL_Q_BF16 && qtype != FL_Q_INT8) return "";
    const int path = SFX(qpath)(qtype);
    switch (SFX(qamx)(QAMX_MIN_B)) {
    case 1: QN_AMX("AMX ");
    case 2: QN_AMX("AMX (emulated) ");
    default: break;
    }
    switch (path) {
    case Q_BF16_NATIVE: return QN_BF16_NATIVE;
    case Q_BF16_WIDEN: return QN_BF16_WIDEN;
    case Q_I8_VNNI: return QN_I8_VNNI;
    case Q_I8_MADD: return FL_VBYTES == 64 ? QN_I8_MADD : "SSE2 pmaddwd";
    case Q_I8_SIGN: return QN_I8_SIGN;
    default: return QN_I8_GENERIC;
    }
}
#undef QN_AMX
#undef QN_BF16_NATIVE
#undef QN_BF16_WIDEN
#undef QN_I8_VNNI
#undef QN_I8_MADD
#undef QN_I8_SIGN
#undef QN_I8_GENERIC

#undef QNV
#undef QCB
#undef QACC
#undef QMR
#undef QFN
#undef FL_Q_NATIVE
#undef FL_Q_MADD
#undef FL_Q_SIGN
#undef QCOL_STEP_BYTES
#undef QCOL_LOOP_BYTES
#undef QAMX_MIN_B
#undef QAMX_ROWS
#undef QAMX_K
