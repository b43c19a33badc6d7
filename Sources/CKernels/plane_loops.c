// See include/plane_loops.h. No -ffast-math, and no contraction of a * b + c into one fused
// operation: every path rounds each product and each sum, as the portable loops do.
#pragma STDC FP_CONTRACT OFF

#include "plane_loops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HM_X86 1
#endif

static int forced_portable = 0;

void hm_plane_loops_force_portable(int portable) { forced_portable = portable; }

int hm_plane_loops_use_avx2(void) {
#ifdef HM_X86
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached && !forced_portable;
#else
    return 0;
#endif
}

// ---- The portable loops: the definition of every result. ----

// The sums of u and u * v in eight double lanes s and q, from value i on: the whole eights into
// the lanes, the lanes added one after another to -0, then the values past the last whole eight.
// The portable loops start at 0 with zero lanes; the AVX2 loops hand over their lanes and where
// they stopped, so the lanes' total and the tail are computed here alone. U(k), V(k): the values.
#define LANE_SUMS_FROM(U, V)                                                      \
    for (; i + 8 <= n; i += 8)                                                    \
        for (int j = 0; j < 8; j++) {                                             \
            double u = (double)(U(i + j)), v = (double)(V(i + j));                \
            s[j] += u; q[j] += u * v;                                             \
        }                                                                         \
    double s1 = -0.0, s2 = -0.0;                                                  \
    for (int j = 0; j < 8; j++) { s1 += s[j]; s2 += q[j]; }                       \
    for (; i < n; i++) { double u = (double)(U(i)); s1 += u; s2 += u * (double)(V(i)); } \
    sums[0] = s1; sums[1] = s2;

static inline float gated(const float *dy, const float *r, long k) { return r[k] > 0 ? dy[k] : 0.0f; }

// Batch norm's input gradient of one value g (dy, gated behind a ReLU) with its x-hat: the one
// formula of the three backward loops.
static inline float norm_dx(float g, float xhat, float gamma, float mdy, float mdyx, float scale) {
    return scale * ((gamma * g - mdy) - xhat * mdyx);
}

#define UA(k) a[k]
#define VB(k) b[k]
#define UG(k) gated(dy, r, k)
#define VR(k) r[k]
#define VX(k) ((x[k] - mean) * scale)

static void plane_sums_from(const float *a, const float *b, long n, long i, double s[8], double q[8], double *sums) {
    LANE_SUMS_FROM(UA, VB)
}

static void plane_sums_relu_from(const float *dy, const float *r, long n, long i, double s[8], double q[8],
                                 double *sums) {
    LANE_SUMS_FROM(UG, VR)
}

static void plane_sums_relu_x_from(const float *dy, const float *r, const float *x, long n, float mean, float scale,
                                   long i, double s[8], double q[8], double *sums) {
    LANE_SUMS_FROM(UG, VX)
}

static void normalize_generic(const float *x, float *y, long n, float mean, float scale, int relu, long i) {
    for (; i < n; i++) { float v = (x[i] - mean) * scale; y[i] = relu && v < 0 ? 0.0f : v; }
}

static void norm_backward_generic(const float *dy, const float *xhat, float *dx, long n, float gamma, float mdy,
                                  float mdyx, float scale, long i) {
    for (; i < n; i++) dx[i] = norm_dx(dy[i], xhat[i], gamma, mdy, mdyx, scale);
}

static void norm_backward_relu_generic(const float *dy, const float *r, const float *x, float *dx, long n, float gamma,
                                       float mean, float mdy, float mdyx, float scale, long i) {
    for (; i < n; i++) dx[i] = norm_dx(gated(dy, r, i), (x[i] - mean) * scale, gamma, mdy, mdyx, scale);
}

static void norm_backward_x_generic(const float *dy, const float *x, float *dx, long n, float gamma, float mean,
                                    float mdy, float mdyx, float scale, long i) {
    for (; i < n; i++) dx[i] = norm_dx(dy[i], (x[i] - mean) * scale, gamma, mdy, mdyx, scale);
}

static void normalize_add_relu_generic(const float *x, const float *sc, float *y, long n, float mean, float scale,
                                       long i) {
    for (; i < n; i++) { float v = (x[i] - mean) * scale + sc[i]; y[i] = v < 0 ? 0.0f : v; }
}

static void relu_generic(const float *x, float *y, long n, long i) {
    for (; i < n; i++) y[i] = x[i] < 0 ? 0.0f : x[i];
}

static void add_inplace_generic(float *dst, const float *src, long n, long i) {
    for (; i < n; i++) dst[i] += src[i];
}

static void add_relu_generic(const float *a, const float *b, float *y, long n, long i) {
    for (; i < n; i++) { float v = a[i] + b[i]; y[i] = v < 0 ? 0.0f : v; }
}

static void relu_backward_generic(const float *x, const float *dy, float *dx, long n, long i) {
    for (; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0.0f;
}

// ---- AVX2: the same operations, eight floats (or two times four doubles) at a time. ----
#ifdef HM_X86
#define AVX2 __attribute__((target("avx2")))

// s (+)= u, q (+)= u * v over the eight lanes of u and v (floats), as two halves of four doubles.
AVX2 static inline void lane_step(__m256 u, __m256 v, __m256d *s, __m256d *q) {
    __m256d u0 = _mm256_cvtps_pd(_mm256_castps256_ps128(u)), u1 = _mm256_cvtps_pd(_mm256_extractf128_ps(u, 1));
    __m256d v0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), v1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s[0] = _mm256_add_pd(s[0], u0); s[1] = _mm256_add_pd(s[1], u1);
    q[0] = _mm256_add_pd(q[0], _mm256_mul_pd(u0, v0)); q[1] = _mm256_add_pd(q[1], _mm256_mul_pd(u1, v1));
}

AVX2 static inline void store_lanes(const __m256d *s, const __m256d *q, double *ls, double *lq) {
    _mm256_storeu_pd(ls, s[0]); _mm256_storeu_pd(ls + 4, s[1]);
    _mm256_storeu_pd(lq, q[0]); _mm256_storeu_pd(lq + 4, q[1]);
}

// g = dy where r > 0 (ordered: NaN gives 0), else +0.
AVX2 static inline __m256 gate(__m256 dy, __m256 r) {
    return _mm256_and_ps(dy, _mm256_cmp_ps(r, _mm256_setzero_ps(), _CMP_GT_OQ));
}

// v, or +0 where v < 0 (ordered: -0 and NaN pass).
AVX2 static inline __m256 clamp_below(__m256 v) {
    return _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ), v);
}

// norm_dx on eight values: ga, a, b, sc hold gamma, mean_dy, mean_dy_xhat and scale.
AVX2 static inline __m256 norm_dx8(__m256 g, __m256 xhat, __m256 ga, __m256 a, __m256 b, __m256 sc) {
    return _mm256_mul_ps(sc, _mm256_sub_ps(_mm256_sub_ps(_mm256_mul_ps(ga, g), a), _mm256_mul_ps(xhat, b)));
}

AVX2 static void plane_sums_avx2(const float *a, const float *b, long n, double *sums) {
    __m256d s[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, q[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    long i = 0;
    for (; i + 8 <= n; i += 8) lane_step(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s, q);
    double ls[8], lq[8];
    store_lanes(s, q, ls, lq);
    plane_sums_from(a, b, n, i, ls, lq, sums);
}

AVX2 static void plane_sums_relu_avx2(const float *dy, const float *r, long n, double *sums) {
    __m256d s[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, q[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 h = _mm256_loadu_ps(r + i);
        lane_step(gate(_mm256_loadu_ps(dy + i), h), h, s, q);
    }
    double ls[8], lq[8];
    store_lanes(s, q, ls, lq);
    plane_sums_relu_from(dy, r, n, i, ls, lq, sums);
}

AVX2 static void plane_sums_relu_x_avx2(const float *dy, const float *r, const float *x, long n, float mean, float scale,
                                        double *sums) {
    __m256d s[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, q[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    const __m256 m = _mm256_set1_ps(mean), sc = _mm256_set1_ps(scale);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = gate(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(r + i));
        lane_step(g, _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), sc), s, q);
    }
    double ls[8], lq[8];
    store_lanes(s, q, ls, lq);
    plane_sums_relu_x_from(dy, r, x, n, mean, scale, i, ls, lq, sums);
}

AVX2 static void normalize_avx2(const float *x, float *y, long n, float mean, float scale, int relu) {
    const __m256 m = _mm256_set1_ps(mean), sc = _mm256_set1_ps(scale);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), sc);
        _mm256_storeu_ps(y + i, relu ? clamp_below(v) : v);
    }
    normalize_generic(x, y, n, mean, scale, relu, i);
}

AVX2 static void norm_backward_avx2(const float *dy, const float *xhat, float *dx, long n, float gamma, float mdy,
                                    float mdyx, float scale) {
    const __m256 ga = _mm256_set1_ps(gamma), a = _mm256_set1_ps(mdy), b = _mm256_set1_ps(mdyx), sc = _mm256_set1_ps(scale);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(dx + i, norm_dx8(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(xhat + i), ga, a, b, sc));
    }
    norm_backward_generic(dy, xhat, dx, n, gamma, mdy, mdyx, scale, i);
}

AVX2 static void norm_backward_relu_avx2(const float *dy, const float *r, const float *x, float *dx, long n, float gamma,
                                         float mean, float mdy, float mdyx, float scale) {
    const __m256 ga = _mm256_set1_ps(gamma), a = _mm256_set1_ps(mdy), b = _mm256_set1_ps(mdyx), sc = _mm256_set1_ps(scale);
    const __m256 m = _mm256_set1_ps(mean);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = gate(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(r + i));
        __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), sc);
        _mm256_storeu_ps(dx + i, norm_dx8(g, xhat, ga, a, b, sc));
    }
    norm_backward_relu_generic(dy, r, x, dx, n, gamma, mean, mdy, mdyx, scale, i);
}

AVX2 static void norm_backward_x_avx2(const float *dy, const float *x, float *dx, long n, float gamma, float mean,
                                      float mdy, float mdyx, float scale) {
    const __m256 ga = _mm256_set1_ps(gamma), a = _mm256_set1_ps(mdy), b = _mm256_set1_ps(mdyx), sc = _mm256_set1_ps(scale);
    const __m256 m = _mm256_set1_ps(mean);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), sc);
        _mm256_storeu_ps(dx + i, norm_dx8(_mm256_loadu_ps(dy + i), xhat, ga, a, b, sc));
    }
    norm_backward_x_generic(dy, x, dx, n, gamma, mean, mdy, mdyx, scale, i);
}

AVX2 static void normalize_add_relu_avx2(const float *x, const float *s, float *y, long n, float mean, float scale) {
    const __m256 m = _mm256_set1_ps(mean), sc = _mm256_set1_ps(scale);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), sc);
        _mm256_storeu_ps(y + i, clamp_below(_mm256_add_ps(v, _mm256_loadu_ps(s + i))));
    }
    normalize_add_relu_generic(x, s, y, n, mean, scale, i);
}

// One pass: g = dy where r > 0 (written out), and the sums of g and x-hat from x.
AVX2 static void relu_backward_sums_avx2(const float *r, const float *dy, float *g, const float *x, long n, float mean,
                                         float scale, double *sums) {
    __m256d s[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, q[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    const __m256 m = _mm256_set1_ps(mean), sc = _mm256_set1_ps(scale);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = gate(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(r + i));
        _mm256_storeu_ps(g + i, gi);
        lane_step(gi, _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), sc), s, q);
    }
    double ls[8], lq[8];
    store_lanes(s, q, ls, lq);
    relu_backward_generic(r, dy, g, n, i);
    plane_sums_relu_x_from(dy, r, x, n, mean, scale, i, ls, lq, sums);
}

AVX2 static void relu_avx2(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, clamp_below(_mm256_loadu_ps(x + i)));
    relu_generic(x, y, n, i);
}

AVX2 static void add_inplace_avx2(float *dst, const float *src, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i));
        __m256 b = _mm256_add_ps(_mm256_loadu_ps(dst + i + 8), _mm256_loadu_ps(src + i + 8));
        _mm256_storeu_ps(dst + i, a); _mm256_storeu_ps(dst + i + 8, b);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
    add_inplace_generic(dst, src, n, i);
}

AVX2 static void add_relu_avx2(const float *a, const float *b, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, clamp_below(_mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))));
    add_relu_generic(a, b, y, n, i);
}

AVX2 static void relu_backward_avx2(const float *x, const float *dy, float *dx, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dx + i, gate(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(x + i)));
    relu_backward_generic(x, dy, dx, n, i);
}
#define DISPATCH(call) do { if (hm_plane_loops_use_avx2()) { call; return; } } while (0)
#else
#define DISPATCH(call) do { } while (0)
#endif

// ---- The entry points. ----

void hm_plane_sums(const float *a, const float *b, long n, double *sums) {
    DISPATCH(plane_sums_avx2(a, b, n, sums));
    double s[8] = {0}, q[8] = {0};
    plane_sums_from(a, b, n, 0, s, q, sums);
}

void hm_plane_sums_relu(const float *dy, const float *r, long n, double *sums) {
    DISPATCH(plane_sums_relu_avx2(dy, r, n, sums));
    double s[8] = {0}, q[8] = {0};
    plane_sums_relu_from(dy, r, n, 0, s, q, sums);
}

void hm_plane_sums_relu_x(const float *dy, const float *r, const float *x, long n, float mean, float scale,
                          double *sums) {
    DISPATCH(plane_sums_relu_x_avx2(dy, r, x, n, mean, scale, sums));
    double s[8] = {0}, q[8] = {0};
    plane_sums_relu_x_from(dy, r, x, n, mean, scale, 0, s, q, sums);
}

void hm_normalize(const float *x, float *y, long n, float mean, float scale, int relu) {
    DISPATCH(normalize_avx2(x, y, n, mean, scale, relu));
    normalize_generic(x, y, n, mean, scale, relu, 0);
}

void hm_norm_backward(const float *dy, const float *xhat, float *dx, long n, float gamma, float mean_dy,
                      float mean_dy_xhat, float scale) {
    DISPATCH(norm_backward_avx2(dy, xhat, dx, n, gamma, mean_dy, mean_dy_xhat, scale));
    norm_backward_generic(dy, xhat, dx, n, gamma, mean_dy, mean_dy_xhat, scale, 0);
}

void hm_norm_backward_relu(const float *dy, const float *r, const float *x, float *dx, long n, float gamma,
                           float mean, float mean_dy, float mean_dy_xhat, float scale) {
    DISPATCH(norm_backward_relu_avx2(dy, r, x, dx, n, gamma, mean, mean_dy, mean_dy_xhat, scale));
    norm_backward_relu_generic(dy, r, x, dx, n, gamma, mean, mean_dy, mean_dy_xhat, scale, 0);
}

void hm_relu(const float *x, float *y, long n) {
    DISPATCH(relu_avx2(x, y, n));
    relu_generic(x, y, n, 0);
}

void hm_add_inplace(float *dst, const float *src, long n) {
    DISPATCH(add_inplace_avx2(dst, src, n));
    add_inplace_generic(dst, src, n, 0);
}

void hm_add_relu(const float *a, const float *b, float *y, long n) {
    DISPATCH(add_relu_avx2(a, b, y, n));
    add_relu_generic(a, b, y, n, 0);
}

void hm_relu_backward(const float *x, const float *dy, float *dx, long n) {
    DISPATCH(relu_backward_avx2(x, dy, dx, n));
    relu_backward_generic(x, dy, dx, n, 0);
}

void hm_norm_backward_x(const float *dy, const float *x, float *dx, long n, float gamma, float mean, float mean_dy,
                        float mean_dy_xhat, float scale) {
    DISPATCH(norm_backward_x_avx2(dy, x, dx, n, gamma, mean, mean_dy, mean_dy_xhat, scale));
    norm_backward_x_generic(dy, x, dx, n, gamma, mean, mean_dy, mean_dy_xhat, scale, 0);
}

void hm_normalize_add_relu(const float *x, const float *s, float *y, long n, float mean, float scale) {
    DISPATCH(normalize_add_relu_avx2(x, s, y, n, mean, scale));
    normalize_add_relu_generic(x, s, y, n, mean, scale, 0);
}

void hm_relu_backward_sums(const float *r, const float *dy, float *g, const float *x, long n, float mean, float scale,
                           double *sums) {
    DISPATCH(relu_backward_sums_avx2(r, dy, g, x, n, mean, scale, sums));
    relu_backward_generic(r, dy, g, n, 0);
    double s[8] = {0}, q[8] = {0};
    plane_sums_relu_x_from(dy, r, x, n, mean, scale, 0, s, q, sums);
}
