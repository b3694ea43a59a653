/* Input checks the Python layer runs on every call. */
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
