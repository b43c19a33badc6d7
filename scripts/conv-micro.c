// A microbenchmark of the direct 3x3 convolution's kernels alone (CKernels/direct_conv*.c), on
// the shapes of cifar-resnet18's stride-1 3x3 layers (128 images in groups of 8) or with
// `imagenet` resnet50's (32 images in groups of 2): GFLOP/s of the forward, the input gradient
// and the weight gradient, the best of `reps` passes. For A/B of
// kernel changes, which the whole step's noise on a shared machine hides (Docs/performance.md):
//   cc -O2 -I Sources/CKernels/include scripts/conv-micro.c Sources/CKernels/direct_conv*.c \
//      Sources/CKernels/fixed_point.c -o /tmp/conv-micro -lm
//   taskset -c 1 /tmp/conv-micro [reps] [cifar|imagenet] [avx2]
// (`avx2`: the AVX2 kernels, on a CPU with AVX-512 too.) Also the stride-2 layers' kernels
// (cifar-resnet18's 64->128 @32x32 -> 16x16 ...; "stride": 2).
// Prints one JSON line per shape. Inputs are random; the results are not checked here (the
// tests compare every kernel with the portable loops bit for bit).
#include "direct_conv.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *randoms(long n) {
    float *p = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) p[i] = (float)((double)rand() / RAND_MAX) - 0.5f;
    return p;
}

// One layer's three computations on `images` images in groups of `group`: C -> Co channels, output
// H x W, stride 1 or 2 (input 2H x 2W); one JSON line.
static void measure(int C, int Co, int H, int W, int stride, int images, int group, int reps) {
    const int Hin = H * stride, Win = W * stride;
    const long in = (long)group * C * (stride == 1 ? (H + 2) * (W + 2) : 4 * (H + 1) * (W + 1));
    const long outp = (long)group * Co * (H + 2) * (W + 2), plain = (long)group * Co * H * W;
    float *xp = randoms(in), *dyp = randoms(outp), *dyb = randoms(plain), *w = randoms((long)Co * C * 9);
    float *wf = malloc(sizeof(float) * C * Co * 9), *wx = malloc(sizeof(float) * C * Co * 9);
    float *y = malloc(sizeof(float) * plain), *dx = malloc(sizeof(float) * group * C * Hin * Win);
    float *dw = malloc(sizeof(float) * C * Co * 9), *parts = malloc(sizeof(float) * group * C * H * W);
    float *scratch = malloc(sizeof(float) * group * H * W * 32);
    hm_conv3x3_pack_forward(w, wf, C, Co);
    if (stride == 1) hm_conv3x3_pack_backward(w, wx, C, Co);
    else hm_conv3x3_pack_s2_backward(w, wx, C, Co);
    double best[3] = {1e30, 1e30, 1e30};
    for (int r = 0; r < reps; r++) {
        double t[4];
        t[0] = now();
        for (int b = 0; b < images; b += group) {
            if (stride == 1) hm_conv3x3(xp, wf, y, C, Co, H, W, group, 0, scratch);
            else hm_conv3x3_s2(xp, wf, y, C, Co, H, W, group, scratch);
        }
        t[1] = now();
        for (int b = 0; b < images; b += group) {
            if (stride == 1) hm_conv3x3(dyp, wx, dx, Co, C, H, W, group, 0, scratch);
            else hm_conv3x3_s2_input_grad(dyp, wx, dx, C, Co, H, W, group, 0, scratch, parts);
        }
        t[2] = now();
        for (int b = 0; b < images; b += group) {
            if (stride == 1) hm_conv3x3_weight_grad(xp, dyb, dw, C, Co, H, W, group, b == 0);
            else hm_conv3x3_s2_weight_grad(xp, dyb, dw, C, Co, H, W, group, b == 0);
        }
        t[3] = now();
        for (int k = 0; k < 3; k++)
            if (t[k + 1] - t[k] < best[k]) best[k] = t[k + 1] - t[k];
    }
    const double flop = 2.0 * images * C * Co * 9 * H * W;
    printf("{\"channels\": %d, \"out_channels\": %d, \"side\": %d, \"stride\": %d, \"level\": %d, \"forward_gflops\": %.1f, "
           "\"input_gradient_gflops\": %.1f, \"weight_gradient_gflops\": %.1f}\n",
           C, Co, H, stride, hm_conv3x3_available(), flop / best[0] / 1e9, flop / best[1] / 1e9, flop / best[2] / 1e9);
    free(xp); free(dyp); free(dyb); free(w); free(wf); free(wx); free(y); free(dx); free(dw); free(parts); free(scratch);
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 3, imagenet = argc > 2 && argv[2][0] == 'i';
    if (argc > 3 && argv[3][0] == 'a') hm_conv3x3_limit(1);
    const int images = imagenet ? 32 : 128, group = imagenet ? 2 : 8;
    const int shapes[2][4][2] = {{{64, 32}, {128, 16}, {256, 8}, {512, 4}},   // channels, side (output)
                                 {{64, 56}, {128, 28}, {256, 14}, {512, 7}}};
    for (int s = 0; s < 4; s++) measure(shapes[imagenet][s][0], shapes[imagenet][s][0], shapes[imagenet][s][1],
                                        shapes[imagenet][s][1], 1, images, group, reps);
    // The stride-2 3x3 layers: cifar-resnet18's first convolution of stages 2-4 (C -> 2C),
    // resnet50's bottleneck 3x3 of stages 2-4 (C -> C).
    for (int s = 1; s < 4; s++) {
        const int C = shapes[imagenet][s][0], side = shapes[imagenet][s][1];
        measure(imagenet ? C : C / 2, C, side, side, 2, images, group, reps);
    }
    return 0;
}
