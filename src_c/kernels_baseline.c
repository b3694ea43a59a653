/* The kernels for the compiler's baseline (SSE2 on x86-64, NEON on ARM64):
 * generic vectors of one SSE2 register (16 bytes) on x86-64, whose 16
 * registers hold the 6 x 2 tile's 12 accumulators; 32 bytes on ARM64,
 * which GCC splits into pairs of NEON registers (32 of them hold the 6 x 2
 * tile's 24). x86-64 with 32-byte pairs spilled the tile to the stack and
 * built each broadcast through memory. */
#define _POSIX_C_SOURCE 200112L   /* posix_memalign */
#include "level.h"
#define FL_LEVEL_SFX _baseline
#define FL_LEVEL_NAME "baseline"
#if defined(__x86_64__)
#define FL_VBYTES 16
#else
#define FL_VBYTES 32
#endif
#define FL_UNIT_BLOCK 16
#define FL_TILE_NV 2
#include "kernels_level.h"
