/* Branch-free scalar sigmoid, tanh, relu and hard sigmoid (include after
 * real_type.h): the reference forms of the vector functions in
 * vec_activations_impl.h, which the kernels' epilogues use, with the same
 * formulas and constants; fl_activation's tail runs these. No libm calls,
 * only selects, FMAs and integer bit operations.
 *
 * exp(x) = 2^k * p(r), k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2],
 * p the Taylor polynomial of degree 6 (float) or 12 (double); its truncation
 * error is below 2e-7 (float) and 2e-16 (double) relative, so sigmoid and tanh
 * are within 3e-7 (float) and a few ulp of 1 (double) in absolute terms
 * (tests/test_activations.py measures it against numpy in float64).
 */
#include <string.h>

static inline REAL SFX(fl_exp)(REAL x)
{
    x = x < FL_EXP_LO ? FL_EXP_LO : x;
    x = x > FL_EXP_HI ? FL_EXP_HI : x;
    REAL kf = x * RC(1.44269504088896340736) + FL_ROUND_MAGIC;
    UREAL kbits, mbits;
    REAL magic = FL_ROUND_MAGIC;
    memcpy(&kbits, &kf, sizeof kbits);
    memcpy(&mbits, &magic, sizeof mbits);
    REAL k = kf - FL_ROUND_MAGIC;
#ifdef FL_F32
    /* one fused step with ln 2 rounded to float: |k| <= 127, so r is off by at
     * most 127 * 2e-9 = 2.5e-7 relative to exp where |x| is near 88, where
     * sigmoid and tanh are 0 or +-1 to far more than that */
    REAL r = x - k * RC(0.693147182464599609375);
    REAL p = RC(1.0) / RC(720.0);
    p = p * r + RC(1.0) / RC(120.0);
    p = p * r + RC(1.0) / RC(24.0);
#else
    const REAL ln2_hi = RC(0.693145751953125);          /* exact in float */
    const REAL ln2_lo = RC(1.42860682030941723212e-06); /* ln 2 - ln2_hi */
    REAL r = (x - k * ln2_hi) - k * ln2_lo;
    REAL p = RC(1.0) / RC(479001600.0);
    p = p * r + RC(1.0) / RC(39916800.0);
    p = p * r + RC(1.0) / RC(3628800.0);
    p = p * r + RC(1.0) / RC(362880.0);
    p = p * r + RC(1.0) / RC(40320.0);
    p = p * r + RC(1.0) / RC(5040.0);
    p = p * r + RC(1.0) / RC(720.0);
    p = p * r + RC(1.0) / RC(120.0);
    p = p * r + RC(1.0) / RC(24.0);
#endif
    p = p * r + RC(1.0) / RC(6.0);
    p = p * r + RC(0.5);
    p = p * r + RC(1.0);
    p = p * r + RC(1.0);
    UREAL sbits = (kbits - mbits + (UREAL)FL_EXP_BIAS) << FL_MANT_BITS;
    REAL scale;
    memcpy(&scale, &sbits, sizeof scale);
    return p * scale;
}

static inline REAL SFX(fl_sigmoid)(REAL x)
{
    return RC(1.0) / (RC(1.0) + SFX(fl_exp)(-x));
}

static inline REAL SFX(fl_tanh)(REAL x)
{
    REAL ax = x < 0 ? -x : x;
    REAL e = SFX(fl_exp)(RC(-2.0) * ax);
    REAL t = (RC(1.0) - e) / (RC(1.0) + e);
    return x < 0 ? -t : t;
}

static inline REAL SFX(fl_hard_sigmoid)(REAL x)
{
    REAL y = RC(0.2) * x + RC(0.5);
    y = y < 0 ? 0 : y;
    return y > 1 ? 1 : y;
}

static inline REAL SFX(fl_relu)(REAL x) { return x > 0 ? x : 0; }
