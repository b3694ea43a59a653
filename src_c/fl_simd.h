/* Helpers shared by every level's kernels (kernels_level.h). */
#ifndef FL_SIMD_H
#define FL_SIMD_H

/* Helpers that must inline into their caller: the register tiles keep their
 * accumulators in registers only when the loop bounds are constants there. */
#if defined(__GNUC__)
#define FL_INLINE static inline __attribute__((always_inline))
#define FL_NOINLINE __attribute__((noinline))
#else
#define FL_INLINE static inline
#define FL_NOINLINE
#endif
#endif
