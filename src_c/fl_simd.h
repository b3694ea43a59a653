/* Runtime instruction-set dispatch without -march=native: GCC compiles each
 * marked function for AVX-512, AVX2+FMA and baseline x86-64 and picks one at
 * load time (ifunc). Hot loops live in marked functions that OpenMP regions
 * call, because GCC does not clone the outlined bodies of parallel regions.
 * Elsewhere (ARM64, clang, FASTLSTM_NO_DISPATCH) the macro is empty and the
 * compiler's baseline for the target is used. */
#ifndef FL_SIMD_H
#define FL_SIMD_H
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && (__GNUC__ >= 12) && !defined(FASTLSTM_NO_DISPATCH)
#define FL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FL_HAVE_DISPATCH 1
#else
#define FL_CLONES
#define FL_HAVE_DISPATCH 0
#endif

/* Helpers that must inline into the FL_CLONES function calling them: a helper
 * compiled on its own gets the baseline ISA, and 32-byte vectors then go
 * through memory. */
#if defined(__GNUC__)
#define FL_INLINE static inline __attribute__((always_inline))
#else
#define FL_INLINE static inline
#endif
#endif
