/* The one doorway to OpenMP: kernels include this, never <omp.h>, so a build
 * without OpenMP compiles the same code single-threaded (the pragmas are ignored). */
#ifndef FL_OMP_H
#define FL_OMP_H
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
#endif

#include <sched.h>
#include <stdlib.h>
#ifdef __linux__
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
long syscall(long number, ...);   /* unistd.h declares it only for _GNU_SOURCE */
#endif

/* A barrier for a team whose threads meet once a step (batch 1 split by
 * unit blocks): libgomp's cost 200-290 ns a meeting on the 2-vCPU test VM,
 * this one 30-55 ns (bench/RESULTS.md, design measurements). Made by
 * fl_barrier_init before the region; each thread keeps its own phase, 0 at
 * the region's start. The last to arrive zeroes the count and flips the
 * shared phase: a release that makes every write before the barrier
 * visible to the threads that acquire the flip. A waiter spins a while,
 * then sleeps on the phase (a futex; elsewhere it yields its core): a team
 * with more threads than cores spins little, as libgomp's does, or its
 * spinning threads would hold the cores the others need to arrive. */
typedef struct {
    int count __attribute__((aligned(64)));
    int phase __attribute__((aligned(64)));
    int sleepers;
    int spins;
} fl_barrier;

/* OMP_WAIT_POLICY=passive (README: for machines whose cores other
 * processes want) asks waiting threads not to spin: this barrier then
 * spins only as briefly as for a team larger than the CPUs. Read once a
 * process. */
static inline int fl_wait_passive(void)
{
    static int passive = -1;
    int p = __atomic_load_n(&passive, __ATOMIC_RELAXED);
    if (p < 0) {
        const char *v = getenv("OMP_WAIT_POLICY");
        p = v && (v[0] == 'p' || v[0] == 'P');
        __atomic_store_n(&passive, p, __ATOMIC_RELAXED);
    }
    return p;
}

static inline void fl_barrier_init(fl_barrier *b, int nth)
{
    b->count = b->phase = b->sleepers = 0;
    /* (libgomp's count of the CPUs it may use for a team only: it asks the
     * kernel each time; sysconf would read a file) */
    b->spins = nth < 2 ? 0 : fl_wait_passive() || nth > omp_get_num_procs() ? 300 : 4000;
}

static inline void fl_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void fl_barrier_wait(fl_barrier *b, int nth, int *phase)
{
    if (nth < 2) return;
    const int next = !*phase;
    *phase = next;
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == nth) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->phase, next, __ATOMIC_SEQ_CST);
#ifdef __linux__
        if (__atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST))
            syscall(SYS_futex, &b->phase, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#endif
        return;
    }
    for (int spin = 0; spin < b->spins; spin++) {
        if (__atomic_load_n(&b->phase, __ATOMIC_ACQUIRE) == next) return;
        fl_pause();
    }
    __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&b->phase, __ATOMIC_SEQ_CST) != next) {
#ifdef __linux__
        /* sleeps only while the phase is still the old one */
        syscall(SYS_futex, &b->phase, FUTEX_WAIT_PRIVATE, !next, NULL, NULL, 0);
#else
        sched_yield();
#endif
    }
    __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_RELAXED);
}
#endif
