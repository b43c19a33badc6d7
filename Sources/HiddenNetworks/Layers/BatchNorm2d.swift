// Batch norm: non-affine (the reference's NonAffineBatchNorm = PyTorch BatchNorm2d(affine=False))
// for edge-popup and supermask; affine, with a learned scale and shift per channel (PyTorch's
// default BatchNorm2d), for the dense baseline.
// x, y: [B, C, H, W] (or [B, C]); statistics per channel over the batch and all positions.
//   training:   y = (x - mean) / sqrt(var + eps), mean and biased var of the batch;
//               affine: y = gamma * that + beta;
//               running = (1 - momentum) * running + momentum * (mean, unbiased var)
//   evaluation: y = (x - running mean) / sqrt(running var + eps)
// The batch is the *global* batch: the per-channel sums are allreduced in forward, and the two
// sums backward needs (sum dy, sum dy * y) in backward, so every rank normalises with the same
// statistics and -np 1 and -np N follow the same trajectory (BatchNormContext.sync = .global).
// Sums are kept in double precision, so var = E[x^2] - mean^2 does not cancel badly.

import Foundation

/// Whether batch statistics are those of the global batch (allreduced) or of each rank's slice.
public enum BatchNormSync: String, CaseIterable, Sendable {
    case global, local
}

/// What every batch-norm layer of a model shares: training or evaluation mode, the communicator
/// its statistics are reduced over (nil: this process's samples only), and whether the layers
/// built with it learn a scale and shift (the dense baseline).
public final class BatchNormContext {
    public var training = false
    public var communicator: Communicator?
    public var affine = false
    /// The batch's chunks: under the exact reduction the sums are exact (ExactSum) chunk by chunk.
    public var plan = ChunkPlan(chunk: 0)
    public init(affine: Bool = false) { self.affine = affine }
    /// Statistics summed exactly: global statistics under the exact reduction.
    var exact: Bool { plan.exact && communicator != nil }
}

public final class BatchNorm2d: Layer {
    public let kind = "batchnorm"
    public let inputShape: Shape
    public var outputShape: Shape { inputShape }
    public let channels: Int
    public let momentum: Double = 0.1
    public let eps: Double = 1e-5
    let context: BatchNormContext
    private let plane: Int
    /// Running mean then running (unbiased) variance, [2, C]: a view into the model's arena.
    public private(set) var running: UnsafeMutablePointer<Float>
    private let ownRunning: FloatBuffer
    /// Per-channel sums: [sum x, sum x^2, count] in forward, [sum dy, sum dy * y] in backward.
    private let sums: UnsafeMutableBufferPointer<Double>
    /// Exact reduction: the 2C sums as ExactSum limbs, then the count of values.
    private let exactSums: UnsafeMutableBufferPointer<Int64>
    /// 1 / sqrt(var + eps) of the last training forward, and how many values it was taken over.
    private let invStd: UnsafeMutablePointer<Float>
    private var lastCount = 0.0
    /// Affine only: gamma (row 0) and beta (row 1), trained like dense weights; their init is
    /// PyTorch's (1 and 0), not a random one. x-hat is kept apart from y for the backward pass.
    public let affine: MaskedWeights?
    private var normalized = FloatBuffer(count: 0)
    public var masked: MaskedWeights? { affine }

    public init(input: Shape, context: BatchNormContext) {
        inputShape = input
        channels = input.dims[0]
        plane = input.count / channels
        self.context = context
        ownRunning = FloatBuffer(count: 2 * channels)
        running = ownRunning.pointer
        sums = .allocate(capacity: 2 * channels + 1)
        exactSums = .allocate(capacity: 2 * channels * ExactSum.limbs + 1)
        invStd = .allocate(capacity: channels)
        affine = context.affine ? MaskedWeights(count: 2 * channels, fanIn: channels, fanOut: channels, k: 1,
                                                shape: [2, channels], role: .normAffine) : nil
        BatchNorm2d.resetRunning(running, channels: channels)
    }

    deinit { sums.deallocate(); exactSums.deallocate(); invStd.deallocate() }

    public func reserve(batch: Int) {
        if affine != nil, normalized.count < batch * inputShape.count { normalized = FloatBuffer(count: batch * inputShape.count) }
    }

    /// y = gamma * xhat + beta per channel, in place over xhat's copy in y (affine only).
    private func scaleAndShift(_ y: UnsafeMutablePointer<Float>, batch: Int) {
        guard let affine else { return }
        let C = channels, P = plane, gamma = affine.effective.pointer, beta = affine.effective.pointer + C
        for b in 0..<batch {
            for c in 0..<C {
                scaleShift(y + (b * C + c) * P, count: P, scale: gamma[c], shift: beta[c])
            }
        }
    }

    /// PyTorch's initial running statistics: mean 0, variance 1.
    static func resetRunning(_ r: UnsafeMutablePointer<Float>, channels: Int) {
        r.update(repeating: 0, count: channels)
        (r + channels).update(repeating: 1, count: channels)
    }

    /// Points the running statistics at the model's arena (and resets them there).
    public func bind(running r: UnsafeMutablePointer<Float>) {
        running = r
        BatchNorm2d.resetRunning(r, channels: channels)
    }

    /// sums[c] = sum of a over channel c's values in `images`, sums[C + c] = sum of a * b.
    private func channelSums(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, images: Range<Int>) {
        let C = channels, P = plane
        for c in 0..<C {
            var s1 = 0.0, s2 = 0.0
            for image in images {
                let (sa, sab) = planeSums(a + (image * C + c) * P, b + (image * C + c) * P, count: P)
                s1 += sa; s2 += sab
            }
            sums[c] = s1; sums[C + c] = s2
        }
    }

    private func reduce(_ count: Int) {
        guard let comm = context.communicator, comm.size > 1 else { return }
        comm.allreduce(UnsafeMutableBufferPointer(rebasing: sums[0..<count]), op: .sum)
    }

    /// Affine backward: dgamma = sum dy * xhat and dbeta = sum dy, from `sums`, into the layer's
    /// dL/dW_eff.
    private func affineGradFromSums(_ affine: MaskedWeights) {
        let C = channels, grad = affine.effectiveGrad.pointer
        for c in 0..<C { grad[c] = Float(sums[C + c]); grad[C + c] = Float(sums[c]) }
    }

    /// The exact reduction's channelSums and reduce: each chunk's per-channel sums added as
    /// ExactSum, the limbs summed over the ranks, then read back into `sums` (and the count).
    /// Affine backward: each chunk's dgamma and dbeta also go to the layer's fixed-point sum.
    private func exactSumsAndReduce(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, batch: Int, withCount: Bool,
                                    affineGrad: MaskedWeights? = nil) {
        let C = channels, P = plane, L = ExactSum.limbs, e = exactSums.baseAddress!
        ExactSum.clear(e, sums: 2 * C)
        context.plan.forEachChunk(batch: batch) { start, count in
            channelSums(a, b, images: start..<(start + count))
            for c in 0..<C { ExactSum.add(sums[c], to: e + c * L); ExactSum.add(sums[C + c], to: e + (C + c) * L) }
            if let affineGrad {
                affineGradFromSums(affineGrad)
                affineGrad.chunkDone()
            }
        }
        let n = withCount ? 2 * C * L + 1 : 2 * C * L
        e[2 * C * L] = Int64(batch * P)
        context.communicator?.allreduceSum(UnsafeMutableBufferPointer(start: e, count: n))
        for i in 0..<(2 * C) { sums[i] = ExactSum.value(e + i * L) }
        if withCount { sums[2 * C] = Double(e[2 * C * L]) }
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        let C = channels, P = plane
        guard context.training else {
            for c in 0..<C {
                let mean = running[c], scale = Float(1 / (Double(running[C + c]) + eps).squareRoot())
                for b in 0..<batch { normalize(x + (b * C + c) * P, y + (b * C + c) * P, count: P, mean: mean, scale: scale) }
            }
            scaleAndShift(y, batch: batch)
            return
        }
        if context.exact {
            exactSumsAndReduce(x, x, batch: batch, withCount: true)
        } else {
            channelSums(x, x, images: 0..<batch)  // sum x, sum x^2
            sums[2 * C] = Double(batch * P)
            reduce(2 * C + 1)
        }
        let n = sums[2 * C]
        lastCount = n
        guard n > 0 else { return }  // an empty slice under per-rank statistics
        for c in 0..<C {
            let mean = sums[c] / n
            let variance = max(0, sums[C + c] / n - mean * mean)
            let scale = Float(1 / (variance + eps).squareRoot())
            invStd[c] = scale
            let m = Float(mean)
            for b in 0..<batch { normalize(x + (b * C + c) * P, y + (b * C + c) * P, count: P, mean: m, scale: scale) }
            let unbiased = n > 1 ? variance * n / (n - 1) : variance
            running[c] = Float((1 - momentum) * Double(running[c]) + momentum * mean)
            running[C + c] = Float((1 - momentum) * Double(running[C + c]) + momentum * unbiased)
        }
        if affine != nil {
            reserve(batch: batch)  // a no-op once the model reserved its largest batch
            normalized.pointer.update(from: y, count: batch * inputShape.count)
            scaleAndShift(y, batch: batch)
        }
    }

    /// Training mode only: dx = invstd * (dy' - mean(dy') - xhat * mean(dy' * xhat)), means over
    /// the global batch, where xhat is the normalised input and dy' = gamma * dy (dy' = dy without
    /// an affine part, and then xhat = y). Affine: dgamma = sum dy * xhat, dbeta = sum dy over
    /// this rank's samples, reduced with the other trained parameters.
    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        let C = channels, P = plane
        let xhat = affine == nil ? y : UnsafePointer(normalized.pointer)
        if context.exact {
            exactSumsAndReduce(dy, xhat, batch: batch, withCount: false, affineGrad: affine)
            affine?.gradientDone()
        } else {
            channelSums(dy, xhat, images: 0..<batch)  // sum dy, sum dy * xhat
            if let affine {
                affineGradFromSums(affine)
                // Under the exact reduction with --bn-sync local: this rank's slice as one chunk.
                if affine.exactGrad != nil { affine.chunkDone() }
                affine.gradientDone()
            }
            reduce(2 * C)  // every rank takes part, with or without dx
        }
        guard let dx, lastCount > 0 else { return }
        for c in 0..<C {
            let gamma = affine.map { $0.effective.pointer[c] } ?? 1
            let meanDy = gamma * Float(sums[c] / lastCount), meanDyY = gamma * Float(sums[C + c] / lastCount)
            let scale = invStd[c]
            for b in 0..<batch {
                let o = (b * C + c) * P
                normBackward(dy + o, xhat + o, dx + o, count: P, gamma: gamma, meanDy: meanDy, meanDyY: meanDyY, scale: scale)
            }
        }
    }
}

// The per-plane loops, 16 (or 8 double) lanes at a time: the pointers may alias as far as the
// compiler knows, and it keeps float sums in order, so it would vectorise none of them itself.

/// (sum a[i], sum a[i] * b[i]) in double; with b = a, the sum and the sum of squares.
@inline(__always)
func planeSums(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> (Double, Double) {
    let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b)
    var s = SIMD8<Double>(), q = SIMD8<Double>()
    var i = 0
    while i + 8 <= n {
        let u = SIMD8<Double>(ar.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self))
        let v = SIMD8<Double>(br.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self))
        s += u; q += u * v
        i += 8
    }
    var s1 = s.sum(), s2 = q.sum()
    while i < n { s1 += Double(a[i]); s2 += Double(a[i]) * Double(b[i]); i += 1 }
    return (s1, s2)
}

/// y[i] = (x[i] - mean) * scale.
@inline(__always)
func normalize(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int, mean: Float, scale: Float) {
    let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 16 <= n {
        let v = xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        yr.storeBytes(of: (v - mean) * scale, toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] = (x[i] - mean) * scale; i += 1 }
}

/// dx[i] = scale * (gamma * dy[i] - meanDy - xhat[i] * meanDyY).
@inline(__always)
func normBackward(_ dy: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count n: Int,
                  gamma: Float, meanDy: Float, meanDyY: Float, scale: Float) {
    let dr = UnsafeRawPointer(dy), hr = UnsafeRawPointer(xhat), outr = UnsafeMutableRawPointer(dx)
    var i = 0
    while i + 16 <= n {
        let d = dr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        let h = hr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        outr.storeBytes(of: scale * (gamma * d - meanDy - h * meanDyY), toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { dx[i] = scale * (gamma * dy[i] - meanDy - xhat[i] * meanDyY); i += 1 }
}

/// y[i] = y[i] * scale + shift, in place.
@inline(__always)
func scaleShift(_ y: UnsafeMutablePointer<Float>, count n: Int, scale: Float, shift: Float) {
    let yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 16 <= n {
        let v = yr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        yr.storeBytes(of: v * scale + shift, toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] = y[i] * scale + shift; i += 1 }
}
