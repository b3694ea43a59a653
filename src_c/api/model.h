/* The C API's model: what model_file.c reads, model.c builds and
 * model_run.c runs. Internal; the public header is fastlstm_model.h. */
#ifndef FL_API_MODEL_H
#define FL_API_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "fastlstm.h"
#include "fastlstm_model.h"

#if FL_OK != 0 || FL_ERR_NOMEM != -1 || FL_ERR_SIZE != -2 || FL_ERR_ARG != -3 || FL_ERR_LEVEL != -4
#error "fastlstm_model.h and fastlstm.h disagree on status codes"
#endif

/* fastlstm/_limits.py */
#define FL_MAX_WIDTH (1L << 24)      /* input_size, hidden sizes, embedding_dim, n_outputs */
#define FL_MAX_THREADS 4096
#define FL_PREDICT_CHUNK 2048        /* rows per forward, as fastlstm/_training.py's PREDICT_CHUNK */

/* An architecture (fastlstm.spec.NetworkSpec) plus what the estimator does
 * with the network's outputs. */
typedef struct {
    int estimator;          /* FL_MODEL_REGRESSOR / FL_MODEL_CLASSIFIER */
    int dtype;              /* FL_FLOAT32 / FL_FLOAT64 */
    int cell, act, gate_act, bidirectional, sequence_output;
    int n_layers;
    int hidden[FL_MODEL_MAX_LAYERS];
    long input_size;        /* 0 with an embedding */
    long vocab_size, embedding_dim;   /* 0 without */
    long n_outputs;         /* network outputs K */
    long n_classes;         /* classifier */
} fl_arch;

/* One layer-direction's parameters: offsets (in elements) into params. */
typedef struct {
    int I, H;
    size_t w_ih, w_hh, b_ih, b_hh, w_peep;   /* w_peep: peephole only */
} fl_dir_params;

struct fl_model {
    fl_arch a;
    size_t n_params;
    void *params;           /* (n_params) of the dtype, 64-byte aligned, owned */
    size_t off_embedding, off_head_w, off_head_b;
    fl_dir_params dir[FL_MODEL_MAX_LAYERS * 2];   /* index layer * D + direction */
    void *packs[FL_MODEL_MAX_LAYERS * 2];         /* fl_rnn_pack'ed forward weights, owned */
    void *head_wt;          /* (F, K) head.weight transposed, for fl_gemm, owned */
};

/* The parameter count of NetworkSpec.param_count(), or UINT64_MAX when it
 * would overflow; the architecture's sizes must already be in range. */
uint64_t fl_arch_param_count(const fl_arch *a);

/* Check an architecture's ranges and combinations; `status` is what a bad
 * one returns (FL_ERR_FORMAT for a file, FL_ERR_ARG for a caller's spec). */
int fl_arch_check(const fl_arch *a, int status, char *err, size_t errlen);

/* Make a model of a checked architecture around params (n_params values,
 * 64-byte aligned, finite; ownership passes to the model, or the array is
 * freed on failure). */
int fl_model_build(const fl_arch *a, void *params, size_t n_params, fl_model **out,
                   char *err, size_t errlen);

/* The kernels' level, picked once per process (FASTLSTM_MAX_ISA honoured). */
int fl_model_level_init(char *err, size_t errlen);

/* 64-byte aligned memory (free() releases it); NULL for 0 bytes or failure. */
void *fl_model_alloc(size_t bytes);

/* a * b, or SIZE_MAX on overflow (SIZE_MAX stays SIZE_MAX) */
size_t fl_mul(size_t a, size_t b);

#endif
