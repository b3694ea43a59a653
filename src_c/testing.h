/* Test-only hooks into the kernels; not part of the public API (fastlstm.h).
 * The thread-invariance tests must run the time loops' partitioned paths at
 * shapes small enough that the cost model would keep them on one thread;
 * _kernels.set_thread_split_for_tests reaches this from Python. */
#ifndef FL_TESTING_H
#define FL_TESTING_H

enum fl_test_split {
    FL_SPLIT_AUTO = 0,    /* the cost model picks the time loops' threads (the default) */
    FL_SPLIT_MODEL = 1,   /* every time loop on n_threads, split as the cost model picks:
                             by batch rows where W_hh is small enough, else by unit blocks */
    FL_SPLIT_BLOCKS = 2   /* every time loop on n_threads, split by unit blocks */
};

/* Process-wide, for every later kernel call from any thread: FL_OK, or
 * FL_ERR_ARG for a mode that is not an fl_test_split. */
int fl_test_set_step_split(int mode);
int fl_test_step_split(void);   /* the mode in force */

/* The most threads any time loop has been planned for since the mode was
 * last set, so a test can tell that the split it forced took place. The
 * kernels report each loop's plan through fl_test_note_step_threads. */
int fl_test_step_threads_peak(void);
void fl_test_note_step_threads(int n_threads);

/* Process-wide, the paths of the quantized kernels: the CPU's best (the
 * default); the level's general ones, ignoring the CPU's dot-product
 * instructions and AMX (AVX512_BF16, AVX512_VNNI, AVX-VNNI), so the tests
 * reach them on a CPU that has those; or the CPU's best with the avx512
 * level's AMX tile path for batches of QAMX_MIN_B rows or more, its tiles
 * emulated in C (its layout, padding and tails checked on any CPU that
 * runs the level, or its source built for AVX2). */
enum fl_test_qpaths { FL_QPATHS_GENERAL = 0, FL_QPATHS_CPU = 1, FL_QPATHS_AMX_EMULATED = 2 };
int fl_test_set_quant_paths(int mode);   /* FL_OK, or FL_ERR_ARG for another mode */
int fl_test_quant_paths(void);

#endif
