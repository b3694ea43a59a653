/* y (n) = activation `which` (0 sigmoid, 1 tanh, 2 hard sigmoid, 3 relu) of x (n). */
FL_CLONES
int SFX(fl_activation)(int which, long n, REAL *y, const REAL *x)
{
    if (n < 0 || which < 0 || which > 3) return FL_ERR_ARG;
    long k = 0;
    for (; k + VL <= n; k += VL) {
        const VEC v = SFX(vload)(x + k);
        SFX(vstore)(y + k, which == 0 ? SFX(vsigmoid)(v) : which == 1 ? SFX(vtanh)(v)
                           : which == 2 ? SFX(vhard_sigmoid)(v) : SFX(vrelu)(v));
    }
    for (; k < n; k++) {
        const REAL v = x[k];
        y[k] = which == 0 ? SFX(fl_sigmoid)(v) : which == 1 ? SFX(fl_tanh)(v)
             : which == 2 ? SFX(fl_hard_sigmoid)(v) : SFX(fl_relu)(v);
    }
    return FL_OK;
}
