// The Conv models' 2x2 max-pool (stride 2, no padding) and the ImageNet ResNets' 3x3 one (stride
// 2, padding 1, forward) over planes of floats, with AVX-512 or AVX2
// where the CPU has them: compares and selects only, so every path gives the same bits as the
// portable loop (and as MaxPool2d's general loop, which other windows keep).
#ifndef HIDDEN_MPI_POOLING_H
#define HIDDEN_MPI_POOLING_H

#include <stdint.h>

/// y [planes][h/2][w/2] = the maximum of each 2x2 window of x [planes][h][w] (the first in
/// row-major order on ties, -infinity and the window's first position when all are NaN), arg its
/// offset within the plane. An odd last row or column belongs to no window.
void hm_maxpool2_forward(const float *x, float *y, int32_t *arg, long planes, long h, long w);

/// dx [planes][h][w] = 0 + dy at each window's arg, 0 elsewhere (as zeroing dx and adding there).
void hm_maxpool2_backward(const float *dy, const int32_t *arg, float *dx, long planes, long h, long w);

/// The ImageNet ResNets' 3x3 max-pool with stride 2 and padding 1: y [planes][(h+1)/2][(w+1)/2],
/// each window's maximum over its positions inside the image (padding never wins), the first in
/// row-major order on ties (the window's first inside position when all are NaN). Forward only:
/// its windows overlap, and MaxPool2d's general loop adds the gradients.
void hm_maxpool3s2_forward(const float *x, float *y, int32_t *arg, long planes, long h, long w);

/// The same, always by the portable loops (tests compare the two).
void hm_maxpool2_forward_portable(const float *x, float *y, int32_t *arg, long planes, long h, long w);
void hm_maxpool2_backward_portable(const float *dy, const int32_t *arg, float *dx, long planes, long h, long w);
void hm_maxpool3s2_forward_portable(const float *x, float *y, int32_t *arg, long planes, long h, long w);

#endif
