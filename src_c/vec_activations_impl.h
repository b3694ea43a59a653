/* The activations the kernels' epilogues use, on whole vectors (include after
 * simd_impl.h): branch-free sigmoid, tanh, hard sigmoid, relu and the
 * derivatives through the outputs, written with GCC's generic vector types so
 * a gate is computed on VL units per instruction whatever the compiler's
 * auto-vectoriser decides (it left much of an earlier scalar epilogue scalar,
 * a large part of a step). No libm calls, only selects,
 * FMAs and integer bit operations; comparisons give lane masks (-1 / 0) and
 * vsel blends with them.
 *
 * exp(x) = 2^k * p(r), k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2],
 * p the Taylor polynomial of degree 6 (float) or 12 (double); its truncation
 * error is below 2e-7 (float) and 2e-16 (double) relative, so sigmoid and tanh
 * are within 3e-7 (float) and a few ulp of 1 (double) in absolute terms
 * (tests/test_activations.py measures it against numpy in float64).
 */
#undef VMASK
#undef FL_NV
#undef FOR_E
#undef VBITS
typedef IREAL SFX(vmask) __attribute__((vector_size(FL_VBYTES)));
typedef UREAL SFX(vbits) __attribute__((vector_size(FL_VBYTES)));
#define VMASK SFX(vmask)
#define VBITS SFX(vbits)

FL_INLINE VEC SFX(vsplat)(REAL x) { return (VEC){0} + x; }

/* m ? a : b, lane by lane (m from a vector comparison) */
FL_INLINE VEC SFX(vsel)(VMASK m, VEC a, VEC b)
{
    VMASK ai, bi;
    memcpy(&ai, &a, sizeof a);
    memcpy(&bi, &b, sizeof b);
    VMASK r = (m & ai) | (~m & bi);
    VEC out;
    memcpy(&out, &r, sizeof out);
    return out;
}

/* max(lo, x) and min(hi, x), lane by lane, returning x where it is NaN.
 * Generic vectors have no min or max: a compare and vsel is three dependent
 * instructions on AVX-512 (compare to a mask, two masked xors), one vmaxps
 * or vminps here, so the x86 levels use the instruction (its operand order
 * passes a NaN in x through, as vsel(x < lo, lo, x) does) and the rest the
 * select; the results are the same bitwise. */
#if FL_X86_LEVELS && FL_VBYTES == 64 && defined(__AVX512F__)
#include <immintrin.h>
#ifdef FL_F32
#define FL_VMAX _mm512_max_ps
#define FL_VMIN _mm512_min_ps
#else
#define FL_VMAX _mm512_max_pd
#define FL_VMIN _mm512_min_pd
#endif
#elif FL_X86_LEVELS && FL_VBYTES == 32 && defined(__AVX__)
#include <immintrin.h>
#ifdef FL_F32
#define FL_VMAX _mm256_max_ps
#define FL_VMIN _mm256_min_ps
#else
#define FL_VMAX _mm256_max_pd
#define FL_VMIN _mm256_min_pd
#endif
#endif
FL_INLINE VEC SFX(vmax_lo)(VEC lo, VEC x)
{
#ifdef FL_VMAX
    return FL_VMAX(lo, x);   /* lo > x ? lo : x */
#else
    return SFX(vsel)(x < lo, lo, x);
#endif
}
FL_INLINE VEC SFX(vmin_hi)(VEC hi, VEC x)
{
#ifdef FL_VMIN
    return FL_VMIN(hi, x);   /* hi < x ? hi : x */
#else
    return SFX(vsel)(x > hi, hi, x);
#endif
}
#undef FL_VMAX
#undef FL_VMIN

/* |x| and the sign bit of x, through the bits (one and-not, one and) */
FL_INLINE VEC SFX(vsignbit)(VEC x)
{
    VBITS b;
    memcpy(&b, &x, sizeof b);
    b &= (UREAL)1 << (8 * sizeof(REAL) - 1);
    VEC out;
    memcpy(&out, &b, sizeof out);
    return out;
}
FL_INLINE VEC SFX(vxorbits)(VEC x, VEC y)
{
    VBITS a, b;
    memcpy(&a, &x, sizeof a);
    memcpy(&b, &y, sizeof b);
    a ^= b;
    VEC out;
    memcpy(&out, &a, sizeof out);
    return out;
}

/* The n-vector functions (n <= FL_NV, a constant after inlining) compute n
 * independent vectors statement by statement, so the n dependency chains
 * interleave in the instruction stream and the core overlaps them: one
 * vector's chain (exp, divide, cell, exp, divide) is far longer than its
 * issue time, and the out-of-order window does not reach the next vector's
 * chain when the code runs one vector after another. Two at a time made the
 * LSTM step faster; four or eight, with all gates in one pass, spill
 * registers and were no faster (bench/RESULTS.md, design measurements). */
#define FL_NV 2
#define FOR_E for (int e = 0; e < n; e++)

FL_INLINE void SFX(vexp_n)(VEC *x, int n)   /* x = exp(x), in place */
{
    const VEC lo = SFX(vsplat)(FL_EXP_LO), hi = SFX(vsplat)(FL_EXP_HI);
    VEC kf[FL_NV], r[FL_NV];
    FOR_E x[e] = SFX(vmax_lo)(lo, x[e]);
    FOR_E x[e] = SFX(vmin_hi)(hi, x[e]);
    FOR_E kf[e] = x[e] * RC(1.44269504088896340736) + FL_ROUND_MAGIC;
#ifdef FL_F32
    /* one fused step with ln 2 rounded to float: |k| <= 127, so r is off by at
     * most 127 * 2e-9 = 2.5e-7 relative to exp where |x| is near 88, where
     * sigmoid and tanh are 0 or +-1 to far more than that */
    FOR_E r[e] = x[e] - (kf[e] - FL_ROUND_MAGIC) * RC(0.693147182464599609375);
    /* Estrin's scheme: three FMA levels instead of six in a row. An LSTM
     * step's epilogue is a chain exp -> divide -> cell -> exp -> divide, so
     * its latency, not its instruction count, bounds small hidden sizes. */
    VEC r2[FL_NV], p[FL_NV], q[FL_NV];
    FOR_E r2[e] = r[e] * r[e];
    FOR_E p[e] = r[e] * (RC(1.0) / RC(6.0)) + RC(0.5);
    FOR_E q[e] = r[e] * (RC(1.0) / RC(120.0)) + RC(1.0) / RC(24.0);
    FOR_E p[e] = (r[e] + RC(1.0)) + r2[e] * p[e];
    FOR_E q[e] = q[e] + r2[e] * (RC(1.0) / RC(720.0));
    FOR_E p[e] = p[e] + (r2[e] * r2[e]) * q[e];
#else
    const REAL ln2_hi = RC(0.693145751953125);          /* exact in float */
    const REAL ln2_lo = RC(1.42860682030941723212e-06); /* ln 2 - ln2_hi */
    VEC p[FL_NV];
    FOR_E {
        const VEC k = kf[e] - FL_ROUND_MAGIC;
        r[e] = (x[e] - k * ln2_hi) - k * ln2_lo;
    }
    FOR_E p[e] = SFX(vsplat)(RC(1.0) / RC(479001600.0));
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(39916800.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(3628800.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(362880.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(40320.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(5040.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(720.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(120.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(24.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0) / RC(6.0);
    FOR_E p[e] = p[e] * r[e] + RC(0.5);
    FOR_E p[e] = p[e] * r[e] + RC(1.0);
    FOR_E p[e] = p[e] * r[e] + RC(1.0);
#endif
    const REAL magic = FL_ROUND_MAGIC;
    UREAL mbits;
    memcpy(&mbits, &magic, sizeof mbits);
    FOR_E {
        VBITS kbits, sbits;
        memcpy(&kbits, &kf[e], sizeof kbits);
        sbits = (kbits - mbits + (UREAL)FL_EXP_BIAS) << FL_MANT_BITS;
        VEC scale;
        memcpy(&scale, &sbits, sizeof scale);
        x[e] = p[e] * scale;
    }
}

FL_INLINE void SFX(vsigmoid_n)(VEC *x, int n)
{
    FOR_E x[e] = -x[e];
    SFX(vexp_n)(x, n);
    FOR_E x[e] = RC(1.0) / (RC(1.0) + x[e]);
}

FL_INLINE void SFX(vtanh_n)(VEC *x, int n)
{
    /* tanh(|x|) from exp(-2|x|) <= 1 (no overflow, no cancellation), given
     * x's sign; sign bits instead of compare and select keep it off the
     * chain's critical path */
    VEC s[FL_NV], t[FL_NV];
    FOR_E s[e] = SFX(vsignbit)(x[e]);
    FOR_E t[e] = RC(-2.0) * SFX(vxorbits)(x[e], s[e]);
    SFX(vexp_n)(t, n);
    FOR_E t[e] = (RC(1.0) - t[e]) / (RC(1.0) + t[e]);
    FOR_E x[e] = SFX(vxorbits)(t[e], s[e]);
}

FL_INLINE VEC SFX(vexp)(VEC x) { SFX(vexp_n)(&x, 1); return x; }
FL_INLINE VEC SFX(vsigmoid)(VEC x) { SFX(vsigmoid_n)(&x, 1); return x; }
FL_INLINE VEC SFX(vtanh)(VEC x) { SFX(vtanh_n)(&x, 1); return x; }

FL_INLINE VEC SFX(vhard_sigmoid)(VEC x)
{
    VEC y = RC(0.2) * x + RC(0.5);
    const VEC zero = (VEC){0}, one = SFX(vsplat)(1);
    y = SFX(vsel)(y < zero, zero, y);
    return SFX(vsel)(y > one, one, y);
}

FL_INLINE VEC SFX(vrelu)(VEC x) { return SFX(vsel)(x > 0, x, (VEC){0}); }

FL_INLINE VEC SFX(vgate)(int hard, VEC x) { return hard ? SFX(vhard_sigmoid)(x) : SFX(vsigmoid)(x); }
FL_INLINE VEC SFX(vact)(int relu, VEC x) { return relu ? SFX(vrelu)(x) : SFX(vtanh)(x); }
FL_INLINE void SFX(vgate_n)(int hard, VEC *x, int n)
{
    if (hard) FOR_E x[e] = SFX(vhard_sigmoid)(x[e]);
    else SFX(vsigmoid_n)(x, n);
}
FL_INLINE void SFX(vact_n)(int relu, VEC *x, int n)
{
    if (relu) FOR_E x[e] = SFX(vrelu)(x[e]);
    else SFX(vtanh_n)(x, n);
}

/* Derivatives through the outputs y, times g (as dgate_blk and dact_blk). */
FL_INLINE VEC SFX(vdgate)(int hard, VEC y, VEC g)
{
    if (hard) return SFX(vsel)((y > 0) & (y < 1), g * RC(0.2), (VEC){0});
    return g * (y * (RC(1.0) - y));
}
FL_INLINE VEC SFX(vdact)(int relu, VEC y, VEC g)
{
    if (relu) return SFX(vsel)(y > 0, g, (VEC){0});
    return g * (RC(1.0) - y * y);
}
