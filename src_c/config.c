/* What the build and the dispatcher chose, for fastlstm.show_config(). */
#include <pthread.h>
#include "fastlstm.h"
#include "fl_omp.h"

int fl_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fl_openmp_max_threads(void) { return omp_get_max_threads(); }

/* Fork safety. GNU libgomp keeps the threads of its first team in a pool and
 * reuses them; a fork()ed child inherits the pool's bookkeeping but not the
 * threads, so its first multi-threaded region waits for them forever. So once
 * this process has started a team (of more than one thread), a forked child
 * runs every kernel on its calling thread alone: same results (the kernels
 * are bitwise thread-invariant), no hang. A process that never ran a team
 * leaves its children free to start their own. */
static volatile int team_started, single_after_fork;

static void on_fork_child(void)
{
    if (team_started) single_after_fork = 1;
}

__attribute__((constructor)) static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

int fl_usable_threads(int requested)
{
#ifdef _OPENMP
    if (requested > 1) {
        if (single_after_fork) return 1;
        team_started = 1;
    }
#endif
    return requested;   /* below 1: the kernel refuses it */
}

int fl_single_after_fork(void) { return single_after_fork; }
