// See include/ckernels.h. No -ffast-math: every operation is an IEEE double operation, rounded
// to nearest, and the compiler may not reorder or contract them.

#include "ckernels.h"
#include "fixed_point_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HM_X86 1
#endif

static int accumulate_generic(const float *src, int64_t *acc, long n, double factor, int first) {
    int ok = 1;
    for (long i = 0; i < n; i++) {
        const uint64_t q = hm_fixed_round(src[i], factor, &ok);
        acc[i] = (int64_t)(first ? q : (uint64_t)acc[i] + q);
    }
    return ok;
}

#ifdef HM_X86
__attribute__((target("avx2")))
static int accumulate_avx2(const float *src, int64_t *acc, long n, double factor, int first) {
    const __m256d f = _mm256_set1_pd(factor), m = _mm256_set1_pd(HM_FIXED_MAGIC), lim = _mm256_set1_pd(HM_FIXED_LIMIT);
    const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const __m256i mb = _mm256_castpd_si256(m);
    __m256d bad = _mm256_setzero_pd();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d v0 = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(src + i)), f);
        __m256d v1 = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(src + i + 4)), f);
        // not (|v| < 2^51), true for NaN
        bad = _mm256_or_pd(bad, _mm256_cmp_pd(_mm256_and_pd(v0, abs_mask), lim, _CMP_NLT_UQ));
        bad = _mm256_or_pd(bad, _mm256_cmp_pd(_mm256_and_pd(v1, abs_mask), lim, _CMP_NLT_UQ));
        __m256i q0 = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(v0, m)), mb);
        __m256i q1 = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(v1, m)), mb);
        if (!first) {
            q0 = _mm256_add_epi64(q0, _mm256_loadu_si256((const __m256i *)(acc + i)));
            q1 = _mm256_add_epi64(q1, _mm256_loadu_si256((const __m256i *)(acc + i + 4)));
        }
        _mm256_storeu_si256((__m256i *)(acc + i), q0);
        _mm256_storeu_si256((__m256i *)(acc + i + 4), q1);
    }
    int ok = _mm256_movemask_pd(bad) == 0;
    if (!accumulate_generic(src + i, acc + i, n - i, factor, first)) ok = 0;
    return ok;
}
#endif

static void decode_generic(const int64_t *acc, float *dst, long n, double scale) {
    for (long i = 0; i < n; i++) dst[i] = (float)((double)acc[i] * scale);
}

#ifdef HM_X86
// int64 -> double without AVX-512: for |x| < 2^51, the double with bits (x + bits(1.5 * 2^52))
// minus 1.5 * 2^52 is x exactly, as (double)x is; larger values take the scalar conversion.
__attribute__((target("avx2")))
static void decode_avx2(const int64_t *acc, float *dst, long n, double scale) {
    const __m256d m = _mm256_set1_pd(HM_FIXED_MAGIC), s = _mm256_set1_pd(scale);
    const __m256i mb = _mm256_castpd_si256(m);
    const __m256i lo = _mm256_set1_epi64x(-(1LL << 51)), hi = _mm256_set1_epi64x(1LL << 51);
    long i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(acc + i));
        __m256i out = _mm256_or_si256(_mm256_cmpgt_epi64(lo, x), _mm256_cmpgt_epi64(x, hi));
        if (!_mm256_testz_si256(out, out)) { decode_generic(acc + i, dst + i, 4, scale); continue; }
        __m256d d = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_add_epi64(x, mb)), m);
        _mm_storeu_ps(dst + i, _mm256_cvtpd_ps(_mm256_mul_pd(d, s)));
    }
    decode_generic(acc + i, dst + i, n - i, scale);
}
#endif

void hm_fixed_decode(const int64_t *acc, float *dst, long n, double scale) {
#ifdef HM_X86
    if (hm_fixed_uses_avx2()) { decode_avx2(acc, dst, n, scale); return; }
#endif
    decode_generic(acc, dst, n, scale);
}

void hm_fixed_decode_portable(const int64_t *acc, float *dst, long n, double scale) {
    decode_generic(acc, dst, n, scale);
}

int hm_fixed_uses_avx2(void) {
#ifdef HM_X86
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached;
#else
    return 0;
#endif
}

int hm_fixed_accumulate(const float *src, int64_t *acc, long n, double factor, int first) {
#ifdef HM_X86
    if (hm_fixed_uses_avx2()) return accumulate_avx2(src, acc, n, factor, first);
#endif
    return accumulate_generic(src, acc, n, factor, first);
}

int hm_fixed_accumulate_many(const float *const *src, int count, int64_t *acc, long n, double factor, int first) {
    const long tile = 2048;  // 16 KB of sums, in L1 across the sources
    int ok = 1;
    for (long i = 0; i < n; i += tile) {
        const long len = n - i < tile ? n - i : tile;
        for (int k = 0; k < count; k++)
            if (!hm_fixed_accumulate(src[k] + i, acc + i, len, factor, first && k == 0)) ok = 0;
    }
    return ok;
}

int hm_fixed_accumulate_portable(const float *src, int64_t *acc, long n, double factor, int first) {
    return accumulate_generic(src, acc, n, factor, first);
}
