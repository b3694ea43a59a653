/* What the build and the dispatcher chose, for fastlstm.show_config(). */
#include "fastlstm.h"
#include "fl_omp.h"
#include "fl_simd.h"

int fl_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fl_openmp_max_threads(void) { return omp_get_max_threads(); }

/* Mirrors the ifunc resolver's choice for FL_CLONES functions. */
const char *fl_isa(void)
{
#if FL_HAVE_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2+FMA)";
    return "x86-64 baseline (SSE2)";
#elif defined(__aarch64__)
    return "aarch64 (NEON, compiler baseline)";
#else
    return "compiler baseline (no runtime dispatch)";
#endif
}
