/* Backward through time for one recurrent layer in one direction (include
 * after real_type.h, simd_impl.h, vec_activations_impl.h, rnn_common_impl.h
 * and cells_impl.h).
 *
 * The reverse time loop only carries dh and dc and stores the pre-activation
 * gate gradients dG of every step. Per step, phase 1 (the cell's backward,
 * cells_impl.h, per unit block) turns dh, dc and the cached gates into
 * dG[t], also in the register tile's packed form; after a barrier, phase 2 computes
 * dh_{t-1} = dG[t] * W_hh for the block's units (at batch 1, for several
 * blocks per work item: fl_rnn_bwd_phase2_row1). When W_hh fits in a core's
 * L2 the threads split the batch rows instead (batch_threads), and each runs
 * both phases for its rows over all blocks with no barrier. The weight
 * gradients, the bias gradients and dX then come from single GEMMs (or
 * column sums) over all T*B rows.
 */
#define BCHUNK 24   /* batch rows per work item: a multiple of the 6-row register tile */

typedef struct {
    const fl_rnn_desc *d;
    int nb;
    long ghp, gcc;
    const REAL *cache_gates, *cache_h, *cache_c;
    SFX(cell_cfg) cell;
    const int *lengths;
    const int *perm;     /* the row in each tile slot, or NULL, as in the forward (the
                            backward builds its own: its split may differ) */
    const REAL *dy; long lddy;
    REAL *dgx;           /* (T*B, ghp) gradient wrt the input-side pre-activations */
    REAL *dgh;           /* (T*B, ghp) recurrent side; dgx itself unless cell_x_apart */
    const REAL *whhT_b;  /* (NB, U/NRK, ghp, NRK) */
    REAL *dh, *dc, *dhd; /* (B, H): dh_t, dc_t, the direct part of dh_{t-1} (cell_dh_direct) */
} SFX(bwd_args);

/* fl_rnn_bwd_phase1 with the cell's backward, cell (a constant once inlined). */
FL_INLINE void SFX(bwd_rows)(const SFX(bwd_args) *a, int t, int j, int b0, int b1, REAL *dgp,
                             SFX(cell_backward_fn) *cell)
{
    const fl_rnn_desc *d = a->d;
    const int H = d->H, B = d->B, rev = d->reverse;
    const int has_c = SFX(cell_has_c)(d->cell), direct = SFX(cell_dh_direct)(d->cell);
    const int G = SFX(cell_gates)(d->cell), h0 = j * U, nu = H - h0 < U ? H - h0 : U;
    const long BH = (long)B * H;
    const long in = rev ? t + 1 : t, out = rev ? t : t + 1;
    for (int p = b0; p < b1; p++) {
        const int b = SFX(slot_row)(a->perm, p);
        const long row = (long)t * B + b;
        REAL *gx = a->dgx + row * a->ghp + (long)j * G * U;
        REAL *gh = a->dgh + row * a->ghp + (long)j * G * U;
        REAL *gp = dgp + SFX(pk_index)(p, (long)j * G * U, a->ghp);   /* stride 6 */
        if (a->lengths && t >= a->lengths[b]) {   /* padding: no gradient, state carried */
            for (int n = 0; n < G * U; n++) { gx[n] = 0; gh[n] = 0; gp[6 * n] = 0; }
            continue;
        }
        const REAL *cg = a->cache_gates + row * a->gcc + (long)j * FL_CACHE_PER_UNIT * U;
        /* the row's gate cache and c_{t-1} for the next step: the cache is read
         * once, back to front, in pieces of a block's values a row apart, and it
         * is larger than L2 from the smallest benchmark shape up, so without this
         * phase 1 waits on L3 (bench/RESULTS.md, design measurements) */
        const int tn = rev ? t + 1 : t - 1;
        if (tn >= 0 && tn < d->T) {
            const REAL *cgn = cg + ((long)tn - t) * B * a->gcc;
            for (int l = 0; l < FL_CACHE_PER_UNIT * U; l += 64 / (int)sizeof(REAL))
                __builtin_prefetch(cgn + l);
            if (has_c) {
                const REAL *cn = a->cache_c + (rev ? tn + 1 : tn) * BH + (long)b * H + h0;
                for (int l = 0; l < nu; l += 64 / (int)sizeof(REAL)) __builtin_prefetch(cn + l);
            }
        }
        REAL dht[U];
        SFX(load_blk)(dht, a->dh + (long)b * H + h0, nu);
        if (a->dy) {
            const REAL *dyr = a->dy + row * a->lddy + h0;
            for (int u = 0; u < nu; u++) dht[u] += dyr[u];
        }
        const long bo = (long)b * H + h0;
        /* the states the cell's update read: c_{t-1} and c_t, or h_{t-1} */
        const REAL *st = (has_c ? a->cache_c : a->cache_h) + in * BH + bo;
        const REAL *st2 = has_c ? a->cache_c + out * BH + bo : NULL;
        if (nu == U) {
            cell(&a->cell, h0, gx, gh, gp, has_c ? a->dc + bo : NULL,
                 direct ? a->dhd + bo : NULL, dht, cg, st, st2);
            continue;
        }
        /* the last block when U does not divide H: stage through zero-padded
         * blocks; padding units must carry exactly zero into the deferred GEMMs */
        REAL s1[U], s2[U], dcb[U], dhdb[U];
        SFX(load_blk)(s1, st, nu);
        if (has_c) { SFX(load_blk)(s2, st2, nu); SFX(load_blk)(dcb, a->dc + bo, nu); }
        cell(&a->cell, h0, gx, gh, gp, dcb, dhdb, dht, cg, s1, s2);
        for (int u = nu; u < U; u++)
            for (int q = 0; q < G; q++) {
                gx[q * U + u] = 0; gh[q * U + u] = 0; gp[6 * (q * U + u)] = 0;
            }
        for (int u = 0; u < nu; u++) {
            if (has_c) a->dc[bo + u] = dcb[u];
            if (direct) a->dhd[bo + u] = dhdb[u];
        }
    }
}

/* Phase 1 of step t on unit block j, tile slots [b0, b1) (rows slot_row):
 * the cells' backward turns dh, dc and the gate cache into dG[t], which it
 * also writes in the register tile's packed form (pk_index) into dgp, step
 * t's buffer, so phase 2 streams it without repacking it for every unit
 * block. The switch is the one place the backward pass tells the cells
 * apart: each case is a copy of the rows' loop with its cell inlined. */
static void SFX(fl_rnn_bwd_phase1)(const SFX(bwd_args) *a, int t, int j, int b0, int b1, REAL *dgp)
{
    switch (a->cell.cell) {
    case FL_CELL_GRU:
        SFX(bwd_rows)(a, t, j, b0, b1, dgp, SFX(gru_cell_backward));
        break;
    default:   /* lstm, peephole, cifg */
        SFX(bwd_rows)(a, t, j, b0, b1, dgp, SFX(lstm_cell_backward));
    }
}

/* dw (G*H, cols) = columns [c0, c0 + cols) of dw_int (ghp, ld), its rows in
 * the interleaved order (canon_row); padding units' rows are dropped. */
static void SFX(unpack_rows)(REAL *dw, int cols, const REAL *dw_int, long ld, int c0, long ghp,
                             int G, int H)
{
    for (long n = 0; n < ghp; n++) {
        const long r = SFX(canon_row)(n, G, H);
        if (r >= 0) memcpy(dw + r * cols, dw_int + n * ld + c0, sizeof(REAL) * cols);
    }
}

static void SFX(fl_rnn_bwd_phase2)(const SFX(bwd_args) *a, int t, int j, int b0, int b1,
                           const REAL *dgp)
{
    const fl_rnn_desc *d = a->d;
    const int H = d->H, B = d->B, direct = SFX(cell_dh_direct)(d->cell);
    const int h0 = j * U, nu = H - h0 < U ? H - h0 : U;
    const REAL *w = a->whhT_b + (long)j * a->ghp * U;
    for (int r0 = b0; r0 < b1; r0 += 6) {
        const int nrows = b1 - r0 < 6 ? b1 - r0 : 6;
        int live = !a->lengths;   /* a tile of rows that have all ended carries dh */
        for (int r = 0; r < nrows && !live; r++)
            live = t < a->lengths[SFX(slot_row)(a->perm, r0 + r)];
        if (!live) continue;
        REAL out[6][U];
        if (nrows == 1) {   /* a last tile of one row (batch 1 goes through phase2_row1) */
            VEC acc[U / VL];
            for (int v = 0; v < U / VL; v++) acc[v] = (VEC){0};
            const long row = (long)t * B + SFX(slot_row)(a->perm, r0);
            SFX(row1_kernel)((int)a->ghp, a->dgh + row * a->ghp, w, a->ghp * NRK, acc, U);
            for (int v = 0; v < U / VL; v++) SFX(vstore)(out[0] + v * VL, acc[v]);
        } else {
            VEC acc[U / NRK][6][TV];
            for (int q = 0; q < U / NRK; q++)
                for (int r = 0; r < 6; r++)
                    for (int v = 0; v < TV; v++) acc[q][r][v] = (VEC){0};
            const REAL *gp6 = dgp + (long)(r0 / 6) * 6 * a->ghp;
            for (int q = 0; q < U / NRK; q++) {
                /* a last block of at most VL units needs the left vector only */
                const REAL *wq = w + q * a->ghp * NRK;
                SFX(rows_part)(nrows, U == NRK && nu <= VL, (int)a->ghp, gp6, wq, NRK, acc[q]);
            }
            for (int q = 0; q < U / NRK; q++)
                for (int r = 0; r < 6; r++)
                    for (int v = 0; v < TV; v++) SFX(vstore)(out[r] + q * NRK + v * VL, acc[q][r][v]);
        }
        for (int r = 0; r < nrows; r++) {
            const int b = SFX(slot_row)(a->perm, r0 + r);
            if (a->lengths && t >= a->lengths[b]) continue;   /* dh carried unchanged */
            REAL *dh = a->dh + (long)b * H + h0;
            if (direct) {
                const REAL *dhd = a->dhd + (long)b * H + h0;
                for (int u = 0; u < nu; u++) dh[u] = dhd[u] + out[r][u];
            } else {
                for (int u = 0; u < nu; u++) dh[u] = out[r][u];
            }
        }
    }
}

/* Phase 2 for a batch of one row, blocks [j0, j1) at once (at most
 * FL_ROW1_BLOCKS): dh (U per block) = dG_t * W_hh's columns of those blocks.
 * One block alone gives row1_kernel U / VL accumulators, too few to hide the
 * FMA latency (batch-1 training spent much of its time here, far below the
 * FMA rate: bench/RESULTS.md, design measurements); FL_ROW1_BLOCKS blocks
 * give it 8. Each column's sum runs
 * over k in the order the 6-row tile uses, so a row's dh does not depend on
 * the batch it came in. */
#define FL_ROW1_BLOCKS (8 * VL / U)
_Static_assert(FL_ROW1_BLOCKS >= 1, "a unit block wider than row1_kernel's 8 vectors");
/* dgh row t (ghp) IN; dhd (H) IN (cell_dh_direct); dh (H) OUT, units of blocks [j0, j1). */
static void SFX(fl_rnn_bwd_phase2_row1)(const SFX(bwd_args) *a, int t, int j0, int j1)
{
    const fl_rnn_desc *d = a->d;
    const int H = d->H, direct = SFX(cell_dh_direct)(d->cell);
    if (a->lengths && t >= a->lengths[0]) return;   /* B == 1: row 0; dh carried unchanged */
    VEC acc[FL_ROW1_BLOCKS * U / VL];
    const int ncols = (j1 - j0) * U;
    for (int v = 0; v < ncols / VL; v++) acc[v] = (VEC){0};
    SFX(row1_kernel)((int)a->ghp, a->dgh + (long)t * a->ghp, a->whhT_b + (long)j0 * a->ghp * U,
                     a->ghp * NRK, acc, ncols);
    REAL out[FL_ROW1_BLOCKS * U];
    for (int v = 0; v < ncols / VL; v++) SFX(vstore)(out + v * VL, acc[v]);
    for (int j = j0; j < j1; j++) {
        const int h0 = j * U, nu = H - h0 < U ? H - h0 : U;
        const REAL *o = out + (j - j0) * U;
        for (int u = 0; u < nu; u++) a->dh[h0 + u] = direct ? a->dhd[h0 + u] + o[u] : o[u];
    }
}

/* Where a backward's workspace regions lie, element offsets from its start:
 *   dgx      (T*B, ghp)  dL/d input-side pre-activations of every step
 *   dgh      (T*B, ghp)  the recurrent side, for cell_x_apart (else dgh is dgx)
 *   whhT_b   (NB, U/NRK, ghp, NRK)  each block's columns of W_hh, as slabs
 *   wih_rows (ghp, I)    W_ih's rows in the interleaved order
 *   dh, dc, dhd (B, H)   dh_t, dc_t, and the direct part of dh_{t-1}
 *   dw_int   (ghp, I + H)  interleaved weight gradients
 *   dbx, dbh (ghp)       bias gradients, input and recurrent side
 *   peep     (3, Hp)     zero-padded peephole weights
 *   dgpk     (2, pk_elems(slots_max, ghp))  packed dG_h ping-pong
 *   gemm     fl_gemm_work_elems(n_threads)  the deferred GEMMs' workspace
 *   ints     slots_max + T + 1 ints: the slot order and its counting sort
 * Written once here: fl_rnn_work_bytes sizes by it, fl_rnn_backward carves by it. */
typedef struct {
    long dgx, dgh, whhT_b, wih_rows, dh, dc, dhd, dw_int, dbx, dbh, peep, dgpk, gemm, ints, total;
} SFX(bwd_offs);

static SFX(bwd_offs) SFX(bwd_layout)(const fl_rnn_desc *d, int nb)
{
    const long ghp = (long)nb * SFX(cell_gates)(d->cell) * U;
    const long TB = (long)d->T * d->B, BH = (long)d->B * d->H;
    const int smax = SFX(slots_max)(d);
    SFX(bwd_offs) o;
    o.dgx = 0;
    o.dgh = o.dgx + TB * ghp;
    o.whhT_b = o.dgh + (SFX(cell_x_apart)(d->cell) ? TB * ghp : 0);
    o.wih_rows = o.whhT_b + (long)nb * ghp * U;
    o.dh = o.wih_rows + ghp * d->I;
    o.dc = o.dh + BH;
    o.dhd = o.dc + BH;
    o.dw_int = o.dhd + BH;
    o.dbx = o.dw_int + ghp * ((long)d->I + d->H);
    o.dbh = o.dbx + ghp;
    o.peep = o.dbh + ghp;
    o.dgpk = o.peep + 3L * nb * U;
    o.gemm = o.dgpk + 2 * SFX(pk_elems)(smax, ghp);
    o.ints = o.gemm + SFX(fl_gemm_work_elems)(d->n_threads);
    o.total = o.ints + smax + d->T + 1;
    return o;
}

static long SFX(bwd_work_elems)(const fl_rnn_desc *d, int nb)
{
    return SFX(bwd_layout)(d, nb).total;
}

/* Sum over rows: out (ghp) = sum_r m (rows, ghp), rows in order (deterministic). */
static void SFX(fl_colsum)(REAL *out, const REAL *m, long rows, long cols)
{
    for (long c = 0; c < cols; c++) out[c] = 0;
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < cols; c++) out[c] += m[r * cols + c];
}

/* Defines fl_rnn_backward_f32_<level> and fl_rnn_backward_f64_<level> (fastlstm.h). */
int SFX(fl_rnn_backward)(const fl_rnn_desc *d,
                         REAL *dx, long lddx, REAL *dh0, REAL *dc0,
                         REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh, REAL *dw_peep,
                         const REAL *dy, long lddy, const REAL *dh_n, const REAL *dc_n,
                         const REAL *cache_gates, const REAL *cache_h, const REAL *cache_c,
                         const REAL *x, long ldx,
                         const REAL *w_ih, const REAL *w_hh, const REAL *w_peep,
                         const int *lengths)
{
    int nb, st = SFX(rnn_check)(d, &nb);
    if (st != FL_OK) return st;
    const int T = d->T, B = d->B, I = d->I, H = d->H, G = SFX(cell_gates)(d->cell);
    const int has_c = SFX(cell_has_c)(d->cell), x_apart = SFX(cell_x_apart)(d->cell);
    const int peep_cell = d->cell == FL_CELL_PEEPHOLE;
    if (!dh0 || !dw_ih || !dw_hh || !db_ih || !db_hh || !cache_gates || !cache_h || !x
        || !w_ih || !w_hh) return FL_ERR_ARG;
    if (has_c && (!dc0 || !cache_c)) return FL_ERR_ARG;
    if (peep_cell && (!w_peep || !dw_peep)) return FL_ERR_ARG;
    if (ldx < I || (dx && lddx < I) || (dy && lddy < H)) return FL_ERR_SIZE;
    if (!SFX(lengths_ok)(lengths, B, T)) return FL_ERR_SIZE;

    const long ghp = (long)nb * G * U, TB = (long)T * B, BH = (long)B * H;
    const SFX(bwd_offs) o = SFX(bwd_layout)(d, nb);
    int owned;
    REAL *work = fl_workspace(d->work, d->work_bytes, sizeof(REAL) * o.total, &owned);
    if (!work) return FL_ERR_NOMEM;
    REAL *dgx = work + o.dgx, *dgh = x_apart ? work + o.dgh : dgx;
    REAL *whhT_b = work + o.whhT_b, *wih_rows = work + o.wih_rows;
    REAL *dh = work + o.dh, *dc = work + o.dc, *dhd = work + o.dhd, *dw_int = work + o.dw_int;
    REAL *dbx = work + o.dbx, *dbh = work + o.dbh, *peep = work + o.peep;
    REAL *dgpk = work + o.dgpk, *gemm_work = work + o.gemm;
    const int nbt = SFX(batch_threads)(d, ghp, T);
    int S;   /* tile slots */
    const int *perm = SFX(slot_order)((int *)(work + o.ints), &S, lengths, B, T, nbt);
    const long dgpn = SFX(pk_elems)(S, ghp);   /* dgpk is (2, dgpn) */
    for (long k = 0; k < 2 * dgpn; k++) dgpk[k] = 0;
    if (peep_cell) SFX(pack_peep)(peep, w_peep, H, nb);

    /* whhT_b (NB, U/NRK, ghp, NRK): block j's columns of W_hh (rows in the
     * interleaved order) as contiguous slabs of NRK units, like the forward
     * pass's W slabs; wih_rows[n][k] = w_ih[canon(n)][k] */
    for (long n = 0; n < ghp; n++) {   /* each row of W_hh read once, in order */
        const long r = SFX(canon_row)(n, G, H);
        for (int j = 0; j < nb; j++)
            for (int s = 0; s < U / NRK; s++) {
                const int h0 = j * U + s * NRK;
                REAL *dst = whhT_b + ((long)j * U + s * NRK) * ghp + n * NRK;
                if (r >= 0 && h0 + NRK <= H) {
                    memcpy(dst, w_hh + r * H + h0, NRK * sizeof(REAL));
                } else {
                    for (int u = 0; u < NRK; u++)
                        dst[u] = (r >= 0 && h0 + u < H) ? w_hh[r * H + h0 + u] : 0;
                }
            }
    }
    for (long n = 0; n < ghp; n++) {
        long r = SFX(canon_row)(n, G, H);
        for (int k = 0; k < I; k++) wih_rows[n * I + k] = r >= 0 ? w_ih[r * I + k] : 0;
    }
    for (long k = 0; k < BH; k++) {
        dh[k] = dh_n ? dh_n[k] : 0;
        dc[k] = (has_c && dc_n) ? dc_n[k] : 0;
    }

    SFX(bwd_args) a = { d, nb, ghp, SFX(gate_cache_cols)(H), cache_gates, cache_h, cache_c,
                        SFX(cell_config)(d, peep, nb), lengths, perm, dy, lddy, dgx, dgh, whhT_b,
                        dh, dc, dhd };
    const int nbc = (B + BCHUNK - 1) / BCHUNK;
    const long items = (long)nb * nbc;
    const int rg = (B + 5) / 6, ngrp = (nb + FL_ROW1_BLOCKS - 1) / FL_ROW1_BLOCKS;
    const int nt = nbt ? nbt : SFX(step_threads)(d, B == 1 ? ngrp : items);
    fl_test_note_step_threads(nt);
    #pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        for (int s = 0; s < T; s++) {
            const int t = d->reverse ? s : T - 1 - s;
            if (nbt && lengths) {   /* rows sorted by length: every nth tile, as in the forward */
                for (int j = 0; j < nb; j++)
                    for (int g = tid; g < rg; g += nth)
                        SFX(fl_rnn_bwd_phase1)(&a, t, j, 6 * g, 6 * g + 6 < B ? 6 * g + 6 : B,
                                               dgpk + (s & 1) * dgpn);
                for (int j = 0; j < nb; j++)
                    for (int g = tid; g < rg; g += nth)
                        SFX(fl_rnn_bwd_phase2)(&a, t, j, 6 * g, 6 * g + 6 < B ? 6 * g + 6 : B,
                                               dgpk + (s & 1) * dgpn);
                continue;
            }
            if (nbt) {   /* split by batch rows: whole shares, no barrier */
                for (int u = tid; u < nbt; u += nth) {
                    int r0, r1, p0;
                    SFX(split_share)(B, u, nbt, &r0, &r1, &p0);
                    for (int j = 0; j < nb && r0 < r1; j++)
                        SFX(fl_rnn_bwd_phase1)(&a, t, j, p0, p0 + r1 - r0, dgpk + (s & 1) * dgpn);
                    for (int j = 0; j < nb && r0 < r1; j++)
                        SFX(fl_rnn_bwd_phase2)(&a, t, j, p0, p0 + r1 - r0, dgpk + (s & 1) * dgpn);
                }
                continue;
            }
            if (B == 1) {
                /* groups of FL_ROW1_BLOCKS blocks; both loops give a thread the
                 * same groups, so phase 2 of a group is followed by phase 1 of
                 * the same blocks on the same thread, as below */
                #pragma omp for schedule(static)
                for (int g = 0; g < ngrp; g++)
                    for (int j = g * FL_ROW1_BLOCKS; j < nb && j < (g + 1) * FL_ROW1_BLOCKS; j++)
                        SFX(fl_rnn_bwd_phase1)(&a, t, j, 0, 1, dgpk + (s & 1) * dgpn);
                #pragma omp for schedule(static) nowait
                for (int g = 0; g < ngrp; g++) {
                    const int j0 = g * FL_ROW1_BLOCKS;
                    SFX(fl_rnn_bwd_phase2_row1)(&a, t, j0, j0 + FL_ROW1_BLOCKS < nb ? j0 + FL_ROW1_BLOCKS : nb);
                }
                continue;
            }
            #pragma omp for schedule(static)
            for (long it = 0; it < items; it++) {
                int j = (int)(it / nbc), bc = (int)(it % nbc);
                int b0 = bc * BCHUNK, b1 = b0 + BCHUNK < B ? b0 + BCHUNK : B;
                SFX(fl_rnn_bwd_phase1)(&a, t, j, b0, b1, dgpk + (s & 1) * dgpn);
            }
            /* phase 2 writes only dh of the item's own rows and units, which
             * only the same item (same thread, static schedule) reads next;
             * the packed dG alternates buffers, so the next phase 1 never
             * overwrites what a slower thread's phase 2 still reads */
            #pragma omp for schedule(static) nowait
            for (long it = 0; it < items; it++) {
                int j = (int)(it / nbc), bc = (int)(it % nbc);
                int b0 = bc * BCHUNK, b1 = b0 + BCHUNK < B ? b0 + BCHUNK : B;
                SFX(fl_rnn_bwd_phase2)(&a, t, j, b0, b1, dgpk + (s & 1) * dgpn);
            }
        }
    }
    for (long k = 0; k < BH; k++) {
        dh0[k] = dh[k];
        if (has_c) dc0[k] = dc[k];
    }

    /* deferred weight gradients, GEMMs over all T*B rows */
    const int nthr = d->n_threads;
    const REAL *hprev = cache_h + (d->reverse ? BH : 0);   /* (T*B, H): h_{t-1} of each step */
    if (!x_apart && I + H > 2) {
        /* [dW_ih | dW_hh] = dG^T [X | H_prev], one product (unless the sides differ) */
        st = SFX(fl_gemm_ws2)(1, (int)ghp, I + H, (int)TB, dgx, ghp, x, ldx, I, hprev, H, 0,
                              dw_int, I + H, nthr, gemm_work);
        if (st != FL_OK) goto done;
        SFX(unpack_rows)(dw_ih, I, dw_int, I + H, 0, ghp, G, H);
        SFX(unpack_rows)(dw_hh, H, dw_int, I + H, I, ghp, G, H);
    } else {
        st = SFX(fl_gemm_ws)(1, (int)ghp, I, (int)TB, dgx, ghp, x, ldx, 0, dw_int, I, nthr, gemm_work);
        if (st != FL_OK) goto done;
        SFX(unpack_rows)(dw_ih, I, dw_int, I, 0, ghp, G, H);
        st = SFX(fl_gemm_ws)(1, (int)ghp, H, (int)TB, dgh, ghp, hprev, H, 0, dw_int, H, nthr, gemm_work);
        if (st != FL_OK) goto done;
        SFX(unpack_rows)(dw_hh, H, dw_int, H, 0, ghp, G, H);
    }
    SFX(fl_colsum)(dbx, dgx, TB, ghp);
    if (x_apart) SFX(fl_colsum)(dbh, dgh, TB, ghp);
    for (long n = 0; n < ghp; n++) {
        long r = SFX(canon_row)(n, G, H);
        if (r >= 0) { db_ih[r] = dbx[n]; db_hh[r] = x_apart ? dbh[n] : dbx[n]; }
    }
    if (peep_cell)   /* c_{t-1} and c_t of each step, (T*B, H) each */
        SFX(peephole_weights_backward)(dw_peep, dgx, cache_c + (d->reverse ? BH : 0),
                                       cache_c + (d->reverse ? 0 : BH), TB, ghp, H);
    if (dx)
        st = SFX(fl_gemm_ws)(0, (int)TB, I, (int)ghp, dgx, ghp, wih_rows, I, 1, dx, lddx, nthr, gemm_work);
done:
    if (owned) free(work);
    return st;
}

#undef BCHUNK
#undef FL_ROW1_BLOCKS
