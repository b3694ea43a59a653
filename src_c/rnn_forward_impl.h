/* Forward pass of one recurrent layer in one direction (include after
 * real_type.h, simd_impl.h, vec_activations_impl.h and
 * rnn_common_impl.h).
 *
 * 1. Weights packed once per parameter change (fl_rnn_pack), or per call.
 * 2. Hoisted input projection: Gx (rows, NB*G*U) = X (rows, I) * W_ih^T, one
 *    GEMM per chunk of time steps.
 * 3. Time loop inside one OpenMP region per chunk. Work items are (unit block
 *    j, batch chunk): an item multiplies h_{t-1} by its block of W_hh, which
 *    stays in its thread's cache across steps, then applies the gate
 *    nonlinearities and the cell update on whole vectors while the G*U
 *    accumulators are still hot. The epilogue also writes h_t in the register
 *    tile's packed form, so the next step's tile needs no packing. One barrier
 *    per step, because every item reads all of h_{t-1}.
 */
#define BCHUNK 24   /* batch rows per work item: a multiple of the 6-row register tile */

typedef struct {
    const fl_rnn_desc *d;
    int G, nb;
    long ghp;            /* NB*G*U: width of a Gx row */
    long gcc;            /* NB*4*U: width of a gate-cache row */
    const REAL *gx;      /* (TC*B, ghp): Gx of time steps [gx_t0, gx_t0 + TC) */
    int gx_t0;
    const REAL *whh_b;   /* (NB, G*U/NRK, H, NRK) */
    const REAL *bias;    /* (ghp) lstm: b_ih + b_hh; gru: b_hh */
    const REAL *bias_x;  /* (ghp) gru only: b_ih */
    const REAL *w_peep;  /* (3, Hp) zero-padded, or NULL */
    const int *lengths;
    REAL *y; long ldy;
    REAL *cache_gates;   /* (T*B, gcc) or NULL */
} SFX(fwd_args);

/* Gate nonlinearities and state update of one batch row on a block of U
 * units, VL units per instruction.
 * acc (G*U) IN: pre-activations (lstm: input and recurrent parts and both
 * biases; gru: recurrent part and b_hh, input part in gx (G*U) plus bias_x);
 * st (U) IN: c_{t-1} (lstm) or h_{t-1} (gru); hout, cout, yrow, hpo (stride
 * 6) OUT: h_t, c_t, the output row and h_t in packed form; cg (4*U) OUT: the
 * gate cache for backward, or NULL. */
FL_INLINE void SFX(fwd_epilogue_vec)(const SFX(fwd_args) *a, const REAL *acc, const REAL *gx,
                                     int h0, int j, const REAL *st, REAL *hout, REAL *cout,
                                     REAL *yrow, REAL *hpo, REAL *cg)
{
    const fl_rnn_desc *d = a->d;
    const int hard = d->gate_act == FL_GATE_HARD_SIGMOID, relu = d->act == FL_ACT_RELU;
    for (int v = 0; v < U; v += VL) {
        VEC h, q0, q1, q2, q3;   /* what the gate cache keeps */
        const VEC s = SFX(vload)(st + v);
        if (d->cell == FL_CELL_GRU) {
            /* r, z, n, and W_hn h + b_hn */
            const REAL *bx = a->bias_x + (long)j * 3 * U;
            q0 = SFX(vgate)(hard, SFX(vload)(gx + v) + SFX(vload)(bx + v) + SFX(vload)(acc + v));
            q1 = SFX(vgate)(hard, SFX(vload)(gx + U + v) + SFX(vload)(bx + U + v)
                                  + SFX(vload)(acc + U + v));
            q3 = SFX(vload)(acc + 2 * U + v);
            q2 = SFX(vact)(relu, SFX(vload)(gx + 2 * U + v) + SFX(vload)(bx + 2 * U + v) + q0 * q3);
            h = (1 - q1) * q2 + q1 * s;
        } else {
            /* i, f, g, o; s = c_{t-1} */
            VEC zi = SFX(vload)(acc + v), zf = SFX(vload)(acc + U + v);
            VEC zo = SFX(vload)(acc + 3 * U + v);
            const REAL *pp = a->w_peep;   /* padded (3, Hp) or NULL */
            const long php = (long)a->nb * U;
            if (pp) {
                zi += SFX(vload)(pp + h0 + v) * s;
                zf += SFX(vload)(pp + php + h0 + v) * s;
            }
            q0 = SFX(vgate)(hard, zi);
            q1 = d->cell == FL_CELL_CIFG ? 1 - q0 : SFX(vgate)(hard, zf);
            q2 = SFX(vact)(relu, SFX(vload)(acc + 2 * U + v));
            const VEC c = q1 * s + q0 * q2;
            if (pp) zo += SFX(vload)(pp + 2 * php + h0 + v) * c;
            q3 = SFX(vgate)(hard, zo);
            h = q3 * SFX(vact)(relu, c);
            SFX(vstore)(cout + v, c);
        }
        SFX(vstore)(hout + v, h);
        SFX(vstore)(yrow + v, h);
        REAL hv[VL];
        SFX(vstore)(hv, h);
        for (int l = 0; l < VL; l++) hpo[6 * (v + l)] = hv[l];
        if (cg) {
            SFX(vstore)(cg + v, q0); SFX(vstore)(cg + U + v, q1);
            SFX(vstore)(cg + 2 * U + v, q2); SFX(vstore)(cg + 3 * U + v, q3);
        }
    }
}

/* One work item at time t: rows [b0, b1) of unit block j.
 * hprev, cprev (B, H) IN; hcur, ccur (B, H) OUT (ccur may alias cprev);
 * hpin, hpout: h_{t-1} IN and h_t OUT in the tile's packed form (pk_index),
 * so the next step's tile reads one contiguous stream with no packing. */
FL_CLONES
void SFX(fl_rnn_fwd_item)(const SFX(fwd_args) *a, int t, int j, int b0, int b1,
                          const REAL *hprev, const REAL *cprev, REAL *hcur, REAL *ccur,
                          const REAL *hpin, REAL *hpout)
{
    const fl_rnn_desc *d = a->d;
    const int H = d->H, B = d->B, G = a->G, GU = G * U;
    const int h0 = j * U, nu = H - h0 < U ? H - h0 : U;
    const REAL *w = a->whh_b + (long)j * H * GU;
    const REAL *bias = a->bias + (long)j * GU;
    for (int r0 = b0; r0 < b1; r0 += 6) {
        /* pre (6, G*U): the block's gate pre-activations for up to 6 rows */
        REAL pre[6][4 * U];
        const REAL *gxrow[6];
        for (int r = 0; r < 6; r++) {
            int b = r0 + r < b1 ? r0 + r : r0;   /* spare rows repeat row r0 */
            gxrow[r] = a->gx + ((long)(t - a->gx_t0) * B + b) * a->ghp + (long)j * GU;
        }
        if (b1 - r0 == 1) {   /* a lone row (batch 1): all G*U columns at once */
            VEC acc[4 * U / VL];
            for (int v = 0; v < GU / VL; v++) {
                VEC bv = SFX(vload)(bias + v * VL);
                acc[v] = G == 4 ? SFX(vload)(gxrow[0] + v * VL) + bv : bv;
            }
            SFX(row1_kernel)(H, hprev + (long)r0 * H, w, (long)H * NRK, acc, GU);
            for (int v = 0; v < GU / VL; v++) SFX(vstore)(pre[0] + v * VL, acc[v]);
        } else {
            VEC acc[4 * U / NRK][6][2];
            const int ncg = GU / NRK;
            for (int q = 0; q < ncg; q++) {
                const int cg = q * NRK;
                VEC bv0 = SFX(vload)(bias + cg), bv1 = SFX(vload)(bias + cg + VL);
                for (int r = 0; r < 6; r++) {   /* gru keeps the input part apart (reset gate) */
                    acc[q][r][0] = G == 4 ? SFX(vload)(gxrow[r] + cg) + bv0 : bv0;
                    acc[q][r][1] = G == 4 ? SFX(vload)(gxrow[r] + cg + VL) + bv1 : bv1;
                }
            }
            const REAL *hp6 = hpin + (long)(r0 / 6) * 6 * H;
            for (int q = 0; q < ncg; q++)
                SFX(rows6p_kernel)(H, hp6, w + (long)q * H * NRK, NRK, acc[q]);
            for (int q = 0; q < ncg; q++)
                for (int r = 0; r < 6; r++) {
                    SFX(vstore)(pre[r] + q * NRK, acc[q][r][0]);
                    SFX(vstore)(pre[r] + q * NRK + VL, acc[q][r][1]);
                }
        }
        const int nrows = b1 - r0 < 6 ? b1 - r0 : 6;
        for (int r = 0; r < nrows; r++) {
            const int b = r0 + r;
            const long row = (long)t * B + b;
            const REAL *acc = pre[r];
            REAL *yrow = a->y + (d->y_batch_first ? (long)b * d->T + t : row) * a->ldy + h0;
            REAL *hpo = hpout + SFX(pk_index)(b, h0, H);   /* stride 6 */
            if (a->lengths && t >= a->lengths[b]) {   /* padding: carry the state, output 0 */
                for (int u = 0; u < nu; u++) {
                    hcur[(long)b * H + h0 + u] = hprev[(long)b * H + h0 + u];
                    hpo[6 * u] = hprev[(long)b * H + h0 + u];
                    if (ccur) ccur[(long)b * H + h0 + u] = cprev[(long)b * H + h0 + u];
                    yrow[u] = 0;
                }
                continue;
            }
            const REAL *st = (d->cell == FL_CELL_GRU ? hprev : cprev) + (long)b * H + h0;
            REAL *cg = a->cache_gates ? a->cache_gates + row * a->gcc + (long)j * 4 * U : NULL;
            REAL *hout = hcur + (long)b * H + h0, *cout = ccur ? ccur + (long)b * H + h0 : NULL;
            if (nu == U) {
                SFX(fwd_epilogue_vec)(a, acc, gxrow[r], h0, j, st, hout, cout, yrow, hpo, cg);
            } else {
                /* the last block when U does not divide H: stage the state through
                 * zero-padded blocks (padding units compute finite values that are
                 * never stored; the gate cache keeps them, backward ignores them) */
                REAL st_b[U], h_b[U], c_b[U], y_b[U], hp_b[6 * U];
                SFX(load_blk)(st_b, st, nu);
                SFX(fwd_epilogue_vec)(a, acc, gxrow[r], h0, j, st_b, h_b, c_b, y_b, hp_b, cg);
                for (int u = 0; u < nu; u++) {
                    hout[u] = h_b[u]; yrow[u] = y_b[u]; hpo[6 * u] = hp_b[6 * u];
                    if (cout) cout[u] = c_b[u];
                }
            }
        }
    }
}

/* Time steps per input-projection GEMM: all of them when an lstm trains (Gx
 * goes straight into the gate cache); otherwise enough steps for about 256
 * GEMM rows, so Gx stays small and cache-resident. */
static int SFX(gx_chunk)(const fl_rnn_desc *d, int train)
{
    if (train && d->cell != FL_CELL_GRU) return d->T;
    int tc = (256 + d->B - 1) / d->B;
    return tc < d->T ? tc : d->T;
}

/* Elements of the packed forward weights: wih_r, whh_b, bias, bias_x, peep. */
static long SFX(packed_elems)(const fl_rnn_desc *d, int nb)
{
    const long G = SFX(rnn_gates)(d->cell), ghp = (long)nb * G * U;
    return (long)d->I * ghp + (long)nb * d->H * G * U + 2 * ghp + 3L * nb * U;
}

static void SFX(pack_all)(const fl_rnn_desc *d, int nb, REAL *pk, const REAL *w_ih,
                          const REAL *w_hh, const REAL *b_ih, const REAL *b_hh, const REAL *w_peep)
{
    const int G = SFX(rnn_gates)(d->cell), H = d->H, I = d->I;
    const long ghp = (long)nb * G * U;
    REAL *wih_r = pk, *whh_b = wih_r + (long)I * ghp, *bias = whh_b + (long)nb * H * G * U;
    REAL *bias_x = bias + ghp, *peep = bias_x + ghp;
    SFX(pack_wih_cols)(wih_r, w_ih, G, H, I, nb);
    SFX(pack_whh_blocks)(whh_b, w_hh, G, H, nb);
    if (d->cell == FL_CELL_GRU) {
        SFX(pack_bias)(bias, b_hh, NULL, G, H, nb);
        SFX(pack_bias)(bias_x, b_ih, NULL, G, H, nb);
    } else {
        SFX(pack_bias)(bias, b_ih, b_hh, G, H, nb);
        for (long k = 0; k < ghp; k++) bias_x[k] = 0;
    }
    if (d->cell == FL_CELL_PEEPHOLE) SFX(pack_peep)(peep, w_peep, H, nb);
    else for (long k = 0; k < 3L * nb * U; k++) peep[k] = 0;
}

size_t SFX(fl_rnn_packed_bytes)(const fl_rnn_desc *d)
{
    int nb;
    if (SFX(rnn_check)(d, &nb) != FL_OK) return 0;
    return sizeof(REAL) * SFX(packed_elems)(d, nb);
}

int SFX(fl_rnn_pack)(const fl_rnn_desc *d, REAL *packed, const REAL *w_ih, const REAL *w_hh,
                     const REAL *b_ih, const REAL *b_hh, const REAL *w_peep)
{
    int nb, st = SFX(rnn_check)(d, &nb);
    if (st != FL_OK) return st;
    if (!packed || !w_ih || !w_hh || !b_ih || !b_hh) return FL_ERR_ARG;
    if (d->cell == FL_CELL_PEEPHOLE && !w_peep) return FL_ERR_ARG;
    SFX(pack_all)(d, nb, packed, w_ih, w_hh, b_ih, b_hh, w_peep);
    return FL_OK;
}

size_t SFX(fl_rnn_work_bytes)(const fl_rnn_desc *d, int pass)
{
    int nb;
    if (SFX(rnn_check)(d, &nb) != FL_OK) return 0;
    const long G = SFX(rnn_gates)(d->cell), ghp = (long)nb * G * U, BH = (long)d->B * d->H;
    if (pass == 2) {
        const int gru = d->cell == FL_CELL_GRU;
        const long TB = (long)d->T * d->B, wmax = d->I > d->H ? d->I : d->H;
        return sizeof(REAL) * (TB * ghp * (gru ? 2 : 1) + (long)nb * ghp * U + ghp * d->I
                               + 3 * BH + ghp * wmax + 2 * ghp + 3L * nb * U
                               + 2 * SFX(pk_elems)(d->B, ghp)
                               + SFX(fl_gemm_work_elems)(d->n_threads));
    }
    const int train = pass == 1, tc = SFX(gx_chunk)(d, train);
    const int gx_in_cache = train && d->cell != FL_CELL_GRU;
    return sizeof(REAL) * ((long)d->I * ghp + (long)nb * d->H * G * U + 2 * ghp + 3L * nb * U
                           + 3 * BH + 2 * SFX(pk_elems)(d->B, d->H)
                           + SFX(fl_gemm_work_elems)(d->n_threads)
                           + (gx_in_cache ? 0 : (long)tc * d->B * ghp));
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

    const long ghp = (long)nb * G * U, BH = (long)B * H;
    const int TC = SFX(gx_chunk)(d, train);
    const int gx_in_cache = train && !gru;
    int owned;
    REAL *work = fl_workspace(d->work, d->work_bytes, SFX(fl_rnn_work_bytes)(d, train), &owned);
    if (!work) return FL_ERR_NOMEM;
    const long npacked = SFX(packed_elems)(d, nb);
    REAL *pk = work;
    if (d->packed) pk = (REAL *)d->packed;        /* weights packed once by fl_rnn_pack */
    else SFX(pack_all)(d, nb, pk, w_ih, w_hh, b_ih, b_hh, w_peep);
    REAL *wih_r = pk, *whh_b = wih_r + (long)I * ghp, *bias = whh_b + (long)nb * H * G * U;
    REAL *bias_x = bias + ghp, *peep = bias_x + ghp;
    REAL *hbuf = work + npacked, *cbuf = hbuf + 2 * BH;   /* inference state: h ping-pong, c in place */
    const long hpn = SFX(pk_elems)(B, H);
    REAL *hpk = cbuf + BH;                                 /* packed h ping-pong (2, hpn) */
    REAL *gemm_work = hpk + 2 * hpn;
    REAL *gx = gx_in_cache ? cache_gates : gemm_work + SFX(fl_gemm_work_elems)(d->n_threads);

    /* state slots: slot_init holds the initial state; step t reads slot_in, writes slot_out */
    const int rev = d->reverse;
    REAL *hs = train ? cache_h : hbuf, *cs = train ? cache_c : cbuf;
    long init_off = train && rev ? (long)T * BH : 0;
    for (long k = 0; k < BH; k++) {
        hs[init_off + k] = h0 ? h0[k] : 0;
        if (!gru) cs[init_off + k] = c0 ? c0[k] : 0;
    }
    for (long k = 0; k < 2 * hpn; k++) hpk[k] = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < H; k++)
            hpk[SFX(pk_index)(b, k, H)] = h0 ? h0[(long)b * H + k] : 0;

    SFX(fwd_args) a = { d, G, nb, ghp, 4L * nb * U, gx, 0, whh_b, bias, bias_x,
                        d->cell == FL_CELL_PEEPHOLE ? peep : NULL, lengths,
                        y, ldy, cache_gates };
    const int nbc = (B + BCHUNK - 1) / BCHUNK;
    const long items = (long)nb * nbc;
    const int nt = SFX(step_threads)(d, items);
    /* Chunks of TC steps: the input projection of a chunk is one GEMM (the
     * whole sequence in one when training an lstm, straight into the cache),
     * then the chunk's steps run in one parallel region. */
    for (int s0 = 0; s0 < T; s0 += TC) {
        const int s1 = s0 + TC < T ? s0 + TC : T;
        const int t0 = rev ? T - s1 : s0;   /* chunk covers times [t0, t0 + s1 - s0) */
        a.gx_t0 = t0;
        st = SFX(fl_gemm_ws)(0, (s1 - s0) * B, (int)ghp, I, x + (long)t0 * B * ldx, ldx,
                             wih_r, ghp, 0, gx, ghp, d->n_threads, gemm_work);
        if (st != FL_OK) { if (owned) free(work); return st; }
        #pragma omp parallel num_threads(nt)
        {
            for (int s = s0; s < s1; s++) {
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
                    SFX(fl_rnn_fwd_item)(&a, t, j, b0, b1, hprev, cprev, hcur, ccur,
                                         hpk + (s & 1) * hpn, hpk + ((s + 1) & 1) * hpn);
                }
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
    if (owned) free(work);
    return FL_OK;
}

#undef BCHUNK
