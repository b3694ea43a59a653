/* One instruction-set level's kernels: the table kernels_level.h fills for
 * each level and dispatch.c forwards the public API through. */
#ifndef FL_LEVEL_H
#define FL_LEVEL_H
#include "fastlstm.h"
#include "fl_quant.h"

#define FL_CAT_(a, b) a##b
#define FL_CAT(a, b) FL_CAT_(a, b)

#define FL_LEVEL_FN(name) __typeof__(name) *name
typedef struct {
    const char *name;        /* "avx512", "avx2", "baseline" */
    int vector_bytes;        /* width of the kernels' vectors */
    int unit_block;          /* hidden units per block (packed layouts depend on it) */
    long (*fl_gate_cache_cols)(int H);
    FL_LEVEL_FN(fl_rnn_packed_bytes_f32); FL_LEVEL_FN(fl_rnn_packed_bytes_f64);
    FL_LEVEL_FN(fl_rnn_pack_f32); FL_LEVEL_FN(fl_rnn_pack_f64);
    FL_LEVEL_FN(fl_rnn_work_bytes_f32); FL_LEVEL_FN(fl_rnn_work_bytes_f64);
    FL_LEVEL_FN(fl_rnn_forward_f32); FL_LEVEL_FN(fl_rnn_forward_f64);
    FL_LEVEL_FN(fl_rnn_backward_f32); FL_LEVEL_FN(fl_rnn_backward_f64);
    FL_LEVEL_FN(fl_gemm_f32); FL_LEVEL_FN(fl_gemm_f64);
    FL_LEVEL_FN(fl_gemm_naive_f32); FL_LEVEL_FN(fl_gemm_naive_f64);
    FL_LEVEL_FN(fl_adam_f32); FL_LEVEL_FN(fl_adam_f64);
    FL_LEVEL_FN(fl_activation_f32); FL_LEVEL_FN(fl_activation_f64);
    FL_LEVEL_FN(fl_qrnn_packed_bytes); FL_LEVEL_FN(fl_qrnn_pack); FL_LEVEL_FN(fl_qrnn_work_bytes);
    FL_LEVEL_FN(fl_qrnn_forward); FL_LEVEL_FN(fl_qrnn_path);
} fl_level;
#undef FL_LEVEL_FN

/* Levels in the order dispatch.c tries them; FL_LEVEL_COUNT built in all. */
enum { FL_LEVEL_AVX512 = 0, FL_LEVEL_AVX2 = 1, FL_LEVEL_BASELINE = 2, FL_LEVEL_COUNT = 3 };

/* x86-64 builds with GCC >= 11 compile the AVX-512 and AVX2 levels
 * (#pragma GCC target("arch=x86-64-v4") needs it); elsewhere, and with
 * -DFASTLSTM_NO_DISPATCH, only the compiler's baseline. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && (__GNUC__ >= 11) \
    && !defined(FASTLSTM_NO_DISPATCH)
#define FL_X86_LEVELS 1
#else
#define FL_X86_LEVELS 0
#endif

extern const fl_level fl_level_avx512, fl_level_avx2, fl_level_baseline;
#endif
