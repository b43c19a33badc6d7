// See include/linear.h. No -ffast-math and no contraction: a fused multiply-add only where one is
// written (fmaf, _mm*_fmadd_ps), so the portable loops, the AVX2 and the AVX-512 kernels do the
// same IEEE operations in the same order and give the same bits (tests compare them).
#pragma STDC FP_CONTRACT OFF

#include "linear.h"
#include "fixed_point_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HM_X86 1
#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#endif

#define KB HM_LINEAR_KBLOCK


static long min_l(long a, long b) { return a < b ? a : b; }

float hm_linear_lanes_sum(const float l[16]) {
    float s8[8], s4[4], s2[2];
    for (int j = 0; j < 8; j++) s8[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++) s4[j] = s8[j] + s8[j + 4];
    for (int j = 0; j < 2; j++) s2[j] = s4[j] + s4[j + 2];
    return s2[0] + s2[1];
}

// ---- The portable loops: the definition of every result. ----

static void forward_portable(const float *x, const float *w, float *y, long n, long in, long out) {
    for (long b = 0; b < n; b++)
        for (long o = 0; o < out; o++) {
            const float *xb = x + b * in, *wo = w + o * in;
            float r = 0;
            for (long kb = 0; kb < in; kb += KB) {
                const long ke = min_l(kb + KB, in);
                float l[16] = {0};
                for (long k = kb; k < ke; k += 16)
                    for (int j = 0; j < 16; j++) {
                        const long kk = k + j;
                        l[j] = fmaf(kk < ke ? xb[kk] : 0.0f, kk < ke ? wo[kk] : 0.0f, l[j]);
                    }
                const float p = hm_linear_lanes_sum(l);
                r = kb == 0 ? p : r + p;
            }
            y[b * out + o] = r;
        }
}

static void input_grad_portable(const float *dy, const float *w, float *dx, long n, long in, long out) {
    for (long b = 0; b < n; b++)
        for (long i = 0; i < in; i++) {
            float a = 0;
            for (long o = 0; o < out; o++) a = fmaf(dy[b * out + o], w[o * in + i], a);
            dx[b * in + i] = a;
        }
}

static int weight_grad_fixed_portable(const float *dy, const float *x, long n, long chunk, long in, long out,
                                      int64_t *acc, double factor, int first) {
    int ok = 1;
    for (long o = 0; o < out; o++)
        for (long i = 0; i < in; i++) {
            uint64_t s = first ? 0 : (uint64_t)acc[o * in + i];
            for (long c0 = 0; c0 < n; c0 += chunk) {
                const long ce = min_l(c0 + chunk, n);
                float g = 0;
                for (long b = c0; b < ce; b++) g = fmaf(dy[b * out + o], x[b * in + i], g);
                s += hm_fixed_round(g, factor, &ok);
            }
            acc[o * in + i] = (int64_t)s;
        }
    return ok;
}

#ifdef HM_X86

// ---- AVX-512 ----

INLINE AVX512 float sum512(__m512 v) {
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1)));
}

// R samples x O outputs (R x O <= 24 accumulators), k in [kb, ke).
INLINE AVX512 void forward_tile512(const float *x, const float *w, float *y, long in, long out, long kb, long ke,
                                   const int R, const int O) {
    __m512 acc[4][6];
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++) acc[r][o] = _mm512_setzero_ps();
    long k = kb;
    for (; k + 16 <= ke; k += 16) {
        __m512 wv[6];
        for (int o = 0; o < O; o++) wv[o] = _mm512_loadu_ps(w + o * in + k);
        for (int r = 0; r < R; r++) {
            const __m512 xv = _mm512_loadu_ps(x + r * in + k);
            for (int o = 0; o < O; o++) acc[r][o] = _mm512_fmadd_ps(xv, wv[o], acc[r][o]);
        }
    }
    if (k < ke) {
        const __mmask16 m = (__mmask16)((1u << (ke - k)) - 1);
        __m512 wv[6];
        for (int o = 0; o < O; o++) wv[o] = _mm512_maskz_loadu_ps(m, w + o * in + k);
        for (int r = 0; r < R; r++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + r * in + k);
            for (int o = 0; o < O; o++) acc[r][o] = _mm512_fmadd_ps(xv, wv[o], acc[r][o]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++) {
            const float p = sum512(acc[r][o]);
            float *dst = y + r * out + o;
            *dst = kb == 0 ? p : *dst + p;
        }
}

static AVX512 void forward_avx512(const float *x, const float *w, float *y, long n, long in, long out) {
    // A k-block of the weights (out x 4 KB) and of the inputs stays in L2 while all tiles use it.
    for (long kb = 0; kb < in; kb += KB) {
        const long ke = min_l(kb + KB, in);
        long o = 0;
        for (; o + 6 <= out; o += 6) {
            long b = 0;
            for (; b + 4 <= n; b += 4) forward_tile512(x + b * in, w + o * in, y + b * out + o, in, out, kb, ke, 4, 6);
            for (; b < n; b++) forward_tile512(x + b * in, w + o * in, y + b * out + o, in, out, kb, ke, 1, 6);
        }
        for (; o < out; o++) {
            long b = 0;
            for (; b + 4 <= n; b += 4) forward_tile512(x + b * in, w + o * in, y + b * out + o, in, out, kb, ke, 4, 1);
            for (; b < n; b++) forward_tile512(x + b * in, w + o * in, y + b * out + o, in, out, kb, ke, 1, 1);
        }
    }
}

// R samples x V vectors of 16 inputs from i0 (R x V <= 24); the last vector masked by `last`.
INLINE AVX512 void input_grad_tile512(const float *dy, const float *w, float *dx, long in, long out, long i0,
                                      __mmask16 last, const int R, const int V) {
    __m512 acc[6][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
    for (long o = 0; o < out; o++) {
        __m512 wv[4];
        for (int v = 0; v < V; v++)
            wv[v] = v == V - 1 ? _mm512_maskz_loadu_ps(last, w + o * in + i0 + 16 * v) : _mm512_loadu_ps(w + o * in + i0 + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 d = _mm512_set1_ps(dy[r * out + o]);
            for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(d, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            float *dst = dx + r * in + i0 + 16 * v;
            if (v == V - 1) _mm512_mask_storeu_ps(dst, last, acc[r][v]);
            else _mm512_storeu_ps(dst, acc[r][v]);
        }
}

static AVX512 void input_grad_avx512(const float *dy, const float *w, float *dx, long n, long in, long out) {
    long i0 = 0;
    for (; i0 + 64 <= in; i0 += 64) {
        long b = 0;
        for (; b + 6 <= n; b += 6) input_grad_tile512(dy + b * out, w, dx + b * in, in, out, i0, 0xffff, 6, 4);
        for (; b < n; b++) input_grad_tile512(dy + b * out, w, dx + b * in, in, out, i0, 0xffff, 1, 4);
    }
    for (; i0 < in; i0 += 16) {
        const __mmask16 m = in - i0 >= 16 ? 0xffff : (__mmask16)((1u << (in - i0)) - 1);
        long b = 0;
        for (; b + 6 <= n; b += 6) input_grad_tile512(dy + b * out, w, dx + b * in, in, out, i0, m, 6, 1);
        for (; b < n; b++) input_grad_tile512(dy + b * out, w, dx + b * in, in, out, i0, m, 1, 1);
    }
}

// O outputs x V vectors of 16 inputs from i0 (the last masked by `last`): each chunk's sums in
// 8 float accumulators, added in fixed point to 16 integer ones (the two halves of each).
INLINE AVX512 int weight_grad_tile512(const float *dy, const float *x, long n, long chunk, long in, long out,
                                      int64_t *acc, double factor, int first, long o0, long i0, __mmask16 last,
                                      const int O, const int V) {
    const __m512d f = _mm512_set1_pd(factor), mg = _mm512_set1_pd(HM_FIXED_MAGIC), lim = _mm512_set1_pd(HM_FIXED_LIMIT);
    __m512i s[4][2][2];
    long chunks = 0;
    for (int r = 0; r < O; r++)
        for (int v = 0; v < V; v++)
            for (int h = 0; h < 2; h++) {
                const __mmask8 hm = (__mmask8)(v == V - 1 ? (last >> (8 * h)) & 0xff : 0xff);
                s[r][v][h] = first ? _mm512_setzero_si512()
                                   : _mm512_maskz_loadu_epi64(hm, acc + (o0 + r) * in + i0 + 16 * v + 8 * h);
            }
    __mmask8 bad = 0;
    for (long c0 = 0; c0 < n; c0 += chunk, chunks++) {
        const long ce = min_l(c0 + chunk, n);
        __m512 g[4][2];
        for (int r = 0; r < O; r++)
            for (int v = 0; v < V; v++) g[r][v] = _mm512_setzero_ps();
        for (long b = c0; b < ce; b++) {
            __m512 xv[2];
            for (int v = 0; v < V; v++)
                xv[v] = v == V - 1 ? _mm512_maskz_loadu_ps(last, x + b * in + i0 + 16 * v) : _mm512_loadu_ps(x + b * in + i0 + 16 * v);
            for (int r = 0; r < O; r++) {
                const __m512 d = _mm512_set1_ps(dy[b * out + o0 + r]);
                for (int v = 0; v < V; v++) g[r][v] = _mm512_fmadd_ps(d, xv[v], g[r][v]);
            }
        }
        for (int r = 0; r < O; r++)
            for (int v = 0; v < V; v++)
                for (int h = 0; h < 2; h++) {
                    const __m256 half = h == 0 ? _mm512_castps512_ps256(g[r][v])
                                               : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(g[r][v]), 1));
                    const __m512d d = _mm512_mul_pd(_mm512_cvtps_pd(half), f);
                    bad |= _mm512_cmp_pd_mask(_mm512_abs_pd(d), lim, _CMP_NLT_UQ);
                    s[r][v][h] = _mm512_add_epi64(s[r][v][h], _mm512_castpd_si512(_mm512_add_pd(d, mg)));
                }
    }
    // Each chunk added bits(v + magic); the integer is that minus bits(magic).
    const __m512i off = _mm512_set1_epi64((long long)(hm_fixed_magic_bits() * (uint64_t)chunks));
    for (int r = 0; r < O; r++)
        for (int v = 0; v < V; v++)
            for (int h = 0; h < 2; h++) {
                const __mmask8 hm = (__mmask8)(v == V - 1 ? (last >> (8 * h)) & 0xff : 0xff);
                _mm512_mask_storeu_epi64(acc + (o0 + r) * in + i0 + 16 * v + 8 * h, hm, _mm512_sub_epi64(s[r][v][h], off));
            }
    return bad == 0;
}

static AVX512 int weight_grad_fixed_avx512(const float *dy, const float *x, long n, long chunk, long in, long out,
                                           int64_t *acc, double factor, int first) {
    int ok = 1;
    long i0 = 0;
    // A column block of x (n x 32 floats) stays in L1 while every row of outputs uses it.
    for (; i0 + 32 <= in; i0 += 32) {
        long o = 0;
        for (; o + 4 <= out; o += 4) ok &= weight_grad_tile512(dy, x, n, chunk, in, out, acc, factor, first, o, i0, 0xffff, 4, 2);
        for (; o < out; o++) ok &= weight_grad_tile512(dy, x, n, chunk, in, out, acc, factor, first, o, i0, 0xffff, 1, 2);
    }
    for (; i0 < in; i0 += 16) {
        const __mmask16 m = in - i0 >= 16 ? 0xffff : (__mmask16)((1u << (in - i0)) - 1);
        long o = 0;
        for (; o + 4 <= out; o += 4) ok &= weight_grad_tile512(dy, x, n, chunk, in, out, acc, factor, first, o, i0, m, 4, 1);
        for (; o < out; o++) ok &= weight_grad_tile512(dy, x, n, chunk, in, out, acc, factor, first, o, i0, m, 1, 1);
    }
    return ok;
}

// ---- AVX2 (+FMA): 8-float vectors, 16 registers; the same operations in the same order ----

// Lanes 0-7 and 8-15 of the forward's sixteen, summed as sum512 sums them.
INLINE AVX2 float sum256x2(__m256 lo, __m256 hi) {
    const __m256 a = _mm256_add_ps(lo, hi);
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1)));
}

// Lane j of the mask on when j < count (count clamped to [0, 8]).
INLINE AVX2 __m256i mask8(long count) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int c = count < 0 ? 0 : count > 8 ? 8 : (int)count;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), idx);
}

// R samples x O outputs, two accumulators each (R x O <= 6).
INLINE AVX2 void forward_tile256(const float *x, const float *w, float *y, long in, long out, long kb, long ke,
                                 const int R, const int O) {
    __m256 acc[2][3][2];
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++) acc[r][o][0] = acc[r][o][1] = _mm256_setzero_ps();
    long k = kb;
    for (; k + 16 <= ke; k += 16)
        for (int r = 0; r < R; r++) {
            const __m256 x0 = _mm256_loadu_ps(x + r * in + k), x1 = _mm256_loadu_ps(x + r * in + k + 8);
            for (int o = 0; o < O; o++) {
                acc[r][o][0] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(w + o * in + k), acc[r][o][0]);
                acc[r][o][1] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(w + o * in + k + 8), acc[r][o][1]);
            }
        }
    if (k < ke) {
        const __m256i m0 = mask8(ke - k), m1 = mask8(ke - k - 8);
        for (int r = 0; r < R; r++) {
            const __m256 x0 = _mm256_maskload_ps(x + r * in + k, m0), x1 = _mm256_maskload_ps(x + r * in + k + 8, m1);
            for (int o = 0; o < O; o++) {
                acc[r][o][0] = _mm256_fmadd_ps(x0, _mm256_maskload_ps(w + o * in + k, m0), acc[r][o][0]);
                acc[r][o][1] = _mm256_fmadd_ps(x1, _mm256_maskload_ps(w + o * in + k + 8, m1), acc[r][o][1]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++) {
            const float p = sum256x2(acc[r][o][0], acc[r][o][1]);
            float *dst = y + r * out + o;
            *dst = kb == 0 ? p : *dst + p;
        }
}

static AVX2 void forward_avx2(const float *x, const float *w, float *y, long n, long in, long out) {
    for (long kb = 0; kb < in; kb += KB) {
        const long ke = min_l(kb + KB, in);
        long o = 0;
        for (; o + 3 <= out; o += 3) {
            long b = 0;
            for (; b + 2 <= n; b += 2) forward_tile256(x + b * in, w + o * in, y + b * out + o, in, out, kb, ke, 2, 3);
            for (; b < n; b++) forward_tile256(x + b * in, w + o * in, y + b * out + o, in, out, kb, ke, 1, 3);
        }
        for (; o < out; o++) {
            long b = 0;
            for (; b + 2 <= n; b += 2) forward_tile256(x + b * in, w + o * in, y + b * out + o, in, out, kb, ke, 2, 1);
            for (; b < n; b++) forward_tile256(x + b * in, w + o * in, y + b * out + o, in, out, kb, ke, 1, 1);
        }
    }
}

// R samples x V vectors of 8 inputs from i0 (R x V <= 12); the last vector masked by `last`.
INLINE AVX2 void input_grad_tile256(const float *dy, const float *w, float *dx, long in, long out, long i0,
                                    __m256i last, const int R, const int V) {
    __m256 acc[4][3];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) acc[r][v] = _mm256_setzero_ps();
    for (long o = 0; o < out; o++) {
        __m256 wv[3];
        for (int v = 0; v < V; v++)
            wv[v] = v == V - 1 ? _mm256_maskload_ps(w + o * in + i0 + 8 * v, last) : _mm256_loadu_ps(w + o * in + i0 + 8 * v);
        for (int r = 0; r < R; r++) {
            const __m256 d = _mm256_broadcast_ss(dy + r * out + o);
            for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(d, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) {
            float *dst = dx + r * in + i0 + 8 * v;
            if (v == V - 1) _mm256_maskstore_ps(dst, last, acc[r][v]);
            else _mm256_storeu_ps(dst, acc[r][v]);
        }
}

static AVX2 void input_grad_avx2(const float *dy, const float *w, float *dx, long n, long in, long out) {
    const __m256i all = _mm256_set1_epi32(-1);
    long i0 = 0;
    for (; i0 + 24 <= in; i0 += 24) {
        long b = 0;
        for (; b + 4 <= n; b += 4) input_grad_tile256(dy + b * out, w, dx + b * in, in, out, i0, all, 4, 3);
        for (; b < n; b++) input_grad_tile256(dy + b * out, w, dx + b * in, in, out, i0, all, 1, 3);
    }
    for (; i0 < in; i0 += 8) {
        const __m256i m = mask8(in - i0);
        long b = 0;
        for (; b + 4 <= n; b += 4) input_grad_tile256(dy + b * out, w, dx + b * in, in, out, i0, m, 4, 1);
        for (; b < n; b++) input_grad_tile256(dy + b * out, w, dx + b * in, in, out, i0, m, 1, 1);
    }
}

// O outputs x 8 inputs from i0 (masked by `last`): float sums of a chunk in O registers, their
// fixed-point values in 2 x O integer ones (4 lanes of 64 bits each).
INLINE AVX2 int weight_grad_tile256(const float *dy, const float *x, long n, long chunk, long in, long out,
                                    int64_t *acc, double factor, int first, long o0, long i0, __m256i last, const int O) {
    const __m256d f = _mm256_set1_pd(factor), mg = _mm256_set1_pd(HM_FIXED_MAGIC), lim = _mm256_set1_pd(HM_FIXED_LIMIT);
    const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    // The float mask's lanes widened to the 64-bit halves.
    const __m256i mlo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(last));
    const __m256i mhi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(last, 1));
    __m256i s[4][2];
    long chunks = 0;
    for (int r = 0; r < O; r++) {
        const long long *p = (const long long *)(acc + (o0 + r) * in + i0);
        s[r][0] = first ? _mm256_setzero_si256() : _mm256_maskload_epi64(p, mlo);
        s[r][1] = first ? _mm256_setzero_si256() : _mm256_maskload_epi64(p + 4, mhi);
    }
    __m256d bad = _mm256_setzero_pd();
    for (long c0 = 0; c0 < n; c0 += chunk, chunks++) {
        const long ce = min_l(c0 + chunk, n);
        __m256 g[4];
        for (int r = 0; r < O; r++) g[r] = _mm256_setzero_ps();
        for (long b = c0; b < ce; b++) {
            const __m256 xv = _mm256_maskload_ps(x + b * in + i0, last);
            for (int r = 0; r < O; r++) g[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(dy + b * out + o0 + r), xv, g[r]);
        }
        for (int r = 0; r < O; r++)
            for (int h = 0; h < 2; h++) {
                const __m128 half = h == 0 ? _mm256_castps256_ps128(g[r]) : _mm256_extractf128_ps(g[r], 1);
                const __m256d d = _mm256_mul_pd(_mm256_cvtps_pd(half), f);
                bad = _mm256_or_pd(bad, _mm256_cmp_pd(_mm256_and_pd(d, abs_mask), lim, _CMP_NLT_UQ));
                s[r][h] = _mm256_add_epi64(s[r][h], _mm256_castpd_si256(_mm256_add_pd(d, mg)));
            }
    }
    const __m256i off = _mm256_set1_epi64x((long long)(hm_fixed_magic_bits() * (uint64_t)chunks));
    for (int r = 0; r < O; r++) {
        long long *p = (long long *)(acc + (o0 + r) * in + i0);
        _mm256_maskstore_epi64(p, mlo, _mm256_sub_epi64(s[r][0], off));
        _mm256_maskstore_epi64(p + 4, mhi, _mm256_sub_epi64(s[r][1], off));
    }
    return _mm256_movemask_pd(bad) == 0;
}

static AVX2 int weight_grad_fixed_avx2(const float *dy, const float *x, long n, long chunk, long in, long out,
                                       int64_t *acc, double factor, int first) {
    int ok = 1;
    for (long i0 = 0; i0 < in; i0 += 8) {
        const __m256i m = mask8(in - i0);
        long o = 0;
        for (; o + 4 <= out; o += 4) ok &= weight_grad_tile256(dy, x, n, chunk, in, out, acc, factor, first, o, i0, m, 4);
        for (; o < out; o++) ok &= weight_grad_tile256(dy, x, n, chunk, in, out, acc, factor, first, o, i0, m, 1);
    }
    return ok;
}

#endif

// ---- Dispatch ----

void hm_linear_forward(const float *x, const float *w, float *y, long n, long in, long out, int lvl) {
    if (n <= 0 || out <= 0) return;
    if (in <= 0) { memset(y, 0, sizeof(float) * (size_t)(n * out)); return; }
#ifdef HM_X86
    if (lvl >= 2) { forward_avx512(x, w, y, n, in, out); return; }
    if (lvl == 1) { forward_avx2(x, w, y, n, in, out); return; }
#endif
    (void)lvl;
    forward_portable(x, w, y, n, in, out);
}

void hm_linear_input_grad(const float *dy, const float *w, float *dx, long n, long in, long out, int lvl) {
    if (n <= 0 || in <= 0) return;
    if (out <= 0) { memset(dx, 0, sizeof(float) * (size_t)(n * in)); return; }
#ifdef HM_X86
    if (lvl >= 2) { input_grad_avx512(dy, w, dx, n, in, out); return; }
    if (lvl == 1) { input_grad_avx2(dy, w, dx, n, in, out); return; }
#endif
    (void)lvl;
    input_grad_portable(dy, w, dx, n, in, out);
}

int hm_linear_weight_grad_fixed(const float *dy, const float *x, long n, long chunk, long in, long out, int64_t *acc,
                                double factor, int first, int lvl) {
    if (in <= 0 || out <= 0) return 1;
    if (chunk <= 0 || chunk > n) chunk = n > 0 ? n : 1;
#ifdef HM_X86
    if (lvl >= 2) return weight_grad_fixed_avx512(dy, x, n, chunk, in, out, acc, factor, first);
    if (lvl == 1) return weight_grad_fixed_avx2(dy, x, n, chunk, in, out, acc, factor, first);
#endif
    (void)lvl;
    return weight_grad_fixed_portable(dy, x, n, chunk, in, out, acc, factor, first);
}
