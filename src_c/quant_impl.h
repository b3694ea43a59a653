/* Reduced-precision inference forward (fl_quant.h) for one instruction-set
 * level. Included once from kernels_level.h in the float32 block (after
 * simd_impl.h and vec_activations_impl.h, whose VEC and activations it uses).
 *
 * Layout. The G*H weight rows become columns n = g*Hp + h, Hp = H rounded
 * up to VL, so each gate's units start on a vector and the epilogue runs on
 * whole vectors; columns are padded to Np, a multiple of QCB = 8 vectors
 * (the block one pass of the matrix-vector product keeps in 8 accumulators,
 * enough independent FMA chains to cover their latency). Block j of W^T is a
 * contiguous stream:
 *   bf16: (Kp/2, QCB, 2) uint16, the two k of a pair side by side, which is
 *         the operand order of vdpbf16ps; Kp = K rounded up to even;
 *   int8: (K, QCB) int8.
 * Padding columns and the odd k row are zero. Float parts: bias_x, bias_h,
 * scale_x, scale_h (Np each), peep (3, Hp).
 *
 * The time loop runs each batch row on its own (matrix-vector products): the
 * case this serves is batch 1, where the weights are streamed once per step
 * whatever the blocking, and fewer weight bytes are the whole gain.
 */
#include <stdint.h>
#if FL_VBYTES == 64 && FL_X86_LEVELS && !defined(FASTLSTM_WIDE_AS_AVX2)
#include <immintrin.h>
#define FL_Q_NATIVE_BF16 1
#else
#define FL_Q_NATIVE_BF16 0
#endif
#if FL_X86_LEVELS && defined(__AVX2__)
#include <immintrin.h>
#endif

#define QCB (8 * VL)                 /* columns per block: 8 vectors */
#define QFN(name) FL_CAT(name, FL_LEVEL_SFX)

typedef int8_t SFX(qv8) __attribute__((vector_size(FL_VBYTES / 4)));   /* VL int8 */

typedef struct {
    int G, Hp, Np, nblk, KpX, KpH;   /* KpX, KpH: packed k rows of W_ih, W_hh */
    size_t off_wx, off_wh, bytes;    /* byte offsets in the packed buffer, its size */
} SFX(qlayout);

static size_t SFX(qalign)(size_t n) { return (n + 63) / 64 * 64; }

static int SFX(qlayout_of)(const fl_rnn_desc *d, int qtype, SFX(qlayout) *L)
{
    if (!d || (qtype != FL_Q_BF16 && qtype != FL_Q_INT8)) return FL_ERR_ARG;
    if (d->cell < FL_CELL_LSTM || d->cell > FL_CELL_GRU) return FL_ERR_ARG;
    if (d->I < 1 || d->H < 1 || d->I > (1 << 24) || d->H > (1 << 24)) return FL_ERR_SIZE;
    L->G = d->cell == FL_CELL_GRU ? 3 : 4;
    L->Hp = (d->H + VL - 1) / VL * VL;
    L->Np = (L->G * L->Hp + QCB - 1) / QCB * QCB;
    L->nblk = L->Np / QCB;
    const int bf = qtype == FL_Q_BF16;
    L->KpX = bf ? (d->I + 1) / 2 * 2 : d->I;
    L->KpH = bf ? (d->H + 1) / 2 * 2 : d->H;
    const size_t esz = bf ? 2 : 1;
    const size_t floats = SFX(qalign)(sizeof(float) * (4L * L->Np + 3L * L->Hp));
    const size_t wx = SFX(qalign)(esz * (size_t)L->KpX * L->Np);
    const size_t wh = SFX(qalign)(esz * (size_t)L->KpH * L->Np);
    L->off_wx = floats;
    L->off_wh = floats + wx;
    L->bytes = floats + wx + wh;
    return FL_OK;
}

size_t QFN(fl_qrnn_packed_bytes)(const fl_rnn_desc *d, int qtype)
{
    SFX(qlayout) L;
    return SFX(qlayout_of)(d, qtype, &L) == FL_OK ? L.bytes : 0;
}

/* Column of canonical row r = g*H + h. */
static inline long SFX(qcol)(long r, int H, int Hp) { return (r / H) * Hp + r % H; }

/* dst: W^T blocks of one weight matrix w (G*H, K) in the layout above. */
static void SFX(qpack_w)(void *dst, const void *w, int qtype, int G, int H, int K, int Kp,
                         const SFX(qlayout) *L)
{
    if (qtype == FL_Q_BF16) {
        uint16_t *o = dst;
        const uint16_t *src = w;
        memset(o, 0, 2 * (size_t)Kp * L->Np);
        for (long r = 0; r < (long)G * H; r++) {
            const long n = SFX(qcol)(r, H, L->Hp), j = n / QCB, c = n % QCB;
            for (int k = 0; k < K; k++)
                o[j * (long)Kp * QCB + ((long)(k / 2) * QCB + c) * 2 + k % 2] = src[r * K + k];
        }
    } else {
        int8_t *o = dst;
        const int8_t *src = w;
        memset(o, 0, (size_t)Kp * L->Np);
        for (long r = 0; r < (long)G * H; r++) {
            const long n = SFX(qcol)(r, H, L->Hp), j = n / QCB, c = n % QCB;
            for (int k = 0; k < K; k++) o[j * (long)Kp * QCB + (long)k * QCB + c] = src[r * K + k];
        }
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
    const int G = L.G, H = d->H, Hp = L.Hp, Np = L.Np, gru = d->cell == FL_CELL_GRU;
    float *bx = packed, *bh = bx + Np, *sx = bh + Np, *sh = sx + Np, *pp = sh + Np;
    for (long n = 0; n < 4L * Np + 3L * Hp; n++) bx[n] = 0;
    for (long r = 0; r < (long)G * H; r++) {
        const long n = SFX(qcol)(r, H, Hp);
        /* lstm adds both biases to the input part; gru keeps b_hh with the
         * recurrent part, which its reset gate multiplies */
        bx[n] = gru ? b_ih[r] : b_ih[r] + b_hh[r];
        bh[n] = gru ? b_hh[r] : 0;
        sx[n] = qtype == FL_Q_INT8 ? s_ih[r] : 1;
        sh[n] = qtype == FL_Q_INT8 ? s_hh[r] : 1;
    }
    if (d->cell == FL_CELL_PEEPHOLE)
        for (int g = 0; g < 3; g++)
            for (int h = 0; h < H; h++) pp[(long)g * Hp + h] = w_peep[(long)g * H + h];
    SFX(qpack_w)((char *)packed + L.off_wx, w_ih, qtype, G, H, d->I, L.KpX, &L);
    SFX(qpack_w)((char *)packed + L.off_wh, w_hh, qtype, G, H, H, L.KpH, &L);
    return FL_OK;
}

/* Workspace: h, c (B, Hp), gx, gh (Np), the bf16 input pairs (max(KpX, KpH) / 2). */
static size_t SFX(qwork_elems)(const fl_rnn_desc *d, const SFX(qlayout) *L)
{
    const int kp = L->KpX > L->KpH ? L->KpX : L->KpH;
    return 2 * (size_t)d->B * L->Hp + 2 * (size_t)L->Np + (size_t)kp / 2 + 1;
}

size_t QFN(fl_qrnn_work_bytes)(const fl_rnn_desc *d, int qtype)
{
    SFX(qlayout) L;
    if (SFX(qlayout_of)(d, qtype, &L) != FL_OK || d->B < 1) return 0;
    return sizeof(float) * SFX(qwork_elems)(d, &L);
}

/* float32 -> bf16 bits, rounded to nearest even (inputs are finite). */
static inline uint32_t SFX(to_bf16)(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* ab (Kp/2): a (K) rounded to bf16 in pairs, element k in the low half of
 * pair k/2 for even k; a zero pads an odd K. */
static void SFX(qpairs)(uint32_t *ab, const float *a, int K)
{
    for (int k = 0; k + 1 < K; k += 2) ab[k / 2] = SFX(to_bf16)(a[k]) | SFX(to_bf16)(a[k + 1]) << 16;
    if (K % 2) ab[K / 2] = SFX(to_bf16)(a[K - 1]);
}

FL_INLINE VEC SFX(qbits)(VBITS b) { VEC v; memcpy(&v, &b, sizeof v); return v; }

/* out (QCB) = ab (Kp/2 bf16 pairs) times one block w (Kp/2, QCB, 2), widening
 * each bf16 to float32. The odd k goes in first, as vdpbf16ps adds it: the
 * products are exact, so both paths round the same sums the same way. */
static void SFX(qblock_bf16)(int Kh, const uint32_t *ab, const uint16_t *w, float *out)
{
    VEC c[8];
    for (int v = 0; v < 8; v++) c[v] = (VEC){0};
    for (int kp = 0; kp < Kh; kp++) {
        const uint32_t p = ab[kp];
        const uint32_t plo = p << 16, phi = p & 0xffff0000u;
        float a0, a1;
        memcpy(&a0, &plo, 4);
        memcpy(&a1, &phi, 4);
        const uint16_t *wk = w + (long)kp * QCB * 2;
        _Pragma("GCC unroll 8")
        for (int v = 0; v < 8; v++) {
            VBITS b;
            memcpy(&b, wk + v * VL * 2, sizeof b);
            c[v] += a1 * SFX(qbits)(b & 0xffff0000u);
            c[v] += a0 * SFX(qbits)(b << 16);
        }
    }
    for (int v = 0; v < 8; v++) SFX(vstore)(out + v * VL, c[v]);
}

#if FL_Q_NATIVE_BF16
/* qblock_bf16 with vdpbf16ps (AVX512_BF16), 16 columns per instruction. */
__attribute__((target("avx512bf16")))
static void SFX(qblock_bf16_native)(int Kh, const uint32_t *ab, const uint16_t *w, float *out)
{
    __m512 c[8];
    for (int v = 0; v < 8; v++) c[v] = _mm512_setzero_ps();
    for (int kp = 0; kp < Kh; kp++) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)ab[kp]);
        const uint16_t *wk = w + (long)kp * QCB * 2;
        _Pragma("GCC unroll 8")
        for (int v = 0; v < 8; v++)
            c[v] = _mm512_dpbf16_ps(c[v], a, (__m512bh)_mm512_loadu_si512(wk + v * 32));
    }
    for (int v = 0; v < 8; v++) _mm512_storeu_ps(out + v * 16, c[v]);
}

static int SFX(qhas_bf16)(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
}
#endif

/* c + x * (VL int8 at p, as floats). GCC turns __builtin_convertvector
 * from int8 into one scalar conversion per lane, so the x86 levels use the
 * sign-extending load (vpmovsxbd) and an explicit FMA. */
FL_INLINE VEC SFX(qfma8)(VEC c, float x, const int8_t *p)
{
#if FL_X86_LEVELS && defined(__AVX512F__) && FL_VBYTES == 64
    __m512 w = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
    __m512 cc;
    memcpy(&cc, &c, sizeof cc);
    cc = _mm512_fmadd_ps(_mm512_set1_ps(x), w, cc);
    memcpy(&c, &cc, sizeof c);
    return c;
#elif FL_X86_LEVELS && defined(__AVX2__) && defined(__FMA__) && FL_VBYTES == 32
    __m256 w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
    __m256 cc;
    memcpy(&cc, &c, sizeof cc);
    cc = _mm256_fmadd_ps(_mm256_set1_ps(x), w, cc);
    memcpy(&c, &cc, sizeof c);
    return c;
#else
    SFX(qv8) q;
    memcpy(&q, p, sizeof q);
    return c + x * __builtin_convertvector(q, VEC);
#endif
}

/* out (QCB) = a (K, float32) times one block w (K, QCB) of int8, widened. */
static void SFX(qblock_i8)(int K, const float *a, const int8_t *w, float *out)
{
    VEC c[8];
    for (int v = 0; v < 8; v++) c[v] = (VEC){0};
    for (int k = 0; k < K; k++) {
        const float x = a[k];
        const int8_t *wk = w + (long)k * QCB;
        _Pragma("GCC unroll 8")
        for (int v = 0; v < 8; v++) c[v] = SFX(qfma8)(c[v], x, wk + v * VL);
    }
    for (int v = 0; v < 8; v++) SFX(vstore)(out + v * VL, c[v]);
}

/* out (Np) = scale * (a (K) times W^T) + bias over every block of w.
 * ab: a's bf16 pairs (bf16) or NULL (int8, which reads a). */
static void SFX(qmatvec)(const SFX(qlayout) *L, int qtype, int native, int K, int Kp,
                         const void *w, const float *a, const uint32_t *ab,
                         const float *scale, const float *bias, float *out)
{
    for (int j = 0; j < L->nblk; j++) {
        float *o = out + (long)j * QCB;
        if (qtype == FL_Q_BF16) {
            const uint16_t *wj = (const uint16_t *)w + (long)j * Kp * QCB;
#if FL_Q_NATIVE_BF16
            if (native) SFX(qblock_bf16_native)(Kp / 2, ab, wj, o);
            else
#endif
            SFX(qblock_bf16)(Kp / 2, ab, wj, o);
            (void)native;
            for (int v = 0; v < QCB; v += VL)
                SFX(vstore)(o + v, SFX(vload)(o + v) + SFX(vload)(bias + (long)j * QCB + v));
        } else {
            SFX(qblock_i8)(K, a, (const int8_t *)w + (long)j * K * QCB, o);
            for (int v = 0; v < QCB; v += VL)
                SFX(vstore)(o + v, SFX(vload)(o + v) * SFX(vload)(scale + (long)j * QCB + v)
                                   + SFX(vload)(bias + (long)j * QCB + v));
        }
    }
}

/* Gates and state update of one row on all Hp units, VL at a time, as the
 * float32 kernels' epilogue computes them. gx, gh (Np) IN: the input and
 * recurrent pre-activations with their biases; hs, cs (Hp) IN/OUT: the row's
 * state (cs NULL for gru); pp (3, Hp) peepholes or NULL. Padding units see
 * zero pre-activations and stay finite; nothing reads them. */
static void SFX(qepilogue)(const fl_rnn_desc *d, int Hp, const float *gx, const float *gh,
                           const float *pp, float *hs, float *cs)
{
    const int hard = d->gate_act == FL_GATE_HARD_SIGMOID, relu = d->act == FL_ACT_RELU;
    for (int u = 0; u < Hp; u += VL) {
        if (d->cell == FL_CELL_GRU) {
            const VEC r = SFX(vgate)(hard, SFX(vload)(gx + u) + SFX(vload)(gh + u));
            const VEC z = SFX(vgate)(hard, SFX(vload)(gx + Hp + u) + SFX(vload)(gh + Hp + u));
            const VEC n = SFX(vact)(relu, SFX(vload)(gx + 2 * Hp + u) + r * SFX(vload)(gh + 2 * Hp + u));
            SFX(vstore)(hs + u, (1 - z) * n + z * SFX(vload)(hs + u));
            continue;
        }
        const VEC c = SFX(vload)(cs + u);
        VEC zi = SFX(vload)(gx + u) + SFX(vload)(gh + u);
        VEC zf = SFX(vload)(gx + Hp + u) + SFX(vload)(gh + Hp + u);
        const VEC zg = SFX(vload)(gx + 2 * Hp + u) + SFX(vload)(gh + 2 * Hp + u);
        VEC zo = SFX(vload)(gx + 3 * Hp + u) + SFX(vload)(gh + 3 * Hp + u);
        if (pp) {
            zi += SFX(vload)(pp + u) * c;
            zf += SFX(vload)(pp + Hp + u) * c;
        }
        const VEC i = SFX(vgate)(hard, zi);
        const VEC f = d->cell == FL_CELL_CIFG ? 1 - i : SFX(vgate)(hard, zf);
        const VEC cn = f * c + i * SFX(vact)(relu, zg);
        if (pp) zo += SFX(vload)(pp + 2 * Hp + u) * cn;
        SFX(vstore)(cs + u, cn);
        SFX(vstore)(hs + u, SFX(vgate)(hard, zo) * SFX(vact)(relu, cn));
    }
}

int QFN(fl_qrnn_forward)(const fl_rnn_desc *d, int qtype, const void *packed, float *y, long ldy,
                         float *h_n, float *c_n, const float *x, long ldx, const float *h0,
                         const float *c0, const int *lengths)
{
    SFX(qlayout) L;
    int st = SFX(qlayout_of)(d, qtype, &L);
    if (st != FL_OK) return st;
    const int T = d->T, B = d->B, I = d->I, H = d->H, Hp = L.Hp, Np = L.Np;
    const int gru = d->cell == FL_CELL_GRU;
    if (T < 1 || B < 1) return FL_ERR_SIZE;
    if (!packed || !y || !h_n || !x || (!gru && !c_n)) return FL_ERR_ARG;
    if (ldy < H || ldx < I) return FL_ERR_SIZE;
    if (lengths)
        for (int b = 0; b < B; b++)
            if (lengths[b] < 1 || lengths[b] > T) return FL_ERR_SIZE;
    int owned;
    float *work = fl_workspace(d->work, d->work_bytes, sizeof(float) * SFX(qwork_elems)(d, &L),
                               &owned);
    if (!work) return FL_ERR_NOMEM;
    float *hs = work, *cs = hs + (long)B * Hp, *gx = cs + (long)B * Hp, *gh = gx + Np;
    uint32_t *ab = (uint32_t *)(gh + Np);
    const float *bx = packed, *bh = bx + Np, *sx = bh + Np, *sh = sx + Np, *pp = sh + Np;
    const void *wx = (const char *)packed + L.off_wx, *wh = (const char *)packed + L.off_wh;
    int native = 0;
#if FL_Q_NATIVE_BF16
    native = qtype == FL_Q_BF16 && SFX(qhas_bf16)();
#endif
    for (long b = 0; b < B; b++)
        for (int u = 0; u < Hp; u++) {
            hs[b * Hp + u] = u < H && h0 ? h0[b * H + u] : 0;
            cs[b * Hp + u] = u < H && c0 && !gru ? c0[b * H + u] : 0;
        }
    const int bf = qtype == FL_Q_BF16;
    for (int s = 0; s < T; s++) {
        const int t = d->reverse ? T - 1 - s : s;
        for (int b = 0; b < B; b++) {
            float *yrow = y + (d->y_batch_first ? (long)b * T + t : (long)t * B + b) * ldy;
            if (lengths && t >= lengths[b]) {   /* past the end: carry the state, output 0 */
                for (int u = 0; u < H; u++) yrow[u] = 0;
                continue;
            }
            const float *xr = x + ((long)t * B + b) * ldx;
            float *hb = hs + (long)b * Hp, *cb = cs + (long)b * Hp;
            if (bf) SFX(qpairs)(ab, xr, I);
            SFX(qmatvec)(&L, qtype, native, I, L.KpX, wx, xr, ab, sx, bx, gx);
            if (bf) SFX(qpairs)(ab, hb, H);
            SFX(qmatvec)(&L, qtype, native, H, L.KpH, wh, hb, ab, sh, bh, gh);
            SFX(qepilogue)(d, Hp, gx, gh, d->cell == FL_CELL_PEEPHOLE ? pp : NULL, hb,
                           gru ? NULL : cb);
            for (int u = 0; u < H; u++) yrow[u] = hb[u];
        }
    }
    for (long b = 0; b < B; b++)
        for (int u = 0; u < H; u++) {
            h_n[b * H + u] = hs[b * Hp + u];
            if (!gru) c_n[b * H + u] = cs[b * Hp + u];
        }
    if (owned) free(work);
    return FL_OK;
}

int QFN(fl_qrnn_native)(int qtype)
{
#if FL_Q_NATIVE_BF16
    if (qtype == FL_Q_BF16) return SFX(qhas_bf16)();
#endif
    (void)qtype;
    return 0;
}

#undef QCB
#undef QFN
#undef FL_Q_NATIVE_BF16
