/* Whole-array helpers the Python layers call on every step: the input
 * finiteness check and the gradient's sum of squares. Plain loops with a
 * fixed order: the result never depends on threads, and numpy is not asked
 * for a BLAS dot, whose worker threads would spin beside the kernels'. */
#include "fastlstm.h"

/* 1 if all n values of x are finite, else 0. One pass with no temporary
 * array: numpy's isfinite(x).all() allocates one and takes microseconds even
 * for the few values of a streaming step. x - x is 0 exactly for finite x;
 * the or-reduction has no early exit so the compiler can vectorise it. */
int fl_all_finite_f32(const float *x, long n)
{
    int bad = 0;
    for (long i = 0; i < n; i++) bad |= !(x[i] - x[i] == 0.0f);
    return !bad;
}

int fl_all_finite_f64(const double *x, long n)
{
    int bad = 0;
    for (long i = 0; i < n; i++) bad |= !(x[i] - x[i] == 0.0);
    return !bad;
}

/* sum of x[i]^2 in double, over 8 interleaved partial sums added in a fixed
 * order at the end (independent chains instead of one long one). */
#define FL_SUMSQ(NAME, T)                                                      \
    double NAME(const T *x, long n)                                            \
    {                                                                          \
        double acc[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };                            \
        long i = 0;                                                            \
        for (; i + 8 <= n; i += 8)                                             \
            for (int l = 0; l < 8; l++) acc[l] += (double)x[i + l] * x[i + l]; \
        for (; i < n; i++) acc[i % 8] += (double)x[i] * x[i];                  \
        return ((acc[0] + acc[1]) + (acc[2] + acc[3]))                         \
               + ((acc[4] + acc[5]) + (acc[6] + acc[7]));                      \
    }
FL_SUMSQ(fl_sum_squares_f32, float)
FL_SUMSQ(fl_sum_squares_f64, double)
