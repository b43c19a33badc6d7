// The direct convolution's kernels for CPUs with AVX2 and FMA but no AVX-512 (AMD Zen 2/3,
// Intel before Skylake-SP): the same fused multiply-adds in the same order as the portable loops
// and the AVX-512 kernels of direct_conv.c, so the same bits, with 8-float vectors (16 output
// channels take two) and 16 registers instead of 32.
#include "direct_conv_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

// NR x NC positions (NR x NC <= 6) of 16 output channels in 12 accumulators; each step loads the
// two halves of one weight vector and broadcasts one input value per position.
static inline __attribute__((always_inline)) AVX2 void
tile_avx2(const float *xp, const hm_dc_geometry *g, const float *w, float *y, int C, int H, int W, int oy0, int ox0,
          int accumulate, int c_begin, int c_end, float *part, const int NR, const int NC) {
    __m256 acc[6][2];  // a fixed size: arrays of a variable size would live in memory
    for (int t = 0; t < NR * NC; t++) {
        const float *p = part + ((long)(oy0 + t / NC) * W + ox0 + t % NC) * 16;
        acc[t][0] = c_begin == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(p);
        acc[t][1] = c_begin == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(p + 8);
    }
    const long plane = g->plane;
    const int row = g->row;
    for (int c0 = c_begin; c0 < c_end; c0 += 16)
        for (int k = 0; k < g->taps; k++) {
            const float *xr = xp + c0 * plane + (long)oy0 * row + ox0 + g->off[k];
            for (int c = 0; c < 16; c++, xr += plane, w += 16) {
                const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
                for (int t = 0; t < NR * NC; t++) {
                    const __m256 v = _mm256_broadcast_ss(xr + (long)(t / NC) * row + t % NC);
                    acc[t][0] = _mm256_fmadd_ps(v, w0, acc[t][0]);
                    acc[t][1] = _mm256_fmadd_ps(v, w1, acc[t][1]);
                }
            }
        }
    if (c_end < C) {  // partial sums, continued by the call for the next channels
        for (int t = 0; t < NR * NC; t++) {
            float *p = part + ((long)(oy0 + t / NC) * W + ox0 + t % NC) * 16;
            _mm256_storeu_ps(p, acc[t][0]);
            _mm256_storeu_ps(p + 8, acc[t][1]);
        }
        return;
    }
    float buf[6 * 16] __attribute__((aligned(32)));
    for (int t = 0; t < NR * NC; t++) {
        _mm256_store_ps(buf + t * 16, acc[t][0]);
        _mm256_store_ps(buf + t * 16 + 8, acc[t][1]);
    }
    hm_dc_store_tile(buf, y, NR, NC, W, (long)H * W, oy0, ox0, accumulate);
}

#define TILE(R, N)                                                                                            \
    static AVX2 void tile2_##R##_##N(const float *xp, const hm_dc_geometry *g, const float *w, float *y, int C, \
                                     int H, int W, int oy, int ox, int acc, int cb, int ce, float *part) {      \
        tile_avx2(xp, g, w, y, C, H, W, oy, ox, acc, cb, ce, part, R, N);                                       \
    }
TILE(1, 1) TILE(1, 2) TILE(1, 3) TILE(1, 4) TILE(1, 5) TILE(1, 6)
TILE(2, 1) TILE(2, 2) TILE(2, 3) TILE(3, 1) TILE(3, 2) TILE(4, 1)
#define AT(R, N) [R - 1][N - 1] = tile2_##R##_##N
static const hm_dc_tile_fn tiles[4][6] = {
    AT(1, 1), AT(1, 2), AT(1, 3), AT(1, 4), AT(1, 5), AT(1, 6),
    AT(2, 1), AT(2, 2), AT(2, 3), AT(3, 1), AT(3, 2), AT(4, 1),
};

hm_dc_tile_fn hm_dc_avx2_tile(int rows, int cols) { return tiles[rows - 1][cols - 1]; }

// For 16 output channels (two vectors), 2 input channels x 3 taps kj of one row ki in 12
// accumulators, over every position of every image: each sum in the portable loop's order.
static inline __attribute__((always_inline)) AVX2 void
weight_grad_avx2(const float *xp, const hm_dc_geometry *g, const float *dyb, float *dwb, int C, int Co, int H, int W,
                 int n, int first, const int S) {
    const int OB = Co / 16, row = g->row;
    const long plane = g->plane, P = (long)H * W;
    for (int ob = 0; ob < OB; ob++)
        for (int c0 = 0; c0 < C; c0 += 2)
            for (int ki = 0; ki < 3; ki++) {
                const int *off = g->off + ki * 3;  // taps kj = 1, 2 at d1, d2 from kj = 0 (as the AVX-512 kernel)
                const long d1 = S == 1 ? 1 : off[1] - off[0], d2 = S == 1 ? 2 : 1;
                float *out = dwb + ((long)ob * C + c0) * 9 * 16 + ki * 3 * 16;
                __m256 acc[2][3][2];
                for (int c = 0; c < 2; c++)
                    for (int kj = 0; kj < 3; kj++)
                        for (int h = 0; h < 2; h++)
                            acc[c][kj][h] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(out + (c * 9 + kj) * 16 + h * 8);
                for (int b = 0; b < n; b++) {
                    const float *d = dyb + ((long)b * OB + ob) * P * 16;
                    const float *xb = xp + ((long)b * C + c0) * plane;
                    for (int oy = 0; oy < H; oy++) {
                        const float *x = xb + (long)oy * row + off[0];
                        for (int ox = 0; ox < W; ox++, d += 16, x++) {
                            const __m256 dlo = _mm256_loadu_ps(d), dhi = _mm256_loadu_ps(d + 8);
                            for (int c = 0; c < 2; c++)
                                for (int kj = 0; kj < 3; kj++) {
                                    const __m256 v = _mm256_broadcast_ss(x + c * plane + (kj == 0 ? 0 : kj == 1 ? d1 : d2));
                                    acc[c][kj][0] = _mm256_fmadd_ps(v, dlo, acc[c][kj][0]);
                                    acc[c][kj][1] = _mm256_fmadd_ps(v, dhi, acc[c][kj][1]);
                                }
                        }
                    }
                }
                for (int c = 0; c < 2; c++)
                    for (int kj = 0; kj < 3; kj++)
                        for (int h = 0; h < 2; h++) _mm256_storeu_ps(out + (c * 9 + kj) * 16 + h * 8, acc[c][kj][h]);
            }
}

AVX2 void hm_dc_weight_grad_avx2(const float *xp, const hm_dc_geometry *g, const float *dyb, float *dwb, int C, int Co,
                                 int H, int W, int n, int first) {
    if (g->stride == 1) weight_grad_avx2(xp, g, dyb, dwb, C, Co, H, W, n, first, 1);
    else weight_grad_avx2(xp, g, dyb, dwb, C, Co, H, W, n, first, 2);
}
#endif
