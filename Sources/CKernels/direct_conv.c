// See include/direct_conv.h. Layouts, the forward and input-gradient tiles with their AVX-512
// micro-kernels (the AVX2 ones in direct_conv_avx2.c, the weight gradient in
// direct_conv_weight_grad.c), and a portable version of each, which does the same fused
// multiply-adds (fmaf) in the same order: the same bits, at a fraction of the speed (tests compare
// them; CPUs with neither instruction set keep im2col + sgemm).
#include "ckernels.h"
#include "direct_conv_internal.h"
#include <math.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HM_X86 1
#define AVX512 __attribute__((target("avx512f")))
#endif

static int supported(void) {
#ifdef HM_X86
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

static int forced = -1;

// 2: AVX-512, 1: AVX2 + FMA, 0: neither (the portable loops).
static int level(void) {
    static int cached = -1;
    if (cached < 0) cached = supported();
    return forced >= 0 && forced < cached ? forced : cached;
}

static int avx512(void) { return level() == 2; }

int hm_conv3x3_available(void) { return level(); }

int hm_conv3x3_limit(int max_level) {
    forced = max_level;
    return level();
}

// ---- Layouts ----

// out [A][B][T][16 u][16 v] from w [Co][C][3][3], tap t from tap taps[t] (ki x 3 + kj): forward,
// A = Co/16 output blocks, B = C/16 input blocks, u the input and v the output channel; backward,
// the roles swapped (A = C/16, u the output and v the input channel).
static void pack_weights(const float *w, float *out, int C, int Co, int backward, const int *taps, int T) {
    const int A = (backward ? C : Co) / 16, B = (backward ? Co : C) / 16;
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int u = 0; u < 16; u++) {
                    float *dst = out + (((long)(a * B + b) * T + t) * 16 + u) * 16;
                    for (int v = 0; v < 16; v++) {
                        const long co = backward ? b * 16 + u : a * 16 + v, ci = backward ? a * 16 + v : b * 16 + u;
                        dst[v] = w[(co * C + ci) * 9 + taps[t]];
                    }
                }
}

static const int in_order[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, flipped[9] = {8, 7, 6, 5, 4, 3, 2, 1, 0};

void hm_conv3x3_pack_forward(const float *w, float *wf, int C, int Co) { pack_weights(w, wf, C, Co, 0, in_order, 9); }

void hm_conv3x3_pack_backward(const float *w, float *wx, int C, int Co) { pack_weights(w, wx, C, Co, 1, flipped, 9); }

// ---- Stride 2 ----
// The input gradient of a stride-2 convolution, dx[u][v] = sum of w[ki][kj] dy[h][w] over
// u = 2h + ki - 1, v = 2w + kj - 1, splits by the parities of u and v into four classes, each a
// stride-1 convolution of dy with some of the taps: an even row u = 2i takes the tap row ki = 1
// (dy row i), an odd row u = 2i + 1 the tap rows ki = 0 (dy row i + 1) and ki = 2 (dy row i);
// columns alike. Class k = 2a + b: a = 1 for even rows, b = 1 for even columns; taps (ki asc,
// kj asc), 4 + 2 + 2 + 1 = 9 in all.
static int class_taps(int k, int taps[4]) {
    const int a = k >> 1, b = k & 1, rows[2][2] = {{0, 2}, {1, -1}};
    int T = 0;
    for (int r = 0; r < 2 - a; r++)
        for (int c = 0; c < 2 - b; c++) taps[T++] = rows[a][r] * 3 + rows[b][c];
    return T;
}

void hm_conv3x3_pack_s2_backward(const float *w, float *wc, int C, int Co) {
    for (int k = 0; k < 4; k++) {
        int taps[4];
        const int T = class_taps(k, taps);
        pack_weights(w, wc, C, Co, 1, taps, T);
        wc += (long)C * Co * T;
    }
}

void hm_conv3x3_split2(const float *x, float *xq, int C, int Hin, int Win, int n) {
    const int Hq = Hin / 2 + 1, Wq = Win / 2 + 1, half = Win / 2;
    const long part = (long)Hq * Wq;
    for (long c = 0; c < (long)n * C; c++) {
        const float *in = x + c * Hin * Win;
        float *o = xq + c * 4 * part;
        // Parity (a, b) row i is the padded row 2i + a, the image's row u = 2i + a - 1: rows -1
        // (a = 0, i = 0) and Hin (a = 1, i = Hin / 2) are the zero border. Its column j is the
        // image's 2j + b - 1: b = 0 starts with the border (column -1), then the odd columns;
        // b = 1 has the even columns, then the border (column Win).
        for (int a = 0; a < 2; a++)
            for (int i = 0; i < Hq; i++) {
                float *odd = o + a * 2 * part + (long)i * Wq, *even = odd + part;
                const int u = 2 * i + a - 1;
                if (u < 0 || u >= Hin) {
                    memset(odd, 0, sizeof(float) * Wq);
                    memset(even, 0, sizeof(float) * Wq);
                    continue;
                }
                const float *row = in + (long)u * Win;
                odd[0] = 0;
                for (int j = 0; j < half; j++) {
                    even[j] = row[2 * j];
                    odd[j + 1] = row[2 * j + 1];
                }
                even[half] = 0;
            }
    }
}

void hm_conv3x3_pad(const float *x, float *xp, int C, int H, int W, int n) {
    const int Hp = H + 2, Wp = W + 2;
    for (long c = 0; c < (long)n * C; c++) {
        float *o = xp + c * Hp * Wp;
        const float *in = x + c * H * W;
        memset(o, 0, sizeof(float) * Wp);
        for (int y = 0; y < H; y++) {
            float *row = o + (long)(y + 1) * Wp;
            row[0] = 0;
            memcpy(row + 1, in + (long)y * W, sizeof(float) * W);
            row[W + 1] = 0;
        }
        memset(o + (long)(Hp - 1) * Wp, 0, sizeof(float) * Wp);
    }
}

#ifdef HM_X86
// r[l] = row l of a 16x16 block -> r[p] = column p (the known unpack / shuffle / 128-bit-lane
// sequence: three stages of exchanges, 64 shuffles for 256 floats).
static inline __attribute__((always_inline)) AVX512 void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

static AVX512 void block_avx512(const float *in, float *out, long P) {
    long p0 = 0;
    for (; p0 + 16 <= P; p0 += 16) {
        __m512 r[16];
        for (int l = 0; l < 16; l++) r[l] = _mm512_loadu_ps(in + l * P + p0);
        transpose16(r);
        for (int p = 0; p < 16; p++) _mm512_storeu_ps(out + (p0 + p) * 16, r[p]);
    }
    for (long p = p0; p < P; p++)
        for (int l = 0; l < 16; l++) out[p * 16 + l] = in[l * P + p];
}

// in [K][16] -> out [16][K], K a multiple of 16: the inverse of block_avx512.
static AVX512 void unblock_avx512(const float *in, float *out, long K) {
    for (long k0 = 0; k0 < K; k0 += 16) {
        __m512 r[16];
        for (int k = 0; k < 16; k++) r[k] = _mm512_loadu_ps(in + (k0 + k) * 16);
        transpose16(r);
        for (int o = 0; o < 16; o++) _mm512_storeu_ps(out + o * K + k0, r[o]);
    }
}
#endif

void hm_conv3x3_block(const float *x, float *xb, int C, int H, int W, int n) {
    const long P = (long)H * W;
    for (long b = 0; b < (long)n * (C / 16); b++) {
        const float *in = x + b * 16 * P;
        float *out = xb + b * 16 * P;
#ifdef HM_X86
        if (avx512()) { block_avx512(in, out, P); continue; }
#endif
        for (long p = 0; p < P; p++)
            for (int l = 0; l < 16; l++) out[p * 16 + l] = in[l * P + p];
    }
}

// One output block's sums in [K][16] -> [16][K].
static void unpack_block(const float *in, float *out, long K) {
#ifdef HM_X86
    if (avx512()) { unblock_avx512(in, out, K); return; }
#endif
    for (int o = 0; o < 16; o++)
        for (long k = 0; k < K; k++) out[o * K + k] = in[k * 16 + o];
}

void hm_conv3x3_unpack_weight_grad(const float *dwb, float *dw, int C, int Co) {
    const long K = (long)C * 9;  // a multiple of 16
    for (int ob = 0; ob < Co / 16; ob++) unpack_block(dwb + ob * K * 16, dw + ob * 16 * K, K);
}

int hm_conv3x3_accumulate_weight_grads(const float *const *dwb, int count, float *block, int64_t *acc, int C, int Co,
                                       double factor, int first) {
    const long K = (long)C * 9;
    int ok = 1;
    for (int ob = 0; ob < Co / 16; ob++)
        for (int k = 0; k < count; k++) {
            unpack_block(dwb[k] + ob * K * 16, block, K);
            if (!hm_fixed_accumulate(block, acc + ob * 16 * K, 16 * K, factor, first && k == 0)) ok = 0;
        }
    return ok;
}

// ---- Output tiles: nr rows x nc columns of one block of 16 output channels ----

// The tile's sums to y [16][H][W] (plane P apart), transposed from [position][16].
void hm_dc_store_tile(const float *buf, float *y, int nr, int nc, int W, long P, int oy0, int ox0, int accumulate) {
    for (int l = 0; l < 16; l++)
        for (int r = 0; r < nr; r++) {
            float *o = y + l * P + (long)(oy0 + r) * W + ox0;
            const float *s = buf + (long)r * nc * 16 + l;
            if (accumulate) { for (int j = 0; j < nc; j++) o[j] += s[j * 16]; }
            else { for (int j = 0; j < nc; j++) o[j] = s[j * 16]; }
        }
}

static void tile_portable(const float *xp, const hm_dc_geometry *g, const float *w, float *y, int C, int H, int W,
                          int oy0, int ox0, int nr, int nc, int accumulate) {
    float buf[28 * 16];
    for (int i = 0; i < nr * nc * 16; i++) buf[i] = 0;
    const long plane = g->plane;
    for (int c0 = 0; c0 < C; c0 += 16)
        for (int t = 0; t < g->taps; t++) {
            const float *xr = xp + c0 * plane + (long)oy0 * g->row + ox0 + g->off[t];
            for (int c = 0; c < 16; c++, xr += plane, w += 16)
                for (int r = 0; r < nr; r++)
                    for (int j = 0; j < nc; j++) {
                        const float v = xr[(long)r * g->row + j];
                        float *a = buf + (r * nc + j) * 16;
                        for (int o = 0; o < 16; o++) a[o] = fmaf(v, w[o], a[o]);
                    }
        }
    hm_dc_store_tile(buf, y, nr, nc, W, (long)H * W, oy0, ox0, accumulate);
}

#ifdef HM_X86
// NB (1 or 2) blocks of 16 output channels from block ob (the next block's packed weights C x 9 x
// 16 floats on, its output 16 planes on, its partial sums one image's P x 16 on), NR x NC
// positions. Two blocks share every broadcast input value between two fused multiply-adds: 2 +
// NR x NC loads for 2 x NR x NC of them, where one block needs 1 + NR x NC for NR x NC, which
// keeps the load ports, not the FMA units, busiest. Each sum takes its terms in the order of the
// portable loop either way: the same bits.
static inline __attribute__((always_inline)) AVX512 void
tile_avx512(const float *xp, const hm_dc_geometry *g, const float *w, float *y, int C, int H, int W, int oy0, int ox0,
            int accumulate, int c_begin, int c_end, float *part, const int NB, const int NR, const int NC) {
    const int last = c_end >= C, row = g->row;
    const long P = (long)H * W, wnext = (long)C * g->taps * 16;
    __m512 acc[2][4][16];  // a fixed size: arrays of a variable size would live in memory
    for (int h = 0; h < NB; h++)
        for (int r = 0; r < NR; r++)
            for (int j = 0; j < NC; j++)
                acc[h][r][j] = c_begin == 0 ? _mm512_setzero_ps()
                                            : _mm512_loadu_ps(part + h * P * 16 + ((long)(oy0 + r) * W + ox0 + j) * 16);
    const long plane = g->plane;
    for (int c0 = c_begin; c0 < c_end; c0 += 16)  // this call's channels (c_end <= C)
        for (int t = 0; t < g->taps; t++) {
            const float *xr = xp + c0 * plane + (long)oy0 * row + ox0 + g->off[t];
            for (int c = 0; c < 16; c++, xr += plane, w += 16) {
                __m512 wv[2];
                for (int h = 0; h < NB; h++) wv[h] = _mm512_loadu_ps(w + h * wnext);
                // Unrolled whole (clang stops short of 28 multiply-adds on its own, and then
                // keeps the accumulators in memory; KernelCodeTests checks).
#pragma clang loop unroll(full)
                for (int r = 0; r < NR; r++)
#pragma clang loop unroll(full)
                    for (int j = 0; j < NC; j++) {
                        const __m512 v = _mm512_set1_ps(xr[(long)r * row + j]);
#pragma clang loop unroll(full)
                        for (int h = 0; h < NB; h++) acc[h][r][j] = _mm512_fmadd_ps(v, wv[h], acc[h][r][j]);
                    }
            }
        }
    if (!last) {  // partial sums, continued by the call for the next channels
        for (int h = 0; h < NB; h++)
            for (int r = 0; r < NR; r++)
                for (int j = 0; j < NC; j++)
                    _mm512_storeu_ps(part + h * P * 16 + ((long)(oy0 + r) * W + ox0 + j) * 16, acc[h][r][j]);
        return;
    }
    if (NB == 1 && NR == 1 && NC == 16) {  // one row of 16 positions: transposed in registers, 16 vector stores
        __m512 r[16];  // a copy: acc's address taken would keep it in memory through the loop
        for (int j = 0; j < 16; j++) r[j] = acc[0][0][j % NC];
        transpose16(r);
        float *o = y + (long)oy0 * W + ox0;
        for (int l = 0; l < 16; l++, o += P)
            _mm512_storeu_ps(o, accumulate ? _mm512_add_ps(_mm512_loadu_ps(o), r[l]) : r[l]);
        return;
    }
    float buf[NB * NR * NC * 16] __attribute__((aligned(64)));
    for (int h = 0; h < NB; h++)
        for (int r = 0; r < NR; r++)
            for (int j = 0; j < NC; j++) _mm512_store_ps(buf + ((h * NR + r) * NC + j) * 16, acc[h][r][j]);
    for (int h = 0; h < NB; h++) hm_dc_store_tile(buf + h * NR * NC * 16, y + h * 16 * P, NR, NC, W, P, oy0, ox0, accumulate);
}

#define TILE(R, N)                                                                                            \
    static AVX512 void tile_##R##_##N(const float *xp, const hm_dc_geometry *g, const float *w, float *y, int C, \
                                      int H, int W, int oy, int ox, int acc, int cb, int ce, float *part) {      \
        tile_avx512(xp, g, w, y, C, H, W, oy, ox, acc, cb, ce, part, 1, R, N);                                  \
    }
#define TILE2(R, N)                                                                                              \
    static AVX512 void tile_2b_##R##_##N(const float *xp, const hm_dc_geometry *g, const float *w, float *y, int C, \
                                         int H, int W, int oy, int ox, int acc, int cb, int ce, float *part) {      \
        tile_avx512(xp, g, w, y, C, H, W, oy, ox, acc, cb, ce, part, 2, R, N);                                     \
    }
#define TILES4(N) TILE(1, N) TILE(2, N) TILE(3, N) TILE(4, N)
TILES4(1) TILES4(2) TILES4(3) TILES4(4) TILES4(5) TILES4(6) TILES4(7)
TILE(1, 8) TILE(2, 8) TILE(3, 8) TILE(1, 9) TILE(2, 9) TILE(3, 9)
TILE(1, 10) TILE(2, 10) TILE(1, 11) TILE(2, 11) TILE(1, 12) TILE(2, 12) TILE(1, 13) TILE(2, 13) TILE(1, 14) TILE(2, 14)
TILE(1, 15) TILE(1, 16)
#define AT(R, N) [R - 1][N - 1] = tile_##R##_##N
#define AT4(N) AT(1, N), AT(2, N), AT(3, N), AT(4, N)
// Every (rows, columns) with rows x columns <= 28 accumulators, rows <= 4, columns <= 16.
static const hm_dc_tile_fn tiles[4][16] = {
    AT4(1), AT4(2), AT4(3), AT4(4), AT4(5), AT4(6), AT4(7),
    AT(1, 8), AT(2, 8), AT(3, 8), AT(1, 9), AT(2, 9), AT(3, 9),
    AT(1, 10), AT(2, 10), AT(1, 11), AT(2, 11), AT(1, 12), AT(2, 12), AT(1, 13), AT(2, 13), AT(1, 14), AT(2, 14),
    AT(1, 15), AT(1, 16),
};
TILE2(1, 1) TILE2(1, 2) TILE2(1, 3) TILE2(1, 4) TILE2(1, 5) TILE2(1, 6) TILE2(1, 7)
TILE2(1, 8) TILE2(1, 9) TILE2(1, 10) TILE2(1, 11) TILE2(1, 12) TILE2(1, 13) TILE2(1, 14)
TILE2(2, 1) TILE2(2, 2) TILE2(2, 3) TILE2(2, 4) TILE2(2, 5) TILE2(2, 6) TILE2(2, 7)
TILE2(3, 1) TILE2(3, 2) TILE2(3, 3) TILE2(3, 4) TILE2(4, 1) TILE2(4, 2) TILE2(4, 3)
#define AT2(R, N) [R - 1][N - 1] = tile_2b_##R##_##N
// Two blocks: every (rows, columns) with rows x columns <= 14 positions (28 accumulators).
static const hm_dc_tile_fn tiles2[4][14] = {
    AT2(1, 1), AT2(1, 2), AT2(1, 3), AT2(1, 4), AT2(1, 5), AT2(1, 6), AT2(1, 7),
    AT2(1, 8), AT2(1, 9), AT2(1, 10), AT2(1, 11), AT2(1, 12), AT2(1, 13), AT2(1, 14),
    AT2(2, 1), AT2(2, 2), AT2(2, 3), AT2(2, 4), AT2(2, 5), AT2(2, 6), AT2(2, 7),
    AT2(3, 1), AT2(3, 2), AT2(3, 3), AT2(3, 4), AT2(4, 1), AT2(4, 2), AT2(4, 3),
};
#endif

// Columns per tile: the row in equal parts of at most 16 (two blocks: 14; AVX2: 6); rows per
// tile: as many as keep the tile within 28 accumulators (AVX2: 6 positions), at most 4.
static void tile_shape(int W, int lvl, int blocks, int *rows, int *cols) {
    const int most = lvl == 1 ? 6 : blocks == 2 ? 14 : 16, positions = lvl == 1 ? 6 : 28 / blocks;
    const int parts = (W + most - 1) / most;
    *cols = (W + parts - 1) / parts;
    int r = positions / *cols;
    *rows = r > 4 ? 4 : r;
}

// lvl: 2 the AVX-512 tiles (two output blocks at a time where there are two), 1 the AVX2 ones,
// 0 the portable loops.
static void conv(const float *xp, const hm_dc_geometry *g, const float *wf, float *y, int C, int Co, int H, int W, int n,
                 int accumulate, float *scratch, int lvl) {
    const long P = (long)H * W;
    // Output-channel blocks outside the images: a block's weights (C x 9 x 16 floats) stay in
    // cache while the images' tiles pass by. Where they are more than L1 holds (C > 64), the
    // input channels go in slices of 32 (18 KB of weights a block) over all the images, and each
    // tile's sums wait in `scratch` between the slices: the same sums in the same order.
    const int slice = (lvl > 0 && scratch != NULL && C > 64) ? 32 : C;
    for (int ob = 0; ob < Co / 16;) {
        // Two blocks, except on rows of exactly 16 positions: there one block's 1 x 16 tile, stored
        // by an in-register transpose, ran 5% faster than two blocks' 1 x 8 (scripts/conv-micro.c,
        // 128 channels at 16 x 16; two blocks won by 2-25% on the other shapes of cifar-resnet18 and
        // resnet50).
        const int blocks = lvl == 2 && ob + 1 < Co / 16 && W != 16 ? 2 : 1;
        int NR, NC;
        tile_shape(W, lvl, blocks, &NR, &NC);
        for (int c_begin = 0; c_begin < C; c_begin += slice) {
            const int c_end = c_begin + slice < C ? c_begin + slice : C;
            const float *w = wf + ((long)ob * C + c_begin) * g->taps * 16;
            for (int b = 0; b < n; b++) {
                const float *x = xp + (long)b * C * g->plane;
                float *out = y + ((long)b * Co + ob * 16) * P;
                float *part = scratch ? scratch + b * P * 16 * 2 : NULL;
                for (int oy = 0; oy < H; oy += NR) {
                    const int nr = H - oy < NR ? H - oy : NR;
                    for (int ox = 0; ox < W; ox += NC) {
                        const int nc = W - ox < NC ? W - ox : NC;
#ifdef HM_X86
                        if (lvl > 0) {
                            const hm_dc_tile_fn tile = lvl == 1 ? hm_dc_avx2_tile(nr, nc)
                                                       : blocks == 2 ? tiles2[nr - 1][nc - 1] : tiles[nr - 1][nc - 1];
                            tile(x, g, w, out, C, H, W, oy, ox, accumulate, c_begin, c_end, part);
                            continue;
                        }
#endif
                        tile_portable(x, g, w, out, C, H, W, oy, ox, nr, nc, accumulate);
                    }
                }
            }
        }
        ob += blocks;
    }
}

// The stride-2 forward's images in groups whose split inputs take at most three quarters of the
// core's L2 (1.5 MiB where it has 2; else 1 MiB). conv() puts the output blocks outside the
// images so that a block's weights stay in L1; the images' inputs then pass through once per pair
// of blocks, and a stride-2 input is four times the output, with a quarter of stride 1's
// arithmetic per byte: where the group's inputs are more than L2 holds (resnet50's 128 -> 128 at
// 56x56: 3.4 MB for two images), every pass comes from L3. In concurrent A/Bs of `conv-micro`
// that layer's forward ran 1.09-1.34x faster image by image (256 -> 256 at 28x28: 1.08-1.12x), and
// cifar-resnet18's 64 -> 128 (2.4 MB for 8 images) 1.06-1.15x faster in groups of 5 and 3. (The
// same split slowed stride-1 layers and small inputs in the same runs.) Each output sums its own
// image's products in the same order either way: the same bits.
static int s2_group(long image_floats, int n) {
    static long budget = 0;
    if (budget == 0) {
        long l2 = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
        l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        budget = l2 > 0 ? l2 / 4 * 3 : 1L << 20;
    }
    const long bytes = image_floats * (long)sizeof(float), fit = budget / bytes;
    return bytes * n <= budget ? n : fit > 1 ? (int)fit : 1;
}

// Stride 1: the padded image [H+2][W+2], taps in order.
static hm_dc_geometry stride1(int H, int W) {
    hm_dc_geometry g = {.plane = (long)(H + 2) * (W + 2), .row = W + 2, .taps = 9, .stride = 1};
    for (int t = 0; t < 9; t++) g.off[t] = (t / 3) * g.row + t % 3;
    return g;
}

// Stride 2, output H x W: hm_conv3x3_split2's four parities [4][H+1][W+1]; tap (ki, kj) of output
// (oy, ox) is the padded image's (2 oy + ki, 2 ox + kj), parity (ki & 1, kj & 1) at
// (oy + ki / 2, ox + kj / 2).
static hm_dc_geometry stride2(int H, int W) {
    const long part = (long)(H + 1) * (W + 1);
    hm_dc_geometry g = {.plane = 4 * part, .row = W + 1, .taps = 9, .stride = 2};
    for (int t = 0; t < 9; t++) {
        const int ki = t / 3, kj = t % 3;
        g.off[t] = (int)(((ki & 1) * 2 + (kj & 1)) * part + (ki >> 1) * g.row + (kj >> 1));
    }
    return g;
}

void hm_conv3x3(const float *xp, const float *wf, float *y, int C, int Co, int H, int W, int n, int accumulate,
                float *scratch) {
    const hm_dc_geometry g = stride1(H, W);
    conv(xp, &g, wf, y, C, Co, H, W, n, accumulate, scratch, level());
}

void hm_conv3x3_portable(const float *xp, const float *wf, float *y, int C, int Co, int H, int W, int n, int accumulate) {
    const hm_dc_geometry g = stride1(H, W);
    conv(xp, &g, wf, y, C, Co, H, W, n, accumulate, NULL, 0);
}

void hm_conv3x3_weight_grad(const float *xp, const float *dyb, float *dwb, int C, int Co, int H, int W, int n, int first) {
    const hm_dc_geometry g = stride1(H, W);
    hm_dc_weight_grad(xp, &g, dyb, dwb, C, Co, H, W, n, first, level());
}

void hm_conv3x3_weight_grad_portable(const float *xp, const float *dyb, float *dwb, int C, int Co, int H, int W, int n,
                                     int first) {
    const hm_dc_geometry g = stride1(H, W);
    hm_dc_weight_grad(xp, &g, dyb, dwb, C, Co, H, W, n, first, 0);
}

void hm_conv3x3_s2(const float *xq, const float *wf, float *y, int C, int Co, int H, int W, int n, float *scratch) {
    const hm_dc_geometry g = stride2(H, W);
    const long image = (long)C * g.plane;
    const int group = s2_group(image, n);
    for (int b = 0; b < n; b += group)
        conv(xq + b * image, &g, wf, y + (long)b * Co * H * W, C, Co, H, W, n - b < group ? n - b : group, 0, scratch, level());
}

void hm_conv3x3_s2_weight_grad(const float *xq, const float *dyb, float *dwb, int C, int Co, int H, int W, int n,
                               int first) {
    const hm_dc_geometry g = stride2(H, W);
    hm_dc_weight_grad(xq, &g, dyb, dwb, C, Co, H, W, n, first, level());
}

void hm_conv3x3_s2_input_grad(const float *dyp, const float *wc, float *dx, int C, int Co, int H, int W, int n,
                              int accumulate, float *scratch, float *parts) {
    const long P = (long)H * W;
    for (int k = 0; k < 4; k++) {
        const int a = k >> 1, b = k & 1;
        int taps[4];
        hm_dc_geometry g = stride1(H, W);  // dy's padded layout, with the class's taps
        g.taps = class_taps(k, taps);
        for (int t = 0; t < g.taps; t++) {  // dy (padded by one) row i + 2 for ki = 0, i + 1 for ki = 1 or 2
            const int ki = taps[t] / 3, kj = taps[t] % 3;
            g.off[t] = (ki == 0 ? 2 : 1) * g.row + (kj == 0 ? 2 : 1);
        }
        conv(dyp, &g, wc, parts, Co, C, H, W, n, 0, scratch, level());
        wc += (long)C * Co * g.taps;
        // class k's H x W values to dx rows 2i + 1 - a, columns 2j + 1 - b
        for (long c = 0; c < (long)n * C; c++) {
            const float *src = parts + c * P;
            float *dst = dx + c * 4 * P + (1 - a) * 2 * W + (1 - b);
            for (int i = 0; i < H; i++, dst += 4 * W, src += W) {
                if (accumulate) { for (int j = 0; j < W; j++) dst[2 * j] += src[j]; }
                else { for (int j = 0; j < W; j++) dst[2 * j] = src[j]; }
            }
        }
    }
}
