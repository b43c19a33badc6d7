// The exact reduction's rounding to fixed point, which fixed_point.c and linear.c share (not part
// of the module's interface): the vector loops of both do these same IEEE double operations.
#ifndef HIDDEN_MPI_FIXED_POINT_INTERNAL_H
#define HIDDEN_MPI_FIXED_POINT_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/// 1.5 * 2^52: v + HM_FIXED_MAGIC holds round-half-even(v) in its low bits, for |v| < 2^51.
#define HM_FIXED_MAGIC 6755399441055744.0
/// 2^51: a value at or beyond it (or NaN) is out of range.
#define HM_FIXED_LIMIT 2251799813685248.0

/// The bits of HM_FIXED_MAGIC.
static inline uint64_t hm_fixed_magic_bits(void) {
    const double m = HM_FIXED_MAGIC;
    uint64_t bits;
    memcpy(&bits, &m, sizeof bits);
    return bits;
}

/// round-half-even(g * factor) as a two's-complement 64-bit integer (the low bits of
/// g * factor + 1.5 * 2^52); clears *ok when |g * factor| is not below 2^51 (or is NaN).
static inline uint64_t hm_fixed_round(float g, double factor, int *ok) {
    const double v = (double)g * factor;
    if (!(fabs(v) < HM_FIXED_LIMIT)) *ok = 0;
    const double t = v + HM_FIXED_MAGIC;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    return bits - hm_fixed_magic_bits();
}

#endif
