#include "fastlstm.h"
#include "fl_simd.h"

#define FL_F32
#include "real_type.h"
#include "activations_impl.h"
FL_CLONES
int fl_activation_f32(int which, long n, float *y, const float *x)
{
    if (n < 0 || which < 0 || which > 3) return FL_ERR_ARG;
    for (long k = 0; k < n; k++) {
        float v = x[k];
        y[k] = which == 0 ? fl_sigmoid_f32(v) : which == 1 ? fl_tanh_f32(v)
             : which == 2 ? fl_hard_sigmoid_f32(v) : fl_relu_f32(v);
    }
    return FL_OK;
}
#undef FL_F32
#define FL_F64
#include "real_type.h"
#include "activations_impl.h"
FL_CLONES
int fl_activation_f64(int which, long n, double *y, const double *x)
{
    if (n < 0 || which < 0 || which > 3) return FL_ERR_ARG;
    for (long k = 0; k < n; k++) {
        double v = x[k];
        y[k] = which == 0 ? fl_sigmoid_f64(v) : which == 1 ? fl_tanh_f64(v)
             : which == 2 ? fl_hard_sigmoid_f64(v) : fl_relu_f64(v);
    }
    return FL_OK;
}
