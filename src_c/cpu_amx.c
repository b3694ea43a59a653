/* Whether this process may run AMX tile instructions (the avx512 level's
 * quantized kernels use them for bfloat16 and int8 batches), decided once:
 * the CPU has AMX-TILE, AMX-BF16 and AMX-INT8, the OS enables their state
 * in XCR0, Linux grants the process the tile data state
 * (arch_prctl(ARCH_REQ_XCOMP_PERM), Linux 5.16+), and FASTLSTM_AMX is not
 * "0". The permission is asked for at the first quantized call (or path
 * query: show_config) that could use the tiles, not at import: it enlarges
 * every signal frame of the process, which a program with small alternate
 * signal stacks may refuse. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_probe(void)
{
    const char *env = getenv("FASTLSTM_AMX");
    if (env && strcmp(env, "0") == 0) return 0;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;   /* OSXSAVE */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned amx = (1u << 22) | (1u << 24) | (1u << 25);   /* BF16, TILE, INT8 */
    if ((d & amx) != amx) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return 0;   /* XTILECFG, XTILEDATA */
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#else
static int amx_probe(void) { return 0; }
#endif

int fl_amx_ready(void)
{
    static int state;   /* 0 unknown, 1 no, 2 yes: what every thread would find */
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (!s) {
        s = amx_probe() ? 2 : 1;
        __atomic_store_n(&state, s, __ATOMIC_RELEASE);
    }
    return s == 2;
}
