/* y (n) = activation `which` (0 sigmoid, 1 tanh, 2 hard sigmoid, 3 relu) of x (n),
 * through the kernels' vector functions; a tail shorter than a vector goes
 * through a zero-padded vector, as the kernels' partial unit blocks do. */
FL_INLINE VEC SFX(activation_vec)(int which, VEC v)
{
    return which == 0 ? SFX(vsigmoid)(v) : which == 1 ? SFX(vtanh)(v)
         : which == 2 ? SFX(vhard_sigmoid)(v) : SFX(vrelu)(v);
}

/* Defines fl_activation_f32_<level> and fl_activation_f64_<level> (fastlstm.h). */
static int SFX(fl_activation)(int which, long n, REAL *y, const REAL *x)
{
    if (n < 0 || which < 0 || which > 3) return FL_ERR_ARG;
    long k = 0;
    for (; k + VL <= n; k += VL) SFX(vstore)(y + k, SFX(activation_vec)(which, SFX(vload)(x + k)));
    if (k < n) {
        REAL buf[VL] = {0};
        for (long i = k; i < n; i++) buf[i - k] = x[i];
        SFX(vstore)(buf, SFX(activation_vec)(which, SFX(vload)(buf)));
        for (long i = k; i < n; i++) y[i] = buf[i - k];
    }
    return FL_OK;
}
