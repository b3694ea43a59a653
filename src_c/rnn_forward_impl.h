/* Forward pass of one recurrent layer in one direction (include after
 * real_type.h, simd_impl.h, vec_activations_impl.h, rnn_common_impl.h and
 * cells_impl.h).
 *
 * 1. Weights packed once per parameter change (fl_rnn_pack), or per call.
 * 2. Input projection: for a narrow input (fused_x: I <= max(64, H), not
 *    gru, more than 6 rows or a single step) the step's tile does it: the
 *    tile multiplies [x_t, h_{t-1}] (K = I + H) by [W_ih; W_hh]^T, the packed
 *    h buffer carries x_t in its first I columns, and the whole sequence is
 *    one parallel region. Otherwise it is hoisted: Gx (rows, NB*G*U) =
 *    bias + X (rows, I) * W_ih^T (fl_rnn_project, on the same slabs), per
 *    chunk of time steps, each chunk's steps one region.
 * 3. The time loop. Work items are (unit block j, batch rows): an item
 *    multiplies its rows of h_{t-1} by block j of W_hh, then runs the cell
 *    (cells_impl.h) on each row's G*U pre-activations while they are still
 *    hot. h_t is also written in the register tile's packed form, so the
 *    next step's tile needs no packing. Threads
 *    split the work one of two ways (batch_threads decides):
 *    - by batch rows, for W_hh up to 2 MiB and more than one row tile: each
 *      thread runs its own share of the rows (on tiles of its own,
 *      split_share) through every step, all blocks, with no barrier at all;
 *    - by unit blocks: a thread's blocks of W_hh stay in its cache across
 *      steps, and every step ends in a barrier, because each item reads all
 *      of h_{t-1}.
 */
#define BCHUNK 24   /* batch rows per work item: a multiple of the 6-row register tile */
#define FL_FUSE_MAX_I 64   /* an input this narrow, or no wider than H, goes in the step */
#define PROJ_MC 72         /* rows of X per block of the hoisted projection */
#define PROJ_FLOPS_PER_THREAD 4000000L   /* as the GEMM's: smaller products run on fewer threads */

/* Does the step project the input (x_t * W_ih^T in the tile)? For inputs
 * up to FL_FUSE_MAX_I or H wide, with more than one row tile or a single
 * step (streaming): no Gx round trip through memory and one parallel region
 * for the sequence; past the bound, a wide input was slower fused than
 * hoisted (bench/RESULTS.md, design measurements). A sequence of at most 6
 * rows per step (serving) does better with Gx hoisted, where the
 * projection's tile runs over 6 time steps at once. gru needs the input part
 * of its candidate gate apart from the recurrent part. Both ways give
 * bitwise the same result. */
static inline int SFX(fused_x)(const fl_rnn_desc *d)
{
    return !SFX(cell_x_apart)(d->cell) && (d->I <= FL_FUSE_MAX_I || d->I <= d->H)
           && (d->B > 6 || d->T == 1);
}

typedef struct {
    const fl_rnn_desc *d;
    int G, nb;
    long ghp;            /* NB*G*U: width of a Gx row */
    long gcc;            /* gate_cache_cols(H): width of a gate-cache row */
    const REAL *gx;      /* (TC*B, ghp): Gx of time steps [gx_t0, gx_t0 + TC) */
    int gx_t0;
    const REAL *wb;      /* (NB, G*U/NRK, I + H, NRK): [W_ih; W_hh]^T slabs */
    int xk;              /* input columns the step projects: I, or 0 when Gx is hoisted */
    const REAL *bias;    /* (ghp) lstm: b_ih + b_hh; gru: b_hh */
    const REAL *bias_x;  /* (ghp) gru only: b_ih */
    SFX(cell_cfg) cell;
    const REAL *x; long ldx;   /* the layer input (T, B, ldx), read when xk > 0 */
    const int *lengths;
    const int *perm;     /* the row in each tile slot, or NULL (slot = row): with lengths
                            (B), longest first, so tiles of rows that have all ended are
                            skipped; with a split by batch rows (split_order), each
                            share on tiles of its own, -1 in spare slots */
    REAL *y; long ldy;
    REAL *cache_gates;   /* (T*B, gcc) or NULL */
} SFX(fwd_args);

/* fwd_tile_cells with the cell's forward, cell (a constant once inlined). */
FL_INLINE void SFX(fwd_rows)(const SFX(fwd_args) *a, int t, int j, int r0, int nrows,
                             const REAL *pre, const REAL *const *gxrow, const REAL *hprev,
                             const REAL *cprev, REAL *hcur, REAL *ccur, REAL *hpout,
                             SFX(cell_forward_fn) *cell)
{
    const fl_rnn_desc *d = a->d;
    const int H = d->H, B = d->B, h0 = j * U, nu = H - h0 < U ? H - h0 : U, KT = a->xk + H;
    for (int r = 0; r < nrows; r++) {
        const int b = SFX(slot_row)(a->perm, r0 + r);
        const long row = (long)t * B + b;
        const REAL *acc = pre + r * FL_MAX_GATES * U;
        REAL *yrow = a->y + (d->y_batch_first ? (long)b * d->T + t : row) * a->ldy + h0;
        /* padding: carry the state, output 0; the gate cache row stays unwritten
         * (backward writes zero gradients there without reading it) */
        if (a->lengths && t >= a->lengths[b]) {
            for (int u = 0; u < nu; u++) {
                hcur[(long)b * H + h0 + u] = hprev[(long)b * H + h0 + u];
                if (ccur) ccur[(long)b * H + h0 + u] = cprev[(long)b * H + h0 + u];
                yrow[u] = 0;
            }
            continue;
        }
        /* the state the cell updates: c, or h for a cell without c */
        const REAL *st = (SFX(cell_has_c)(d->cell) ? cprev : hprev) + (long)b * H + h0;
        REAL *cg = a->cache_gates
                       ? a->cache_gates + row * a->gcc + (long)j * FL_CACHE_PER_UNIT * U : NULL;
        REAL *hout = hcur + (long)b * H + h0, *cout = ccur ? ccur + (long)b * H + h0 : NULL;
        if (nu == U) {
            const SFX(h_dest) out = { hout, yrow };
            SFX(cell_forward_row)(cell, &a->cell, h0, out, cout, cg, acc, gxrow[r], st, U);
        } else {
            /* the last block when U does not divide H: stage the state through
             * zero-padded blocks (padding units compute finite values that are
             * never stored; the gate cache keeps them, backward ignores them,
             * so without a cache only the vectors holding real units run) */
            REAL st_b[U], h_b[U], c_b[U];
            SFX(load_blk)(st_b, st, nu);
            const int nv = cg ? U : (nu + VL - 1) / VL * VL;
            const SFX(h_dest) out = { h_b, NULL };
            SFX(cell_forward_row)(cell, &a->cell, h0, out, c_b, cg, acc, gxrow[r], st_b, nv);
            for (int u = 0; u < nu; u++) hout[u] = yrow[u] = h_b[u];
            if (cout) for (int u = 0; u < nu; u++) cout[u] = c_b[u];
        }
    }
    /* h_t in the register tile's packed form, for the next step's tile; a
     * lone row's step reads its row of h_{t-1} instead (row1_kernel) */
    if (nrows == 1) return;
    const REAL *src[6];
    for (int r = 0; r < nrows; r++) src[r] = hcur + (long)SFX(slot_row)(a->perm, r0 + r) * H + h0;
    SFX(pack_tile_cols)(hpout, KT, r0, a->xk + h0, src, nrows, nu);
}

/* The cells of tile slots [r0, r0 + nrows) on unit block j at time t, from
 * pre (6, FL_MAX_GATES * U), the tile's pre-activations, and gxrow (6), each
 * row's input side (cell_x_apart); the rest as fl_rnn_fwd_item's arguments.
 * The switch is the one place the forward pass tells the cells apart: each
 * case is a copy of the rows' loop with its cell's forward inlined. Out of
 * line, so the register tile's loops in fl_rnn_fwd_item get their registers
 * without the cells' code around them: inlined, the cells' values that live
 * across the tile pushed its loop counters and strides onto the stack
 * (bench/RESULTS.md, design measurements). */
static FL_NOINLINE void SFX(fwd_tile_cells)(const SFX(fwd_args) *a, int t, int j, int r0,
                                            int nrows, const REAL *pre, const REAL *const *gxrow,
                                            const REAL *hprev, const REAL *cprev, REAL *hcur,
                                            REAL *ccur, REAL *hpout)
{
    switch (a->cell.cell) {
    case FL_CELL_GRU:
        SFX(fwd_rows)(a, t, j, r0, nrows, pre, gxrow, hprev, cprev, hcur, ccur, hpout,
                      SFX(gru_cell_forward));
        break;
    default:   /* lstm, peephole, cifg */
        SFX(fwd_rows)(a, t, j, r0, nrows, pre, gxrow, hprev, cprev, hcur, ccur, hpout,
                      SFX(lstm_cell_forward));
    }
}

/* One work item at time t: tile slots [b0, b1) (rows slot_row) of unit block j.
 * hprev, cprev (B, H) IN; hcur, ccur (B, H) OUT (ccur may alias cprev);
 * hpin, hpout: [x_t, h_{t-1}] IN and [x_tn, h_t] OUT in the tile's packed
 * form (pk_index, KT columns), so the next step's tile reads one contiguous
 * stream with no packing; the j = 0 item writes the rows of x_tn, the next
 * step's input (tn < 0: none). */
static void SFX(fl_rnn_fwd_item)(const SFX(fwd_args) *a, int t, int j, int b0, int b1,
                          const REAL *hprev, const REAL *cprev, REAL *hcur, REAL *ccur,
                          const REAL *hpin, REAL *hpout, int tn)
{
    const fl_rnn_desc *d = a->d;
    const int H = d->H, B = d->B, I = d->I, G = a->G, GU = G * U;
    const int h0 = j * U, nu = H - h0 < U ? H - h0 : U;
    /* a last block of at most VL units, where a column group is one gate's U
     * units, needs only the left vector of each group */
    const int narrow = U == NRK && nu <= VL;
    const int xk = a->xk, KT = xk + H, KW = I + H;   /* KT: columns of the packed [x, h] */
    const REAL *w = a->wb + (long)j * KW * GU;
    const REAL *bias = a->bias + (long)j * GU;
    for (int r0 = b0; r0 < b1; r0 += 6) {
        const int nrows = b1 - r0 < 6 ? b1 - r0 : 6;
        /* pre (6, G*U): the block's gate pre-activations for up to 6 rows */
        REAL pre[6][FL_MAX_GATES * U];
        const REAL *gxrow[6] = { NULL };
        for (int r = 0; r < nrows && !xk; r++) {
            const int b = SFX(slot_row)(a->perm, r0 + r);
            gxrow[r] = a->gx + ((long)(t - a->gx_t0) * B + b) * a->ghp + (long)j * GU;
        }
        int live = !a->lengths;   /* rows all past their lengths only carry their state */
        for (int r = 0; r < nrows && !live; r++)
            live = t < a->lengths[SFX(slot_row)(a->perm, r0 + r)];
        /* Gx starts from the bias (lstm: b_ih + b_hh), as a projecting step's
         * accumulators do, so a row's result is the same whichever way its
         * batch projects the input; gru keeps its input part apart (reset gate) */
        const int add_gx = !SFX(cell_x_apart)(d->cell) && !xk;
        if (live && nrows == 1) {   /* a lone row (batch 1, or a share's last): all G*U columns */
            VEC acc[FL_MAX_GATES * U / VL];
            for (int v = 0; v < GU / VL; v++) {
                VEC bv = SFX(vload)(bias + v * VL);
                acc[v] = add_gx ? SFX(vload)(gxrow[0] + v * VL) : bv;
            }
            const int b = SFX(slot_row)(a->perm, r0);
            if (xk) SFX(row1_kernel)(I, a->x + ((long)t * B + b) * a->ldx, w, (long)KW * NRK, acc, GU);
            SFX(row1_kernel)(H, hprev + (long)b * H, w + (long)I * NRK, (long)KW * NRK, acc, GU);
            for (int v = 0; v < GU / VL; v++) SFX(vstore)(pre[0] + v * VL, acc[v]);
        } else if (live) {
            for (int r = nrows; r < 6; r++) gxrow[r] = gxrow[0];   /* spare rows repeat row r0 */
            VEC acc[FL_MAX_GATES * U / NRK][6][TV];
            const int ncg = GU / NRK;
            for (int q = 0; q < ncg; q++)
                for (int v = 0; v < TV; v++) {
                    const int c = q * NRK + v * VL;
                    const VEC bv = SFX(vload)(bias + c);
                    for (int r = 0; r < 6; r++) acc[q][r][v] = add_gx ? SFX(vload)(gxrow[r] + c) : bv;
                }
            const REAL *hp6 = hpin + (long)(r0 / 6) * 6 * KT;
            for (int q = 0; q < ncg; q++) {
                const REAL *wq = w + ((long)q * KW + I - xk) * NRK;
                SFX(rows_part)(nrows, narrow, KT, hp6, wq, NRK, acc[q]);
            }
            for (int q = 0; q < ncg; q++)
                for (int r = 0; r < 6; r++)
                    for (int v = 0; v < TV; v++) SFX(vstore)(pre[r] + q * NRK + v * VL, acc[q][r][v]);
        }
        SFX(fwd_tile_cells)(a, t, j, r0, nrows, pre[0], gxrow, hprev, cprev, hcur, ccur, hpout);
        if (xk && j == 0 && tn >= 0 && nrows > 1)   /* the next step's input rows, packed */
            for (int r = 0; r < nrows; r++) {
                const REAL *xr = a->x + ((long)tn * B + SFX(slot_row)(a->perm, r0 + r)) * a->ldx;
                for (int k = 0; k < xk; k++) hpout[SFX(pk_index)(r0 + r, k, KT)] = xr[k];
            }
    }
}

/* The hoisted input projection of one block of rows: gx (rows, ghp) =
 * bias + X (rows, I) * W_ih^T (lstm: b_ih + b_hh; gru: b_ih), rows <=
 * PROJ_MC, taking W_ih from the x rows of the step's [W_ih; W_hh] slabs (one
 * packed form for both ways of projecting).
 * The block is packed into 6-row slivers (xp, PROJ_MC * I) so each (I, NRK)
 * slab stays in L1 across the block's tiles, as in the GEMM; sums run over k
 * in order, so the result does not depend on how rows are split. */
static void SFX(fl_rnn_project)(const SFX(fwd_args) *a, const REAL *x, long ldx, int rows, REAL *xp,
                         REAL *gx)
{
    const int I = a->d->I, KW = I + a->d->H;
    const REAL *bias = SFX(cell_x_apart)(a->d->cell) ? a->bias_x : a->bias;
    for (int s = 0; s < rows; s += 6)
        for (int r = 0; r < 6; r++)
            for (int k = 0; k < I; k++)
                xp[(long)s * I + 6L * k + r] = s + r < rows ? x[(long)(s + r) * ldx + k] : 0;
    for (long c0 = 0; c0 < a->ghp; c0 += NRK) {   /* column groups, in slab order */
        const REAL *w = a->wb + c0 * KW;
        VEC bv[TV];
        for (int v = 0; v < TV; v++) bv[v] = SFX(vload)(bias + c0 + v * VL);
        for (int s = 0; s < rows; s += 6) {
            VEC acc[6][TV];
            for (int r = 0; r < 6; r++)
                for (int v = 0; v < TV; v++) acc[r][v] = bv[v];
            SFX(rows6p_kernel)(I, xp + (long)s * I, w, NRK, acc);
            for (int r = 0; r < 6 && s + r < rows; r++)
                for (int v = 0; v < TV; v++)
                    SFX(vstore)(gx + (long)(s + r) * a->ghp + c0 + v * VL, acc[r][v]);
        }
    }
}

/* Block blk (PROJ_MC rows) of a chunk's hoisted projection: xc (rows, ldx)
 * the chunk's input rows, gx (rows, ghp) its Gx, xp the thread's X buffer. */
static void SFX(project_block)(const SFX(fwd_args) *a, const REAL *xc, int rows, int blk,
                               REAL *xp, REAL *gx)
{
    const int m0 = blk * PROJ_MC, mr = rows - m0 < PROJ_MC ? rows - m0 : PROJ_MC;
    SFX(fl_rnn_project)(a, xc + (long)m0 * a->ldx, a->ldx, mr, xp, gx + (long)m0 * a->ghp);
}

/* The packed forward weights (fl_rnn_pack), element offsets from their start:
 *   wb      (NB, G*U/NRK, I + H, NRK)  [W_ih; W_hh]^T slabs (pack_w_slabs)
 *   bias    (ghp)    the bias the step's accumulators start from: b_ih + b_hh,
 *                    or b_hh alone for cell_x_apart
 *   bias_x  (ghp)    b_ih for cell_x_apart, else zeros
 *   peep    (3, Hp)  peephole weights, zero-padded (zeros for other cells)
 * Written once here: fl_rnn_packed_bytes sizes by it, pack_all and
 * fl_rnn_forward carve by it. */
typedef struct { long wb, bias, bias_x, peep, total; } SFX(packed_offs);
static SFX(packed_offs) SFX(packed_layout)(const fl_rnn_desc *d, int nb)
{
    const long ghp = (long)nb * SFX(cell_gates)(d->cell) * U;
    SFX(packed_offs) o;
    o.wb = 0;
    o.bias = o.wb + ((long)d->I + d->H) * ghp;
    o.bias_x = o.bias + ghp;
    o.peep = o.bias_x + ghp;
    o.total = o.peep + 3L * nb * U;
    return o;
}

static void SFX(pack_all)(const fl_rnn_desc *d, int nb, REAL *pk, const REAL *w_ih,
                          const REAL *w_hh, const REAL *b_ih, const REAL *b_hh, const REAL *w_peep)
{
    const int G = SFX(cell_gates)(d->cell), H = d->H, I = d->I;
    const long ghp = (long)nb * G * U;
    const SFX(packed_offs) o = SFX(packed_layout)(d, nb);
    REAL *wb = pk + o.wb, *bias = pk + o.bias, *bias_x = pk + o.bias_x, *peep = pk + o.peep;
    SFX(pack_w_slabs)(wb, w_ih, G, H, I, 0, I + H, nb);
    SFX(pack_w_slabs)(wb, w_hh, G, H, H, I, I + H, nb);
    if (SFX(cell_x_apart)(d->cell)) {
        SFX(pack_bias)(bias, b_hh, NULL, G, H, nb);
        SFX(pack_bias)(bias_x, b_ih, NULL, G, H, nb);
    } else {
        SFX(pack_bias)(bias, b_ih, b_hh, G, H, nb);
        for (long k = 0; k < ghp; k++) bias_x[k] = 0;
    }
    if (d->cell == FL_CELL_PEEPHOLE) SFX(pack_peep)(peep, w_peep, H, nb);
    else for (long k = 0; k < 3L * nb * U; k++) peep[k] = 0;
}

/* Defines fl_rnn_packed_bytes_f32_<level> and fl_rnn_packed_bytes_f64_<level> (fastlstm.h). */
size_t SFX(fl_rnn_packed_bytes)(const fl_rnn_desc *d)
{
    int nb;
    if (SFX(rnn_check)(d, &nb) != FL_OK) return 0;
    return sizeof(REAL) * SFX(packed_layout)(d, nb).total;
}

/* Defines fl_rnn_pack_f32_<level> and fl_rnn_pack_f64_<level> (fastlstm.h). */
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

/* How a forward runs (the input projection's form) and where its workspace
 * regions lie, element offsets from the workspace's start:
 *   packed  packed_layout's weights, packed per call (unused with d->packed)
 *   hbuf    (2, B, H)  inference: h ping-pong
 *   cbuf    (B, H)     inference: c, updated in place
 *   hpk     (2, pk_elems(slots_max, xk + H))  the packed [x, h] ping-pong
 *   xpk     (n_threads, PROJ_MC, I)  the hoisted projection's X blocks; none when fused
 *   gx      (tc * B, ghp)  Gx of a chunk of steps; none when fused or gx_in_cache
 *   ints    slots_max + T + 1 ints: the slot order and its counting sort
 * Written once here: fl_rnn_work_bytes sizes by it, fl_rnn_forward carves by it. */
typedef struct {
    int fused;         /* the step projects the input (fused_x) */
    int gx_in_cache;   /* training, hoisted, summed: Gx goes straight into the gate cache
                          rows, which the cell then overwrites with the gates */
    int tc;            /* time steps per hoisted projection */
    long packed, hbuf, cbuf, hpk, xpk, gx, ints, total;
} SFX(fwd_plan);

static SFX(fwd_plan) SFX(fwd_layout)(const fl_rnn_desc *d, int nb, int train)
{
    const long ghp = (long)nb * SFX(cell_gates)(d->cell) * U, BH = (long)d->B * d->H;
    const int smax = SFX(slots_max)(d);
    SFX(fwd_plan) p;
    p.fused = SFX(fused_x)(d);
    p.gx_in_cache = train && !SFX(cell_x_apart)(d->cell) && !p.fused;
    /* all steps at once when there is no Gx buffer; otherwise about 256
     * rows a chunk, so Gx stays small and cache-resident */
    p.tc = (256 + d->B - 1) / d->B;
    if (p.fused || p.gx_in_cache || p.tc > d->T) p.tc = d->T;
    p.packed = 0;
    p.hbuf = p.packed + SFX(packed_layout)(d, nb).total;
    p.cbuf = p.hbuf + 2 * BH;
    p.hpk = p.cbuf + BH;
    p.xpk = p.hpk + 2 * SFX(pk_elems)(smax, (p.fused ? d->I : 0) + d->H);
    p.gx = p.xpk + (p.fused ? 0 : (long)d->n_threads * PROJ_MC * d->I);
    p.ints = p.gx + (p.fused || p.gx_in_cache ? 0 : (long)p.tc * d->B * ghp);
    p.total = p.ints + smax + d->T + 1;
    return p;
}

static long SFX(fwd_work_elems)(const fl_rnn_desc *d, int nb, int train)
{
    return SFX(fwd_layout)(d, nb, train).total;
}

/* Steps [s0, s1) of the time loop, as each thread of the region runs them,
 * or the caller alone when one thread does: libgomp makes two futex system
 * calls even for a team of one, a cost a streaming step notices
 * (bench/RESULTS.md, design measurements). */
typedef struct {
    const SFX(fwd_args) *a;
    int s0, s1, nbt, nb, nbc, rg, train;   /* nbt: shares of a split by batch rows, or 0 */
    long items, BH, hpn;
    REAL *cache_h, *cache_c;   /* training: the state caches */
    REAL *hbuf, *cbuf;         /* inference: h ping-pong (2, B, H), c in place (B, H) */
    REAL *hpk;                 /* packed [x, h] ping-pong (2, hpn) */
    fl_barrier *bar;           /* the split by unit blocks': zeroed for each region */
} SFX(fwd_loop);

static void SFX(fwd_steps)(const SFX(fwd_loop) *L, int tid, int nth)
{
    const SFX(fwd_args) *a = L->a;
    const fl_rnn_desc *d = a->d;
    const int T = d->T, B = d->B, rev = d->reverse, has_c = SFX(cell_has_c)(d->cell);
    const int nb = L->nb, rg = L->rg, nbc = L->nbc, nbt = L->nbt;
    const long BH = L->BH, hpn = L->hpn;
    int phase = 0;
    for (int s = L->s0; s < L->s1; s++) {
        const int t = rev ? T - 1 - s : s;
        const REAL *hprev, *cprev;
        REAL *hcur, *ccur;
        if (L->train) {
            long in = rev ? t + 1 : t, out = rev ? t : t + 1;
            hprev = L->cache_h + in * BH; hcur = L->cache_h + out * BH;
            cprev = has_c ? L->cache_c + in * BH : NULL;
            ccur = has_c ? L->cache_c + out * BH : NULL;
        } else {
            hprev = L->hbuf + (s & 1) * BH; hcur = L->hbuf + ((s + 1) & 1) * BH;
            cprev = has_c ? L->cbuf : NULL; ccur = has_c ? L->cbuf : NULL;
        }
        const int tn = s + 1 < T ? (rev ? T - 2 - s : s + 1) : -1;
        const REAL *hpin = L->hpk + (s & 1) * hpn;
        REAL *hpout = L->hpk + ((s + 1) & 1) * hpn;
        if (nbt && !a->lengths) {
            /* split by batch rows: whole shares, no barrier (a region granted
             * fewer threads than shares gives a thread several) */
            for (int u = tid; u < nbt; u += nth) {
                int r0, r1, p0;
                SFX(split_share)(B, u, nbt, &r0, &r1, &p0);
                for (int j = 0; j < nb && r0 < r1; j++)
                    SFX(fl_rnn_fwd_item)(a, t, j, p0, p0 + r1 - r0, hprev, cprev, hcur, ccur,
                                         hpin, hpout, tn);
            }
            continue;
        }
        if (nbt) {
            /* rows sorted by length: every nth 6-row tile, so the long rows
             * are shared out (a contiguous share would give one thread all of
             * them; tiles apart cost a few shared cache lines per step) */
            for (int j = 0; j < nb; j++)
                for (int g = tid; g < rg; g += nth)
                    SFX(fl_rnn_fwd_item)(a, t, j, 6 * g, 6 * g + 6 < B ? 6 * g + 6 : B,
                                         hprev, cprev, hcur, ccur, hpin, hpout, tn);
            continue;
        }
        /* split by unit blocks: a thread's share of the items, the same
         * every step, then the team's barrier (the next step reads all of h_t) */
        const long it1 = L->items * (tid + 1) / nth;
        for (long it = L->items * tid / nth; it < it1; it++) {
            int j = (int)(it / nbc), bc = (int)(it % nbc);
            int b0 = bc * BCHUNK, b1 = b0 + BCHUNK < B ? b0 + BCHUNK : B;
            SFX(fl_rnn_fwd_item)(a, t, j, b0, b1, hprev, cprev, hcur, ccur, hpin, hpout, tn);
        }
        fl_barrier_wait(L->bar, nth, &phase);
    }
}

/* Defines fl_rnn_forward_f32_<level> and fl_rnn_forward_f64_<level> (fastlstm.h). */
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
    const int T = d->T, B = d->B, I = d->I, H = d->H, G = SFX(cell_gates)(d->cell);
    const int has_c = SFX(cell_has_c)(d->cell), train = cache_gates != NULL;
    if (!y || !h_n || !x || !w_ih || !w_hh || !b_ih || !b_hh) return FL_ERR_ARG;
    if (has_c && !c_n) return FL_ERR_ARG;
    if (d->cell == FL_CELL_PEEPHOLE && !w_peep) return FL_ERR_ARG;
    if (train && (!cache_h || (has_c && !cache_c))) return FL_ERR_ARG;
    if (ldy < H || ldx < I) return FL_ERR_SIZE;
    if (!SFX(lengths_ok)(lengths, B, T)) return FL_ERR_SIZE;

    const long ghp = (long)nb * G * U, BH = (long)B * H;
    const SFX(fwd_plan) P = SFX(fwd_layout)(d, nb, train);
    const int TC = P.tc, fused = P.fused;
    int owned;
    REAL *work = fl_workspace(d->work, d->work_bytes, sizeof(REAL) * P.total, &owned);
    if (!work) return FL_ERR_NOMEM;
    REAL *pk = work + P.packed;
    if (d->packed) pk = (REAL *)d->packed;        /* weights packed once by fl_rnn_pack */
    else SFX(pack_all)(d, nb, pk, w_ih, w_hh, b_ih, b_hh, w_peep);
    const SFX(packed_offs) po = SFX(packed_layout)(d, nb);
    REAL *hbuf = work + P.hbuf, *cbuf = work + P.cbuf;
    REAL *hpk = work + P.hpk, *xpk = work + P.xpk;
    REAL *gx = fused ? NULL : P.gx_in_cache ? cache_gates : work + P.gx;
    const int xk = fused ? I : 0, KT = xk + H;
    const int nbt = SFX(batch_threads)(d, G * U * (long)nb, TC);
    int S;   /* tile slots */
    const int *perm = SFX(slot_order)((int *)(work + P.ints), &S, lengths, B, T, nbt);
    const long hpn = SFX(pk_elems)(S, KT);   /* hpk is (2, hpn) */

    /* state slots: slot_init holds the initial state; step t reads slot_in, writes slot_out */
    const int rev = d->reverse;
    REAL *hs = train ? cache_h : hbuf, *cs = train ? cache_c : cbuf;
    long init_off = train && rev ? (long)T * BH : 0;
    for (long k = 0; k < BH; k++) {
        hs[init_off + k] = h0 ? h0[k] : 0;
        if (has_c) cs[init_off + k] = c0 ? c0[k] : 0;
    }
    for (long k = 0; k < 2 * hpn; k++) hpk[k] = 0;
    for (int p = 0; p < S; p++) {
        const int b = SFX(slot_row)(perm, p);
        if (b < 0) continue;   /* a spare slot */
        const REAL *x0 = x + ((long)(rev ? T - 1 : 0) * B + b) * ldx;   /* the first step's input */
        for (int k = 0; k < xk; k++) hpk[SFX(pk_index)(p, k, KT)] = x0[k];
        for (int k = 0; k < H; k++)
            hpk[SFX(pk_index)(p, xk + k, KT)] = h0 ? h0[(long)b * H + k] : 0;
    }

    SFX(fwd_args) a = { d, G, nb, ghp, SFX(gate_cache_cols)(H), gx, 0, pk + po.wb, xk,
                        pk + po.bias, pk + po.bias_x, SFX(cell_config)(d, pk + po.peep, nb), x, ldx,
                        lengths, perm, y, ldy, cache_gates };
    const int nbc = (B + BCHUNK - 1) / BCHUNK, rg = (B + 5) / 6;
    const long items = (long)nb * nbc;
    const int nt = nbt ? nbt : SFX(step_threads)(d, items);
    fl_test_note_step_threads(nt);
    /* Chunks of TC steps: a chunk's input projection, hoisted (the whole
     * sequence at once when training an lstm, straight into the cache; none
     * when the step projects the input), then its steps in one region. */
    for (int s0 = 0; s0 < T; s0 += TC) {
        const int s1 = s0 + TC < T ? s0 + TC : T;
        const int t0 = rev ? T - s1 : s0;   /* chunk covers times [t0, t0 + s1 - s0) */
        a.gx_t0 = t0;
        if (!fused) {
            const int rows = (s1 - s0) * B, nblk = (rows + PROJ_MC - 1) / PROJ_MC;
            const long pflops = 2L * rows * I * ghp;
            long npt = pflops / PROJ_FLOPS_PER_THREAD;
            if (npt > d->n_threads) npt = d->n_threads;
            if (npt > nblk) npt = nblk;
            const REAL *xc = x + (long)t0 * B * ldx;   /* the chunk's rows of X */
            if (npt > 1) {   /* (no region for one thread: see fwd_steps) */
                #pragma omp parallel for schedule(static) num_threads((int)npt)
                for (int blk = 0; blk < nblk; blk++)
                    SFX(project_block)(&a, xc, rows, blk,
                                       xpk + (long)omp_get_thread_num() * PROJ_MC * I, gx);
            } else {
                for (int blk = 0; blk < nblk; blk++) SFX(project_block)(&a, xc, rows, blk, xpk, gx);
            }
        }
        fl_barrier bar;
        fl_barrier_init(&bar, nt);
        SFX(fwd_loop) L = { &a, s0, s1, nbt, nb, nbc, rg, train, items, BH, hpn,
                            cache_h, cache_c, hbuf, cbuf, hpk, &bar };
        if (nt > 1) {
            #pragma omp parallel num_threads(nt)
            SFX(fwd_steps)(&L, omp_get_thread_num(), omp_get_num_threads());
        } else {
            /* alone, whatever team the caller may be in (a C API caller's
             * own OpenMP region: its thread number is not ours) */
            SFX(fwd_steps)(&L, 0, 1);
        }
    }
    const REAL *hlast, *clast;
    if (train) {
        long last = rev ? 0 : T;
        hlast = cache_h + last * BH;
        clast = has_c ? cache_c + last * BH : NULL;
    } else {
        hlast = hbuf + (T & 1) * BH;
        clast = cbuf;
    }
    for (long k = 0; k < BH; k++) {
        h_n[k] = hlast[k];
        if (has_c) c_n[k] = clast[k];
    }
    if (owned) free(work);
    return FL_OK;
}

#undef BCHUNK
#undef PROJ_MC
#undef PROJ_FLOPS_PER_THREAD
