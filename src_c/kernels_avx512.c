/* The kernels for AVX-512 (x86-64-v4: F, BW, DQ, VL): 64-byte vectors. */
#define _POSIX_C_SOURCE 200112L   /* posix_memalign */
#include "level.h"
#if FL_X86_LEVELS
#ifdef FASTLSTM_WIDE_AS_AVX2
/* A test build: this level's source (64-byte vectors, its tile and blocks)
 * compiled for AVX2, where GCC splits each vector in two, so its indexing
 * and tails are checked on CPUs without AVX-512 (.ci/run does this). */
#pragma GCC target("arch=x86-64-v3")
#else
#pragma GCC target("arch=x86-64-v4")
#endif
#define FL_LEVEL_SFX _avx512
#define FL_LEVEL_NAME "avx512"
#define FL_VBYTES 64
#define FL_UNIT_BLOCK 64
#define FL_TILE_NV 4       /* the 6 x 4 register tile: 24 of the 32 zmm registers */
#include "kernels_level.h"
#endif
