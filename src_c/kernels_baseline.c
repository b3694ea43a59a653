/* The kernels for the compiler's baseline (SSE2 on x86-64, NEON on ARM64):
 * 32-byte generic vectors, which GCC splits into pairs of 16-byte ones. */
#define _POSIX_C_SOURCE 200112L   /* posix_memalign */
#include "level.h"
#define FL_LEVEL_SFX _baseline
#define FL_LEVEL_NAME "baseline"
#define FL_VBYTES 32
#define FL_UNIT_BLOCK 16
#define FL_TILE_NV 2
#include "kernels_level.h"
