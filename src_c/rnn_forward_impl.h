/* Forward pass of one recurrent layer in one direction (include after
 * real_type.h, activations_impl.h and rnn_common_impl.h).
 *
 * 1. Pack the weights (once per call).
 * 2. Hoisted input projection: Gx (T*B, NB*G*U) = X (T*B, I) * W_ih^T, one GEMM.
 * 3. Time loop inside one OpenMP region. Work items are (unit block j, batch
 *    chunk): an item multiplies h_{t-1} by its block of W_hh, which stays in
 *    its thread's cache across steps, then applies the gate nonlinearities and
 *    the cell update while the G*U accumulators are still hot. One barrier per
 *    step, because every item reads all of h_{t-1}.
 */
#define BCHUNK 16   /* batch rows per work item */

typedef struct {
    const fl_rnn_desc *d;
    int G, nb;
    long ghp;            /* NB*G*U: width of a Gx row */
    long gcc;            /* NB*4*U: width of a gate-cache row */
    const REAL *gx;      /* (T*B, ghp) */
    const REAL *whh_b;   /* (NB, H, G*U) */
    const REAL *bias;    /* (ghp) lstm: b_ih + b_hh; gru: b_hh */
    const REAL *bias_x;  /* (ghp) gru only: b_ih */
    const REAL *w_peep;  /* (3, H) or NULL */
    const int *lengths;
    REAL *y; long ldy;
    REAL *cache_gates;   /* (T*B, gcc) or NULL */
} SFX(fwd_args);

/* One work item at time t: rows [b0, b1) of unit block j.
 * hprev, cprev (B, H) IN; hcur, ccur (B, H) OUT (ccur may alias cprev). */
FL_CLONES
void SFX(fl_rnn_fwd_item)(const SFX(fwd_args) *a, int t, int j, int b0, int b1,
                          const REAL *hprev, const REAL *cprev, REAL *hcur, REAL *ccur)
{
    const fl_rnn_desc *d = a->d;
    const int H = d->H, B = d->B, G = a->G;
    const int hard = d->gate_act == FL_GATE_HARD_SIGMOID, relu = d->act == FL_ACT_RELU;
    const int h0 = j * U, nu = H - h0 < U ? H - h0 : U;
    const REAL *w = a->whh_b + (long)j * H * G * U;
    for (int b = b0; b < b1; b++) {
        const long row = (long)t * B + b;
        REAL *yrow = a->y + row * a->ldy + h0;
        if (a->lengths && t >= a->lengths[b]) {   /* padding: carry the state, output 0 */
            for (int u = 0; u < nu; u++) {
                hcur[(long)b * H + h0 + u] = hprev[(long)b * H + h0 + u];
                if (ccur) ccur[(long)b * H + h0 + u] = cprev[(long)b * H + h0 + u];
                yrow[u] = 0;
            }
            continue;
        }
        const REAL *gx = a->gx + row * a->ghp + (long)j * G * U;
        const REAL *hp = hprev + (long)b * H;
        REAL acc[4 * U];
        if (G == 4) {
            for (int n = 0; n < 4 * U; n++) acc[n] = gx[n] + a->bias[(long)j * 4 * U + n];
            for (int k = 0; k < H; k++) {
                const REAL hk = hp[k];
                const REAL *wk = w + (long)k * 4 * U;
                for (int n = 0; n < 4 * U; n++) acc[n] += hk * wk[n];
            }
        } else {
            for (int n = 0; n < 3 * U; n++) acc[n] = a->bias[(long)j * 3 * U + n];
            for (int k = 0; k < H; k++) {
                const REAL hk = hp[k];
                const REAL *wk = w + (long)k * 3 * U;
                for (int n = 0; n < 3 * U; n++) acc[n] += hk * wk[n];
            }
        }
        REAL *cg = a->cache_gates ? a->cache_gates + row * a->gcc + (long)j * 4 * U : NULL;
        if (d->cell == FL_CELL_GRU) {
            const REAL *bx = a->bias_x + (long)j * 3 * U;
            for (int u = 0; u < nu; u++) {
                REAL r = SFX(fl_gate)(hard, gx[u] + bx[u] + acc[u]);
                REAL z = SFX(fl_gate)(hard, gx[U + u] + bx[U + u] + acc[U + u]);
                REAL hn = acc[2 * U + u];
                REAL n = SFX(fl_act)(relu, gx[2 * U + u] + bx[2 * U + u] + r * hn);
                REAL h = (1 - z) * n + z * hp[h0 + u];
                hcur[(long)b * H + h0 + u] = h;
                yrow[u] = h;
                if (cg) { cg[u] = r; cg[U + u] = z; cg[2 * U + u] = n; cg[3 * U + u] = hn; }
            }
        } else {
            const int cifg = d->cell == FL_CELL_CIFG, peep = d->cell == FL_CELL_PEEPHOLE;
            const REAL *pi = peep ? a->w_peep + h0 : NULL;
            const REAL *pf = peep ? a->w_peep + H + h0 : NULL;
            const REAL *po = peep ? a->w_peep + 2 * H + h0 : NULL;
            for (int u = 0; u < nu; u++) {
                REAL cp = cprev[(long)b * H + h0 + u];
                REAL zi = acc[u], zf = acc[U + u], zo = acc[3 * U + u];
                if (peep) { zi += pi[u] * cp; zf += pf[u] * cp; }
                REAL i = SFX(fl_gate)(hard, zi);
                REAL f = cifg ? 1 - i : SFX(fl_gate)(hard, zf);
                REAL g = SFX(fl_act)(relu, acc[2 * U + u]);
                REAL c = f * cp + i * g;
                if (peep) zo += po[u] * c;
                REAL o = SFX(fl_gate)(hard, zo);
                REAL h = o * SFX(fl_act)(relu, c);
                ccur[(long)b * H + h0 + u] = c;
                hcur[(long)b * H + h0 + u] = h;
                yrow[u] = h;
                if (cg) { cg[u] = i; cg[U + u] = f; cg[2 * U + u] = g; cg[3 * U + u] = o; }
            }
        }
    }
}

int SFX(fl_rnn_forward)(const fl_rnn_desc *d,
                        REAL *y, long ldy, REAL *h_n, REAL *c_n,
                        REAL *cache_gates, REAL *cache_h, REAL *cache_c,
                        const REAL *x, long ldx,
                        const REAL *w_ih, const REAL *w_hh,
                        const REAL *b_ih, const REAL *b_hh, const REAL *w_peep,
                        const REAL *h0, const REAL *c0, const int *lengths)
{
    int nb, st = SFX(rnn_check)(d, &nb);
    if (st != FL_OK) return st;
    const int T = d->T, B = d->B, I = d->I, H = d->H, G = SFX(rnn_gates)(d->cell);
    const int gru = d->cell == FL_CELL_GRU, train = cache_gates != NULL;
    if (!y || !h_n || !x || !w_ih || !w_hh || !b_ih || !b_hh) return FL_ERR_ARG;
    if (!gru && !c_n) return FL_ERR_ARG;
    if (d->cell == FL_CELL_PEEPHOLE && !w_peep) return FL_ERR_ARG;
    if (train && (!cache_h || (!gru && !cache_c))) return FL_ERR_ARG;
    if (ldy < H || ldx < I) return FL_ERR_SIZE;
    if (!SFX(lengths_ok)(lengths, B, T)) return FL_ERR_SIZE;

    const long ghp = (long)nb * G * U, TB = (long)T * B, BH = (long)B * H;
    /* lstm in training computes Gx straight into the gate cache (same layout, G = 4) */
    const int gx_in_cache = train && !gru;
    long n_work = (long)I * ghp + (long)nb * H * G * U + 2 * ghp
                + (gx_in_cache ? 0 : TB * ghp) + (train ? 0 : 3 * BH);
    REAL *work = malloc(sizeof(REAL) * n_work);
    if (!work) return FL_ERR_NOMEM;
    REAL *wih_r = work, *whh_b = wih_r + (long)I * ghp, *bias = whh_b + (long)nb * H * G * U;
    REAL *bias_x = bias + ghp, *p = bias_x + ghp;
    REAL *gx = gx_in_cache ? cache_gates : p;
    if (!gx_in_cache) p += TB * ghp;
    REAL *hbuf = p, *cbuf = p + 2 * BH;   /* inference state: h ping-pong, c in place */

    SFX(pack_wih_cols)(wih_r, w_ih, G, H, I, nb);
    SFX(pack_whh_blocks)(whh_b, w_hh, G, H, nb);
    if (gru) {
        SFX(pack_bias)(bias, b_hh, NULL, G, H, nb);
        SFX(pack_bias)(bias_x, b_ih, NULL, G, H, nb);
    } else {
        SFX(pack_bias)(bias, b_ih, b_hh, G, H, nb);
    }
    st = SFX(fl_gemm)(0, (int)TB, (int)ghp, I, x, ldx, wih_r, ghp, 0, gx, ghp, d->n_threads);
    if (st != FL_OK) { free(work); return st; }

    /* state slots: slot_init holds the initial state; step t reads slot_in, writes slot_out */
    const int rev = d->reverse;
    REAL *hs = train ? cache_h : hbuf, *cs = train ? cache_c : cbuf;
    long init_off = train && rev ? (long)T * BH : 0;
    for (long k = 0; k < BH; k++) {
        hs[init_off + k] = h0 ? h0[k] : 0;
        if (!gru) cs[init_off + k] = c0 ? c0[k] : 0;
    }

    SFX(fwd_args) a = { d, G, nb, ghp, 4L * nb * U, gx, whh_b, bias, bias_x, w_peep, lengths,
                        y, ldy, cache_gates };
    const int nbc = (B + BCHUNK - 1) / BCHUNK;
    const long items = (long)nb * nbc;
    const int nt = d->n_threads < items ? d->n_threads : (int)items;
    #pragma omp parallel num_threads(nt)
    {
        for (int s = 0; s < T; s++) {
            const int t = rev ? T - 1 - s : s;
            const REAL *hprev, *cprev;
            REAL *hcur, *ccur;
            if (train) {
                long in = rev ? t + 1 : t, out = rev ? t : t + 1;
                hprev = cache_h + in * BH; hcur = cache_h + out * BH;
                cprev = gru ? NULL : cache_c + in * BH;
                ccur = gru ? NULL : cache_c + out * BH;
            } else {
                hprev = hbuf + (s & 1) * BH; hcur = hbuf + ((s + 1) & 1) * BH;
                cprev = gru ? NULL : cbuf; ccur = gru ? NULL : cbuf;
            }
            #pragma omp for schedule(static)
            for (long it = 0; it < items; it++) {
                int j = (int)(it / nbc), bc = (int)(it % nbc);
                int b0 = bc * BCHUNK, b1 = b0 + BCHUNK < B ? b0 + BCHUNK : B;
                SFX(fl_rnn_fwd_item)(&a, t, j, b0, b1, hprev, cprev, hcur, ccur);
            }
        }
    }
    const REAL *hlast, *clast;
    if (train) {
        long last = rev ? 0 : T;
        hlast = cache_h + last * BH;
        clast = gru ? NULL : cache_c + last * BH;
    } else {
        hlast = hbuf + (T & 1) * BH;
        clast = cbuf;
    }
    for (long k = 0; k < BH; k++) {
        h_n[k] = hlast[k];
        if (!gru) c_n[k] = clast[k];
    }
    free(work);
    return FL_OK;
}

#undef BCHUNK
