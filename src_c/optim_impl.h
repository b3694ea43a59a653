/* One Adam step over a flat parameter buffer (include after real_type.h).
 *
 * torch.optim.Adam's update, element by element in REAL (the same formula;
 * torch rounds in a slightly different order, e.g. its lerp switches form
 * for beta1 <= 0.5):
 *   g' = g + weight_decay * p                (coupled L2, as torch)
 *   m  = m + (1 - beta1) * (g' - m)          (torch's lerp form)
 *   v  = beta2 * v + (1 - beta2) * g'^2
 *   p  = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
 * with step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t)
 * computed by the caller. One pass reads p, g, m, v and writes p, m, v, where
 * the numpy form made eleven and was the slower (bench/RESULTS.md, design
 * measurements). Every element is independent, so the result does not
 * depend on how the buffer is split between threads.
 */
#define FL_ADAM_PER_THREAD 65536L   /* elements: smaller buffers run on fewer threads */
#undef FL_SQRT
#ifdef FL_F32
#define FL_SQRT sqrtf
#else
#define FL_SQRT sqrt
#endif

/* p, m, v (n) IN/OUT; g (n) IN: the update above on n elements. */
static void SFX(fl_adam_block)(long n, REAL *p, const REAL *g, REAL *m, REAL *v, REAL step_size,
                        REAL beta1, REAL beta2, REAL eps, REAL bc2_sqrt, REAL weight_decay)
{
    const REAL w1 = 1 - beta1, w2 = 1 - beta2;
    for (long i = 0; i < n; i++) {
        const REAL gi = weight_decay != 0 ? g[i] + weight_decay * p[i] : g[i];
        const REAL mi = m[i] + w1 * (gi - m[i]);
        const REAL vi = beta2 * v[i] + w2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * (mi / (FL_SQRT(vi) / bc2_sqrt + eps));
    }
}

/* Defines fl_adam_f32_<level> and fl_adam_f64_<level> (fastlstm.h).
 * fl_adam_block over the whole buffer on up to n_threads threads, in
 * contiguous shares. FL_ERR_SIZE for n < 0 or n_threads < 1, FL_ERR_ARG for
 * a NULL buffer. */
int SFX(fl_adam)(long n, REAL *p, const REAL *g, REAL *m, REAL *v, double step_size,
                 double beta1, double beta2, double eps, double bc2_sqrt, double weight_decay,
                 int n_threads)
{
    if (n < 0 || n_threads < 1) return FL_ERR_SIZE;
    if (n > 0 && (!p || !g || !m || !v)) return FL_ERR_ARG;
    long nt = n / FL_ADAM_PER_THREAD;
    if (nt > n_threads) nt = n_threads;
    if (nt <= 1) {   /* no region for one thread (see fwd_steps) */
        SFX(fl_adam_block)(n, p, g, m, v, (REAL)step_size, (REAL)beta1, (REAL)beta2, (REAL)eps,
                           (REAL)bc2_sqrt, (REAL)weight_decay);
        return FL_OK;
    }
    #pragma omp parallel num_threads((int)nt)
    {
        /* contiguous shares in whole vectors of 16 elements */
        const long tid = omp_get_thread_num(), nth = omp_get_num_threads();
        const long chunks = (n + 15) / 16;
        const long i0 = chunks * tid / nth * 16, i1e = chunks * (tid + 1) / nth * 16;
        const long i1 = i1e < n ? i1e : n;
        if (i0 < i1)
            SFX(fl_adam_block)(i1 - i0, p + i0, g + i0, m + i0, v + i0, (REAL)step_size,
                               (REAL)beta1, (REAL)beta2, (REAL)eps, (REAL)bc2_sqrt,
                               (REAL)weight_decay);
    }
    return FL_OK;
}

#undef FL_ADAM_PER_THREAD
