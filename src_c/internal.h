/* Helpers every level's kernels share (aligned allocation, caller workspaces). */
#ifndef FL_INTERNAL_H
#define FL_INTERNAL_H
#include "fastlstm.h"
#include <stdlib.h>

/* 64-byte aligned buffer (a cache line; full-width vector loads never split
 * lines) for packed panels; free() releases it. NULL on failure or size 0. */
static inline void *fl_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0 || posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}
/* Take `elems` elements from a caller workspace if it is large enough,
 * otherwise allocate; *owned says whether the caller must free(). */
static inline void *fl_workspace(void *work, size_t work_bytes, size_t bytes, int *owned)
{
    if (work && work_bytes >= bytes && ((size_t)work % 64) == 0) { *owned = 0; return work; }
    *owned = 1;
    return fl_aligned_alloc(bytes);
}
/* Bytes of the level-1 data cache (level 1) or the level-2 cache (2) as the
 * CPU reports them, read once (cpu_caches.c); 32 KiB and 512 KiB where it
 * reports none. */
long fl_cache_bytes(int level);
/* 1 if this process may run AMX tile instructions (cpu_amx.c: the CPU's
 * and the OS's support, Linux's permission, FASTLSTM_AMX), else 0. */
int fl_amx_ready(void);
#endif
