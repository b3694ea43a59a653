/* The kernels for AVX2 + FMA (x86-64-v3): 32-byte vectors. */
#define _POSIX_C_SOURCE 200112L   /* posix_memalign */
#include "level.h"
#if FL_X86_LEVELS
#pragma GCC target("arch=x86-64-v3")
#define FL_LEVEL_SFX _avx2
#define FL_LEVEL_NAME "avx2"
#define FL_VBYTES 32
#define FL_UNIT_BLOCK 16
#define FL_TILE_NV 2       /* the 6 x 2 register tile: 12 of the 16 ymm registers */
#include "kernels_level.h"
#endif
