/* fastlstm_model.h: run models saved by fastlstm (Python) from C or C++, without Python.
 *
 * Build against the library that ships inside the Python package:
 *
 *   INC=$(python -c "import fastlstm; print(fastlstm.get_include())")
 *   LIB=$(python -c "import fastlstm, os; print(os.path.dirname(fastlstm.get_lib()))")
 *   cc app.c -I"$INC" -L"$LIB" -lfastlstm -Wl,-rpath,"$LIB"
 *
 * Conventions
 *   - Every function that can fail returns FL_OK (0) or a negative FL_ERR_*
 *     code and, when err is not NULL and errlen > 0, writes a NUL-terminated
 *     message into err (cut to errlen bytes). Nothing prints, exits or aborts;
 *     every allocation is checked (FL_ERR_NOMEM).
 *   - Arrays are row-major, contiguous and owned by the caller; shapes are
 *     given in the comments, batch first. Floats are float (FL_FLOAT32) or
 *     double (FL_FLOAT64); token ids are int64_t.
 *   - A model is read-only once made: any number of threads may call
 *     fl_model_predict, fl_model_step and fl_model_get_info on one model at
 *     once. Each call allocates its own scratch memory and frees it before it
 *     returns. Only fl_model_free must not overlap other calls on that model.
 *   - n_threads: OpenMP threads a call may use; <= 0 means OpenMP's default
 *     (OMP_NUM_THREADS, else all cores). Results are bitwise the same for any
 *     count. The kernels' instruction-set level is the best the CPU runs,
 *     capped by the FASTLSTM_MAX_ISA environment variable as in Python.
 *   - Loading is safe on untrusted files: sizes are bounded by what the file
 *     holds, every shape and value is checked before use, and anything
 *     truncated, inconsistent or hostile gives FL_ERR_FORMAT.
 */
#ifndef FASTLSTM_MODEL_H
#define FASTLSTM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FL_MODEL_API __attribute__((visibility("default")))
#else
#define FL_MODEL_API
#endif

#define FL_MODEL_API_VERSION 1

/* Status codes (the first four are the kernels' own, src_c/fastlstm.h). */
#ifndef FL_OK
#define FL_OK 0
#define FL_ERR_NOMEM (-1)
#define FL_ERR_SIZE (-2)      /* a size is out of range, or an output buffer is too small */
#define FL_ERR_ARG (-3)       /* a required pointer is NULL, an enum is out of range, a type mismatches */
#define FL_ERR_LEVEL (-4)     /* FASTLSTM_MAX_ISA names a level this CPU or build lacks */
#endif
#define FL_ERR_IO (-5)           /* the file cannot be opened or read */
#define FL_ERR_FORMAT (-6)       /* not a fastlstm model file, or a corrupt, truncated or hostile one */
#define FL_ERR_UNSUPPORTED (-7)  /* a valid file this library cannot run (see fl_model_load) */
#define FL_ERR_INPUT (-8)        /* input values: NaN or infinity, a token id or length out of range */

/* Element types. */
#define FL_FLOAT32 0
#define FL_FLOAT64 1
#define FL_INT64 2

/* What a model computes. */
#define FL_MODEL_REGRESSOR 0     /* LSTMRegressor: predict's values */
#define FL_MODEL_CLASSIFIER 1    /* LSTMClassifier: predict_proba's probabilities */

/* Cells, activations (the values of src_c/fastlstm.h's enums). */
#define FL_MODEL_CELL_LSTM 0
#define FL_MODEL_CELL_PEEPHOLE 1
#define FL_MODEL_CELL_CIFG 2
#define FL_MODEL_CELL_GRU 3
#define FL_MODEL_ACT_TANH 0
#define FL_MODEL_ACT_RELU 1
#define FL_MODEL_GATE_SIGMOID 0
#define FL_MODEL_GATE_HARD_SIGMOID 1

#define FL_MODEL_MAX_LAYERS 64

typedef struct fl_model fl_model;

/* ---------------------------------------------------------------- making a model */

/* Load a model file written by an estimator's save() (LSTMRegressor,
 * LSTMClassifier). On success *out is a new model (free it with
 * fl_model_free); on failure *out is NULL.
 *   FL_ERR_IO           the file cannot be opened or read
 *   FL_ERR_FORMAT       anything the Python loader (fastlstm.load) refuses,
 *                       and also: duplicate JSON keys, lone surrogates in
 *                       JSON strings, Fortran-ordered arrays, dtype aliases
 *   FL_ERR_UNSUPPORTED  a newer format_version or min_reader_version; a
 *                       quantized model (estimator.quantize()); an
 *                       LSTMForecaster file (its predict() unscales and
 *                       undifferences a history in Python); a deflated
 *                       member (save() writes STORED members: re-save the
 *                       model with save(), not numpy.savez_compressed)
 * Entries that only matter for training (optimizer settings, loss history
 * values, a saved optimizer state) are not interpreted. */
FL_MODEL_API int fl_model_load(const char *path, fl_model **out, char *err, size_t errlen);

/* The same from a file's bytes in memory (the caller keeps ownership). */
FL_MODEL_API int fl_model_load_memory(const void *data, size_t size, fl_model **out,
                                      char *err, size_t errlen);

/* A model from an architecture and a flat parameter array laid out as
 * fastlstm.spec.NetworkSpec.param_shapes() (the "params" array of a model
 * file): embedding (vocab_size, embedding_dim) with token ids; per layer and
 * direction (forward, then reverse) weight_ih (G*H, I), weight_hh (G*H, H),
 * bias_ih (G*H), bias_hh (G*H) and, for peephole, weight_peephole (3, H),
 * G = 4 (3 for gru); head.weight (n_outputs, D*H_last), head.bias (n_outputs). */
typedef struct {
    int estimator;          /* FL_MODEL_REGRESSOR or FL_MODEL_CLASSIFIER */
    int dtype;              /* FL_FLOAT32 or FL_FLOAT64: the type of params */
    int cell;               /* FL_MODEL_CELL_* */
    int activation;         /* FL_MODEL_ACT_* */
    int gate_activation;    /* FL_MODEL_GATE_* */
    int bidirectional;      /* 0 or 1 */
    int sequence_output;    /* regressor only: 1 for one output row per time step */
    int n_layers;           /* 1 .. FL_MODEL_MAX_LAYERS */
    const int *hidden_sizes;  /* (n_layers) units of each layer */
    long input_size;        /* features per step; 0 with an embedding */
    long vocab_size;        /* embedding rows (token ids 0 .. vocab_size-1); 0 without */
    long embedding_dim;     /* 0 without an embedding */
    long n_outputs;         /* network outputs K (a classifier: 1 for 2 classes, else n_classes) */
    long n_classes;         /* classifier: number of classes (>= 2); 0 for a regressor */
} fl_model_spec;

/* params (n_params values of spec->dtype) is copied; n_params must be the
 * architecture's exact parameter count and every value finite. */
FL_MODEL_API int fl_model_from_arrays(const fl_model_spec *spec, const void *params,
                                      size_t n_params, fl_model **out, char *err, size_t errlen);

/* Release a model (NULL is fine). */
FL_MODEL_API void fl_model_free(fl_model *model);

/* ---------------------------------------------------------------- what a model takes and gives */

typedef struct {
    int estimator;          /* FL_MODEL_REGRESSOR or FL_MODEL_CLASSIFIER */
    int dtype;              /* FL_FLOAT32 or FL_FLOAT64: parameters and computation */
    int takes_tokens;       /* 1: x is (B, T) int64 token ids; 0: (B, T, input_size) floats */
    int cell;               /* FL_MODEL_CELL_* */
    int activation, gate_activation;
    int bidirectional;
    int sequence_output;    /* 1: predict writes (B, T, n_outputs), else (B, n_outputs) */
    int can_stream;         /* 1: fl_model_step works (forward-only models) */
    int n_layers;
    int hidden_sizes[FL_MODEL_MAX_LAYERS];  /* first n_layers used */
    long input_size;        /* features per step (1 with token ids, as n_features_in_) */
    long vocab_size;        /* token ids in [0, vocab_size); 0 without tokens */
    long embedding_dim;     /* 0 without tokens */
    long n_outputs;         /* values per sequence (per step with sequence_output):
                               regressor outputs, or classifier probabilities (= n_classes) */
    long n_classes;         /* classifier classes; 0 for a regressor */
    long n_params;          /* values in the flat parameter array */
} fl_model_info;

FL_MODEL_API int fl_model_get_info(const fl_model *model, fl_model_info *info);

/* ---------------------------------------------------------------- running it */

/* What predict (regressor) or predict_proba (classifier) gives in Python.
 *   x        IN  x_type FL_FLOAT32 or FL_FLOAT64: (B, T, input_size) features
 *                (converted to the model's dtype as numpy's astype does);
 *                x_type FL_INT64: (B, T) token ids in [0, vocab_size), 0 is
 *                padding wherever it appears (as in Python, a row's real
 *                tokens are its non-zero ids, in order)
 *   lengths  IN  (B) steps of each sequence, in [0, T], or NULL for all T:
 *                steps past a length are not read (what Python gets for a
 *                list of variable-length sequences); with tokens, the ids of
 *                a row are its first lengths[b]. A row with no step (or no
 *                real token) gives the head a zero feature vector.
 *   out      OUT (B, n_outputs) doubles, or (B, T, n_outputs) for a sequence
 *                output (zero past each length); out_len: doubles out holds.
 * FL_ERR_INPUT for a NaN or infinite feature (after conversion) or a token id
 * out of range; out is then unspecified. */
FL_MODEL_API int fl_model_predict(const fl_model *model, long B, long T,
                                  int x_type, const void *x, const int64_t *lengths,
                                  double *out, size_t out_len, int n_threads,
                                  char *err, size_t errlen);

/* Streaming (forward-only models): the recurrent state of n_streams
 * independent streams lives in one caller buffer of fl_model_state_bytes
 * bytes, aligned for the model's dtype. All-zero bytes are the state before
 * a stream's first step (Python's init_state). Layout, in the model's dtype:
 * h of layer 0 .. n_layers-1, each (n_streams, H_k), then, for the LSTM
 * cells (not gru), c of layer 0 .. n_layers-1, each (n_streams, H_k).
 * Returns 0 for a bidirectional model, n_streams < 1, or a size overflow. */
FL_MODEL_API size_t fl_model_state_bytes(const fl_model *model, long n_streams);

/* Zero stream `stream` of a state (-1: all streams): its next step starts a
 * new sequence. */
FL_MODEL_API int fl_model_state_reset(const fl_model *model, void *state, long n_streams,
                                      long stream, char *err, size_t errlen);

/* One time step of n streams: Python's step(x_t, state, streams).
 *   state    IN/OUT the state of n_streams streams; updated only on success
 *   streams  IN  (n) distinct indices in [0, n_streams) of the streams x_t's rows
 *                belong to, or NULL for all (then n == n_streams)
 *   x_t      IN  (n, input_size) floats of x_type, or (n) int64 token ids in
 *                [1, vocab_size) (0 is padding, which a stream never receives)
 *   out      OUT (n, n_outputs) doubles: what fl_model_predict gives for the
 *                sequences seen so far (per step for a sequence output) */
FL_MODEL_API int fl_model_step(const fl_model *model, void *state, long n_streams,
                               const int64_t *streams, long n, int x_type, const void *x_t,
                               double *out, size_t out_len, int n_threads,
                               char *err, size_t errlen);

/* ---------------------------------------------------------------- about the library */

/* "FL_ERR_FORMAT" etc. for a status code; "FL_OK" for 0; "unknown" otherwise. */
FL_MODEL_API const char *fl_model_status_name(int status);

/* The newest min_reader_version of a model file this library runs ("0.1.0"). */
FL_MODEL_API const char *fl_model_reader_version(void);

/* The instruction-set level the kernels use: "avx512", "avx2" or "baseline". */
FL_MODEL_API const char *fl_model_isa(void);

#ifdef __cplusplus
}
#endif

#endif
