// See include/pooling.h. One loop body, compiled three times (plain x86-64, AVX2, AVX-512) and
// chosen at run time: the compiler vectorises the compares and selects for each.
#pragma STDC FP_CONTRACT OFF

#include "pooling.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#define HM_X86 1
#endif

#define FORWARD_BODY                                                                                  \
    const long oh = h / 2, ow = w / 2;                                                                \
    for (long p = 0; p < planes; p++) {                                                               \
        const float *src = x + p * h * w;                                                             \
        float *dst = y + p * oh * ow;                                                                 \
        int32_t *at = arg + p * oh * ow;                                                              \
        for (long oy = 0; oy < oh; oy++) {                                                            \
            const float *r0 = src + 2 * oy * w, *r1 = r0 + w;                                         \
            const int32_t base = (int32_t)(2 * oy * w);                                               \
            for (long ox = 0; ox < ow; ox++) {                                                        \
                const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];   \
                const int32_t q = base + (int32_t)(2 * ox);                                           \
                float m = -INFINITY;                                                                  \
                int32_t k = q;                                                                        \
                m = a > m ? a : m;                                                                    \
                const int gb = b > m; k = gb ? q + 1 : k; m = gb ? b : m;                              \
                const int gc = c > m; k = gc ? q + (int32_t)w : k; m = gc ? c : m;                    \
                const int gd = d > m; k = gd ? q + (int32_t)w + 1 : k; m = gd ? d : m;                 \
                dst[oy * ow + ox] = m;                                                                \
                at[oy * ow + ox] = k;                                                                 \
            }                                                                                         \
        }                                                                                             \
    }

#define BACKWARD_BODY                                                                                 \
    const long oh = h / 2, ow = w / 2;                                                                \
    for (long p = 0; p < planes; p++) {                                                               \
        const float *g = dy + p * oh * ow;                                                            \
        const int32_t *at = arg + p * oh * ow;                                                        \
        float *dst = dx + p * h * w;                                                                  \
        for (long oy = 0; oy < oh; oy++) {                                                            \
            float *r0 = dst + 2 * oy * w, *r1 = r0 + w;                                               \
            const int32_t base = (int32_t)(2 * oy * w);                                               \
            for (long ox = 0; ox < ow; ox++) {                                                        \
                const float v = 0.0f + g[oy * ow + ox];                                               \
                const int32_t k = at[oy * ow + ox] - base - (int32_t)(2 * ox);                        \
                r0[2 * ox] = k == 0 ? v : 0.0f;                                                       \
                r0[2 * ox + 1] = k == 1 ? v : 0.0f;                                                   \
                r1[2 * ox] = k == (int32_t)w ? v : 0.0f;                                              \
                r1[2 * ox + 1] = k == (int32_t)w + 1 ? v : 0.0f;                                      \
            }                                                                                         \
            if (w % 2) { r0[w - 1] = 0.0f; r1[w - 1] = 0.0f; }                                        \
        }                                                                                             \
        if (h % 2) memset(dst + (h - 1) * w, 0, sizeof(float) * (size_t)w);                           \
    }

// One window of the 3x3/2 pool: rows [y0, y1) and columns [x0, x1) inside the image.
static inline float window3(const float *src, long w, long y0, long y1, long x0, long x1, int32_t *at) {
    float m = -INFINITY;
    int32_t k = (int32_t)(y0 * w + x0);
    for (long iy = y0; iy < y1; iy++)
        for (long ix = x0; ix < x1; ix++) {
            const float v = src[iy * w + ix];
            const int g = v > m;
            k = g ? (int32_t)(iy * w + ix) : k;
            m = g ? v : m;
        }
    *at = k;
    return m;
}

// A row of outputs whose windows take R input rows from y0; the columns 1 <= ox < w/2 have all
// three of theirs inside the image (a loop the compiler vectorises), the first and an odd last
// one are clipped.
#define POOL3_ROW(R)                                                                                  \
    {                                                                                                 \
        for (long ox = 1; ox < w / 2; ox++) {                                                         \
            float m = -INFINITY;                                                                      \
            int32_t k = (int32_t)(y0 * w + 2 * ox - 1);                                               \
            for (int r = 0; r < (R); r++) {                                                           \
                const float *row = src + (y0 + r) * w + 2 * ox - 1;                                   \
                const int32_t base = (int32_t)((y0 + r) * w + 2 * ox - 1);                            \
                const float a = row[0], b = row[1], c = row[2];                                       \
                const int ga = a > m; k = ga ? base : k; m = ga ? a : m;                               \
                const int gb = b > m; k = gb ? base + 1 : k; m = gb ? b : m;                           \
                const int gc = c > m; k = gc ? base + 2 : k; m = gc ? c : m;                           \
            }                                                                                         \
            dst[oy * ow + ox] = m;                                                                    \
            at[oy * ow + ox] = k;                                                                     \
        }                                                                                             \
    }

#define POOL3_BODY                                                                                    \
    const long oh = (h + 1) / 2, ow = (w + 1) / 2;                                                    \
    for (long p = 0; p < planes; p++) {                                                               \
        const float *src = x + p * h * w;                                                             \
        float *dst = y + p * oh * ow;                                                                 \
        int32_t *at = arg + p * oh * ow;                                                              \
        for (long oy = 0; oy < oh; oy++) {                                                            \
            const long y0 = oy == 0 ? 0 : 2 * oy - 1, y1 = 2 * oy + 2 < h ? 2 * oy + 2 : h;           \
            dst[oy * ow] = window3(src, w, y0, y1, 0, w < 2 ? w : 2, at + oy * ow);                   \
            if (y1 - y0 == 3) POOL3_ROW(3) else if (y1 - y0 == 2) POOL3_ROW(2) else POOL3_ROW(1)      \
            for (long ox = w / 2 > 1 ? w / 2 : 1; ox < ow; ox++)                                      \
                dst[oy * ow + ox] = window3(src, w, y0, y1, 2 * ox - 1, 2 * ox + 2 < w ? 2 * ox + 2 : w, \
                                            at + oy * ow + ox);                                       \
        }                                                                                             \
    }

void hm_maxpool3s2_forward_portable(const float *x, float *y, int32_t *arg, long planes, long h, long w) {
    POOL3_BODY
}

void hm_maxpool2_forward_portable(const float *x, float *y, int32_t *arg, long planes, long h, long w) {
    FORWARD_BODY
}

void hm_maxpool2_backward_portable(const float *dy, const int32_t *arg, float *dx, long planes, long h, long w) {
    BACKWARD_BODY
}

#ifdef HM_X86
__attribute__((target("avx2"))) static void forward_avx2(const float *x, float *y, int32_t *arg, long planes, long h,
                                                         long w) {
    FORWARD_BODY
}
__attribute__((target("avx2"))) static void backward_avx2(const float *dy, const int32_t *arg, float *dx, long planes,
                                                          long h, long w) {
    BACKWARD_BODY
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static void forward_avx512(const float *x, float *y,
                                                                                         int32_t *arg, long planes,
                                                                                         long h, long w) {
    FORWARD_BODY
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static void backward_avx512(const float *dy,
                                                                                          const int32_t *arg, float *dx,
                                                                                          long planes, long h, long w) {
    BACKWARD_BODY
}

__attribute__((target("avx2"))) static void pool3_avx2(const float *x, float *y, int32_t *arg, long planes, long h,
                                                       long w) {
    POOL3_BODY
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static void pool3_avx512(const float *x, float *y,
                                                                                       int32_t *arg, long planes,
                                                                                       long h, long w) {
    POOL3_BODY
}

static int level(void) {
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
                     ? 2
                     : __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached;
}
#endif

void hm_maxpool2_forward(const float *x, float *y, int32_t *arg, long planes, long h, long w) {
#ifdef HM_X86
    switch (level()) {
    case 2: forward_avx512(x, y, arg, planes, h, w); return;
    case 1: forward_avx2(x, y, arg, planes, h, w); return;
    default: break;
    }
#endif
    hm_maxpool2_forward_portable(x, y, arg, planes, h, w);
}

void hm_maxpool2_backward(const float *dy, const int32_t *arg, float *dx, long planes, long h, long w) {
#ifdef HM_X86
    switch (level()) {
    case 2: backward_avx512(dy, arg, dx, planes, h, w); return;
    case 1: backward_avx2(dy, arg, dx, planes, h, w); return;
    default: break;
    }
#endif
    hm_maxpool2_backward_portable(dy, arg, dx, planes, h, w);
}

void hm_maxpool3s2_forward(const float *x, float *y, int32_t *arg, long planes, long h, long w) {
#ifdef HM_X86
    switch (level()) {
    case 2: pool3_avx512(x, y, arg, planes, h, w); return;
    case 1: pool3_avx2(x, y, arg, planes, h, w); return;
    default: break;
    }
#endif
    hm_maxpool3s2_forward_portable(x, y, arg, planes, h, w);
}
