/* The activations the kernels' epilogues use, on whole vectors (include after
 * simd_impl.h): branch-free sigmoid, tanh, hard sigmoid, relu and the
 * derivatives through the outputs, written with GCC's generic vector types so
 * a gate is computed on VL units per instruction whatever the compiler's
 * auto-vectoriser decides (it left much of an earlier scalar epilogue scalar:
 * a quarter to a half of a step at H = 128). No libm calls, only selects,
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
#undef VBITS
typedef IREAL SFX(vmask) __attribute__((vector_size(32)));
typedef UREAL SFX(vbits) __attribute__((vector_size(32)));
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

FL_INLINE VEC SFX(vexp)(VEC x)
{
    const VEC lo = SFX(vsplat)(FL_EXP_LO), hi = SFX(vsplat)(FL_EXP_HI);
    x = SFX(vsel)(x < lo, lo, x);
    x = SFX(vsel)(x > hi, hi, x);
    VEC kf = x * RC(1.44269504088896340736) + FL_ROUND_MAGIC;
    VEC k = kf - FL_ROUND_MAGIC;
#ifdef FL_F32
    /* one fused step with ln 2 rounded to float: |k| <= 127, so r is off by at
     * most 127 * 2e-9 = 2.5e-7 relative to exp where |x| is near 88, where
     * sigmoid and tanh are 0 or +-1 to far more than that */
    VEC r = x - k * RC(0.693147182464599609375);
    /* Estrin's scheme: three FMA levels instead of six in a row. An LSTM
     * step's epilogue is a chain exp -> divide -> cell -> exp -> divide, so
     * its latency, not its instruction count, bounds small hidden sizes. */
    const VEC r2 = r * r, r4 = r2 * r2;
    const VEC p01 = r + RC(1.0), p23 = r * (RC(1.0) / RC(6.0)) + RC(0.5);
    const VEC p45 = r * (RC(1.0) / RC(120.0)) + RC(1.0) / RC(24.0);
    const VEC p = (p01 + r2 * p23) + r4 * (p45 + r2 * (RC(1.0) / RC(720.0)));
#else
    const REAL ln2_hi = RC(0.693145751953125);          /* exact in float */
    const REAL ln2_lo = RC(1.42860682030941723212e-06); /* ln 2 - ln2_hi */
    VEC r = (x - k * ln2_hi) - k * ln2_lo;
    VEC p = SFX(vsplat)(RC(1.0) / RC(479001600.0));
    p = p * r + RC(1.0) / RC(39916800.0);
    p = p * r + RC(1.0) / RC(3628800.0);
    p = p * r + RC(1.0) / RC(362880.0);
    p = p * r + RC(1.0) / RC(40320.0);
    p = p * r + RC(1.0) / RC(5040.0);
    p = p * r + RC(1.0) / RC(720.0);
    p = p * r + RC(1.0) / RC(120.0);
    p = p * r + RC(1.0) / RC(24.0);
    p = p * r + RC(1.0) / RC(6.0);
    p = p * r + RC(0.5);
    p = p * r + RC(1.0);
    p = p * r + RC(1.0);
#endif
    const REAL magic = FL_ROUND_MAGIC;
    UREAL mbits;
    memcpy(&mbits, &magic, sizeof mbits);
    VBITS kbits, sbits;
    memcpy(&kbits, &kf, sizeof kbits);
    sbits = (kbits - mbits + (UREAL)FL_EXP_BIAS) << FL_MANT_BITS;
    VEC scale;
    memcpy(&scale, &sbits, sizeof scale);
    return p * scale;
}

FL_INLINE VEC SFX(vsigmoid)(VEC x) { return RC(1.0) / (RC(1.0) + SFX(vexp)(-x)); }

FL_INLINE VEC SFX(vtanh)(VEC x)
{
    const VMASK neg = x < 0;
    const VEC ax = SFX(vsel)(neg, -x, x);
    const VEC e = SFX(vexp)(RC(-2.0) * ax);
    const VEC t = (RC(1.0) - e) / (RC(1.0) + e);
    return SFX(vsel)(neg, -t, t);
}

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
