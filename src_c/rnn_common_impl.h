/* Weight packing and argument checks shared by the forward and backward
 * passes (include after real_type.h). Packing runs once per call, outside the
 * time loop.
 *
 * Hidden units are cut into NB blocks of U = FL_UNIT_BLOCK; Hp = NB * U.
 * The gate-interleaved column order is n = (j * G + g) * U + u for unit
 * h = j * U + u of gate g, so one block's G gates are G*U adjacent columns.
 * Units h >= H are padding with zero weights.
 */
#include <limits.h>

#define U FL_UNIT_BLOCK
_Static_assert(U % NRK == 0, "a unit block must hold whole column groups of the register tile");

/* Threads for a time loop split by unit blocks. Every step ends in a
 * barrier, cheap on an idle machine and far dearer when another process
 * holds a core, so a step gets one thread per FL_STEP_FLOPS_PER_THREAD flops
 * of recurrent GEMM, and the whole loop at least FL_LOOP_FLOPS_PER_THREAD
 * per thread; never more threads than work items. The thresholds are low
 * enough that batch-1 serving (H = 128 and up, and a single streaming step
 * at H = 256) runs on two threads, where that measured faster than one, and
 * a short sequence gets them from a few steps on (bench/RESULTS.md, design
 * measurements). Results do not depend on the choice: work is partitioned
 * in fixed blocks. */
#define FL_STEP_FLOPS_PER_THREAD 50000L
#define FL_LOOP_FLOPS_PER_THREAD 250000L
static inline int SFX(step_threads)(const fl_rnn_desc *d, long items)
{
    const int forced = fl_test_step_split() != FL_SPLIT_AUTO;   /* testing.h */
    long flops = 2L * d->B * d->H * 4L * d->H;
    long by_work = forced ? d->n_threads : flops / FL_STEP_FLOPS_PER_THREAD;
    if (!forced && by_work > flops * d->T / FL_LOOP_FLOPS_PER_THREAD)
        by_work = flops * d->T / FL_LOOP_FLOPS_PER_THREAD;
    long nt = d->n_threads;
    if (nt > by_work) nt = by_work;
    if (nt > items) nt = items;
    return nt < 1 ? 1 : (int)nt;
}

/* Threads for a time loop split by batch rows, or 0 to split by unit blocks
 * (step_threads). A thread that owns batch rows runs them through every step
 * and every unit block with no barrier, but streams all of W_hh (wcols
 * columns of H) each step instead of its share, so the split is taken only
 * up to FL_BATCH_SPLIT_L2S times the L2 cache of W_hh, and only with at
 * least FL_BATCH_FLOPS_PER_THREAD flops of the chunk's recurrence per thread
 * (one fork and join per chunk of steps). The bound lies between a W_hh the
 * split made faster and one it made slower on two machines: 1 and 4 MiB
 * with a 512 KiB L2, 4 and 6 MiB with a 1 MiB L2 (bench/RESULTS.md, design
 * measurements). */
#define FL_BATCH_SPLIT_L2S 4
#define FL_BATCH_FLOPS_PER_THREAD 2000000L
static inline int SFX(batch_threads)(const fl_rnn_desc *d, long wcols, int steps)
{
    const int split = fl_test_step_split();   /* testing.h */
    const long rg = (d->B + 5) / 6;
    if (d->n_threads < 2 || rg < 2 || split == FL_SPLIT_BLOCKS) return 0;
    if (wcols * d->H * (long)sizeof(REAL) > FL_BATCH_SPLIT_L2S * fl_cache_bytes(2)) return 0;
    const long flops = 2L * steps * d->B * d->H * wcols;
    long nt = d->n_threads < rg ? d->n_threads : rg;
    if (split == FL_SPLIT_AUTO && nt > flops / FL_BATCH_FLOPS_PER_THREAD)
        nt = flops / FL_BATCH_FLOPS_PER_THREAD;
    return nt >= 2 ? (int)nt : 0;
}

/* Share u of n in a split by batch rows: rows [*r0, *r1), as even as rows
 * go, in tile slots [*s0, *s0 + *r1 - *r0) of the packed layout, so each
 * share starts on a fresh 6-row tile. Whole tiles per share (the earlier
 * form) left B = 32 at 18 against 14 rows on 2 threads, B = 64 at 34 against
 * 30, and the even shares were faster (bench/RESULTS.md, design
 * measurements). A share's last tile may be partial; its spare slots stay
 * unused, so the layout takes split_slots(B, n) <= B + 5 * n slots. */
static inline void SFX(split_share)(int B, int u, int n, int *r0, int *r1, int *s0)
{
    int s = 0;
    for (int v = 0; v < u; v++) s += ((int)((long)B * (v + 1) / n - (long)B * v / n) + 5) / 6 * 6;
    *r0 = (int)((long)B * u / n);
    *r1 = (int)((long)B * (u + 1) / n);
    *s0 = s;
}

/* Tile slots a split by batch rows can take: at most min(n_threads, row
 * tiles) shares (batch_threads), each with at most 5 spare slots. */
static inline int SFX(slots_max)(const fl_rnn_desc *d)
{
    const long rg = (d->B + 5) / 6, shares = d->n_threads < rg ? d->n_threads : rg;
    return (int)(d->B + 5 * shares);
}

static inline int SFX(split_slots)(int B, int n)
{
    int r0, r1, s0;
    SFX(split_share)(B, n, n, &r0, &r1, &s0);
    return s0;
}

/* slot (split_slots(B, n)): the row in each tile slot of a split by batch
 * rows, -1 for a spare slot. */
static inline void SFX(split_order)(int *slot, int B, int n)
{
    for (int u = 0; u < n; u++) {
        int r0, r1, s0;
        SFX(split_share)(B, u, n, &r0, &r1, &s0);
        const int s1 = s0 + (r1 - r0 + 5) / 6 * 6;
        for (int p = s0; p < s1; p++) slot[p] = p - s0 + r0 < r1 ? p - s0 + r0 : -1;
    }
}

/* perm (B): the batch rows in tile-slot order, longest sequence first (a
 * stable counting sort; start is scratch for T + 1 ints), so that the tiles
 * whose rows have all ended, which skip the recurrent product, are as many as
 * they can be. */
static inline void SFX(length_order)(int *perm, int *start, const int *lengths, int B, int T)
{
    for (int l = 0; l <= T; l++) start[l] = 0;
    for (int b = 0; b < B; b++) start[T - lengths[b]]++;
    for (int l = 0, acc = 0; l <= T; l++) { int n = start[l]; start[l] = acc; acc += n; }
    for (int b = 0; b < B; b++) perm[start[T - lengths[b]]++] = b;
}

/* The batch row in tile slot p of slot_order's perm (-1: a spare slot). */
static inline int SFX(slot_row)(const int *perm, int p) { return perm ? perm[p] : p; }

/* The row in each tile slot, written into buf (slots_max + T + 1 ints), or
 * NULL when each slot holds its own row: with lengths, longest first
 * (length_order); with a split by batch rows into nbt shares, each share on
 * tiles of its own (split_order). *slots: the tile slots laid out. */
static inline const int *SFX(slot_order)(int *buf, int *slots, const int *lengths, int B, int T,
                                         int nbt)
{
    *slots = nbt && !lengths ? SFX(split_slots)(B, nbt) : B;
    if (lengths) {
        SFX(length_order)(buf, buf + B, lengths, B, T);
        return buf;
    }
    if (nbt) {
        SFX(split_order)(buf, B, nbt);
        return buf;
    }
    return NULL;
}

/* The register tile's packed form of a (rows, K) matrix (h_t forward, dG_t
 * backward): (ceil(rows/6), K, 6), element (b, k) at pk_index(b, k, K); rows
 * past the last stay zero. */
static inline long SFX(pk_elems)(int rows, long K) { return (long)((rows + 5) / 6) * 6 * K; }
static inline long SFX(pk_index)(int b, long k, long K)
{
    return (long)(b / 6) * 6 * K + k * 6 + b % 6;
}

/* Write columns [k0, k0 + n) of tile slots [r0, r0 + nrows) of the packed
 * form (r0 a multiple of 6, the tile's spare slots free to overwrite) from
 * rows src[r] (n values each): element (r0 + r, k0 + u) = src[r][u]. The
 * tile's 6 rows (spare slots repeating the last row) are transposed VL
 * columns at a time in registers: output vector m holds the 6 x VL block's
 * elements m * VL + l, element i from row i % 6 and column i / 6, picked
 * by a tree of 5 two-source shuffles (rows 0-1, 2-3, 4-5, then the three
 * pairs merged). Storing each value on its own took a scalar store per
 * value, a large part of a small LSTM's cells (bench/RESULTS.md, design
 * measurements). Only where the two-source shuffle is one instruction or
 * two (AVX2, AVX-512); the baseline's generic vectors would split it into
 * scalars. */
#if FL_X86_LEVELS && ((FL_VBYTES == 64 && defined(__AVX512F__)) \
                      || (FL_VBYTES == 32 && defined(__AVX2__)))
#define FL_PACK_SHUFFLE 1
#endif
static inline void SFX(pack_tile_cols)(REAL *pk, long K, int r0, long k0,
                                       const REAL *const src[6], int nrows, int n)
{
    REAL *p = pk + SFX(pk_index)(r0, k0, K);   /* (n, 6) from here */
    int u = 0;
#ifdef FL_PACK_SHUFFLE
    typedef IREAL ivec __attribute__((vector_size(FL_VBYTES)));
    if (n >= VL) {
        ivec ma[6], mb[6], mc[6];
        for (int m = 0; m < 6; m++)
            for (int l = 0; l < VL; l++) {
                const int i = m * VL + l, r = i % 6, c = i / 6;
                ma[m][l] = (r % 2 ? VL : 0) + c;   /* from row r of the pair (r & ~1, r | 1) */
                mb[m][l] = (r / 2 % 2 ? VL : 0) + l;   /* rows 0-1 or 2-3 (4-5: either) */
                mc[m][l] = (r >= 4 ? VL : 0) + l;   /* rows 0-3 or 4-5 */
            }
        for (; u + VL <= n; u += VL) {
            VEC s[6];
            for (int r = 0; r < 6; r++) s[r] = SFX(vload)(src[r < nrows ? r : nrows - 1] + u);
            for (int m = 0; m < 6; m++) {
                const VEC p01 = __builtin_shuffle(s[0], s[1], ma[m]);
                const VEC p23 = __builtin_shuffle(s[2], s[3], ma[m]);
                const VEC p45 = __builtin_shuffle(s[4], s[5], ma[m]);
                const VEC q = __builtin_shuffle(p01, p23, mb[m]);
                SFX(vstore)(p + 6L * u + (long)m * VL, __builtin_shuffle(q, p45, mc[m]));
            }
        }
    }
#endif
    for (; u < n; u++)
        for (int r = 0; r < nrows; r++) p[6L * u + r] = src[r][u];
}
#undef FL_PACK_SHUFFLE

/* Load n <= U values, zero-filling the block's padding units. */
static inline void SFX(load_blk)(REAL *dst, const REAL *src, int n)
{
    for (int u = 0; u < U; u++) dst[u] = u < n ? src[u] : 0;
}

/* Validate a descriptor; fills NB. */
static int SFX(rnn_check)(const fl_rnn_desc *d, int *nb)
{
    if (!d) return FL_ERR_ARG;
    if (d->cell < FL_CELL_LSTM || d->cell > FL_CELL_GRU) return FL_ERR_ARG;
    if (d->act < FL_ACT_TANH || d->act > FL_ACT_RELU) return FL_ERR_ARG;
    if (d->gate_act < FL_GATE_SIGMOID || d->gate_act > FL_GATE_HARD_SIGMOID) return FL_ERR_ARG;
    if (d->T < 1 || d->B < 1 || d->I < 1 || d->H < 1 || d->n_threads < 1) return FL_ERR_SIZE;
    int n = (d->H + U - 1) / U;
    /* every row count handed to the GEMM, and every buffer size, must fit */
    if ((long)(d->T + 1) * d->B > INT_MAX / 4) return FL_ERR_SIZE;
    if ((long)n * U * 4 > INT_MAX / 4 || d->I > INT_MAX / 4) return FL_ERR_SIZE;
    *nb = n;
    return FL_OK;
}

/* Each pass's workspace in elements of REAL, from the layout written once in
 * the pass's own file (fwd_layout, bwd_layout). */
static long SFX(fwd_work_elems)(const fl_rnn_desc *d, int nb, int train);
static long SFX(bwd_work_elems)(const fl_rnn_desc *d, int nb);

/* Defines fl_rnn_work_bytes_f32_<level> and fl_rnn_work_bytes_f64_<level> (fastlstm.h). */
size_t SFX(fl_rnn_work_bytes)(const fl_rnn_desc *d, int pass)
{
    int nb;
    if (SFX(rnn_check)(d, &nb) != FL_OK) return 0;
    return sizeof(REAL) * (pass == 2 ? SFX(bwd_work_elems)(d, nb)
                                     : SFX(fwd_work_elems)(d, nb, pass == 1));
}

static int SFX(lengths_ok)(const int *lengths, int B, int T)
{
    if (!lengths) return 1;
    for (int b = 0; b < B; b++)
        if (lengths[b] < 1 || lengths[b] > T) return 0;
    return 1;
}

/* wb (NB, G*U/NRK, KT, NRK): block j of W^T cut into column groups of NRK
 * columns (the register tile's width), each a contiguous (KT, NRK) slab, so
 * the step streams each slab sequentially. Column c of block j is unit
 * j*U + c%U of gate c/U. w (G*H, K) fills slab rows [k0, k0 + K): W_hh alone
 * (k0 = 0, K = KT = H), or W_ih then W_hh when the step also projects the
 * input (KT = I + H). */
static inline void SFX(pack_w_slabs)(REAL *wb, const REAL *w, int G, int H, int K, int k0,
                                     int KT, int nb)
{
    const int GU = G * U;
    for (int j = 0; j < nb; j++)
        for (int c = 0; c < GU; c++) {
            const int g = c / U, h = j * U + c % U;
            REAL *dst = wb + ((long)j * GU + (c / NRK) * NRK) * KT + (long)k0 * NRK + c % NRK;
            for (int k = 0; k < K; k++)
                dst[(long)k * NRK] = h < H ? w[((long)g * H + h) * K + k] : 0;
        }
}

/* Bias in interleaved order: bp (NB*G*U) = b1 (+ b2 if given). */
static inline void SFX(pack_bias)(REAL *bp, const REAL *b1, const REAL *b2, int G, int H, int nb)
{
    for (int j = 0; j < nb; j++)
        for (int g = 0; g < G; g++)
            for (int u = 0; u < U; u++) {
                int h = j * U + u;
                REAL v = 0;
                if (h < H) v = b2 ? b1[g * H + h] + b2[g * H + h] : b1[g * H + h];
                bp[(j * G + g) * U + u] = v;
            }
}

/* Peephole weights (3, H) -> (3, Hp) with zero padding units. */
static inline void SFX(pack_peep)(REAL *pp, const REAL *w_peep, int H, int nb)
{
    long hp = (long)nb * U;
    for (int g = 0; g < 3; g++)
        for (long h = 0; h < hp; h++) pp[g * hp + h] = h < H ? w_peep[g * H + h] : 0;
}

/* Canonical row of the interleaved index n, or -1 for a padding unit. */
static inline long SFX(canon_row)(long n, int G, int H)
{
    long j = n / ((long)G * U), g = (n / U) % G, u = n % U;
    long h = j * U + u;
    return h < H ? g * H + h : -1;
}
