/* Reduced-precision inference: one layer-direction's forward with its
 * weights stored in bfloat16, or in int8 with one scale per weight row (per
 * gate unit); activations, state and accumulation stay float32.
 *
 * bf16: weights are bf16 bit patterns (the top half of a float32, rounded
 * to nearest even by the caller). Each dot product also takes its input
 * vector (x_t, h_{t-1}) rounded to bf16, as AVX512_BF16's vdpbf16ps does, on
 * every level: products of two bf16 are exact in float32, so the native
 * instruction and the widening loops compute the same sums, and one numpy
 * reference describes every level.
 * int8: w = q * s, q in [-127, 127], s (G*H) per row; each step's input
 * vectors (x_t, h_{t-1}) are quantized too, per batch row, with one scale
 * max|a| / 127 (dynamic quantization), and the integer dot products are
 * exact on every level (vpdpbusd, vpmaddwd, vpmaddubsw or generic vectors), so the
 * levels differ only in the float32 rounding after them.
 *
 * Same conventions as fastlstm.h: status codes, caller-allocated outputs,
 * PyTorch's weight layout, time-major x and y (or batch-first y with
 * d->y_batch_first). Inference only: no caches, no backward.
 */
#ifndef FL_QUANT_H
#define FL_QUANT_H
#include <stddef.h>
#include "fastlstm.h"

enum fl_qtype { FL_Q_BF16 = 1, FL_Q_INT8 = 2 };

/* Widest int8 input (I or H): the integer sums stay below 2^31
 * (255 * 127 * K with vpdpbusd's unsigned activations). */
#define FL_Q_INT8_MAX_K 65536

/* Bytes of the packed form of one layer-direction's quantized weights (for
 * the active level; it depends on cell, I, H and qtype). 0 on a bad descriptor. */
size_t fl_qrnn_packed_bytes(const fl_rnn_desc *d, int qtype);

/* Pack once per model load.
 * packed  fl_qrnn_packed_bytes(d, qtype) bytes, 64-byte aligned  OUT
 * w_ih (G*H, I), w_hh (G*H, H)  IN  uint16_t bf16 bits, or int8_t
 * s_ih, s_hh (G*H)              IN  int8 row scales (NULL for bf16)
 * b_ih, b_hh (G*H), w_peep (3, H; peephole only)  IN  float32 */
int fl_qrnn_pack(const fl_rnn_desc *d, int qtype, void *packed, const void *w_ih,
                 const void *w_hh, const float *s_ih, const float *s_hh, const float *b_ih,
                 const float *b_hh, const float *w_peep);

/* Workspace bytes of fl_qrnn_forward (d->work of this size: no allocation). */
size_t fl_qrnn_work_bytes(const fl_rnn_desc *d, int qtype);

/* One layer, one direction, inference forward on packed quantized weights.
 * y (T, B, ldy) or (B, T, ldy)  OUT  columns [0, H); zero past a sequence's length
 * h_n, c_n (B, H)     OUT  state after each sequence's last real step (c_n NULL for gru)
 * x (T, B, ldx)       IN   columns [0, I)
 * h0, c0 (B, H)       IN   NULL = zeros
 * lengths (B)         IN   each in [1, T]; NULL = all T
 * d->n_threads threads split the batch rows (a batch of one: its unit blocks);
 * results are bitwise the same for any thread count. */
int fl_qrnn_forward(const fl_rnn_desc *d, int qtype, const void *packed, float *y, long ldy,
                    float *h_n, float *c_n, const float *x, long ldx, const float *h0,
                    const float *c0, const int *lengths);

/* The instructions the active level computes qtype's dot products with on
 * this CPU, as a static string: the ones made for them where the CPU has
 * them (bf16: AVX512_BF16 vdpbf16ps; int8: AVX512_VNNI or AVX-VNNI
 * vpdpbusd), else general ones (bf16 widened to float32; int8 vpmaddwd,
 * vpsignb + vpmaddubsw, SSE2 pmaddwd or generic integer vectors), with
 * the AMX tiles that batches of 16 rows or more take first where the
 * process may use them (this may ask Linux for them: cpu_amx.c); "" for
 * an unknown qtype. */
const char *fl_qrnn_path(int qtype);
#endif
