/* Loading a model file (fastlstm/io.py's format) from an untrusted source.
 *
 * The checks follow io.py's read_payload / _build, in a cheap-first order:
 *   1. the container (npz.c): members, sizes, names; format_version == 1;
 *   2. the config: strict JSON (json.c); a quantized model and
 *      min_reader_version (before the "arrays" table, whose dtypes a newer
 *      file may take from beyond this reader's); the "arrays" table against
 *      the members, the estimator, the network spec, and the params array
 *      it declares against the spec's parameter count;
 *   3. the estimator's entries: params (the architecture arguments) against
 *      the network, fitted values, the regressor's outputs or the
 *      classifier's classes;
 *   4. every declared array: header against the config, CRC-32, float
 *      values finite; the params go straight into the model's buffer.
 * Training-only entries (optimizer settings, a saved optimizer state) are
 * not interpreted; their arrays are still checked as in 4.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "model.h"
#include "npz.h"

#define MAX_CONFIG_BYTES (1u << 20)            /* io.py's MAX_CONFIG_BYTES */
#define MAX_TOTAL_BYTES ((uint64_t)1 << 32)    /* io.py's MAX_TOTAL_BYTES */
#define FORMAT_NAME "fastlstm-model"
#define FORMAT_VERSION 1

#define BAD(...) fl_fail(FL_ERR_FORMAT, err, errlen, __VA_ARGS__)

/* ---------------------------------------------------------------- JSON value kinds (_validation.py) */

static int is_int(const fl_json_node *v) { return v && v->type == FL_J_INT; }   /* not bool */
static int is_small_int(const fl_json_node *v) { return is_int(v) && !v->big; }
static int is_real(const fl_json_node *v) { return v && (v->type == FL_J_INT || v->type == FL_J_FLOAT); }
static int is_null(const fl_json_node *v) { return v && v->type == FL_J_NULL; }
static int is_bool(const fl_json_node *v) { return v && v->type == FL_J_BOOL; }
static int is_str(const fl_json_node *v, const char *s)
{
    return v && v->type == FL_J_STR && v->slen == strlen(s) && memcmp(v->s, s, v->slen) == 0;
}

/* an int in [lo, hi] */
static int int_in(const fl_json_node *v, int64_t lo, int64_t hi)
{
    return is_small_int(v) && v->i >= lo && v->i <= hi;
}

/* the index of v's string in names[0..n), or -1 */
static int choice(const fl_json_node *v, const char *const *names, int n)
{
    for (int k = 0; k < n; k++)
        if (is_str(v, names[k])) return k;
    return -1;
}

static const char *const CELLS[] = {"lstm", "peephole", "cifg", "gru"};   /* spec.py's CELLS */
static const char *const ACTS[] = {"tanh", "relu"};
static const char *const GATES[] = {"sigmoid", "hard_sigmoid"};
static const char *const DTYPES[] = {"float32", "float64"};

/* ---------------------------------------------------------------- versions */

/* "X.Y.Z" (a suffix after Z is ignored), 1 to 6 digits each */
static int version_tuple(const fl_json_node *v, long out[3])
{
    if (!v || v->type != FL_J_STR) return 0;
    const char *p = v->s, *end = v->s + v->slen;
    for (int k = 0; k < 3; k++) {
        long x = 0;
        int nd = 0;
        while (p < end && *p >= '0' && *p <= '9' && nd < 7) {
            x = x * 10 + (*p - '0');
            p++;
            nd++;
        }
        if (nd < 1 || nd > 6) return 0;
        out[k] = x;
        if (k < 2) {
            if (p >= end || *p != '.') return 0;
            p++;
        }
    }
    return 1;
}

static int check_reader_version(const fl_json *j, const fl_json_node *root, char *err, size_t errlen)
{
    const fl_json_node *need = fl_json_get(j, root, "min_reader_version");
    long want[3] = {0, 1, 0}, have[3] = {0, 1, 0};
    fl_json_node reader = {0};
    reader.type = FL_J_STR;
    reader.s = fl_model_reader_version();
    reader.slen = strlen(reader.s);
    version_tuple(&reader, have);
    if (need && !version_tuple(need, want))
        return BAD("min_reader_version must be a version string like '0.1.0'");
    for (int k = 0; k < 3; k++) {
        if (want[k] < have[k]) break;
        if (want[k] > have[k]) {
            const fl_json_node *w = fl_json_get(j, root, "fastlstm_version");
            return fl_fail(FL_ERR_UNSUPPORTED, err, errlen,
                           "this model file needs fastlstm >= %.*s (it was written by fastlstm %.*s); "
                           "this C library reads files for fastlstm %s: upgrade fastlstm to load it",
                           (int)(need->slen > 40 ? 40 : need->slen), need->s,
                           w && w->type == FL_J_STR ? (int)(w->slen > 40 ? 40 : w->slen) : 20,
                           w && w->type == FL_J_STR ? w->s : "an unknown version", fl_model_reader_version());
        }
    }
    return FL_OK;
}

/* A quantized model (io.py: fitted "quant_dtype", since 0.2.0) computes with
 * int8 or bfloat16 weights that this library has no runner for: refused by
 * name, ahead of the version check that would refuse it too. */
static int check_not_quantized(const fl_json *j, const fl_json_node *root, char *err, size_t errlen)
{
    const fl_json_node *f = fl_json_get(j, root, "fitted");
    const fl_json_node *q = f && f->type == FL_J_OBJ ? fl_json_get(j, f, "quant_dtype") : NULL;
    if (!q || is_null(q)) return FL_OK;
    return fl_fail(FL_ERR_UNSUPPORTED, err, errlen,
                   "this model file holds a quantized model (%.*s weights), which the C API "
                   "does not run: save the float32 model it was quantized from for it",
                   q->type == FL_J_STR ? (int)(q->slen > 20 ? 20 : q->slen) : 7,
                   q->type == FL_J_STR ? q->s : "unknown");
}

/* ---------------------------------------------------------------- the network spec */

/* NetworkSpec.from_json(partial=True): keys the file lacks take their
 * defaults, keys this version does not know are ignored (a newer writer's). */
static int read_spec(const fl_json *j, const fl_json_node *net, fl_arch *a, double *dropout,
                     char *err, size_t errlen)
{
    if (!net || net->type != FL_J_OBJ)
        return BAD("invalid network spec in model file: it must be an object");
    const fl_json_node *input = fl_json_get(j, net, "input_size"),
                       *hidden = fl_json_get(j, net, "hidden_sizes"),
                       *nout = fl_json_get(j, net, "n_outputs");
    if (!input || !hidden || !nout)
        return BAD("invalid network spec in model file: it needs at least the keys hidden_sizes, "
                   "input_size, n_outputs");
    const fl_json_node *v;
    if (hidden->type != FL_J_ARR || hidden->count < 1 || hidden->count > FL_MODEL_MAX_LAYERS)
        return BAD("invalid network spec in model file: hidden_sizes must be a list of 1 to %d ints",
                   FL_MODEL_MAX_LAYERS);
    a->n_layers = hidden->count;
    for (int k = 0; k < hidden->count; k++) {
        v = fl_json_child(j, hidden, k);
        if (!int_in(v, 1, FL_MAX_WIDTH))
            return BAD("invalid network spec in model file: hidden_sizes must hold ints in [1, %ld]",
                       FL_MAX_WIDTH);
        a->hidden[k] = (int)v->i;
    }
    if (is_null(input)) a->input_size = 0;
    else if (int_in(input, 1, FL_MAX_WIDTH)) a->input_size = (long)input->i;
    else return BAD("invalid network spec in model file: input_size must be an int in [1, %ld] or None",
                    FL_MAX_WIDTH);
    if (!int_in(nout, 1, FL_MAX_WIDTH))
        return BAD("invalid network spec in model file: n_outputs must be an int in [1, %ld]",
                   FL_MAX_WIDTH);
    a->n_outputs = (long)nout->i;
    v = fl_json_get(j, net, "vocab_size");
    if (!v || is_null(v)) a->vocab_size = 0;
    else if (is_int(v) && (v->big || v->i > ((int64_t)1 << 40)) && v->i >= 0)
        return BAD("invalid network spec in model file: vocab_size is too large");
    else if (int_in(v, 2, (int64_t)1 << 40)) a->vocab_size = (long)v->i;
    else return BAD("invalid network spec in model file: vocab_size must be an int >= 2 or None");
    v = fl_json_get(j, net, "embedding_dim");
    if (!v || is_null(v)) a->embedding_dim = 0;
    else if (int_in(v, 1, FL_MAX_WIDTH)) a->embedding_dim = (long)v->i;
    else return BAD("invalid network spec in model file: embedding_dim must be an int in [1, %ld] "
                    "or None", FL_MAX_WIDTH);
    v = fl_json_get(j, net, "cell");
    a->cell = v ? choice(v, CELLS, 4) : 0;
    if (a->cell < 0) return BAD("invalid network spec in model file: unknown cell (this reader knows "
                                "lstm, peephole, cifg, gru)");
    v = fl_json_get(j, net, "activation");
    a->act = v ? choice(v, ACTS, 2) : 0;
    v = fl_json_get(j, net, "gate_activation");
    a->gate_act = v ? choice(v, GATES, 2) : 0;
    if (a->act < 0 || a->gate_act < 0)
        return BAD("invalid network spec in model file: unknown activation or gate_activation");
    v = fl_json_get(j, net, "bidirectional");
    if (v && !is_bool(v)) return BAD("invalid network spec in model file: bidirectional must be True or False");
    a->bidirectional = v ? (int)v->i : 0;
    v = fl_json_get(j, net, "sequence_output");
    if (v && !is_bool(v)) return BAD("invalid network spec in model file: sequence_output must be True or False");
    a->sequence_output = v ? (int)v->i : 0;
    v = fl_json_get(j, net, "dropout");
    if (v && (!is_real(v) || !v->finite || v->f < 0.0 || v->f >= 1.0))
        return BAD("invalid network spec in model file: dropout must be a number in [0, 1)");
    *dropout = v ? v->f : 0.0;
    v = fl_json_get(j, net, "dtype");
    a->dtype = v ? choice(v, DTYPES, 2) : FL_FLOAT32;
    if (a->dtype < 0) return BAD("invalid network spec in model file: dtype must be 'float32' or 'float64'");
    if (a->embedding_dim == 0 && a->input_size == 0)
        return BAD("invalid network spec in model file: input_size must be an int without embedding_dim");
    if (a->embedding_dim == 0 && a->vocab_size != 0)
        return BAD("invalid network spec in model file: vocab_size is only used with embedding_dim");
    if (a->embedding_dim != 0 && a->vocab_size == 0)
        return BAD("invalid network spec in model file: vocab_size must be an int >= 2 with embedding_dim");
    if (a->embedding_dim != 0 && a->input_size != 0)
        return BAD("invalid network spec in model file: input_size must be None with embedding_dim");
    return FL_OK;
}

/* ---------------------------------------------------------------- the estimator's entries */

/* The constructor arguments that shape the network must give the stored
 * network (io.py's _build compares _network_spec(params, fitted) with it);
 * arguments the file lacks take the constructors' defaults. */
static int check_params(const fl_json *j, const fl_json_node *params, const fl_arch *a,
                        double dropout, char *err, size_t errlen)
{
    const fl_json_node *v;
    const char *bad = NULL;
    /* hidden_sizes: default (50,); an int means (int,) */
    v = fl_json_get(j, params, "hidden_sizes");
    if (!v) {
        if (a->n_layers != 1 || a->hidden[0] != 50) bad = "hidden_sizes";
    } else if (is_int(v)) {
        if (!int_in(v, 1, FL_MAX_WIDTH)) return BAD("invalid params in model file: hidden_sizes");
        if (a->n_layers != 1 || a->hidden[0] != v->i) bad = "hidden_sizes";
    } else if (v->type == FL_J_ARR && v->count >= 1 && v->count <= FL_MODEL_MAX_LAYERS) {
        for (int k = 0; k < v->count; k++)
            if (!int_in(fl_json_child(j, v, k), 1, FL_MAX_WIDTH))
                return BAD("invalid params in model file: hidden_sizes");
        if (v->count != a->n_layers) bad = "hidden_sizes";
        for (int k = 0; !bad && k < v->count; k++)
            if (fl_json_child(j, v, k)->i != a->hidden[k]) bad = "hidden_sizes";
    } else {
        return BAD("invalid params in model file: hidden_sizes");
    }
    struct { const char *key; const char *const *names; int n, want; } choices[] = {
        {"cell", CELLS, 4, a->cell}, {"activation", ACTS, 2, a->act},
        {"gate_activation", GATES, 2, a->gate_act}, {"dtype", DTYPES, 2, a->dtype},
    };
    for (size_t c = 0; c < sizeof(choices) / sizeof(choices[0]); c++) {
        v = fl_json_get(j, params, choices[c].key);
        int got = v ? choice(v, choices[c].names, choices[c].n) : 0;
        if (got < 0) return BAD("invalid params in model file: %s", choices[c].key);
        if (got != choices[c].want && !bad) bad = choices[c].key;
    }
    v = fl_json_get(j, params, "bidirectional");
    if (v && !is_bool(v)) return BAD("invalid params in model file: bidirectional");
    if ((v ? (int)v->i : 0) != a->bidirectional && !bad) bad = "bidirectional";
    v = fl_json_get(j, params, "dropout");
    if (v && (!is_real(v) || !v->finite || v->f < 0.0 || v->f >= 1.0))
        return BAD("invalid params in model file: dropout");
    if ((v ? v->f : 0.0) != dropout && !bad) bad = "dropout";
    v = fl_json_get(j, params, "embedding_dim");
    if (v && !is_null(v) && !int_in(v, 1, FL_MAX_WIDTH))
        return BAD("invalid params in model file: embedding_dim");
    long emb = v && !is_null(v) ? (long)v->i : 0;
    if (emb != a->embedding_dim && !bad) bad = "embedding_dim";
    v = fl_json_get(j, params, "vocab_size");
    if (v && !is_null(v)) {
        if (!is_int(v) || (!v->big && v->i < 2)) return BAD("invalid params in model file: vocab_size");
        if (!emb)
            return BAD("invalid params in model file: vocab_size is only used with embedding_dim");
        if ((v->big || v->i != a->vocab_size) && !bad) bad = "vocab_size";
    }
    if (bad)
        return BAD("the network spec in the model file does not match its params and fitted "
                   "values in %s", bad);
    return FL_OK;
}

/* a list of finite numbers (at most max_len of them when max_len >= 0) */
static int finite_list(const fl_json *j, const fl_json_node *v, long max_len)
{
    if (!v || v->type != FL_J_ARR || (max_len >= 0 && v->count > max_len)) return 0;
    for (int k = 0; k < v->count; k++) {
        const fl_json_node *x = fl_json_child(j, v, k);
        if (!is_real(x) || !x->finite) return 0;
    }
    return 1;
}

/* io.py's _check_common_fitted, and n_features_in_ against the network */
static int check_fitted(const fl_json *j, const fl_json_node *fitted, const fl_arch *a,
                        char *err, size_t errlen)
{
    const fl_json_node *nf = fl_json_get(j, fitted, "n_features_in_");
    if (!is_int(nf) || (!nf->big && nf->i < 1))
        return BAD("fitted n_features_in_ must be an int >= 1");
    if (a->embedding_dim && (nf->big || nf->i != 1))
        return BAD("n_features_in_ must be 1 with token-id input");
    if (!a->embedding_dim && (nf->big || nf->i != a->input_size))
        return BAD("the network spec in the model file does not match its params and fitted "
                   "values in input_size");
    const fl_json_node *n_iter = fl_json_get(j, fitted, "n_iter_");
    if (!is_int(n_iter) || (!n_iter->big && n_iter->i < 0) || (n_iter->big && n_iter->f < 0))
        return BAD("fitted n_iter_ must be an int >= 0");
    const fl_json_node *lc = fl_json_get(j, fitted, "loss_curve_");
    if (!finite_list(j, lc, -1) || n_iter->big || lc->count != n_iter->i)
        return BAD("fitted loss_curve_ must be a list of n_iter_ finite numbers");
    const fl_json_node *vs = fl_json_get(j, fitted, "validation_scores_");
    if (!vs || (!is_null(vs) && !finite_list(j, vs, (long)n_iter->i)))
        return BAD("fitted validation_scores_ must be null or a list of finite numbers");
    const fl_json_node *bl = fl_json_get(j, fitted, "best_loss_");
    if (!is_real(bl) || !bl->finite) return BAD("fitted best_loss_ must be a finite number");
    return FL_OK;
}

static int check_regressor(const fl_json *j, const fl_json_node *fitted, fl_arch *a,
                           char *err, size_t errlen)
{
    const fl_json_node *k = fl_json_get(j, fitted, "n_outputs_"), *nd = fl_json_get(j, fitted, "y_ndim"),
                       *loss = fl_json_get(j, fitted, "loss");
    if (!is_small_int(k) || k->i != a->n_outputs) return BAD("fitted n_outputs_ does not match the network");
    if (!int_in(nd, 1, 3) || (nd->i == 1 && k->i != 1) || ((nd->i == 3) != a->sequence_output))
        return BAD("fitted y_ndim is inconsistent with the network");
    static const char *const losses[] = {"mse", "mae", "huber"};
    if (choice(loss, losses, 3) < 0) return BAD("fitted loss is not one of ('mse', 'mae', 'huber')");
    return FL_OK;
}

/* classes: 1-D, at least 2, sorted and unique (np.array_equal(np.unique(c), c)) */
static int compare_items(const fl_npy *npy, const unsigned char *x, const unsigned char *y)
{
    switch (npy->type) {
    case FL_NPY_F4: { float a, b; memcpy(&a, x, 4); memcpy(&b, y, 4); return (a > b) - (a < b); }
    case FL_NPY_F8: { double a, b; memcpy(&a, x, 8); memcpy(&b, y, 8); return (a > b) - (a < b); }
    case FL_NPY_I8: { int64_t a, b; memcpy(&a, x, 8); memcpy(&b, y, 8); return (a > b) - (a < b); }
    case FL_NPY_I4: { int32_t a, b; memcpy(&a, x, 4); memcpy(&b, y, 4); return (a > b) - (a < b); }
    case FL_NPY_U1: return (x[0] > y[0]) - (x[0] < y[0]);
    case FL_NPY_B1: return ((x[0] != 0) > (y[0] != 0)) - ((x[0] != 0) < (y[0] != 0));
    default:   /* UTF-32 code points, NUL-padded: numpy's string order */
        for (uint64_t k = 0; k < npy->itemsize; k += 4) {
            uint32_t a, b;
            memcpy(&a, x + k, 4);
            memcpy(&b, y + k, 4);
            if (a != b) return (a > b) - (a < b);
        }
        return 0;
    }
}

/* ---------------------------------------------------------------- the container's arrays */

/* a config dtype string as a .npy type; 0 if not allowed (io.py's _ALLOWED_DTYPES) */
static int config_dtype(const fl_json_node *v, fl_npy *t)
{
    static const struct { const char *name; int type; uint64_t size; } table[] = {
        {"float32", FL_NPY_F4, 4}, {"float64", FL_NPY_F8, 8}, {"int64", FL_NPY_I8, 8},
        {"int32", FL_NPY_I4, 4}, {"uint8", FL_NPY_U1, 1}, {"bool", FL_NPY_B1, 1},
    };
    memset(t, 0, sizeof(*t));
    if (!v || v->type != FL_J_STR) return 0;
    for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++)
        if (is_str(v, table[k].name)) {
            t->type = table[k].type;
            t->itemsize = table[k].size;
            return 1;
        }
    /* "<U1" .. "<U9999" */
    if (v->slen >= 3 && v->slen <= 6 && v->s[0] == '<' && v->s[1] == 'U' && v->s[2] >= '1' && v->s[2] <= '9') {
        int n = 0;
        for (size_t k = 2; k < v->slen; k++) {
            if (v->s[k] < '0' || v->s[k] > '9') return 0;
            n = n * 10 + (v->s[k] - '0');
        }
        t->type = FL_NPY_U;
        t->str_len = n;
        t->itemsize = 4 * (uint64_t)n;
        return 1;
    }
    return 0;
}

typedef struct {
    fl_npy want;     /* declared dtype and shape (ndim, shape) */
    int member;      /* index in the zip */
} declared;

static int good_array_name(const char *s, size_t n)
{
    if (n < 1 || n > 32 || !(s[0] >= 'a' && s[0] <= 'z')) return 0;
    for (size_t k = 1; k < n; k++)
        if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9') || s[k] == '_')) return 0;
    return 1;
}

/* the "arrays" table: one entry per member but config and format_version,
 * each {"shape": [<= 4 ints in [0, 2^40)], "dtype": allowed}; fills decl in
 * member order */
static int read_arrays_table(const fl_json *j, const fl_json_node *root, const fl_zip *z,
                             declared *decl, char *err, size_t errlen)
{
    const fl_json_node *arrays = fl_json_get(j, root, "arrays");
    if (!arrays || arrays->type != FL_J_OBJ) return BAD("config must list its arrays under 'arrays'");
    int found[FL_NPZ_MAX_MEMBERS] = {0};
    uint64_t total = 0;
    for (int c = 0; c < arrays->count; c++) {
        const fl_json_node *e = fl_json_child(j, arrays, c);
        if (!good_array_name(e->key, e->klen) || strcmp(e->key, "config") == 0
            || strcmp(e->key, "format_version") == 0 || strlen(e->key) != e->klen)
            return BAD("invalid array name in config");
        int k = fl_zip_find(z, e->key);
        if (k < 0) return BAD("arrays in the file do not match the config: missing ['%s']", e->key);
        const fl_json_node *shape = fl_json_get(j, e, "shape"), *dtype = fl_json_get(j, e, "dtype");
        if (e->type != FL_J_OBJ || e->count != 2 || !shape || !dtype)
            return BAD("config entry for array '%s' must have shape and dtype", e->key);
        fl_npy *w = &decl[k].want;
        if (!config_dtype(dtype, w))
            return BAD("array dtype of '%s' is not allowed in a model file", e->key);
        if (shape->type != FL_J_ARR || shape->count > 4)
            return BAD("config shape of array '%s' is invalid", e->key);
        uint64_t count = 1;   /* saturating: a 4-D shape of 2^40s overflows 64 bits */
        w->ndim = shape->count;
        for (int d = 0; d < shape->count; d++) {
            const fl_json_node *s = fl_json_child(j, shape, d);
            if (!int_in(s, 0, ((int64_t)1 << 40) - 1))
                return BAD("config shape of array '%s' is invalid", e->key);
            w->shape[d] = (uint64_t)s->i;
        }
        for (int d = 0; d < w->ndim; d++) {
            if (w->shape[d] == 0) { count = 0; break; }
            count = count > MAX_TOTAL_BYTES ? count : count * w->shape[d];
        }
        uint64_t bytes = count > MAX_TOTAL_BYTES ? MAX_TOTAL_BYTES + 1 : count * w->itemsize;
        total += bytes;
        if (total > MAX_TOTAL_BYTES)
            return BAD("model file declares more than %llu bytes of arrays",
                       (unsigned long long)MAX_TOTAL_BYTES);
        decl[k].member = k;
        found[k] = 1;
    }
    for (int k = 0; k < z->n; k++)
        if (!found[k] && strcmp(z->m[k].name, "config") != 0 && strcmp(z->m[k].name, "format_version") != 0)
            return BAD("arrays in the file do not match the config: unexpected ['%s']", z->m[k].name);
    return FL_OK;
}

/* the member's header must be what the config declares */
static int header_as_declared(const fl_src *s, const fl_zip *z, int k, const fl_npy *want,
                              fl_npy *got, char *err, size_t errlen)
{
    int st = fl_npz_header(s, z, k, got, err, errlen);
    if (st != FL_OK) return st;
    char a[16], b[16];
    if (got->type != want->type || (got->type == FL_NPY_U && got->str_len != want->str_len))
        return BAD("array '%s' has dtype %s, but the config says %s", z->m[k].name,
                   fl_npy_type_name(got, a, sizeof(a)), fl_npy_type_name(want, b, sizeof(b)));
    int same = got->ndim == want->ndim;
    for (int d = 0; same && d < got->ndim; d++) same = got->shape[d] == want->shape[d];
    if (!same) return BAD("array '%s' has a shape other than the config says", z->m[k].name);
    return FL_OK;
}

/* ---------------------------------------------------------------- the whole file */

static int load_source(const fl_src *s, fl_model **out, char *err, size_t errlen)
{
    fl_zip z;
    fl_npy npy;
    fl_json j;
    declared decl[FL_NPZ_MAX_MEMBERS];
    unsigned char *cfg = NULL, *classes = NULL;
    void *params = NULL;
    memset(&j, 0, sizeof(j));
    memset(decl, 0, sizeof(decl));
    int st = fl_zip_open(s, &z, err, errlen);
    if (st != FL_OK) return st;

    /* 1. format_version: an integer scalar equal to FORMAT_VERSION */
    int k = fl_zip_find(&z, "format_version");
    if (k < 0) return BAD("model file is missing the array 'format_version'");
    if ((st = fl_npz_header(s, &z, k, &npy, err, errlen)) != FL_OK) return st;
    if (npy.ndim != 0 || (npy.type != FL_NPY_I8 && npy.type != FL_NPY_I4 && npy.type != FL_NPY_U1))
        return BAD("format_version must be an integer scalar");
    unsigned char vb[8] = {0};
    if ((st = fl_npz_data(s, &z, k, &npy, vb, 0, err, errlen)) != FL_OK) return st;
    int64_t version = npy.type == FL_NPY_U1 ? vb[0]
                    : npy.type == FL_NPY_I4 ? (int64_t)(int32_t)((uint32_t)vb[0] | (uint32_t)vb[1] << 8
                                                                 | (uint32_t)vb[2] << 16 | (uint32_t)vb[3] << 24)
                    : (int64_t)((uint64_t)vb[0] | (uint64_t)vb[1] << 8 | (uint64_t)vb[2] << 16
                                | (uint64_t)vb[3] << 24 | (uint64_t)vb[4] << 32 | (uint64_t)vb[5] << 40
                                | (uint64_t)vb[6] << 48 | (uint64_t)vb[7] << 56);
    if (version != FORMAT_VERSION)
        return fl_fail(version > FORMAT_VERSION ? FL_ERR_UNSUPPORTED : FL_ERR_FORMAT, err, errlen,
                       "unsupported model format version %lld; this reader reads version %d%s",
                       (long long)version, FORMAT_VERSION,
                       version > FORMAT_VERSION ? " (the file is from a newer fastlstm: upgrade "
                                                  "fastlstm to load it)" : "");

    /* 2. the config: 1-D uint8, at most 1 MiB of strict JSON */
    k = fl_zip_find(&z, "config");
    if (k < 0) return BAD("model file is missing the array 'config'");
    if ((st = fl_npz_header(s, &z, k, &npy, err, errlen)) != FL_OK) return st;
    if (npy.type != FL_NPY_U1) return BAD("array 'config' must be uint8");
    if (npy.nbytes > MAX_CONFIG_BYTES) return BAD("array 'config' is too large (%llu bytes)",
                                                 (unsigned long long)npy.nbytes);
    if (npy.ndim != 1) return BAD("config must be a 1-D uint8 array");
    cfg = malloc((size_t)npy.nbytes + 1);
    if (!cfg) return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
    if ((st = fl_npz_data(s, &z, k, &npy, cfg, 0, err, errlen)) != FL_OK) goto done;
    if ((st = fl_json_parse(&j, (const char *)cfg, (size_t)npy.nbytes, err, errlen)) != FL_OK) goto done;
    const fl_json_node *root = &j.nodes[0];
    const fl_json_node *v;
    if (root->type != FL_J_OBJ) { st = BAD("config must be a JSON object"); goto done; }
    if (!is_str(fl_json_get(&j, root, "format"), FORMAT_NAME)) {
        st = BAD("config format must be '" FORMAT_NAME "'");
        goto done;
    }
    v = fl_json_get(&j, root, "format_version");
    if (!is_small_int(v) || v->i != version) {
        st = BAD("config format_version does not match the file's format_version");
        goto done;
    }
    if ((st = check_not_quantized(&j, root, err, errlen)) != FL_OK) goto done;
    if ((st = check_reader_version(&j, root, err, errlen)) != FL_OK) goto done;
    if ((st = read_arrays_table(&j, root, &z, decl, err, errlen)) != FL_OK) goto done;

    /* the estimator, the architecture and its params array */
    fl_arch a;
    double dropout = 0;
    memset(&a, 0, sizeof(a));
    v = fl_json_get(&j, root, "estimator");
    if (is_str(v, "LSTMRegressor")) {
        a.estimator = FL_MODEL_REGRESSOR;
    } else if (is_str(v, "LSTMClassifier")) {
        a.estimator = FL_MODEL_CLASSIFIER;
    } else if (is_str(v, "LSTMForecaster")) {
        st = fl_fail(FL_ERR_UNSUPPORTED, err, errlen,
                     "LSTMForecaster files are not supported by the C API: its predict() "
                     "standardises (and differences) a history and unscales the forecast in Python");
        goto done;
    } else {
        st = BAD("unknown estimator in model file");
        goto done;
    }
    if ((st = read_spec(&j, fl_json_get(&j, root, "network"), &a, &dropout, err, errlen)) != FL_OK)
        goto done;
    const uint64_t n_params = fl_arch_param_count(&a);
    const uint64_t isz = a.dtype == FL_FLOAT64 ? 8 : 4;
    int kp = fl_zip_find(&z, "params");
    if (kp < 0 || !decl[kp].want.itemsize || decl[kp].want.ndim != 1 || decl[kp].want.shape[0] != n_params
        || decl[kp].want.type != (a.dtype == FL_FLOAT64 ? FL_NPY_F8 : FL_NPY_F4)) {
        st = BAD("the config declares params that do not fit its network: the architecture in "
                 "the config has %llu %s values", (unsigned long long)n_params, DTYPES[a.dtype]);
        goto done;
    }

    /* 3. the estimator's entries */
    const fl_json_node *jp = fl_json_get(&j, root, "params"), *jf = fl_json_get(&j, root, "fitted");
    if (!jp || jp->type != FL_J_OBJ || !jf || jf->type != FL_J_OBJ) {
        st = BAD("model config needs the objects 'params', 'fitted' and 'network'");
        goto done;
    }
    for (int c = 0; c < jp->count; c++)
        if (fl_json_child(&j, jp, c)->type == FL_J_OBJ) {
            st = BAD("model config param '%s' must not be an object", fl_json_child(&j, jp, c)->key);
            goto done;
        }
    if ((st = check_params(&j, jp, &a, dropout, err, errlen)) != FL_OK) goto done;
    if ((st = check_fitted(&j, jf, &a, err, errlen)) != FL_OK) goto done;
    if (a.estimator == FL_MODEL_REGRESSOR) {
        if ((st = check_regressor(&j, jf, &a, err, errlen)) != FL_OK) goto done;
    } else {
        int kc = fl_zip_find(&z, "classes");
        if (kc < 0) {
            st = BAD("LSTMClassifier model file must hold the arrays ['classes', 'params'], "
                     "missing ['classes']");
            goto done;
        }
        const fl_npy *w = &decl[kc].want;
        if (w->ndim != 1 || w->shape[0] < 2) {
            st = BAD("classes must be a 1-D array of at least 2 labels");
            goto done;
        }
        a.n_classes = (long)w->shape[0];
        long want_k = a.n_classes == 2 ? 1 : a.n_classes;
        if (a.n_outputs != want_k) {
            st = BAD("%ld classes need %ld network outputs, the config says %ld", a.n_classes, want_k,
                     a.n_outputs);
            goto done;
        }
    }
    if ((st = fl_arch_check(&a, FL_ERR_FORMAT, err, errlen)) != FL_OK) goto done;

    /* 4. every declared array: header, CRC, finite floats; params into the model's buffer */
    for (int m = 0; m < z.n; m++) {
        if (!strcmp(z.m[m].name, "config") || !strcmp(z.m[m].name, "format_version")) continue;
        if ((st = header_as_declared(s, &z, m, &decl[m].want, &npy, err, errlen)) != FL_OK) goto done;
        void *dst = NULL;
        if (m == kp) {
            params = fl_model_alloc((size_t)(n_params * isz));
            if (!params) {
                st = fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory for %llu parameters",
                             (unsigned long long)n_params);
                goto done;
            }
            dst = params;
        } else if (a.estimator == FL_MODEL_CLASSIFIER && !strcmp(z.m[m].name, "classes")) {
            classes = malloc(npy.nbytes ? (size_t)npy.nbytes : 1);
            if (!classes) {
                st = fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
                goto done;
            }
            dst = classes;
        }
        int is_float = npy.type == FL_NPY_F4 || npy.type == FL_NPY_F8;
        if ((st = fl_npz_data(s, &z, m, &npy, dst, is_float, err, errlen)) != FL_OK) goto done;
        if (dst == classes && classes) {
            for (uint64_t i = 1; i < npy.count; i++)
                if (compare_items(&npy, classes + (i - 1) * npy.itemsize, classes + i * npy.itemsize) >= 0) {
                    st = BAD("classes must be sorted and unique");
                    goto done;
                }
        }
    }
    st = fl_model_build(&a, params, (size_t)n_params, out, err, errlen);
    params = NULL;   /* the model owns it, or build freed it */
done:
    free(params);
    free(classes);
    free(cfg);
    fl_json_free(&j);
    return st;
}

/* ---------------------------------------------------------------- entry points */

static int little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

int fl_model_load_memory(const void *data, size_t size, fl_model **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!out || (!data && size)) return fl_fail(FL_ERR_ARG, err, errlen, "out and data must not be NULL");
    if (!little_endian())
        return fl_fail(FL_ERR_UNSUPPORTED, err, errlen, "model files are read on little-endian machines only");
    fl_src s = { data ? (const unsigned char *)data : (const unsigned char *)"", NULL, size };
    return load_source(&s, out, err, errlen);
}

int fl_model_load(const char *path, fl_model **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!path || !out) return fl_fail(FL_ERR_ARG, err, errlen, "path and out must not be NULL");
    if (!little_endian())
        return fl_fail(FL_ERR_UNSUPPORTED, err, errlen, "model files are read on little-endian machines only");
    FILE *fp = fopen(path, "rb");
    if (!fp) return fl_fail(FL_ERR_IO, err, errlen, "cannot open '%s'", path);
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size < 0) {
        fclose(fp);
        return fl_fail(FL_ERR_IO, err, errlen, "cannot read '%s' (not a regular file?)", path);
    }
    fl_src s = { NULL, fp, (uint64_t)size };
    int st = load_source(&s, out, err, errlen);
    fclose(fp);
    return st;
}
