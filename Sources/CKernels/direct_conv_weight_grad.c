// The direct convolution's weight gradient (include/direct_conv.h): the portable loops and the
// AVX-512 kernel; the AVX2 one is in direct_conv_avx2.c. All three sum every weight's products in
// the same order (image, row, column), one fused multiply-add each: the same bits.
#include "direct_conv.h"
#include "direct_conv_internal.h"
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HM_X86 1
#define AVX512 __attribute__((target("avx512f")))
#endif

// ---- Weight gradient: for 16 output channels (a vector), 8 input channels x 3 taps kj of one
// row ki in 24 accumulators, over every position of every image ----

static void weight_grad_portable(const float *xp, const hm_dc_geometry *g, const float *dyb, float *dwb, int C, int Co,
                                 int H, int W, int n, int first) {
    const int OB = Co / 16;
    const long plane = g->plane, P = (long)H * W;
    for (int ob = 0; ob < OB; ob++)
        for (int c0 = 0; c0 < C; c0 += 8)
            for (int ki = 0; ki < 3; ki++) {
                float acc[8][3][16];
                for (int c = 0; c < 8; c++)
                    for (int kj = 0; kj < 3; kj++)
                        for (int o = 0; o < 16; o++)
                            acc[c][kj][o] = first ? 0 : dwb[(((long)ob * C + c0 + c) * 9 + ki * 3 + kj) * 16 + o];
                for (int b = 0; b < n; b++)
                    for (int oy = 0; oy < H; oy++)
                        for (int ox = 0; ox < W; ox++) {
                            const float *d = dyb + (((long)b * OB + ob) * P + (long)oy * W + ox) * 16;
                            const float *x = xp + ((long)b * C + c0) * plane + (long)oy * g->row + ox;
                            for (int c = 0; c < 8; c++)
                                for (int kj = 0; kj < 3; kj++) {
                                    const float v = x[c * plane + g->off[ki * 3 + kj]];
                                    for (int o = 0; o < 16; o++) acc[c][kj][o] = fmaf(v, d[o], acc[c][kj][o]);
                                }
                        }
                for (int c = 0; c < 8; c++)
                    for (int kj = 0; kj < 3; kj++)
                        for (int o = 0; o < 16; o++) dwb[(((long)ob * C + c0 + c) * 9 + ki * 3 + kj) * 16 + o] = acc[c][kj][o];
            }
}

#ifdef HM_X86
// NB (1 or 2) blocks of 16 output channels from block ob, 4 input channels x 3 taps kj of row ki
// each: each broadcast input value feeds NB fused multiply-adds (two blocks: half the loads per
// multiply-add). Every sum takes its positions in the order of the loop above: the same bits.
static inline __attribute__((always_inline)) AVX512 void
weight_grad_blocks(const float *xp, const hm_dc_geometry *g, const float *dyb, float *dwb, int C, int Co, int H, int W,
                   int n, int first, int ob, const int NB, const int S) {
    const int OB = Co / 16, row = g->row;
    const long plane = g->plane, P = (long)H * W;
    for (int c0 = 0; c0 < C; c0 += 4)
        for (int ki = 0; ki < 3; ki++) {
            // Taps kj = 1 and 2 at d1 and d2 from kj = 0: 1 and 2 for stride 1 (constants: addresses
            // in the instruction, as few pointers as registers hold), the neighbouring column
            // parity's plane and the next column for stride 2.
            const int *off = g->off + ki * 3;
            const long d1 = S == 1 ? 1 : off[1] - off[0], d2 = S == 1 ? 2 : 1;
            __m512 acc[2][4][3];  // sized for two blocks whatever NB is: arrays of a variable size would live in memory
            float *out[2];
            for (int h = 0; h < NB; h++) {
                out[h] = dwb + ((long)(ob + h) * C + c0) * 9 * 16 + ki * 3 * 16;
                for (int c = 0; c < 4; c++)
                    for (int kj = 0; kj < 3; kj++)
                        acc[h][c][kj] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(out[h] + (c * 9 + kj) * 16);
            }
            for (int b = 0; b < n; b++) {
                const float *d = dyb + ((long)b * OB + ob) * P * 16;
                const float *xb = xp + ((long)b * C + c0) * plane;
                for (int oy = 0; oy < H; oy++) {
                    const float *x = xb + (long)oy * row + off[0];
                    for (int ox = 0; ox < W; ox++, d += 16, x++) {
                        __m512 dv[2];
                        for (int h = 0; h < NB; h++) dv[h] = _mm512_loadu_ps(d + h * P * 16);
                        for (int c = 0; c < 4; c++)
                            for (int kj = 0; kj < 3; kj++) {
                                const __m512 v = _mm512_set1_ps(x[c * plane + (kj == 0 ? 0 : kj == 1 ? d1 : d2)]);
                                for (int h = 0; h < NB; h++) acc[h][c][kj] = _mm512_fmadd_ps(v, dv[h], acc[h][c][kj]);
                            }
                    }
                }
            }
            for (int h = 0; h < NB; h++)
                for (int c = 0; c < 4; c++)
                    for (int kj = 0; kj < 3; kj++) _mm512_storeu_ps(out[h] + (c * 9 + kj) * 16, acc[h][c][kj]);
        }
}

static AVX512 void weight_grad_avx512(const float *xp, const hm_dc_geometry *g, const float *dyb, float *dwb, int C,
                                      int Co, int H, int W, int n, int first) {
    int ob = 0;
    if (g->stride == 1) {
        for (; ob + 2 <= Co / 16; ob += 2) weight_grad_blocks(xp, g, dyb, dwb, C, Co, H, W, n, first, ob, 2, 1);
        if (ob < Co / 16) weight_grad_blocks(xp, g, dyb, dwb, C, Co, H, W, n, first, ob, 1, 1);
    } else {
        for (; ob + 2 <= Co / 16; ob += 2) weight_grad_blocks(xp, g, dyb, dwb, C, Co, H, W, n, first, ob, 2, 2);
        if (ob < Co / 16) weight_grad_blocks(xp, g, dyb, dwb, C, Co, H, W, n, first, ob, 1, 2);
    }
}
#endif

void hm_dc_weight_grad(const float *xp, const hm_dc_geometry *g, const float *dyb, float *dwb, int C, int Co, int H, int W,
                       int n, int first, int lvl) {
#ifdef HM_X86
    if (lvl == 2) { weight_grad_avx512(xp, g, dyb, dwb, C, Co, H, W, n, first); return; }
    if (lvl == 1) { hm_dc_weight_grad_avx2(xp, g, dyb, dwb, C, Co, H, W, n, first); return; }
#endif
    weight_grad_portable(xp, g, dyb, dwb, C, Co, H, W, n, first);
}
