/* The data caches the CPU reports, read once for every level's blocking
 * (gemm_kc, qblocking, batch_threads): in a virtual machine each sysconf
 * here is a trapped cpuid, too slow for every kernel call. */
#include <unistd.h>
#include "internal.h"

long fl_cache_bytes(int level)
{
    static long l1, l2;   /* 0 until read; the values every thread would read */
    if (!__atomic_load_n(&l2, __ATOMIC_RELAXED)) {
        long c1 = 0, c2 = 0;
#ifdef _SC_LEVEL1_DCACHE_SIZE
        c1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);
#endif
#ifdef _SC_LEVEL2_CACHE_SIZE
        c2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        __atomic_store_n(&l1, c1 > 0 ? c1 : 32768, __ATOMIC_RELAXED);
        __atomic_store_n(&l2, c2 > 0 ? c2 : 524288, __ATOMIC_RELAXED);
    }
    return level == 1 ? __atomic_load_n(&l1, __ATOMIC_RELAXED) : __atomic_load_n(&l2, __ATOMIC_RELAXED);
}
