// A microbenchmark of the direct 3x3 convolution's kernels alone (CKernels/direct_conv*.c), on
// the shapes of cifar-resnet18's stride-1 3x3 layers (128 images in groups of 8) or with
// `imagenet` resnet50's (32 images in groups of 2): GFLOP/s of the forward, the input gradient
// and the weight gradient, the best of `reps` passes. For A/B of
// kernel changes, which the whole step's noise on a shared machine hides (Docs/performance.md):
//   cc -O2 -I Sources/CKernels/include scripts/conv-micro.c Sources/CKernels/direct_conv*.c \
//      Sources/CKernels/fixed_point.c -o /tmp/conv-micro -lm
//   taskset -c 1 /tmp/conv-micro [reps] [cifar|imagenet]
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

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 3, imagenet = argc > 2 && argv[2][0] == 'i';
    const int images = imagenet ? 32 : 128, group = imagenet ? 2 : 8;
    const int shapes[2][4][2] = {{{64, 32}, {128, 16}, {256, 8}, {512, 4}},   // channels, side
                                 {{64, 56}, {128, 28}, {256, 14}, {512, 7}}};
    for (int s = 0; s < 4; s++) {
        const int C = shapes[imagenet][s][0], H = shapes[imagenet][s][1], W = H;
        const long padded = (long)group * C * (H + 2) * (W + 2), plain = (long)group * C * H * W;
        float *xp = randoms(padded), *dyp = randoms(padded), *dyb = randoms(plain), *w = randoms((long)C * C * 9);
        float *wf = malloc(sizeof(float) * C * C * 9), *wx = malloc(sizeof(float) * C * C * 9);
        float *y = malloc(sizeof(float) * plain), *dw = malloc(sizeof(float) * C * C * 9);
        float *scratch = malloc(sizeof(float) * group * H * W * 32);
        hm_conv3x3_pack_forward(w, wf, C, C);
        hm_conv3x3_pack_backward(w, wx, C, C);
        double best[3] = {1e30, 1e30, 1e30};
        for (int r = 0; r < reps; r++) {
            double t[4];
            t[0] = now();
            for (int b = 0; b < images; b += group) hm_conv3x3(xp, wf, y, C, C, H, W, group, 0, scratch);
            t[1] = now();
            for (int b = 0; b < images; b += group) hm_conv3x3(dyp, wx, y, C, C, H, W, group, 0, scratch);
            t[2] = now();
            for (int b = 0; b < images; b += group) hm_conv3x3_weight_grad(xp, dyb, dw, C, C, H, W, group, b == 0);
            t[3] = now();
            for (int k = 0; k < 3; k++)
                if (t[k + 1] - t[k] < best[k]) best[k] = t[k + 1] - t[k];
        }
        const double flop = 2.0 * images * C * C * 9 * H * W;
        printf("{\"channels\": %d, \"side\": %d, \"level\": %d, \"forward_gflops\": %.1f, \"input_gradient_gflops\": %.1f, "
               "\"weight_gradient_gflops\": %.1f}\n",
               C, H, hm_conv3x3_available(), flop / best[0] / 1e9, flop / best[1] / 1e9, flop / best[2] / 1e9);
        free(xp); free(dyp); free(dyb); free(w); free(wf); free(wx); free(y); free(dw); free(scratch);
    }
    return 0;
}
