/* Running a model: fl_model_predict and fl_model_step. The arguments are
 * checked here, the work is done per float type in model_run_impl.h. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "npz.h"   /* fl_fail */

/* numpy's sum of n doubles (loops_utils.h.src, pairwise_sum): blocks of 8
 * partial sums up to 128 values, halves above */
static double pairwise_sum(const double *a, long n)
{
    if (n < 8) {
        double r = -0.0;
        for (long i = 0; i < n; i++) r += a[i];
        return r;
    }
    if (n <= 128) {
        double r[8];
        long i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    long n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* Probabilities in place: p holds n_classes values, the first K network
 * outputs on entry (K = 1 for two classes). As LSTMClassifier._proba, in
 * float64 and numpy's order: a stable sigmoid for two classes, softmax (max
 * subtracted; the sum as np.sum adds) for more. */
static void fl_proba(double *p, long n_classes)
{
    if (n_classes == 2) {
        const double z = p[0], e = exp(-fabs(z));
        const double p1 = z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        p[0] = 1.0 - p1;
        p[1] = p1;
        return;
    }
    double mx = p[0];
    for (long k = 1; k < n_classes; k++) mx = p[k] > mx ? p[k] : mx;
    for (long k = 0; k < n_classes; k++) p[k] = exp(p[k] - mx);
    const double s = 0.0 + pairwise_sum(p, n_classes);
    for (long k = 0; k < n_classes; k++) p[k] = p[k] / s;
}

#define REAL float
#define SFX(name) name##_f32
#define RNN_FORWARD fl_rnn_forward_f32
#define RNN_WORK_BYTES fl_rnn_work_bytes_f32
#define GEMM fl_gemm_f32
#include "model_run_impl.h"
#undef REAL
#undef SFX
#undef RNN_FORWARD
#undef RNN_WORK_BYTES
#undef GEMM

#define REAL double
#define SFX(name) name##_f64
#define RNN_FORWARD fl_rnn_forward_f64
#define RNN_WORK_BYTES fl_rnn_work_bytes_f64
#define GEMM fl_gemm_f64
#include "model_run_impl.h"
#undef REAL
#undef SFX
#undef RNN_FORWARD
#undef RNN_WORK_BYTES
#undef GEMM

/* the threads a call runs on: n_threads, or OpenMP's default for <= 0 */
static int threads(int n_threads)
{
    int nt = n_threads >= 1 ? n_threads : fl_openmp_max_threads();
    if (nt < 1) nt = 1;
    if (nt > FL_MAX_THREADS) nt = FL_MAX_THREADS;
    return fl_usable_threads(nt);
}

static int check_x_type(const fl_model *m, int x_type, char *err, size_t errlen)
{
    if (m->a.embedding_dim) {
        if (x_type != FL_INT64)
            return fl_fail(FL_ERR_ARG, err, errlen, "this model takes token ids: x_type must be FL_INT64");
    } else if (x_type != FL_FLOAT32 && x_type != FL_FLOAT64) {
        return fl_fail(FL_ERR_ARG, err, errlen,
                       "this model takes float features: x_type must be FL_FLOAT32 or FL_FLOAT64");
    }
    return FL_OK;
}

int fl_model_predict(const fl_model *m, long B, long T, int x_type, const void *x,
                     const int64_t *lengths, double *out, size_t out_len, int n_threads,
                     char *err, size_t errlen)
{
    if (!m || !x || !out) return fl_fail(FL_ERR_ARG, err, errlen, "model, x and out must not be NULL");
    int st = check_x_type(m, x_type, err, errlen);
    if (st != FL_OK) return st;
    const fl_arch *a = &m->a;
    if (B < 1 || T < 1 || T > INT_MAX / 8)
        return fl_fail(FL_ERR_SIZE, err, errlen, "B must be >= 1 and T in [1, %d], got B=%ld, T=%ld",
                       INT_MAX / 8, B, T);
    const long KO = a->estimator == FL_MODEL_CLASSIFIER ? a->n_classes : a->n_outputs;
    const size_t need = fl_mul(fl_mul((size_t)B, a->sequence_output ? (size_t)T : 1), (size_t)KO);
    if (need == SIZE_MAX || fl_mul(fl_mul((size_t)B, (size_t)T), 8) == SIZE_MAX)
        return fl_fail(FL_ERR_SIZE, err, errlen, "B x T is too large");
    if (out_len < need)
        return fl_fail(FL_ERR_SIZE, err, errlen, "out holds %lu doubles; this call writes %lu",
                       (unsigned long)out_len, (unsigned long)need);
    const int tokens = a->embedding_dim != 0;
    long *len = NULL;
    int64_t *ids = NULL;
    int use_len = 0;
    if (lengths || tokens) {
        len = malloc((size_t)B * sizeof(long));
        if (!len) return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
    }
    if (lengths) {
        for (long b = 0; b < B; b++) {
            if (lengths[b] < 0 || lengths[b] > T) {
                free(len);
                return fl_fail(FL_ERR_INPUT, err, errlen, "lengths[%ld] = %lld is not in [0, %ld]", b,
                               (long long)lengths[b], T);
            }
            len[b] = (long)lengths[b];
        }
        use_len = 1;
    }
    if (tokens) {
        /* a row's real tokens are its non-zero ids, in order (Python's _compact_token_ids) */
        ids = malloc(fl_mul(fl_mul((size_t)B, (size_t)T), sizeof(int64_t)));
        if (!ids) {
            free(len);
            return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
        }
        const int64_t *tok = x;
        for (long b = 0; b < B; b++) {
            const long n = lengths ? len[b] : T;
            long c = 0;
            for (long t = 0; t < n; t++) {
                const int64_t id = tok[(size_t)b * T + t];
                if (id < 0 || id >= a->vocab_size) {
                    free(len);
                    free(ids);
                    return fl_fail(FL_ERR_INPUT, err, errlen,
                                   "x[%ld, %ld] = %lld is not a token id in [0, %ld)", b, t,
                                   (long long)id, a->vocab_size);
                }
                if (id != 0) ids[(size_t)b * T + c++] = id;
            }
            for (long t = c; t < T; t++) ids[(size_t)b * T + t] = 0;
            len[b] = c;
        }
        use_len = 1;
    }
    if (use_len) {   /* every row all T long: as without lengths (Python passes None) */
        int full = 1;
        for (long b = 0; full && b < B; b++) full = len[b] == T;
        use_len = !full;
    }
    const int nt = threads(n_threads);
    st = a->dtype == FL_FLOAT64 ? predict_f64(m, B, T, x_type, x, ids, len, use_len, out, nt, err, errlen)
                                : predict_f32(m, B, T, x_type, x, ids, len, use_len, out, nt, err, errlen);
    free(ids);
    free(len);
    return st;
}

int fl_model_step(const fl_model *m, void *state, long n_streams, const int64_t *streams, long n,
                  int x_type, const void *x_t, double *out, size_t out_len, int n_threads,
                  char *err, size_t errlen)
{
    if (!m || !state || !x_t || !out)
        return fl_fail(FL_ERR_ARG, err, errlen, "model, state, x_t and out must not be NULL");
    const fl_arch *a = &m->a;
    if (a->bidirectional)
        return fl_fail(FL_ERR_UNSUPPORTED, err, errlen,
                       "a bidirectional layer needs each whole sequence (its reverse direction "
                       "starts at the end); streaming needs a forward-only model");
    int st = check_x_type(m, x_type, err, errlen);
    if (st != FL_OK) return st;
    if (n_streams < 1 || n < 1 || n > n_streams || (!streams && n != n_streams))
        return fl_fail(FL_ERR_SIZE, err, errlen,
                       "need 1 <= n <= n_streams (n == n_streams without streams), got n=%ld, "
                       "n_streams=%ld", n, n_streams);
    if (fl_model_state_bytes(m, n_streams) == 0 || n > INT_MAX / 8)
        return fl_fail(FL_ERR_SIZE, err, errlen, "n_streams is too large");
    if ((size_t)state % (a->dtype == FL_FLOAT64 ? sizeof(double) : sizeof(float)) != 0)
        return fl_fail(FL_ERR_ARG, err, errlen, "state is not aligned for the model's dtype");
    const long KO = a->estimator == FL_MODEL_CLASSIFIER ? a->n_classes : a->n_outputs;
    if (out_len < fl_mul((size_t)n, (size_t)KO))
        return fl_fail(FL_ERR_SIZE, err, errlen, "out holds %lu doubles; this call writes %lu",
                       (unsigned long)out_len, (unsigned long)fl_mul((size_t)n, (size_t)KO));
    long *rows = NULL;
    if (streams) {
        rows = malloc((size_t)n * sizeof(long));
        unsigned char *seen = calloc((size_t)n_streams, 1);
        if (!rows || !seen) {
            free(rows);
            free(seen);
            return fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory");
        }
        for (long i = 0; i < n && st == FL_OK; i++) {
            if (streams[i] < 0 || streams[i] >= n_streams)
                st = fl_fail(FL_ERR_ARG, err, errlen, "streams must be indices in [0, %ld), got %lld",
                             n_streams, (long long)streams[i]);
            else if (seen[streams[i]]++)
                st = fl_fail(FL_ERR_ARG, err, errlen, "streams must not repeat an index (%lld)",
                             (long long)streams[i]);
            else
                rows[i] = (long)streams[i];
        }
        free(seen);
        if (st != FL_OK) {
            free(rows);
            return st;
        }
    }
    const int64_t *ids = NULL;
    if (a->embedding_dim) {
        ids = x_t;
        for (long i = 0; i < n; i++)
            if (ids[i] < 1 || ids[i] >= a->vocab_size) {
                free(rows);
                return fl_fail(FL_ERR_INPUT, err, errlen,
                               "token ids in x_t must be in [1, %ld) (0 is padding, which a stream "
                               "never receives), got %lld", a->vocab_size, (long long)ids[i]);
            }
    }
    const int nt = threads(n_threads);
    st = a->dtype == FL_FLOAT64
             ? step_f64(m, state, n_streams, rows, n, x_type, x_t, ids, out, nt, err, errlen)
             : step_f32(m, state, n_streams, rows, n, x_type, x_t, ids, out, nt, err, errlen);
    free(rows);
    return st;
}
