/* predict and step for one float type; model_run.c includes this twice
 * (REAL float / double, SFX(name) name_f32 / name_f64). Each mirrors what the
 * Python path calls, kernel call for kernel call (fastlstm/network.py's
 * predict_raw / forward / step, layers.py's _forward_layers / _stream), so
 * the recurrent results are bitwise Python's. Shapes: B batch, T steps,
 * I0 features entering layer 0, H_k units of layer k, D directions,
 * F = D * H_last features the head reads, K network outputs. */

/* y, h_n, c_n = one layer-direction forward (inference, packed weights) */
static int SFX(layer)(const fl_model *m, int k, int d, int T, int B, int nt, int batch_first,
                      REAL *y, long ldy, REAL *h_n, REAL *c_n, const REAL *x, long ldx,
                      const REAL *h0, const REAL *c0, const int *lengths, void *work, size_t work_bytes)
{
    const fl_arch *a = &m->a;
    const int D = a->bidirectional ? 2 : 1;
    const fl_dir_params *p = &m->dir[k * D + d];
    const REAL *P = m->params;
    fl_rnn_desc desc = {0};
    desc.cell = a->cell;
    desc.act = a->act;
    desc.gate_act = a->gate_act;
    desc.reverse = d;
    desc.T = T;
    desc.B = B;
    desc.I = p->I;
    desc.H = p->H;
    desc.n_threads = nt;
    desc.work = work;
    desc.work_bytes = work_bytes;
    desc.packed = m->packs[k * D + d];
    desc.y_batch_first = batch_first;
    return RNN_FORWARD(&desc, y, ldy, h_n, c_n, NULL, NULL, NULL, x, ldx, P + p->w_ih, P + p->w_hh,
                       P + p->b_ih, P + p->b_hh,
                       a->cell == FL_MODEL_CELL_PEEPHOLE ? P + p->w_peep : NULL, h0, c0, lengths);
}

/* the largest workspace a layer of the stack needs for (T, B) */
static size_t SFX(work_bytes)(const fl_model *m, int T, int B, int nt)
{
    size_t need = 0;
    for (int k = 0; k < m->a.n_layers; k++) {
        const fl_dir_params *p = &m->dir[k * (m->a.bidirectional ? 2 : 1)];
        fl_rnn_desc desc = {0};
        desc.cell = m->a.cell;
        desc.T = T;
        desc.B = B;
        desc.I = p->I;
        desc.H = p->H;
        desc.n_threads = nt;
        size_t w = RNN_WORK_BYTES(&desc, 0);
        if (w > need) need = w;
    }
    return need;
}

/* logits (M, K) = feat (M, F) @ head.weight^T + head.bias: numpy's
 * `feat @ W.T + b`, with fl_gemm for the product */
static int SFX(head)(const fl_model *m, long M, long F, const REAL *feat, REAL *logits, int nt)
{
    const long K = m->a.n_outputs;
    const REAL *b = (const REAL *)m->params + m->off_head_b;
    int st = GEMM(0, (int)M, (int)K, (int)F, feat, F, m->head_wt, K, 0, logits, K, nt);
    if (st != FL_OK) return st;
    for (long i = 0; i < M; i++)
        for (long k = 0; k < K; k++) logits[i * K + k] += b[k];
    return FL_OK;
}

/* one value of x (x_type FL_FLOAT32 / FL_FLOAT64) as REAL, rounded as numpy's astype */
static inline REAL SFX(x_at)(int x_type, const void *x, size_t i)
{
    return x_type == FL_FLOAT64 ? (REAL)((const double *)x)[i] : (REAL)((const float *)x)[i];
}

static inline int SFX(finite)(REAL v) { return v - v == 0; }

/* ---------------------------------------------------------------- predict */

/* x: features (B, T, I0) of x_type, or ids (B, T) compacted token ids; len
 * (B) each row's steps when use_len (else all T) */
static int SFX(predict)(const fl_model *m, long B, long T, int x_type, const void *x,
                        const int64_t *ids, const long *len, int use_len, double *out, int nt,
                        char *err, size_t errlen)
{
    const fl_arch *a = &m->a;
    const int D = a->bidirectional ? 2 : 1, L = a->n_layers, tokens = a->embedding_dim != 0;
    const long K = a->n_outputs, HL = a->hidden[L - 1], F = D * HL;
    const long I0 = tokens ? a->embedding_dim : a->input_size;
    const long KO = a->estimator == FL_MODEL_CLASSIFIER ? a->n_classes : K;   /* outputs per row */
    long Hmax = 0;
    for (int k = 0; k < L; k++) Hmax = a->hidden[k] > Hmax ? a->hidden[k] : Hmax;
    const long BC = B < FL_PREDICT_CHUNK ? B : FL_PREDICT_CHUNK;
    const REAL *emb = (const REAL *)m->params + m->off_embedding;

    /* scratch, sized for the largest chunk (BC rows of T steps) */
    const size_t rows = fl_mul((size_t)T, (size_t)BC);
    const size_t n_xin = fl_mul(rows, (size_t)I0), n_y = fl_mul(rows, (size_t)(D * Hmax));
    const size_t n_state = (size_t)BC * (size_t)Hmax, n_hl = (size_t)D * (size_t)BC * (size_t)HL;
    const size_t n_logits = fl_mul(a->sequence_output ? rows : (size_t)BC, (size_t)K);
    size_t sizes[7] = { n_xin, n_y, n_y, n_state, n_state, n_hl, fl_mul((size_t)BC, (size_t)F) };
    size_t total = n_logits;
    for (int k = 0; k < 7; k++) total = total == SIZE_MAX || sizes[k] >= SIZE_MAX - total ? SIZE_MAX : total + sizes[k] + 16;
    REAL *buf = total == SIZE_MAX ? NULL : fl_model_alloc(fl_mul(total, sizeof(REAL)));
    int *klen = malloc((size_t)BC * sizeof(int));
    void *work = NULL;
    size_t work_have = 0;
    int st = FL_OK;
    if (!buf || !klen) {
        st = fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory for a batch of %ld x %ld", BC, T);
        goto done;
    }
    /* carve the buffer: each piece 64-byte aligned (16 elements of slack each) */
    REAL *piece[8];
    {
        REAL *p = buf;
        for (int k = 0; k < 7; k++) {
            piece[k] = p;
            p += (sizes[k] + 15) / 16 * 16;
        }
        piece[7] = p;
    }
    REAL *xin = piece[0], *ybuf[2] = { piece[1], piece[2] }, *hs = piece[3], *cs = piece[4],
         *hl = piece[5], *feat = piece[6], *logits = piece[7];

    for (long s0 = 0; s0 < B; s0 += BC) {
        const int bc = (int)(B - s0 < BC ? B - s0 : BC);
        /* the chunk's steps: its longest sequence (Python's predict_raw), all T without lengths */
        long tc = T;
        if (use_len) {
            tc = 1;
            for (int b = 0; b < bc; b++) tc = len[s0 + b] > tc ? len[s0 + b] : tc;
        }
        const int *lens = NULL;
        if (use_len) {
            int full = 1;
            for (int b = 0; b < bc; b++) {
                klen[b] = len[s0 + b] > 1 ? (int)len[s0 + b] : 1;
                full &= klen[b] == tc;
            }
            lens = full ? NULL : klen;
        }
        /* the input, time-major (tc, bc, I0): features, or embedding rows of the ids */
        for (long t = 0; t < tc; t++)
            for (int b = 0; b < bc; b++) {
                REAL *dst = xin + ((size_t)t * bc + b) * I0;
                const long row = s0 + b;
                if (tokens) {
                    const REAL *e = emb + (size_t)ids[(size_t)row * T + t] * I0;
                    memcpy(dst, e, (size_t)I0 * sizeof(REAL));
                } else if (!use_len || t < len[row]) {
                    const size_t at = ((size_t)row * T + t) * I0;
                    for (long i = 0; i < I0; i++) {
                        dst[i] = SFX(x_at)(x_type, x, at + i);
                        if (!SFX(finite)(dst[i])) {
                            st = fl_fail(FL_ERR_INPUT, err, errlen,
                                         "x[%ld, %ld, %ld] is NaN or infinite%s", row, t, i,
                                         x_type != a->dtype ? " (in the model's dtype)" : "");
                            goto done;
                        }
                    }
                } else {
                    memset(dst, 0, (size_t)I0 * sizeof(REAL));
                }
            }
        /* the stack: layer k reads inp (tc, bc, in); the last writes (bc, tc, F) */
        size_t need = SFX(work_bytes)(m, (int)tc, bc, nt);
        if (need > work_have) {
            free(work);
            work = fl_model_alloc(need);
            work_have = work ? need : 0;
            if (!work) {
                st = fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory for the kernels' workspace");
                goto done;
            }
        }
        const REAL *inp = xin;
        long in = I0;
        for (int k = 0; k < L; k++) {
            const int last = k == L - 1, H = a->hidden[k];
            REAL *y = ybuf[k & 1];
            for (int d = 0; d < D; d++) {
                st = SFX(layer)(m, k, d, (int)tc, bc, nt, last, y + (size_t)d * H, (long)D * H,
                                last ? hl + (size_t)d * bc * H : hs,
                                a->cell == FL_MODEL_CELL_GRU ? NULL : cs, inp, in, NULL, NULL, lens,
                                work, work_have);
                if (st != FL_OK) {
                    st = fl_fail(st, err, errlen, "the kernels refused the batch (status %d: %s)", st,
                                 st == FL_ERR_NOMEM ? "out of memory" : "sizes out of range");
                    goto done;
                }
            }
            inp = y;
            in = (long)D * H;
        }
        /* the head */
        if (a->sequence_output) {
            st = SFX(head)(m, (long)bc * tc, F, inp, logits, nt);
        } else {
            /* feat (bc, F) = [h_n forward, h_n reverse] of the last layer; zero for an empty row */
            for (int b = 0; b < bc; b++)
                for (int d = 0; d < D; d++) {
                    REAL *f = feat + (size_t)b * F + (size_t)d * HL;
                    if (use_len && len[s0 + b] == 0) memset(f, 0, (size_t)HL * sizeof(REAL));
                    else memcpy(f, hl + ((size_t)d * bc + b) * HL, (size_t)HL * sizeof(REAL));
                }
            st = SFX(head)(m, bc, F, feat, logits, nt);
        }
        if (st != FL_OK) {
            st = fl_fail(st, err, errlen, "the head's GEMM failed (status %d)", st);
            goto done;
        }
        /* the estimator's outputs, as float64 */
        if (a->sequence_output) {
            for (int b = 0; b < bc; b++)
                for (long t = 0; t < T; t++) {
                    double *o = out + ((size_t)(s0 + b) * T + t) * K;
                    const int real = t < tc && (!use_len || t < len[s0 + b]);
                    for (long k = 0; k < K; k++)
                        o[k] = real ? (double)logits[((size_t)b * tc + t) * K + k] : 0.0;
                }
        } else {
            for (int b = 0; b < bc; b++) {
                double *o = out + (size_t)(s0 + b) * KO;
                for (long k = 0; k < K; k++) o[k] = (double)logits[(size_t)b * K + k];
                if (a->estimator == FL_MODEL_CLASSIFIER) fl_proba(o, a->n_classes);
            }
        }
    }
done:
    free(work);
    free(klen);
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- step */

/* state: h of every layer (n_streams, H_k), then c of every layer (not gru);
 * rows: the n streams' indices (NULL: all, in order); x_t (n, I0) of x_type,
 * or ids (n) token ids already checked */
static int SFX(step)(const fl_model *m, REAL *state, long n_streams, const long *rows, long n,
                     int x_type, const void *x_t, const int64_t *ids, double *out, int nt,
                     char *err, size_t errlen)
{
    const fl_arch *a = &m->a;
    const int L = a->n_layers, tokens = a->embedding_dim != 0, gru = a->cell == FL_MODEL_CELL_GRU;
    const long K = a->n_outputs, HL = a->hidden[L - 1];
    const long I0 = tokens ? a->embedding_dim : a->input_size;
    long Hsum = 0, Hmax = 0;
    for (int k = 0; k < L; k++) {
        Hsum += a->hidden[k];
        Hmax = a->hidden[k] > Hmax ? a->hidden[k] : Hmax;
    }
    /* scratch: xin (n, I0); per layer h0, c0 gathered and h_n, c_n (n, H_k); y (n, Hmax) x 2; logits (n, K) */
    size_t total = fl_mul((size_t)n, (size_t)I0);
    total = total == SIZE_MAX ? total : total + fl_mul((size_t)n, (size_t)(4 * Hsum + 2 * Hmax + K));
    REAL *buf = total >= SIZE_MAX / 2 ? NULL : fl_model_alloc(fl_mul(total, sizeof(REAL)));
    void *work = NULL;
    int st = FL_OK;
    if (!buf) {
        st = fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory for a step of %ld streams", n);
        goto done;
    }
    REAL *xin = buf, *h0g = xin + (size_t)n * I0, *c0g = h0g + (size_t)n * Hsum,
         *hn = c0g + (size_t)n * Hsum, *cn = hn + (size_t)n * Hsum, *ybuf[2], *logits;
    ybuf[0] = cn + (size_t)n * Hsum;
    ybuf[1] = ybuf[0] + (size_t)n * Hmax;
    logits = ybuf[1] + (size_t)n * Hmax;
    const REAL *emb = (const REAL *)m->params + m->off_embedding;
    for (long i = 0; i < n; i++) {
        REAL *dst = xin + (size_t)i * I0;
        if (tokens) {
            memcpy(dst, emb + (size_t)ids[i] * I0, (size_t)I0 * sizeof(REAL));
            continue;
        }
        for (long f = 0; f < I0; f++) {
            dst[f] = SFX(x_at)(x_type, x_t, (size_t)i * I0 + f);
            if (!SFX(finite)(dst[f])) {
                st = fl_fail(FL_ERR_INPUT, err, errlen, "x_t[%ld, %ld] is NaN or infinite%s", i, f,
                             x_type != a->dtype ? " (in the model's dtype)" : "");
                goto done;
            }
        }
    }
    const size_t need = SFX(work_bytes)(m, 1, (int)n, nt);
    work = fl_model_alloc(need);
    if (!work && need) {
        st = fl_fail(FL_ERR_NOMEM, err, errlen, "out of memory for the kernels' workspace");
        goto done;
    }
    const REAL *inp = xin;
    long in = I0;
    size_t off = 0;   /* layer k's rows start at n * (H_0 + ... + H_{k-1}) in the scratch */
    for (int k = 0; k < L; k++) {
        const long H = a->hidden[k];
        REAL *hs = state + (size_t)n_streams * (size_t)(off / (size_t)n);
        REAL *csk = state + (size_t)n_streams * (size_t)(Hsum + off / (size_t)n);
        const REAL *h0 = hs, *c0 = gru ? NULL : csk;
        if (rows) {   /* gather the selected streams' rows */
            for (long i = 0; i < n; i++) {
                memcpy(h0g + off + (size_t)i * H, hs + (size_t)rows[i] * H, (size_t)H * sizeof(REAL));
                if (!gru) memcpy(c0g + off + (size_t)i * H, csk + (size_t)rows[i] * H, (size_t)H * sizeof(REAL));
            }
            h0 = h0g + off;
            c0 = gru ? NULL : c0g + off;
        }
        REAL *y = ybuf[k & 1];
        st = SFX(layer)(m, k, 0, 1, (int)n, nt, k == L - 1, y, H, hn + off, gru ? NULL : cn + off,
                        inp, in, h0, c0, NULL, work, need);
        if (st != FL_OK) {
            st = fl_fail(st, err, errlen, "the kernels refused the step (status %d)", st);
            goto done;
        }
        inp = y;
        in = H;
        off += (size_t)n * (size_t)H;
    }
    st = SFX(head)(m, n, HL, hn + off - (size_t)n * HL, logits, nt);
    if (st != FL_OK) {
        st = fl_fail(st, err, errlen, "the head's GEMM failed (status %d)", st);
        goto done;
    }
    /* every kernel call succeeded: now the state changes */
    off = 0;
    for (int k = 0; k < L; k++) {
        const long H = a->hidden[k];
        REAL *hs = state + (size_t)n_streams * (size_t)(off / (size_t)n);
        REAL *csk = state + (size_t)n_streams * (size_t)(Hsum + off / (size_t)n);
        for (long i = 0; i < n; i++) {
            const long r = rows ? rows[i] : i;
            memcpy(hs + (size_t)r * H, hn + off + (size_t)i * H, (size_t)H * sizeof(REAL));
            if (!gru) memcpy(csk + (size_t)r * H, cn + off + (size_t)i * H, (size_t)H * sizeof(REAL));
        }
        off += (size_t)n * (size_t)H;
    }
    const long KO = a->estimator == FL_MODEL_CLASSIFIER ? a->n_classes : K;
    for (long i = 0; i < n; i++) {
        double *o = out + (size_t)i * KO;
        for (long k = 0; k < K; k++) o[k] = (double)logits[(size_t)i * K + k];
        if (a->estimator == FL_MODEL_CLASSIFIER) fl_proba(o, a->n_classes);
    }
done:
    free(work);
    free(buf);
    return st;
}
