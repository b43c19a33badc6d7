// A direct 3x3 convolution, stride 1 or 2, padding 1, for channel counts that are multiples of 16,
// with AVX-512 and AVX2 micro-kernels of its own: no im2col and no sgemm. The activations stay NCHW;
// only the input gets a one-pixel zero border ([C][H+2][W+2], a row copy), and the weights are
// laid out in blocks of 16 output channels once per step. An output tile of up to 28 positions
// of 16 output channels each lives in registers for the whole reduction over C x 3 x 3.
//
// Summation order, which fixes the bits: each output (and each input gradient) sums its C x 3 x 3
// products in the order (channel block, ki, kj, channel within the block), one fused multiply-add
// each, from 0; each weight gradient sums its products over the images of a call and their
// positions in order (image, row, column), continuing from what the previous call left when not
// `first`. A sample's output therefore does not depend on the other samples of a call.
#ifndef HIDDEN_MPI_DIRECT_CONV_H
#define HIDDEN_MPI_DIRECT_CONV_H

#include <stdint.h>

/// Which kernels the calls below run: 2 the AVX-512 ones (x86-64 with AVX-512F), 1 the AVX2 ones
/// (AVX2 and FMA), 0 the portable loops (elsewhere MaskedConv2d keeps im2col + sgemm). All three
/// give the same bits.
int hm_conv3x3_available(void);
/// Caps that level at `max_level` (HIDDEN_MPI_CONV=avx2, tests; a negative value lifts the cap)
/// and returns the level now in effect.
int hm_conv3x3_limit(int max_level);

/// The forward weights: w [Co][C][3][3] -> wf [Co/16][C/16][3][3][16 in][16 out].
void hm_conv3x3_pack_forward(const float *w, float *wf, int C, int Co);
/// The input-gradient weights, flipped and with the channels' roles swapped:
/// w [Co][C][3][3] -> wx [C/16][Co/16][3][3][16 out][16 in], tap (ki, kj) from (2-ki, 2-kj).
void hm_conv3x3_pack_backward(const float *w, float *wx, int C, int Co);

/// n images [C][H][W] -> [C][H+2][W+2] with a zero border.
void hm_conv3x3_pad(const float *x, float *xp, int C, int H, int W, int n);
/// n images [C][H][W] -> [C/16][H][W][16] (channel-blocked, for the weight gradient).
void hm_conv3x3_block(const float *x, float *xb, int C, int H, int W, int n);

/// y [n][Co][H][W] = (or += with `accumulate`) the convolution of n padded images xp
/// [n][C][H+2][W+2] with wf (hm_conv3x3_pack_forward). The input gradient is the same call on the
/// padded output gradient with wx (hm_conv3x3_pack_backward) and the channel counts swapped.
/// `scratch` (n x H x W x 32 floats, or NULL) holds partial sums when C > 64, so that the
/// weights can be taken in slices that stay in L1; the results are the same bits either way.
void hm_conv3x3(const float *xp, const float *wf, float *y, int C, int Co, int H, int W, int n, int accumulate,
                float *scratch);

/// The weight gradient of n images in blocks: dwb [Co/16][C][3][3][16] (+)= sum over the images and
/// positions of dy x, from the padded inputs xp [n][C][H+2][W+2] and the blocked output gradients
/// dyb [n][Co/16][H][W][16]; starts from 0 when `first`.
void hm_conv3x3_weight_grad(const float *xp, const float *dyb, float *dwb, int C, int Co, int H, int W, int n, int first);
/// dwb (blocked) -> dw [Co][C][3][3].
void hm_conv3x3_unpack_weight_grad(const float *dwb, float *dw, int C, int Co);
/// The exact reduction's fixed-point sum from count chunks' dwb (blocked) directly: what
/// hm_conv3x3_unpack_weight_grad, then hm_fixed_accumulate over the whole [Co][C][3][3] would add
/// for each, the same integers, one output block at a time through `block` (16 x C x 9 floats),
/// the block's sums staying in cache while every chunk is added. Returns 0 when some value was out
/// of range (as hm_fixed_accumulate).
int hm_conv3x3_accumulate_weight_grads(const float *const *dwb, int count, float *block, int64_t *acc, int C, int Co,
                                       double factor, int first);

/// Stride 2 (padding 1), for inputs of even height and width 2H x 2W and outputs H x W.
/// n images [C][2H][2W] -> [C][4][H+1][W+1]: the zero-bordered image's four row/column parities
/// (rows 0, 2, 4, ... columns 0, 2, ...; rows 0, 2, ... columns 1, 3, ...; then the odd rows), so
/// that the kernels read neighbouring outputs' inputs from neighbouring addresses.
void hm_conv3x3_split2(const float *x, float *xq, int C, int Hin, int Win, int n);
/// y [n][Co][H][W] = the convolution of xq (hm_conv3x3_split2) with wf (hm_conv3x3_pack_forward);
/// the same sums in the same order as stride 1, and `scratch` as there.
void hm_conv3x3_s2(const float *xq, const float *wf, float *y, int C, int Co, int H, int W, int n, float *scratch);
/// The weight gradient as hm_conv3x3_weight_grad, from xq and dyb [n][Co/16][H][W][16].
void hm_conv3x3_s2_weight_grad(const float *xq, const float *dyb, float *dwb, int C, int Co, int H, int W, int n,
                               int first);
/// The input-gradient weights: w [Co][C][3][3] -> four classes of taps (the parities of the input
/// row and column; 4 + 2 + 2 + 1 taps), each [C/16][Co/16][taps][16 out][16 in]. C x Co x 9 floats.
void hm_conv3x3_pack_s2_backward(const float *w, float *wc, int C, int Co);
/// dx [n][C][2H][2W] = (or += with `accumulate`) the input gradient, from dy padded by
/// hm_conv3x3_pad ([n][Co][H+2][W+2]) and wc (hm_conv3x3_pack_s2_backward): each class of input
/// positions as a stride-1 convolution into `parts` (n x C x H x W floats), then to its places in
/// dx. Each input gradient sums its products in the order (output-channel block, tap, channel
/// within the block).
void hm_conv3x3_s2_input_grad(const float *dyp, const float *wc, float *dx, int C, int Co, int H, int W, int n,
                              int accumulate, float *scratch, float *parts);

/// The same two computations by the portable loops (fmaf, the same order: the same bits); tests
/// compare them with the AVX-512 kernels.
void hm_conv3x3_portable(const float *xp, const float *wf, float *y, int C, int Co, int H, int W, int n, int accumulate);
void hm_conv3x3_weight_grad_portable(const float *xp, const float *dyb, float *dwb, int C, int Co, int H, int W, int n,
                                     int first);

#endif
