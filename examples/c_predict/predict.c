/* Run a model saved from Python (est.save("model.npz")) in C, with fastlstm's C API.
 *
 * Build (see the Makefile next to this file, or in one line):
 *   cc predict.c -o predict -I"$(python -c 'import fastlstm; print(fastlstm.get_include())')" \
 *      -L"$D" -lfastlstm -Wl,-rpath,"$D"   with D=$(dirname $(python -c 'import fastlstm; print(fastlstm.get_lib())'))
 *
 * Usage:
 *   predict MODEL.npz                           what the model takes and gives
 *   predict MODEL.npz X.bin N T [LENGTHS.bin]   outputs for N sequences of T steps
 *   predict --stream MODEL.npz X.bin N T        the same, fed one step at a time
 *                                               to N streams (forward-only models)
 *   -t THREADS (before MODEL) sets the threads; default: OpenMP's.
 *
 * X.bin holds raw little-endian values, row-major: (N, T, input_size) floats
 * of the model's dtype (float32 or float64; numpy: X.astype(dtype).tofile()),
 * or (N, T) int64 token ids for a model with an embedding. LENGTHS.bin: N
 * int64 steps per sequence. Output: one line per sequence (--stream: per
 * step, then per stream) of the regressor's predictions or the classifier's
 * probabilities, printed with %.17g (exact for doubles); --stream ends with
 * a line "state" and the final recurrent state's values.
 * Exit status: 0 ok, 1 bad usage or input file, 2 the model did not load,
 * 3 a call failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fastlstm_model.h>

static void *read_file(const char *path, size_t want)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "predict: cannot open %s\n", path);
        return NULL;
    }
    void *buf = malloc(want ? want : 1);
    size_t got = buf ? fread(buf, 1, want, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (!buf || got != want || extra) {
        fprintf(stderr, "predict: %s must hold exactly %lu bytes\n", path, (unsigned long)want);
        free(buf);
        return NULL;
    }
    return buf;
}

static void print_row(const double *v, long n)
{
    for (long k = 0; k < n; k++) printf(k ? " %.17g" : "%.17g", v[k]);
    printf("\n");
}

static void describe(const fl_model_info *info)
{
    static const char *const cells[] = {"lstm", "peephole", "cifg", "gru"};
    printf("estimator %s\n", info->estimator == FL_MODEL_CLASSIFIER ? "classifier" : "regressor");
    printf("dtype %s\n", info->dtype == FL_FLOAT64 ? "float64" : "float32");
    printf("cell %s\n", cells[info->cell]);
    printf("input %s %ld\n", info->takes_tokens ? "tokens" : "features", info->input_size);
    printf("vocab_size %ld\n", info->vocab_size);
    printf("hidden_sizes");
    for (int k = 0; k < info->n_layers; k++) printf(" %d", info->hidden_sizes[k]);
    printf("\nbidirectional %d\nsequence_output %d\nn_outputs %ld\nn_classes %ld\n",
           info->bidirectional, info->sequence_output, info->n_outputs, info->n_classes);
    printf("n_params %ld\nisa %s\n", info->n_params, fl_model_isa());
}

int main(int argc, char **argv)
{
    int stream = 0, threads = 0, a = 1;
    char err[512];
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "--stream")) stream = 1;
        else if (!strcmp(argv[a], "-t") && a + 1 < argc) threads = atoi(argv[++a]);
        else break;
    }
    int rest = argc - a;
    if (rest != 1 && rest != 4 && rest != 5) {
        fprintf(stderr, "usage: predict [-t THREADS] [--stream] MODEL.npz [X.bin N T [LENGTHS.bin]]\n");
        return 1;
    }
    fl_model *model;
    int st = fl_model_load(argv[a], &model, err, sizeof(err));
    if (st != FL_OK) {
        fprintf(stderr, "predict: cannot load %s: %s: %s\n", argv[a], fl_model_status_name(st), err);
        return 2;
    }
    fl_model_info info;
    fl_model_get_info(model, &info);
    if (rest == 1) {
        describe(&info);
        fl_model_free(model);
        return 0;
    }
    const long N = atol(argv[a + 2]), T = atol(argv[a + 3]);
    if (N < 1 || T < 1) {
        fprintf(stderr, "predict: N and T must be >= 1\n");
        fl_model_free(model);
        return 1;
    }
    const int x_type = info.takes_tokens ? FL_INT64 : info.dtype;
    const size_t per_step = info.takes_tokens ? sizeof(int64_t)
                          : (size_t)info.input_size * (info.dtype == FL_FLOAT64 ? sizeof(double) : sizeof(float));
    void *x = read_file(argv[a + 1], (size_t)N * T * per_step);
    int64_t *lengths = rest == 5 ? read_file(argv[a + 4], (size_t)N * sizeof(int64_t)) : NULL;
    if (!x || (rest == 5 && !lengths)) {
        free(x);
        fl_model_free(model);
        return 1;
    }
    const long per_row = info.n_outputs * (info.sequence_output && !stream ? T : 1);
    double *out = malloc((size_t)N * per_row * sizeof(double));
    int rc = 0;
    if (!out) {
        st = FL_ERR_NOMEM;
        snprintf(err, sizeof(err), "out of memory");
    } else if (!stream) {
        st = fl_model_predict(model, N, T, x_type, x, lengths, out, (size_t)N * per_row, threads,
                              err, sizeof(err));
        if (st == FL_OK)
            for (long b = 0; b < N; b++) print_row(out + b * per_row, per_row);
    } else {
        /* N streams, one step of each at a time: x_t is column t of x */
        size_t bytes = fl_model_state_bytes(model, N);
        void *state = calloc(bytes ? bytes : 1, 1);        /* zeros: no step seen yet */
        unsigned char *x_t = malloc((size_t)N * per_step);
        st = !bytes ? FL_ERR_UNSUPPORTED : !state || !x_t ? FL_ERR_NOMEM : FL_OK;
        if (st != FL_OK)
            snprintf(err, sizeof(err), "%s", !bytes ? "this model cannot stream (bidirectional)"
                                                    : "out of memory");
        for (long t = 0; t < T && st == FL_OK; t++) {
            for (long b = 0; b < N; b++)
                memcpy(x_t + b * per_step, (unsigned char *)x + (b * T + t) * per_step, per_step);
            st = fl_model_step(model, state, N, NULL, N, x_type, x_t, out, (size_t)N * per_row,
                               threads, err, sizeof(err));
            if (st == FL_OK)
                for (long b = 0; b < N; b++) print_row(out + b * per_row, per_row);
        }
        if (st == FL_OK) {   /* the final state, in the model's dtype */
            printf("state");
            size_t n = bytes / (info.dtype == FL_FLOAT64 ? sizeof(double) : sizeof(float));
            for (size_t i = 0; i < n; i++)
                printf(" %.17g", info.dtype == FL_FLOAT64 ? ((double *)state)[i] : (double)((float *)state)[i]);
            printf("\n");
        }
        free(x_t);
        free(state);
    }
    if (st != FL_OK) {
        fprintf(stderr, "predict: %s: %s\n", fl_model_status_name(st), err);
        rc = 3;
    }
    free(out);
    free(lengths);
    free(x);
    fl_model_free(model);
    return rc;
}
