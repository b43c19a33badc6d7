// Fully connected layers (no bias) without sgemm: AVX-512 and AVX2 kernels of their own, with a
// summation order fixed for each value, so that a sample's result never depends on the other
// samples of a call (the exact reduction runs a whole rank's batch in one call instead of one
// sgemm per chunk, which read all the weights once per chunk of 8 samples). x [n][in], w
// [out][in], y [n][out]; lvl as hm_conv3x3_available (2 AVX-512, 1 AVX2 + FMA, 0 the portable
// loops): all three give the same bits.
#ifndef HIDDEN_MPI_LINEAR_H
#define HIDDEN_MPI_LINEAR_H

#include <stdint.h>

/// The k-block of the forward pass (a multiple of 16).
#define HM_LINEAR_KBLOCK 1024

/// y[b][o] = x[b] . w[o]: over each k-block [kb, kb + HM_LINEAR_KBLOCK) in order, sixteen lanes,
/// lane j the fused multiply-adds of k = kb + j, kb + j + 16, ... from 0 (past `in`, of 0 x 0);
/// the lanes summed as ((j + j+8) + (j+4 + j+12)) ... (hm_linear_lanes_sum); the first block's sum
/// stored, each later one added.
void hm_linear_forward(const float *x, const float *w, float *y, long n, long in, long out, int lvl);

/// dx[b][i] = sum over o of dy[b][o] w[o][i]: fused multiply-adds in the order o = 0, 1, ... from 0.
void hm_linear_input_grad(const float *dy, const float *w, float *dx, long n, long in, long out, int lvl);

/// The exact reduction's fixed-point sum of the weight gradient, straight from the samples: for
/// each chunk of `chunk` samples (the last may be shorter; chunk <= 0: one chunk of n), g[o][i] =
/// the fused multiply-adds of dy[b][o] x[b][i] over the chunk's samples in order from 0, then
/// acc[o][i] (+)= round-half-even(g * factor) as hm_fixed_accumulate adds it (stores the sum of
/// the chunks when `first`). Returns 0 when some |g * factor| is not below 2^51 (or NaN).
int hm_linear_weight_grad_fixed(const float *dy, const float *x, long n, long chunk, long in, long out, int64_t *acc,
                                double factor, int first, int lvl);

/// The sum of sixteen lanes in the kernels' order: (l[j] + l[j+8]) for j < 8, then (j + j+4) for
/// j < 4, then (j + j+2) for j < 2, then the two.
float hm_linear_lanes_sum(const float l[16]);

#endif
