/* Scalar type for the templated kernels. kernels_level.h defines FL_F32 or
 * FL_F64, includes this, then the *_impl.h files; it does so twice, once per
 * type, in each kernels_<level>.c. Every name there goes through SFX, which
 * appends the type and the level (FL_LEVEL_SFX): SFX(fl_gemm) is
 * fl_gemm_f32_avx512 in the AVX-512 float32 build, fl_gemm_f64_baseline in
 * the baseline float64 one. Each public entry point's definition carries a
 * comment naming its concrete symbols ("Defines fl_gemm_f32_<level> and
 * fl_gemm_f64_<level>"), so grep for a public name finds it. */
#include <stdint.h>
#include "level.h"
#undef REAL
#undef UREAL
#undef IREAL
#undef SFX
#undef RC
#undef FL_MANT_BITS
#undef FL_EXP_BIAS
#undef FL_EXP_LO
#undef FL_EXP_HI
#undef FL_ROUND_MAGIC
#ifdef FL_F32
#define REAL float
#define UREAL uint32_t
#define IREAL int32_t
#define SFX(name) FL_CAT(name##_f32, FL_LEVEL_SFX)
#define RC(c) c##f
#define FL_MANT_BITS 23
#define FL_EXP_BIAS 127
#define FL_EXP_LO (-87.0f)
#define FL_EXP_HI 88.0f
#define FL_ROUND_MAGIC 12582912.0f          /* 1.5 * 2^23: adding it rounds to an integer */
#else
#define REAL double
#define UREAL uint64_t
#define IREAL int64_t
#define SFX(name) FL_CAT(name##_f64, FL_LEVEL_SFX)
#define RC(c) c
#define FL_MANT_BITS 52
#define FL_EXP_BIAS 1023
#define FL_EXP_LO (-708.0)
#define FL_EXP_HI 709.0
#define FL_ROUND_MAGIC 6755399441055744.0  /* 1.5 * 2^52 */
#endif
