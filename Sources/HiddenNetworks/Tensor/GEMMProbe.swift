// What a BLAS kernel is worth on this machine: its sgemm checked against a double-precision loop,
// and timed on the GEMM shapes our models run. OpenBLAS picks one kernel per process when it is
// loaded (OPENBLAS_CORETYPE), so comparing kernels takes one process each; this file is what each
// of those processes measures. Choosing among them is the command line's job.

import CBLAS

/// One row-major sgemm call, C[m, n] = op(A)[m, k] * op(B)[k, n], and how often a step makes it.
public struct GEMMShape: Sendable, Equatable {
    public var name: String
    public var transA: Bool, transB: Bool
    public var m: Int, n: Int, k: Int
    /// Calls per training step of the model the shape comes from.
    public var calls: Int

    public init(_ name: String, transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, calls: Int = 1) {
        self.name = name; self.transA = transA; self.transB = transB
        self.m = m; self.n = n; self.k = k; self.calls = calls
    }

    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    /// The three GEMMs of a convolution or linear layer in our layout: forward W[Co,K] x col[K,N],
    /// weight gradient dY[Co,N] x col^T, input gradient W^T x dY.
    static func layer(_ name: String, out: Int, columns: Int, rows: Int, calls: Int) -> [GEMMShape] {
        [GEMMShape(name + " fwd", m: out, n: columns, k: rows, calls: calls),
         GEMMShape(name + " dW", transB: true, m: out, n: rows, k: columns, calls: calls),
         GEMMShape(name + " dX", transA: true, m: rows, n: columns, k: out, calls: calls)]
    }
}

/// The GEMM shapes of one family of models, taken from one representative model at its benchmark
/// batch (the layers that carry most of its FLOPs). A run is timed on its own family's shapes.
public enum GEMMFamily: String, CaseIterable, Sendable {
    case linear, conv, cifarResNet = "cifar-resnet", imagenetResNet = "imagenet-resnet"

    public init(_ architecture: Architecture) {
        switch architecture {
        case .fc: self = .linear
        case .conv2, .conv4, .conv6, .conv8: self = .conv
        default: self = architecture.resnet?.stem == .imagenet ? .imagenetResNet : .cifarResNet
        }
    }

    public var shapes: [GEMMShape] {
        switch self {
        case .linear:  // fc 784-300-100-10, batch 128
            return GEMMShape.layer("fc1", out: 300, columns: 128, rows: 784, calls: 1)
                + GEMMShape.layer("fc2", out: 100, columns: 128, rows: 300, calls: 1)
        case .conv:  // conv4 at 3x32x32, batch 128: per image at 32x32, two images a call at 16x16
            return GEMMShape.layer("conv 64@32x32", out: 64, columns: 1024, rows: 576, calls: 128)
                + GEMMShape.layer("conv 128@16x16", out: 128, columns: 512, rows: 1152, calls: 64)
                + GEMMShape.layer("linear 8192-256", out: 256, columns: 128, rows: 8192, calls: 1)
        case .cifarResNet:  // cifar-resnet18, batch 128: images grouped to >= 512 columns a call
            return GEMMShape.layer("conv 64@32x32", out: 64, columns: 1024, rows: 576, calls: 4 * 128)
                + GEMMShape.layer("conv 128@16x16", out: 128, columns: 512, rows: 1152, calls: 3 * 64)
                + GEMMShape.layer("conv 256@8x8", out: 256, columns: 512, rows: 2304, calls: 3 * 16)
                + GEMMShape.layer("conv 512@4x4", out: 512, columns: 512, rows: 4608, calls: 3 * 4)
        case .imagenetResNet:  // resnet50 at 3x224x224, batch 32
            return GEMMShape.layer("stem 7x7", out: 64, columns: 12544, rows: 147, calls: 32)
                + GEMMShape.layer("1x1 256-64@56x56", out: 64, columns: 3136, rows: 256, calls: 2 * 32)
                + GEMMShape.layer("3x3 64@56x56", out: 64, columns: 3136, rows: 576, calls: 3 * 32)
                + GEMMShape.layer("3x3 128@28x28", out: 128, columns: 784, rows: 1152, calls: 4 * 32)
                + GEMMShape.layer("1x1 128-512@28x28", out: 512, columns: 784, rows: 128, calls: 4 * 32)
                + GEMMShape.layer("3x3 256@14x14", out: 256, columns: 588, rows: 2304, calls: 6 * 11)
                + GEMMShape.layer("1x1 1024-256@14x14", out: 256, columns: 588, rows: 1024, calls: 5 * 11)
                + GEMMShape.layer("3x3 512@7x7", out: 512, columns: 539, rows: 4608, calls: 3 * 3)
        }
    }
}

/// What one process measures of the kernel OpenBLAS loaded into it.
public enum GEMMProbe {
    /// Shapes that exercise every transpose, odd sizes and edge tiles.
    static let checkShapes: [GEMMShape] = [
        GEMMShape("odd NN", m: 37, n: 53, k: 71), GEMMShape("odd NT", transB: true, m: 29, n: 67, k: 45),
        GEMMShape("odd TN", transA: true, m: 61, n: 19, k: 83), GEMMShape("conv-like", m: 64, n: 300, k: 27),
        GEMMShape("wide", transB: true, m: 96, n: 130, k: 257), GEMMShape("tall", transA: true, m: 257, n: 96, k: 33),
    ]

    /// The largest error of this process's sgemm against a double-precision loop over the check
    /// shapes, relative to sum |a||b| (the scale rounding errors grow with). A correct float kernel
    /// stays near 1e-7; `corrupt` perturbs one output (for testing the check itself).
    public static func check(corrupt: Bool = false) -> Double { checkWithDigest(corrupt: corrupt).error }

    /// `check`, plus an FNV-1a digest of every output bit: two kernels with the same digest ran the
    /// same arithmetic in the same order (same micro-kernel, same blocking of the sum), whatever
    /// OpenBLAS calls them.
    public static func checkWithDigest(corrupt: Bool = false) -> (error: Double, digest: String) {
        var worst = 0.0
        var digest: UInt64 = 0xcbf2_9ce4_8422_2325
        for (index, s) in checkShapes.enumerated() {
            let a = filled(s.m * s.k, seed: 2 * index + 1), b = filled(s.k * s.n, seed: 2 * index + 2)
            let c = FloatBuffer(count: s.m * s.n)
            c.pointer.initialize(repeating: .nan, count: s.m * s.n)  // beta 0 must overwrite, not scale
            sgemm(s, a, b, c)
            if corrupt && index == checkShapes.count / 2 { c[s.m * s.n / 2] += 1e-3 }
            for i in 0..<(s.m * s.n) { digest = (digest ^ UInt64(c[i].bitPattern)) &* 0x100_0000_01b3 }
            let lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n
            for i in 0..<s.m {
                for j in 0..<s.n {
                    var sum = 0.0, scale = 0.0
                    for p in 0..<s.k {
                        let x = Double(s.transA ? a[p * lda + i] : a[i * lda + p])
                        let y = Double(s.transB ? b[j * ldb + p] : b[p * ldb + j])
                        sum += x * y; scale += abs(x * y)
                    }
                    let error = abs(Double(c[i * s.n + j]) - sum) / max(scale, .leastNormalMagnitude)
                    worst = error.isNaN ? .infinity : max(worst, error)
                }
            }
        }
        let hex = String(digest, radix: 16)
        return (worst, String(repeating: "0", count: 16 - hex.count) + hex)
    }

    /// Best seconds of `repeats` calls of one shape, after one untimed call.
    public static func seconds(_ s: GEMMShape, repeats: Int = 3) -> Double {
        let a = filled(s.m * s.k, seed: 7), b = filled(s.k * s.n, seed: 8), c = FloatBuffer(count: s.m * s.n)
        sgemm(s, a, b, c)
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let t = monotonicSeconds()
            sgemm(s, a, b, c)
            best = min(best, monotonicSeconds() - t)
        }
        return best
    }

    /// The sgemm peak with the current threads: best of ten 1024^3 calls, in GFLOP/s.
    public static func peakGFLOPs() -> Double {
        let s = GEMMShape("1024^3", m: 1024, n: 1024, k: 1024)
        return s.flops / seconds(s, repeats: 10) / 1e9
    }

    static func sgemm(_ s: GEMMShape, _ a: FloatBuffer, _ b: FloatBuffer, _ c: FloatBuffer) {
        cblas_sgemm(CblasRowMajor, s.transA ? CblasTrans : CblasNoTrans, s.transB ? CblasTrans : CblasNoTrans,
                    Int32(s.m), Int32(s.n), Int32(s.k), 1, a.pointer, Int32(s.transA ? s.m : s.k),
                    b.pointer, Int32(s.transB ? s.k : s.n), 0, c.pointer, Int32(s.n))
    }

    static func filled(_ count: Int, seed: Int) -> FloatBuffer {
        let buffer = FloatBuffer(count: count)
        var x = UInt32(truncatingIfNeeded: 2_654_435_761 &* (seed + 1))
        for i in 0..<count {
            x = x &* 1_664_525 &+ 1_013_904_223
            buffer[i] = Float(x >> 8) / Float(1 << 24) - 0.5
        }
        return buffer
    }
}
