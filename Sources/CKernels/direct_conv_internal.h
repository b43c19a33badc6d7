// What direct_conv.c and direct_conv_avx2.c share (not part of the module's interface).
#ifndef HIDDEN_MPI_DIRECT_CONV_INTERNAL_H
#define HIDDEN_MPI_DIRECT_CONV_INTERNAL_H

/// Where a tile's inputs lie: one input channel's values `plane` floats after the previous one's,
/// a row `row` floats after the one above, and tap t (of `taps`, in the kernel's summation order)
/// of the output at (oy, ox) at off[t] + oy x row + ox. Stride 1: the padded image [H+2][W+2],
/// taps (ki, kj) at ki x (W+2) + kj. Stride 2: the padded image's four row/column parities side by
/// side (hm_conv3x3_split2), so that neighbouring outputs read neighbouring values again.
/// `stride` names the layout (1 for the padded image, also with a stride-2 input gradient's
/// classes of taps over the padded dy; 2 for the parities): the weight gradient specialises its
/// tap offsets on it.
typedef struct {
    long plane;
    int row, taps, stride;
    int off[9];
} hm_dc_geometry;

/// A tile kernel: the sums of input channels [cb, ce) for a tile of output positions from (oy, ox)
/// of one block of 16 output channels (two blocks for the AVX-512 tile_2b_* kernels); to y (NCHW,
/// or += with `acc`) when ce reaches C, else to `part` ([blocks][H][W][16]) for the next slice of
/// channels to continue. w: the blocks' packed weights, C x taps x 16 floats a block.
typedef void (*hm_dc_tile_fn)(const float *xp, const hm_dc_geometry *g, const float *w, float *y, int C, int H, int W,
                              int oy, int ox, int acc, int cb, int ce, float *part);

/// A tile's sums buf [nr][nc][16] to y [16][H][W] (plane P apart), transposed; += with `accumulate`.
void hm_dc_store_tile(const float *buf, float *y, int nr, int nc, int W, long P, int oy0, int ox0, int accumulate);

/// The weight gradient dwb [Co/16][C][9][16] (+)= sum over n images and H x W output positions of
/// dy (blocked: [n][Co/16][H][W][16]) x the inputs at g's taps; lvl as hm_conv3x3_available.
void hm_dc_weight_grad(const float *xp, const hm_dc_geometry *g, const float *dyb, float *dwb, int C, int Co, int H, int W,
                       int n, int first, int lvl);

/// The AVX2 (+FMA) kernels, x86-64 only: tiles of rows x cols positions with rows x cols <= 6
/// (two 8-float accumulators a position, 12 of the 16 registers), and the weight gradient.
hm_dc_tile_fn hm_dc_avx2_tile(int rows, int cols);
void hm_dc_weight_grad_avx2(const float *xp, const hm_dc_geometry *g, const float *dyb, float *dwb, int C, int Co, int H,
                            int W, int n, int first);

#endif
