/* The recurrent cells: each family's equations, forward and backward, on one
 * batch row's block of U hidden units (include after vec_activations_impl.h
 * and rnn_common_impl.h). The passes (rnn_forward_impl.h,
 * rnn_backward_impl.h) bring a block's pre-activations and state here; they
 * tell the cells apart in one switch each (fwd_tile_cells,
 * fl_rnn_bwd_phase1), which picks the cell's function once for a tile of
 * rows and inlines it into the loop over them, and through the traits below.
 *
 * A block's columns hold its U units gate by gate: gate q of unit u at
 * q * U + u. Units are handled VL at a time; the forward runs FL_NV vectors
 * side by side (vec_activations_impl.h says why).
 *
 * Adding a cell: its enum value (fastlstm.h; rnn_check in rnn_common_impl.h
 * accepts values up to FL_CELL_GRU), its traits, a forward and a backward
 * here with the signatures of cell_forward_fn and cell_backward_fn, and a
 * case in each pass's switch. A cell with weights of its own, as peephole's,
 * also packs them (pack_all, fl_rnn_backward) and sums their gradient (as
 * peephole_weights_backward).
 */

/* Weight rows per hidden unit: lstm family 4 (i, f, g, o), gru 3 (r, z, n);
 * at most FL_MAX_GATES, which sizes the step's accumulators. */
#define FL_MAX_GATES 4
static inline int SFX(cell_gates)(int cell) { return cell == FL_CELL_GRU ? 3 : 4; }
/* The cell carries a cell state c besides h (c0, c_n, the c cache). */
static inline int SFX(cell_has_c)(int cell) { return cell != FL_CELL_GRU; }
/* The input's part of the pre-activations is kept apart from the recurrent
 * part (gru: the reset gate multiplies only W_hn h + b_hn), so the input
 * projection cannot be summed into the step's accumulators, each side has its
 * own bias, and backward has a gradient per side (dgx, dgh). */
static inline int SFX(cell_x_apart)(int cell) { return cell == FL_CELL_GRU; }
/* h_{t-1} enters the update directly (gru: z * h_{t-1}), so dL/dh_{t-1} has
 * a direct part (dhd) besides dG * W_hh. */
static inline int SFX(cell_dh_direct)(int cell) { return cell == FL_CELL_GRU; }

/* Values the gate cache keeps per hidden unit, for every cell (lstm family:
 * i, f, g, o after activation; gru: r, z, n and W_hn h + b_hn): a cache row
 * is NB blocks of (FL_CACHE_PER_UNIT, U), padding units included. */
#define FL_CACHE_PER_UNIT 4
static inline long SFX(gate_cache_cols)(int H)
{
    return (long)FL_CACHE_PER_UNIT * ((H + U - 1) / U) * U;
}

/* What a pass tells its cell once per call. */
typedef struct {
    int cell;            /* enum fl_cell */
    int hard, relu;      /* gate: hard sigmoid (else sigmoid); act: relu (else tanh) */
    const REAL *peep;    /* (3, php) zero-padded peephole weights i, f, o, or NULL */
    long php;            /* Hp = NB * U */
} SFX(cell_cfg);

static inline SFX(cell_cfg) SFX(cell_config)(const fl_rnn_desc *d, const REAL *peep, int nb)
{
    SFX(cell_cfg) k = { d->cell, d->gate_act == FL_GATE_HARD_SIGMOID, d->act == FL_ACT_RELU,
                        d->cell == FL_CELL_PEEPHOLE ? peep : NULL, (long)nb * U };
    return k;
}

/* Where a forward writes h_t, each from the block's first unit: the state
 * row h and the output row y (NULL: none, as when y is h). */
typedef struct { REAL *h, *y; } SFX(h_dest);

FL_INLINE void SFX(put_h)(SFX(h_dest) out, const VEC *h, int v0, int n)
{
    FOR_E {
        const int v = v0 + e * VL;
        SFX(vstore)(out.h + v, h[e]);
        if (out.y) SFX(vstore)(out.y + v, h[e]);
    }
}

/* The gate cache's FL_CACHE_PER_UNIT values for vectors [v0, v0 + n * VL)
 * of a block: q0 .. q3 at cg + q * U; nothing in inference (cg NULL). */
FL_INLINE void SFX(put_cache)(REAL *cg, const VEC *q0, const VEC *q1, const VEC *q2,
                              const VEC *q3, int v0, int n)
{
    if (cg) FOR_E {
        const int v = v0 + e * VL;
        SFX(vstore)(cg + v, q0[e]); SFX(vstore)(cg + U + v, q1[e]);
        SFX(vstore)(cg + 2 * U + v, q2[e]); SFX(vstore)(cg + 3 * U + v, q3[e]);
    }
}

/* Every cell's forward and backward take the same arguments, so a pass can
 * pick one with a single switch and inline it through a constant function
 * pointer. k: the call's cell_cfg; h0: the block's first unit.
 *
 * cell_forward_fn, on one row's vectors [v0, v0 + n * VL) of a block, n at
 * most FL_NV (a constant once inlined: cell_forward_row runs a row):
 * out       h_t            OUT  (h_dest)
 * c         (U)            OUT  c_t for cell_has_c (may alias state); else unused
 * cg        (4, U)         OUT  what backward needs, FL_CACHE_PER_UNIT values a unit;
 *                               NULL in inference
 * pre       (G, U)         IN   pre-activations with both biases; for cell_x_apart,
 *                               the recurrent side with b_hh
 * px        (G, U)         IN   for cell_x_apart, the input side with b_ih; else unused
 * state     (U)            IN   c_{t-1} for cell_has_c, else h_{t-1}
 *
 * cell_backward_fn, on one row's block of U units:
 * dgx       (G, U)         OUT  dL/d pre-activations (the input side for cell_x_apart)
 * dgh       (G, U)         OUT  dL/d the recurrent side for cell_x_apart; else dgx itself
 * dgp       (G*U, stride 6) OUT dgh in the register tile's packed form (pk_index), for
 *                               the product with W_hh (copied here, where G is a constant)
 * dc        (U)            IN/OUT  dL/dc_t in, dL/dc_{t-1} out, for cell_has_c
 * dhd       (U)            OUT  the direct part of dL/dh_{t-1}, for cell_dh_direct
 * dh        (U)            IN   dL/dh_t: the carried dh plus dy
 * cg        (4, U)         IN   the forward's gate cache
 * state, state2 (U)        IN   c_{t-1} and c_t for cell_has_c, else h_{t-1} (state2 unused)
 */
typedef void SFX(cell_forward_fn)(const SFX(cell_cfg) *k, int h0, SFX(h_dest) out, REAL *c,
                                  REAL *cg, const REAL *pre, const REAL *px, const REAL *state,
                                  int v0, int n);
typedef void SFX(cell_backward_fn)(const SFX(cell_cfg) *k, int h0, REAL *dgx, REAL *dgh, REAL *dgp,
                                   REAL *dc, REAL *dhd, const REAL *dh, const REAL *cg,
                                   const REAL *state, const REAL *state2);

/* A cell's forward on one row's units [0, nv) of a block, nv a multiple of
 * VL: FL_NV vectors at a time, then one at a time, each call's count a
 * constant so its vectors stay in registers. */
FL_INLINE void SFX(cell_forward_row)(SFX(cell_forward_fn) *cell, const SFX(cell_cfg) *k, int h0,
                                     SFX(h_dest) out, REAL *c, REAL *cg, const REAL *pre,
                                     const REAL *px, const REAL *state, int nv)
{
    int v = 0;
    for (; v + FL_NV * VL <= nv; v += FL_NV * VL) cell(k, h0, out, c, cg, pre, px, state, v, FL_NV);
    for (; v < nv; v += VL) cell(k, h0, out, c, cg, pre, px, state, v, 1);
}

/* ------------------------------------------------------ lstm, peephole, cifg */

/* lstm, peephole, cifg (a cell_forward_fn): i, f, o = gate(pre + peepholes),
 * g = act(pre), f = 1 - i for cifg, c = f * c_prev + i * g, h = o * act(c).
 * out       h_t            OUT
 * c         (U)            OUT  c_t (may alias c_prev)
 * cg        (4, U)         OUT  i, f, g, o after activation; NULL in inference
 * pre       (4, U)         IN   pre-activations i, f, g, o: both projections, both biases
 * px                            unused
 * c_prev    (U)            IN   c_{t-1}
 * k->peep   (3, php)       IN   peephole weights i, f, o (peephole only)
 */
FL_INLINE void SFX(lstm_cell_forward)(const SFX(cell_cfg) *k, int h0, SFX(h_dest) out, REAL *c,
                                      REAL *cg, const REAL *pre, const REAL *px,
                                      const REAL *c_prev, int v0, int n)
{
    (void)px;
    const REAL *peep = k->peep ? k->peep + h0 : NULL;
    const long php = k->php;
    const int hard = k->hard, relu = k->relu;
    VEC cp[FL_NV], i[FL_NV], f[FL_NV], g[FL_NV], o[FL_NV], ct[FL_NV], h[FL_NV];
    FOR_E cp[e] = SFX(vload)(c_prev + v0 + e * VL);
    FOR_E {
        const int v = v0 + e * VL;
        i[e] = SFX(vload)(pre + v);
        f[e] = SFX(vload)(pre + U + v);
        g[e] = SFX(vload)(pre + 2 * U + v);
        o[e] = SFX(vload)(pre + 3 * U + v);
        if (peep) {
            i[e] += SFX(vload)(peep + v) * cp[e];
            f[e] += SFX(vload)(peep + php + v) * cp[e];
        }
    }
    SFX(vgate_n)(hard, i, n);
    if (k->cell == FL_CELL_CIFG) FOR_E f[e] = 1 - i[e];
    else SFX(vgate_n)(hard, f, n);
    SFX(vact_n)(relu, g, n);
    FOR_E ct[e] = f[e] * cp[e] + i[e] * g[e];
    if (peep) FOR_E o[e] += SFX(vload)(peep + 2 * php + v0 + e * VL) * ct[e];
    SFX(vgate_n)(hard, o, n);
    FOR_E SFX(vstore)(c + v0 + e * VL, ct[e]);
    SFX(vact_n)(relu, ct, n);
    FOR_E h[e] = o[e] * ct[e];
    SFX(put_h)(out, h, v0, n);
    SFX(put_cache)(cg, i, f, g, o, v0, n);
}

/* lstm, peephole, cifg backward (a cell_backward_fn), from the gate cache.
 * dg        (4, U)      OUT  dL/d pre-activations i, f, g, o (f's is 0 for cifg)
 * dgh                   dg itself
 * dgp       (4*U, stride 6) OUT  dg, packed
 * dc        (U)         IN/OUT  dL/dc_t in, dL/dc_{t-1} out
 * dhd                   unused
 * dh        (U)         IN   dL/dh_t
 * cg        (4, U)      IN   i, f, g, o as the forward cached them
 * c_prev, c (U)         IN   c_{t-1}, c_t
 */
FL_INLINE void SFX(lstm_cell_backward)(const SFX(cell_cfg) *k, int h0, REAL *dg, REAL *dgh,
                                       REAL *dgp, REAL *dc, REAL *dhd, const REAL *dh,
                                       const REAL *cg, const REAL *c_prev, const REAL *c)
{
    (void)dgh; (void)dhd;
    const REAL *peep = k->peep ? k->peep + h0 : NULL;
    const long php = k->php;
    const int cifg = k->cell == FL_CELL_CIFG, hard = k->hard, relu = k->relu;
    for (int v = 0; v < U; v += VL) {
        const VEC dhv = SFX(vload)(dh + v);
        const VEC i = SFX(vload)(cg + v), f = SFX(vload)(cg + U + v);
        const VEC g = SFX(vload)(cg + 2 * U + v), o = SFX(vload)(cg + 3 * U + v);
        const VEC cp = SFX(vload)(c_prev + v), ac = SFX(vact)(relu, SFX(vload)(c + v));
        const VEC dzo = SFX(vdgate)(hard, o, dhv * ac);
        VEC dct = SFX(vload)(dc + v) + SFX(vdact)(relu, ac, dhv * o);
        if (peep) dct += dzo * SFX(vload)(peep + 2 * php + v);
        VEC dzf = (VEC){0}, di = dct * g;
        if (cifg) di -= dct * cp;
        else dzf = SFX(vdgate)(hard, f, dct * cp);
        const VEC dzi = SFX(vdgate)(hard, i, di);
        const VEC dzg = SFX(vdact)(relu, g, dct * i);
        dct *= f;
        if (peep) dct += dzi * SFX(vload)(peep + v) + dzf * SFX(vload)(peep + php + v);
        SFX(vstore)(dc + v, dct);
        SFX(vstore)(dg + v, dzi); SFX(vstore)(dg + U + v, dzf);
        SFX(vstore)(dg + 2 * U + v, dzg); SFX(vstore)(dg + 3 * U + v, dzo);
    }
    for (int n = 0; n < 4 * U; n++) dgp[6 * n] = dg[n];
}

/* Peephole weight gradients, deferred like the other weight gradients: over
 * all rows in order, dp_i = sum dz_i * c_{t-1}, dp_f = sum dz_f * c_{t-1},
 * dp_o = sum dz_o * c_t.
 * dw_peep   (3, H)         OUT  overwritten
 * dg        (rows, ghp)    IN   dL/d pre-activations, interleaved blocks of (4, U)
 * c_prev, c (rows, H)      IN   c_{t-1} and c_t of each row
 */
static void SFX(peephole_weights_backward)(REAL *dw_peep, const REAL *dg, const REAL *c_prev,
                                           const REAL *c, long rows, long ghp, int H)
{
    for (int h = 0; h < H; h++) { dw_peep[h] = 0; dw_peep[H + h] = 0; dw_peep[2 * H + h] = 0; }
    for (long r = 0; r < rows; r++) {
        const REAL *g = dg + r * ghp;
        for (int h = 0; h < H; h++) {
            long base = (long)(h / U) * 4 * U + h % U;
            dw_peep[h] += g[base] * c_prev[r * H + h];
            dw_peep[H + h] += g[base + U] * c_prev[r * H + h];
            dw_peep[2 * H + h] += g[base + 3 * U] * c[r * H + h];
        }
    }
}

/* ------------------------------------------------------------------- gru */

/* gru, PyTorch's (a cell_forward_fn): r, z = gate(px + pre),
 * n = act(px_n + r * pre_n), h = (1 - z) * n + z * h_prev.
 * out       h_t            OUT
 * c                             unused
 * cg        (4, U)         OUT  r, z, n after activation, pre_n = W_hn h + b_hn; NULL in inference
 * pre       (3, U)         IN   recurrent pre-activations r, z, n with b_hh
 * px        (3, U)         IN   input pre-activations r, z, n with b_ih
 * h_prev    (U)            IN   h_{t-1}
 */
FL_INLINE void SFX(gru_cell_forward)(const SFX(cell_cfg) *k, int h0, SFX(h_dest) out, REAL *c,
                                     REAL *cg, const REAL *pre, const REAL *px,
                                     const REAL *h_prev, int v0, int n)
{
    (void)h0; (void)c;
    const int hard = k->hard, relu = k->relu;
    VEC hp[FL_NV], r[FL_NV], z[FL_NV], nn[FL_NV], hn[FL_NV], h[FL_NV];
    FOR_E hp[e] = SFX(vload)(h_prev + v0 + e * VL);
    FOR_E {
        const int v = v0 + e * VL;
        r[e] = SFX(vload)(px + v) + SFX(vload)(pre + v);
        z[e] = SFX(vload)(px + U + v) + SFX(vload)(pre + U + v);
        hn[e] = SFX(vload)(pre + 2 * U + v);
    }
    SFX(vgate_n)(hard, r, n);
    SFX(vgate_n)(hard, z, n);
    FOR_E nn[e] = SFX(vload)(px + 2 * U + v0 + e * VL) + r[e] * hn[e];
    SFX(vact_n)(relu, nn, n);
    FOR_E h[e] = (1 - z[e]) * nn[e] + z[e] * hp[e];
    SFX(put_h)(out, h, v0, n);
    SFX(put_cache)(cg, r, z, nn, hn, v0, n);
}

/* gru backward (a cell_backward_fn), from the gate cache.
 * dgx       (3, U)      OUT  dL/d input pre-activations r, z, n
 * dgh       (3, U)      OUT  dL/d recurrent pre-activations (n's is r * dL/dn)
 * dgp       (3*U, stride 6) OUT  dgh, packed
 * dc                    unused
 * dhd       (U)         OUT  the direct part of dL/dh_{t-1}, z * dh
 * dh        (U)         IN   dL/dh_t
 * cg        (4, U)      IN   r, z, n, pre_n as the forward cached them
 * h_prev    (U)         IN   h_{t-1}; state2 unused
 */
FL_INLINE void SFX(gru_cell_backward)(const SFX(cell_cfg) *k, int h0, REAL *dgx, REAL *dgh,
                                      REAL *dgp, REAL *dc, REAL *dhd, const REAL *dh,
                                      const REAL *cg, const REAL *h_prev, const REAL *state2)
{
    (void)h0; (void)dc; (void)state2;
    const int hard = k->hard, relu = k->relu;
    for (int v = 0; v < U; v += VL) {
        const VEC dhv = SFX(vload)(dh + v);
        const VEC r = SFX(vload)(cg + v), z = SFX(vload)(cg + U + v);
        const VEC n = SFX(vload)(cg + 2 * U + v), hn = SFX(vload)(cg + 3 * U + v);
        const VEC hp = SFX(vload)(h_prev + v);
        const VEC dzn = SFX(vdact)(relu, n, dhv * (1 - z));
        const VEC dzz = SFX(vdgate)(hard, z, dhv * (hp - n));
        const VEC dzr = SFX(vdgate)(hard, r, dzn * hn);
        SFX(vstore)(dgx + v, dzr); SFX(vstore)(dgx + U + v, dzz); SFX(vstore)(dgx + 2 * U + v, dzn);
        SFX(vstore)(dgh + v, dzr); SFX(vstore)(dgh + U + v, dzz);
        SFX(vstore)(dgh + 2 * U + v, dzn * r);
        SFX(vstore)(dhd + v, dhv * z);
    }
    for (int n = 0; n < 3 * U; n++) dgp[6 * n] = dgh[n];
}
