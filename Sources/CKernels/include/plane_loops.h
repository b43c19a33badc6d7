// The streaming loops of batch norm, ReLU and the residual adds, over one plane of floats: in C so
// that they run with AVX2 where the CPU has it (chosen at run time; the Swift code is built for
// plain x86-64, where its SIMD types become SSE). Every path does the same IEEE float and double
// operations in the same order as the portable loop (and as the Swift loops they replace), so the
// results are the same bits on every CPU: elementwise loops trivially, the sums because they keep
// eight double lanes whatever the vector width, added up one after another at the end.
#ifndef HIDDEN_MPI_PLANE_LOOPS_H
#define HIDDEN_MPI_PLANE_LOOPS_H

/// sums[0] = sum a[i], sums[1] = sum a[i] * b[i], in double: lane j (of 8) takes i = j mod 8
/// over the whole eights, the lanes are added 0..7 to -0, then the rest one by one.
void hm_plane_sums(const float *a, const float *b, long n, double *sums);

/// The same sums of g[i] = (r[i] > 0 ? dy[i] : 0) and r[i] (behind a fused ReLU, r = max(0, x-hat)).
void hm_plane_sums_relu(const float *dy, const float *r, long n, double *sums);

/// The same sums of g[i] and x-hat[i] = (x[i] - mean) * scale, recomputed from x.
void hm_plane_sums_relu_x(const float *dy, const float *r, const float *x, long n, float mean, float scale,
                          double *sums);

/// y[i] = (x[i] - mean) * scale; with relu, 0 where that is below 0 (-0 and NaN pass).
void hm_normalize(const float *x, float *y, long n, float mean, float scale, int relu);

/// dx[i] = scale * (gamma * dy[i] - mean_dy - xhat[i] * mean_dy_xhat).
void hm_norm_backward(const float *dy, const float *xhat, float *dx, long n, float gamma, float mean_dy,
                      float mean_dy_xhat, float scale);

/// The same behind a fused ReLU: dy[i] taken as 0 where r[i] > 0 fails, x-hat = (x[i] - mean) * scale.
void hm_norm_backward_relu(const float *dy, const float *r, const float *x, float *dx, long n, float gamma,
                           float mean, float mean_dy, float mean_dy_xhat, float scale);

/// The same with x-hat = (x[i] - mean) * scale recomputed from x (a batch norm that keeps no x-hat).
void hm_norm_backward_x(const float *dy, const float *x, float *dx, long n, float gamma, float mean, float mean_dy,
                        float mean_dy_xhat, float scale);

/// A residual block's end: y[i] = (x[i] - mean) * scale + s[i], 0 where that is below 0 (-0 and NaN
/// pass); the bits of hm_normalize then hm_add_relu.
void hm_normalize_add_relu(const float *x, const float *s, float *y, long n, float mean, float scale);

/// Its backward in one pass: g[i] = r[i] > 0 ? dy[i] : 0 written out (the bits of hm_relu_backward),
/// and sums[0] = sum g[i], sums[1] = sum g[i] * x-hat[i] with x-hat = (x[i] - mean) * scale (the bits
/// of hm_plane_sums_relu_x).
void hm_relu_backward_sums(const float *r, const float *dy, float *g, const float *x, long n, float mean, float scale,
                           double *sums);

/// y[i] = x[i], 0 where x[i] is below 0 (-0 and NaN pass); x and y may be the same.
void hm_relu(const float *x, float *y, long n);

/// dst[i] += src[i].
void hm_add_inplace(float *dst, const float *src, long n);

/// y[i] = a[i] + b[i], 0 where that is below 0 (-0 and NaN pass).
void hm_add_relu(const float *a, const float *b, float *y, long n);

/// dx[i] = x[i] > 0 ? dy[i] : 0.
void hm_relu_backward(const float *x, const float *dy, float *dx, long n);

/// 1 when the loops above run their AVX2 paths on this CPU; hm_plane_loops_force_portable(1)
/// makes them take the portable ones (tests compare the two).
int hm_plane_loops_use_avx2(void);
void hm_plane_loops_force_portable(int portable);

#endif
