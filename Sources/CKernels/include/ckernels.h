// Hot loops of the exact reduction (and, through plane_loops.h, of batch norm, ReLU and the
// residual adds), in C so that they can use AVX2 where the CPU has it (chosen at run time) while
// the Swift code stays portable x86-64. Both paths do the same IEEE operations in the same order,
// so they give the same bits. direct_conv.h: the direct 3x3 convolution (AVX-512, with portable
// loops of the same bits); linear.h: the fully connected layers' kernels (likewise).
#ifndef HIDDEN_MPI_CKERNELS_H
#define HIDDEN_MPI_CKERNELS_H

#include <stdint.h>
#include "plane_loops.h"
#include "direct_conv.h"
#include "linear.h"
#include "pooling.h"
#include "memory.h"

/// acc[i] (+)= round-half-even(src[i] * factor) for i < n (stores when `first`), as the 64-bit
/// integer in the low bits of (src[i] * factor + 1.5 * 2^52). Returns 0 when some |src[i] * factor|
/// is not below 2^51 (or is NaN): acc is then meaningless.
int hm_fixed_accumulate(const float *src, int64_t *acc, long n, double factor, int first);

/// hm_fixed_accumulate of count sources src[0..count-1] into the one sum, in tiles of acc that
/// stay in cache while every source is added: the sum goes through memory once, not count times.
/// The same integers as count calls one after another (integer adds, in any order).
int hm_fixed_accumulate_many(const float *const *src, int count, int64_t *acc, long n, double factor, int first);

/// dst[i] = (float)((double)acc[i] * scale) for i < n: the sums back as floats (scale 2^-40).
void hm_fixed_decode(const int64_t *acc, float *dst, long n, double scale);

/// The same, always by the portable loop (tests compare the two).
int hm_fixed_accumulate_portable(const float *src, int64_t *acc, long n, double factor, int first);
void hm_fixed_decode_portable(const int64_t *acc, float *dst, long n, double scale);

/// 1 when hm_fixed_accumulate runs its AVX2 loop on this CPU.
int hm_fixed_uses_avx2(void);

#endif
