/* Making, describing and freeing a model; the architecture's checks and its
 * parameter layout (fastlstm/spec.py's param_shapes, in the same order). */
#define _POSIX_C_SOURCE 200112L   /* posix_memalign */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "npz.h"   /* fl_fail */

/* The newest min_reader_version this library runs: the model features of
 * fastlstm 0.1.0 (io.py's _VERSIONED_FEATURES is empty). A Python version
 * that adds a feature there must add it here and raise this. */
#define READER_VERSION "0.1.0"

void *fl_model_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0 || bytes == SIZE_MAX || posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

size_t fl_mul(size_t a, size_t b)
{
    if (a == SIZE_MAX || b == SIZE_MAX) return SIZE_MAX;
    if (a != 0 && b > SIZE_MAX / a) return SIZE_MAX;
    return a * b;
}

/* ---------------------------------------------------------------- the kernels' level */

static pthread_once_t level_once = PTHREAD_ONCE_INIT;
static int level_status = FL_OK;
static char level_msg[200];

static void pick_level(void)
{
    /* as _kernels.pyx's _select_level: FASTLSTM_MAX_ISA, stripped and lowered */
    const char *env = getenv("FASTLSTM_MAX_ISA");
    char cap[32] = "";
    if (env) {
        while (*env && isspace((unsigned char)*env)) env++;
        size_t n = strlen(env);
        while (n > 0 && isspace((unsigned char)env[n - 1])) n--;
        if (n >= sizeof(cap)) n = sizeof(cap) - 1;
        for (size_t k = 0; k < n; k++) cap[k] = (char)tolower((unsigned char)env[k]);
        cap[n] = 0;
    }
    if (!cap[0]) {
        (void)fl_active_level();   /* the best the CPU supports */
        return;
    }
    for (int level = 0; fl_level_name(level); level++) {
        if (strcmp(cap, fl_level_name(level)) != 0) continue;
        if (fl_select_level(level) != FL_OK) {
            level_status = FL_ERR_LEVEL;
            snprintf(level_msg, sizeof(level_msg),
                     "FASTLSTM_MAX_ISA=%s asks for a level this CPU or build lacks", cap);
        }
        return;
    }
    level_status = FL_ERR_LEVEL;
    snprintf(level_msg, sizeof(level_msg),
             "FASTLSTM_MAX_ISA=%s is not a level; use one of avx512, avx2, baseline", cap);
}

int fl_model_level_init(char *err, size_t errlen)
{
    pthread_once(&level_once, pick_level);
    if (level_status != FL_OK) return fl_fail(level_status, err, errlen, "%s", level_msg);
    return FL_OK;
}

const char *fl_model_isa(void)
{
    pthread_once(&level_once, pick_level);
    return fl_level_name(fl_active_level());
}

const char *fl_model_reader_version(void) { return READER_VERSION; }

const char *fl_model_status_name(int status)
{
    switch (status) {
    case FL_OK: return "FL_OK";
    case FL_ERR_NOMEM: return "FL_ERR_NOMEM";
    case FL_ERR_SIZE: return "FL_ERR_SIZE";
    case FL_ERR_ARG: return "FL_ERR_ARG";
    case FL_ERR_LEVEL: return "FL_ERR_LEVEL";
    case FL_ERR_IO: return "FL_ERR_IO";
    case FL_ERR_FORMAT: return "FL_ERR_FORMAT";
    case FL_ERR_UNSUPPORTED: return "FL_ERR_UNSUPPORTED";
    case FL_ERR_INPUT: return "FL_ERR_INPUT";
    default: return "unknown";
    }
}

/* ---------------------------------------------------------------- the architecture */

static int gates(int cell) { return cell == FL_MODEL_CELL_GRU ? 3 : 4; }
static int peep_rows(int cell) { return cell == FL_MODEL_CELL_PEEPHOLE ? 3 : 0; }
static int dirs(const fl_arch *a) { return a->bidirectional ? 2 : 1; }

/* checked uint64 arithmetic: UINT64_MAX absorbs */
static uint64_t u_mul(uint64_t a, uint64_t b)
{
    if (a == UINT64_MAX || b == UINT64_MAX || (a != 0 && b > (UINT64_MAX - 1) / a)) return UINT64_MAX;
    return a * b;
}
static uint64_t u_add(uint64_t a, uint64_t b)
{
    if (a == UINT64_MAX || b == UINT64_MAX || b >= UINT64_MAX - a) return UINT64_MAX;
    return a + b;
}

uint64_t fl_arch_param_count(const fl_arch *a)
{
    uint64_t n = 0, in = (uint64_t)(a->embedding_dim ? a->embedding_dim : a->input_size);
    if (a->embedding_dim) n = u_mul((uint64_t)a->vocab_size, (uint64_t)a->embedding_dim);
    const uint64_t D = (uint64_t)dirs(a), G = (uint64_t)gates(a->cell);
    for (int k = 0; k < a->n_layers; k++) {
        uint64_t H = (uint64_t)a->hidden[k], GH = G * H;
        /* per direction: W_ih (GH, in), W_hh (GH, H), b_ih, b_hh (GH), extra (rows, H) */
        uint64_t per = u_add(u_add(u_mul(GH, in), u_mul(GH, H)),
                             2 * GH + (uint64_t)peep_rows(a->cell) * H);
        n = u_add(n, u_mul(D, per));
        in = D * H;
    }
    uint64_t K = (uint64_t)a->n_outputs, F = D * (uint64_t)a->hidden[a->n_layers - 1];
    return u_add(n, u_add(u_mul(K, F), K));
}

int fl_arch_check(const fl_arch *a, int status, char *err, size_t errlen)
{
    if (a->estimator != FL_MODEL_REGRESSOR && a->estimator != FL_MODEL_CLASSIFIER)
        return fl_fail(status, err, errlen, "estimator must be FL_MODEL_REGRESSOR or FL_MODEL_CLASSIFIER");
    if (a->dtype != FL_FLOAT32 && a->dtype != FL_FLOAT64)
        return fl_fail(status, err, errlen, "dtype must be FL_FLOAT32 or FL_FLOAT64");
    if (a->cell < FL_MODEL_CELL_LSTM || a->cell > FL_MODEL_CELL_GRU)
        return fl_fail(status, err, errlen, "unknown cell %d", a->cell);
    if (a->act != FL_MODEL_ACT_TANH && a->act != FL_MODEL_ACT_RELU)
        return fl_fail(status, err, errlen, "unknown activation %d", a->act);
    if (a->gate_act != FL_MODEL_GATE_SIGMOID && a->gate_act != FL_MODEL_GATE_HARD_SIGMOID)
        return fl_fail(status, err, errlen, "unknown gate activation %d", a->gate_act);
    if ((a->bidirectional != 0 && a->bidirectional != 1)
        || (a->sequence_output != 0 && a->sequence_output != 1))
        return fl_fail(status, err, errlen, "bidirectional and sequence_output must be 0 or 1");
    if (a->n_layers < 1 || a->n_layers > FL_MODEL_MAX_LAYERS)
        return fl_fail(status, err, errlen, "hidden_sizes must hold 1 to %d layers, got %d",
                       FL_MODEL_MAX_LAYERS, a->n_layers);
    for (int k = 0; k < a->n_layers; k++)
        if (a->hidden[k] < 1 || a->hidden[k] > FL_MAX_WIDTH)
            return fl_fail(status, err, errlen, "hidden size %d of layer %d is not in [1, %ld]",
                           a->hidden[k], k, FL_MAX_WIDTH);
    if (a->embedding_dim) {
        if (a->embedding_dim < 1 || a->embedding_dim > FL_MAX_WIDTH)
            return fl_fail(status, err, errlen, "embedding_dim must be in [1, %ld]", FL_MAX_WIDTH);
        if (a->vocab_size < 2)
            return fl_fail(status, err, errlen, "vocab_size must be >= 2 with an embedding");
        if (a->input_size != 0)
            return fl_fail(status, err, errlen, "input_size must be unset (0) with an embedding");
    } else {
        if (a->input_size < 1 || a->input_size > FL_MAX_WIDTH)
            return fl_fail(status, err, errlen, "input_size must be in [1, %ld]", FL_MAX_WIDTH);
        if (a->vocab_size != 0)
            return fl_fail(status, err, errlen, "vocab_size is only used with an embedding");
    }
    if (a->n_outputs < 1 || a->n_outputs > FL_MAX_WIDTH)
        return fl_fail(status, err, errlen, "n_outputs must be in [1, %ld]", FL_MAX_WIDTH);
    if (a->estimator == FL_MODEL_CLASSIFIER) {
        if (a->n_classes < 2)
            return fl_fail(status, err, errlen, "a classifier needs at least 2 classes");
        long k = a->n_classes == 2 ? 1 : a->n_classes;
        if (a->n_outputs != k)
            return fl_fail(status, err, errlen, "%ld classes need %ld network outputs, got %ld",
                           a->n_classes, k, a->n_outputs);
        if (a->sequence_output)
            return fl_fail(status, err, errlen, "a classifier network has no sequence output");
    } else if (a->n_classes != 0) {
        return fl_fail(status, err, errlen, "n_classes is for classifiers only");
    }
    if (fl_arch_param_count(a) > ((uint64_t)1 << 40))
        return fl_fail(status, err, errlen, "the architecture is too large");
    return FL_OK;
}

/* ---------------------------------------------------------------- building */

void fl_model_free(fl_model *m)
{
    if (!m) return;
    for (int k = 0; k < FL_MODEL_MAX_LAYERS * 2; k++) free(m->packs[k]);
    free(m->head_wt);
    free(m->params);
    free(m);
}

static size_t elem_size(int dtype) { return dtype == FL_FLOAT64 ? sizeof(double) : sizeof(float); }

int fl_model_build(const fl_arch *a, void *params, size_t n_params, fl_model **out,
                   char *err, size_t errlen)
{
    int st = fl_model_level_init(err, errlen);
    if (st != FL_OK) {
        free(params);
        return st;
    }
    fl_model *m = calloc(1, sizeof(*m));
    if (!m) {
        free(params);
        return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
    }
    m->a = *a;
    m->params = params;
    m->n_params = n_params;
    /* the layout of NetworkSpec.param_shapes() */
    const int D = dirs(a), G = gates(a->cell), f64 = a->dtype == FL_FLOAT64;
    size_t off = 0;
    if (a->embedding_dim) {
        m->off_embedding = 0;
        off = (size_t)a->vocab_size * (size_t)a->embedding_dim;
    }
    int in = (int)(a->embedding_dim ? a->embedding_dim : a->input_size);
    for (int k = 0; k < a->n_layers; k++) {
        const int H = a->hidden[k];
        const size_t GH = (size_t)G * (size_t)H;
        for (int d = 0; d < D; d++) {
            fl_dir_params *p = &m->dir[k * D + d];
            p->I = in;
            p->H = H;
            p->w_ih = off;
            off += GH * (size_t)in;
            p->w_hh = off;
            off += GH * (size_t)H;
            p->b_ih = off;
            off += GH;
            p->b_hh = off;
            off += GH;
            p->w_peep = off;
            off += (size_t)peep_rows(a->cell) * (size_t)H;
        }
        in = D * H;
    }
    const size_t K = (size_t)a->n_outputs, F = (size_t)in;
    m->off_head_w = off;
    off += K * F;
    m->off_head_b = off;
    off += K;
    if (off != n_params) {   /* (the callers checked the count: a bug if this fires) */
        fl_model_free(m);
        return fl_fail(FL_ERR_ARG, err, errlen, "parameter layout mismatch");
    }
    /* pack each layer-direction's weights once, as the Python layers do per parameter version */
    for (int k = 0; k < a->n_layers * D; k++) {
        const fl_dir_params *p = &m->dir[k];
        fl_rnn_desc desc = {0};
        desc.cell = a->cell;
        desc.act = a->act;
        desc.gate_act = a->gate_act;
        desc.T = 1;
        desc.B = 1;
        desc.I = p->I;
        desc.H = p->H;
        desc.n_threads = 1;
        size_t bytes = f64 ? fl_rnn_packed_bytes_f64(&desc) : fl_rnn_packed_bytes_f32(&desc);
        m->packs[k] = fl_model_alloc(bytes);
        if (!m->packs[k]) {
            fl_model_free(m);
            return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory packing the weights");
        }
        if (f64) {
            const double *P = params;
            st = fl_rnn_pack_f64(&desc, m->packs[k], P + p->w_ih, P + p->w_hh, P + p->b_ih,
                                 P + p->b_hh, a->cell == FL_MODEL_CELL_PEEPHOLE ? P + p->w_peep : NULL);
        } else {
            const float *P = params;
            st = fl_rnn_pack_f32(&desc, m->packs[k], P + p->w_ih, P + p->w_hh, P + p->b_ih,
                                 P + p->b_hh, a->cell == FL_MODEL_CELL_PEEPHOLE ? P + p->w_peep : NULL);
        }
        if (st != FL_OK) {
            fl_model_free(m);
            return fl_fail(st, err, errlen, "packing the weights failed (status %d)", st);
        }
    }
    /* head.weight (K, F) -> (F, K), the B operand of fl_gemm */
    m->head_wt = fl_model_alloc(fl_mul(K * F, elem_size(a->dtype)));
    if (!m->head_wt) {
        fl_model_free(m);
        return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
    }
    for (size_t k = 0; k < K; k++)
        for (size_t f = 0; f < F; f++) {
            if (f64) ((double *)m->head_wt)[f * K + k] = ((const double *)params)[m->off_head_w + k * F + f];
            else ((float *)m->head_wt)[f * K + k] = ((const float *)params)[m->off_head_w + k * F + f];
        }
    *out = m;
    return FL_OK;
}

static int finite_values(int dtype, const void *p, size_t n)
{
    return dtype == FL_FLOAT64 ? fl_all_finite_f64(p, (long)n) : fl_all_finite_f32(p, (long)n);
}

int fl_model_from_arrays(const fl_model_spec *spec, const void *params, size_t n_params,
                         fl_model **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!spec || !params || !out) return fl_fail(FL_ERR_ARG, err, errlen, "spec, params and out must not be NULL");
    fl_arch a;
    memset(&a, 0, sizeof(a));
    a.estimator = spec->estimator;
    a.dtype = spec->dtype;
    a.cell = spec->cell;
    a.act = spec->activation;
    a.gate_act = spec->gate_activation;
    a.bidirectional = spec->bidirectional;
    a.sequence_output = spec->sequence_output;
    a.n_layers = spec->n_layers;
    if (a.n_layers >= 1 && a.n_layers <= FL_MODEL_MAX_LAYERS) {
        if (!spec->hidden_sizes) return fl_fail(FL_ERR_ARG, err, errlen, "hidden_sizes is NULL");
        for (int k = 0; k < a.n_layers; k++) a.hidden[k] = spec->hidden_sizes[k];
    }
    a.input_size = spec->input_size;
    a.vocab_size = spec->vocab_size;
    a.embedding_dim = spec->embedding_dim;
    a.n_outputs = spec->n_outputs;
    a.n_classes = spec->n_classes;
    int st = fl_arch_check(&a, FL_ERR_ARG, err, errlen);
    if (st != FL_OK) return st;
    uint64_t want = fl_arch_param_count(&a);
    if ((uint64_t)n_params != want)
        return fl_fail(FL_ERR_SIZE, err, errlen, "params has %llu values, but this architecture has %llu",
                       (unsigned long long)n_params, (unsigned long long)want);
    size_t bytes = fl_mul(n_params, elem_size(a.dtype));
    if (n_params > (size_t)1 << 40 || !finite_values(a.dtype, params, n_params))
        return fl_fail(FL_ERR_INPUT, err, errlen, "params contains NaN or infinity");
    void *copy = fl_model_alloc(bytes);
    if (!copy) return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory for %llu parameters",
                              (unsigned long long)n_params);
    memcpy(copy, params, bytes);
    return fl_model_build(&a, copy, n_params, out, err, errlen);
}

/* ---------------------------------------------------------------- describing */

int fl_model_get_info(const fl_model *m, fl_model_info *info)
{
    if (!m || !info) return FL_ERR_ARG;
    const fl_arch *a = &m->a;
    memset(info, 0, sizeof(*info));
    info->estimator = a->estimator;
    info->dtype = a->dtype;
    info->takes_tokens = a->embedding_dim != 0;
    info->cell = a->cell;
    info->activation = a->act;
    info->gate_activation = a->gate_act;
    info->bidirectional = a->bidirectional;
    info->sequence_output = a->sequence_output;
    info->can_stream = !a->bidirectional;
    info->n_layers = a->n_layers;
    for (int k = 0; k < a->n_layers; k++) info->hidden_sizes[k] = a->hidden[k];
    info->input_size = a->embedding_dim ? 1 : a->input_size;
    info->vocab_size = a->vocab_size;
    info->embedding_dim = a->embedding_dim;
    info->n_outputs = a->estimator == FL_MODEL_CLASSIFIER ? a->n_classes : a->n_outputs;
    info->n_classes = a->estimator == FL_MODEL_CLASSIFIER ? a->n_classes : 0;
    info->n_params = (long)m->n_params;
    return FL_OK;
}

/* ---------------------------------------------------------------- stream states */

/* elements of one stream's state: sum of H_k, twice with a cell state */
static size_t state_elems_per_stream(const fl_model *m)
{
    size_t n = 0;
    for (int k = 0; k < m->a.n_layers; k++) n += (size_t)m->a.hidden[k];
    return m->a.cell == FL_MODEL_CELL_GRU ? n : 2 * n;
}

size_t fl_model_state_bytes(const fl_model *m, long n_streams)
{
    if (!m || m->a.bidirectional || n_streams < 1) return 0;
    size_t b = fl_mul(fl_mul((size_t)n_streams, state_elems_per_stream(m)), elem_size(m->a.dtype));
    return b == SIZE_MAX ? 0 : b;
}

int fl_model_state_reset(const fl_model *m, void *state, long n_streams, long stream,
                         char *err, size_t errlen)
{
    if (!m || !state) return fl_fail(FL_ERR_ARG, err, errlen, "model and state must not be NULL");
    size_t bytes = fl_model_state_bytes(m, n_streams);
    if (bytes == 0)
        return fl_fail(m->a.bidirectional ? FL_ERR_UNSUPPORTED : FL_ERR_SIZE, err, errlen,
                       m->a.bidirectional ? "a bidirectional model has no stream state"
                                          : "n_streams must be >= 1");
    if (stream == -1) {
        memset(state, 0, bytes);
        return FL_OK;
    }
    if (stream < 0 || stream >= n_streams)
        return fl_fail(FL_ERR_ARG, err, errlen, "stream %ld is not in [0, %ld)", stream, n_streams);
    const size_t es = elem_size(m->a.dtype);
    const int nblocks = m->a.cell == FL_MODEL_CELL_GRU ? 1 : 2;
    unsigned char *p = state;
    for (int blk = 0; blk < nblocks; blk++)
        for (int k = 0; k < m->a.n_layers; k++) {
            size_t H = (size_t)m->a.hidden[k];
            memset(p + (size_t)stream * H * es, 0, H * es);
            p += (size_t)n_streams * H * es;
        }
    return FL_OK;
}
