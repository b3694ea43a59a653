/* The test hooks of testing.h: one process-wide setting, read once per
 * kernel call. */
#include "fastlstm.h"
#include "testing.h"

static int step_split = FL_SPLIT_AUTO, threads_peak, quant_paths = FL_QPATHS_CPU;

int fl_test_set_step_split(int mode)
{
    if (mode < FL_SPLIT_AUTO || mode > FL_SPLIT_BLOCKS) return FL_ERR_ARG;
    __atomic_store_n(&step_split, mode, __ATOMIC_RELAXED);
    __atomic_store_n(&threads_peak, 0, __ATOMIC_RELAXED);
    return FL_OK;
}

int fl_test_step_split(void) { return __atomic_load_n(&step_split, __ATOMIC_RELAXED); }

int fl_test_step_threads_peak(void) { return __atomic_load_n(&threads_peak, __ATOMIC_RELAXED); }

void fl_test_note_step_threads(int n_threads)
{
    int seen = __atomic_load_n(&threads_peak, __ATOMIC_RELAXED);
    while (n_threads > seen
           && !__atomic_compare_exchange_n(&threads_peak, &seen, n_threads, 1, __ATOMIC_RELAXED,
                                           __ATOMIC_RELAXED)) {
    }
}

int fl_test_set_quant_paths(int mode)
{
    if (mode < FL_QPATHS_GENERAL || mode > FL_QPATHS_AMX_EMULATED) return FL_ERR_ARG;
    __atomic_store_n(&quant_paths, mode, __ATOMIC_RELAXED);
    return FL_OK;
}

int fl_test_quant_paths(void) { return __atomic_load_n(&quant_paths, __ATOMIC_RELAXED); }
