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
//
// With `relu` the layer is batch norm followed by a ReLU, in one pass over memory (the ResNets'
// "bn - relu"): it writes r = max(0, y) and keeps no y. Backward recomputes y's x-hat from its
// input x and the batch's mean and scale, with the same float operations in the same order, so
// the results are bit-identical to a batch norm followed by a separate ReLU layer, with less
// memory traffic (these layers stream whole activations; they are memory-bound).

import CKernels
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
    /// "batchnorm", or "batchnorm-relu" with the ReLU fused in.
    public let kind: String
    /// Whether a ReLU follows in the same pass (the output is max(0, y)).
    public let relu: Bool
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
    /// 1 / sqrt(var + eps) and the mean of the last training forward, and how many values they
    /// were taken over.
    private let invStd: UnsafeMutablePointer<Float>
    private let batchMean: UnsafeMutablePointer<Float>
    private var lastCount = 0.0
    /// Affine only: gamma (row 0) and beta (row 1), trained like dense weights; their init is
    /// PyTorch's (1 and 0), not a random one. Without the fused ReLU, x-hat is kept apart
    /// from y for the backward pass; with it, x-hat is recomputed from x.
    public let affine: MaskedWeights?
    private var normalized = FloatBuffer(count: 0)
    public var masked: MaskedWeights? { affine }

    public init(input: Shape, context: BatchNormContext, relu: Bool = false) {
        inputShape = input
        self.relu = relu
        kind = relu ? "batchnorm-relu" : "batchnorm"
        channels = input.dims[0]
        plane = input.count / channels
        self.context = context
        ownRunning = FloatBuffer(count: 2 * channels)
        running = ownRunning.pointer
        sums = .allocate(capacity: 2 * channels + 1)
        exactSums = .allocate(capacity: 2 * channels * ExactSum.limbs + 1)
        invStd = .allocate(capacity: channels)
        batchMean = .allocate(capacity: channels)
        affine = context.affine ? MaskedWeights(count: 2 * channels, fanIn: channels, fanOut: channels, k: 1,
                                                shape: [2, channels], role: .normAffine) : nil
        BatchNorm2d.resetRunning(running, channels: channels)
    }

    deinit { sums.deallocate(); exactSums.deallocate(); invStd.deallocate(); batchMean.deallocate() }

    public func reserve(batch: Int) {
        if affine != nil, !relu, normalized.count < batch * inputShape.count { normalized = FloatBuffer(count: batch * inputShape.count) }
    }

    /// y = gamma * xhat + beta per channel, in place over xhat's copy in y (affine only), then
    /// the fused ReLU where there is one.
    private func scaleAndShift(_ y: UnsafeMutablePointer<Float>, batch: Int) {
        guard let affine else { return }
        let C = channels, P = plane, gamma = affine.effective.pointer, beta = affine.effective.pointer + C
        for b in 0..<batch {
            for c in 0..<C {
                scaleShift(y + (b * C + c) * P, count: P, scale: gamma[c], shift: beta[c], relu: relu)
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

    /// What the per-channel sums are taken over: sum a and sum a * b; or, behind the fused ReLU,
    /// with g = dy where r > 0 (else 0), sum g and sum g * x-hat, x-hat being r itself where r > 0
    /// (non-affine) or recomputed from the layer's input x (affine).
    private enum SumTerms {
        case plain(UnsafePointer<Float>, UnsafePointer<Float>)
        case relu(dy: UnsafePointer<Float>, r: UnsafePointer<Float>, x: UnsafePointer<Float>?)
        /// A residual block's end (backwardAddRelu): g = dy where the block's output r > 0 is
        /// written out while the sums of g and x-hat (from x) are taken.
        case residual(dy: UnsafePointer<Float>, r: UnsafePointer<Float>, g: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>)
    }

    /// sums[c] and sums[C + c]: the two sums of channel c's values in `images`.
    private func channelSums(_ terms: SumTerms, images: Range<Int>) {
        let C = channels, P = plane
        for c in 0..<C {
            var s1 = 0.0, s2 = 0.0
            for image in images {
                let o = (image * C + c) * P
                let (sa, sab): (Double, Double)
                switch terms {
                case let .plain(a, b): (sa, sab) = planeSums(a + o, b + o, count: P)
                case let .relu(dy, r, nil): (sa, sab) = planeSumsBehindReLU(dy + o, r + o, count: P)
                case let .relu(dy, r, x?):
                    (sa, sab) = planeSumsBehindReLU(dy + o, r + o, x: x + o, count: P, mean: batchMean[c], scale: invStd[c])
                case let .residual(dy, r, g, x):
                    (sa, sab) = twoSums { hm_relu_backward_sums(r + o, dy + o, g + o, x + o, P, batchMean[c], invStd[c], $0) }
                }
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
        let C = channels, grad = affine.chunkGradient
        for c in 0..<C { grad[c] = Float(sums[C + c]); grad[C + c] = Float(sums[c]) }
    }

    /// The exact reduction's channelSums and reduce: each chunk's per-channel sums added as
    /// ExactSum, the limbs summed over the ranks, then read back into `sums` (and the count).
    /// Affine backward: each chunk's dgamma and dbeta also go to the layer's fixed-point sum.
    private func exactSumsAndReduce(_ terms: SumTerms, batch: Int, withCount: Bool, affineGrad: MaskedWeights? = nil) {
        let C = channels, P = plane, L = ExactSum.limbs, e = exactSums.baseAddress!
        ExactSum.clear(e, sums: 2 * C)
        context.plan.forEachChunk(batch: batch) { start, count in
            channelSums(terms, images: start..<(start + count))
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

    /// batchMean and invStd set to what this forward normalises by: the running statistics in
    /// evaluation; in training the batch's (the global batch's where synced), which also update
    /// the running statistics. False when there is nothing to normalise (an empty slice under
    /// per-rank statistics).
    private func prepareStatistics(_ x: UnsafePointer<Float>, batch: Int) -> Bool {
        let C = channels
        guard context.training else {
            for c in 0..<C { batchMean[c] = running[c]; invStd[c] = Float(1 / (Double(running[C + c]) + eps).squareRoot()) }
            return true
        }
        if context.exact {
            exactSumsAndReduce(.plain(x, x), batch: batch, withCount: true)
        } else {
            channelSums(.plain(x, x), images: 0..<batch)  // sum x, sum x^2
            sums[2 * C] = Double(batch * plane)
            reduce(2 * C + 1)
        }
        let n = sums[2 * C]
        lastCount = n
        guard n > 0 else { return false }
        for c in 0..<C {
            let mean = sums[c] / n
            let variance = max(0, sums[C + c] / n - mean * mean)
            invStd[c] = Float(1 / (variance + eps).squareRoot())
            batchMean[c] = Float(mean)
            let unbiased = n > 1 ? variance * n / (n - 1) : variance
            running[c] = Float((1 - momentum) * Double(running[c]) + momentum * mean)
            running[C + c] = Float((1 - momentum) * Double(running[C + c]) + momentum * unbiased)
        }
        return true
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        guard prepareStatistics(x, batch: batch) else { return }
        let C = channels, P = plane
        for c in 0..<C {
            for b in 0..<batch {
                normalize(x + (b * C + c) * P, y + (b * C + c) * P, count: P, mean: batchMean[c], scale: invStd[c],
                          relu: relu && affine == nil)
            }
        }
        guard affine != nil else { return }
        if context.training {
            reserve(batch: batch)  // a no-op once the model reserved its largest batch
            if !relu { normalized.pointer.update(from: y, count: batch * inputShape.count) }
        }
        scaleAndShift(y, batch: batch)
    }

    /// A residual block's end, for a plain non-affine batch norm that ends the block's branch:
    /// y = max(0, bn(x) + s) in one pass (the bits of forward, then the block's add and ReLU),
    /// keeping no x-hat (backwardAddRelu recomputes it from x).
    func forwardAddRelu(_ x: UnsafePointer<Float>, shortcut s: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        precondition(affine == nil && !relu, "only a plain non-affine batch norm ends a block in one pass")
        guard prepareStatistics(x, batch: batch) else { return }
        let C = channels, P = plane
        for c in 0..<C {
            for b in 0..<batch {
                let o = (b * C + c) * P
                hm_normalize_add_relu(x + o, s + o, y + o, P, batchMean[c], invStd[c])
            }
        }
    }

    /// Its backward, from the block's output y and dy: g = dL/d(sum) = dy where y > 0 (the
    /// shortcut's gradient too) and dx = the batch norm's input gradient from g, in two passes
    /// instead of four; the bits of the block's ReLU backward, then backward.
    func backwardAddRelu(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         sumGrad g: UnsafeMutablePointer<Float>, _ dx: UnsafeMutablePointer<Float>, batch: Int) {
        precondition(affine == nil && !relu, "only a plain non-affine batch norm ends a block in one pass")
        backwardSums(.residual(dy: dy, r: y, g: g, x: x), batch: batch)
        guard lastCount > 0 else { return }
        let C = channels, P = plane
        for c in 0..<C {
            let meanDy = Float(sums[c] / lastCount), meanDyY = Float(sums[C + c] / lastCount)
            for b in 0..<batch {
                let o = (b * C + c) * P
                hm_norm_backward_x(g + o, x + o, dx + o, P, 1, batchMean[c], meanDy, meanDyY, invStd[c])
            }
        }
    }

    /// Backward's two per-channel sums of the batch (the global batch where synced) into `sums`;
    /// with an affine part, dgamma and dbeta of this rank's samples into its gradient.
    private func backwardSums(_ terms: SumTerms, batch: Int) {
        if context.exact {
            exactSumsAndReduce(terms, batch: batch, withCount: false, affineGrad: affine)
            affine?.gradientDone()
        } else {
            channelSums(terms, images: 0..<batch)  // sum dy, sum dy * xhat
            if let affine {
                affineGradFromSums(affine)
                // Under the exact reduction with --bn-sync local: this rank's slice as one chunk.
                if affine.exactGrad != nil { affine.chunkDone() }
                affine.gradientDone()
            }
            reduce(2 * channels)  // every rank takes part, with or without dx
        }
    }

    /// Training mode only: dx = invstd * (dy' - mean(dy') - xhat * mean(dy' * xhat)), means over
    /// the global batch, where xhat is the normalised input and dy' = gamma * dy (dy' = dy without
    /// an affine part, and then xhat = y). Affine: dgamma = sum dy * xhat, dbeta = sum dy over
    /// this rank's samples, reduced with the other trained parameters.
    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        let C = channels, P = plane
        // x-hat of the unfused layer. Behind the fused ReLU, y is r = max(0, y') and x-hat comes
        // from x where r cannot give it.
        let xhat = affine == nil ? y : UnsafePointer(normalized.pointer)
        backwardSums(relu ? .relu(dy: dy, r: y, x: affine == nil ? nil : x) : .plain(dy, xhat), batch: batch)
        guard let dx, lastCount > 0 else { return }
        for c in 0..<C {
            let gamma = affine.map { $0.effective.pointer[c] } ?? 1
            let meanDy = gamma * Float(sums[c] / lastCount), meanDyY = gamma * Float(sums[C + c] / lastCount)
            let scale = invStd[c], mean = batchMean[c]
            for b in 0..<batch {
                let o = (b * C + c) * P
                if relu {
                    normBackwardBehindReLU(dy + o, y + o, x: x + o, dx + o, count: P, gamma: gamma, mean: mean, meanDy: meanDy,
                                           meanDyY: meanDyY, scale: scale)
                } else {
                    normBackward(dy + o, xhat + o, dx + o, count: P, gamma: gamma, meanDy: meanDy, meanDyY: meanDyY, scale: scale)
                }
            }
        }
    }
}

// The per-plane loops are in C (CKernels/plane_loops.c), with an AVX2 path chosen at run time:
// the same operations in the same order on every CPU, so the same bits (see plane_loops.h).

/// The two sums a C loop writes to sums[0] and sums[1].
@inline(__always)
private func twoSums(_ loop: (UnsafeMutablePointer<Double>) -> Void) -> (Double, Double) {
    var s = (0.0, 0.0)
    withUnsafeMutableBytes(of: &s) { loop($0.baseAddress!.assumingMemoryBound(to: Double.self)) }
    return s
}

/// (sum a[i], sum a[i] * b[i]) in double, eight lanes; with b = a, the sum and the sum of squares.
@inline(__always)
func planeSums(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> (Double, Double) {
    twoSums { hm_plane_sums(a, b, n, $0) }
}

/// Behind a fused ReLU, g[i] = dy[i] where r[i] > 0, else 0: (sum g[i], sum g[i] * r[i]) in
/// double, the same sums as planeSums(g, y) (r = y where g is not 0).
@inline(__always)
func planeSumsBehindReLU(_ dy: UnsafePointer<Float>, _ r: UnsafePointer<Float>, count n: Int) -> (Double, Double) {
    twoSums { hm_plane_sums_relu(dy, r, n, $0) }
}

/// The same with x-hat recomputed from x, (x - mean) * scale (the affine layer, whose r is not
/// x-hat): (sum g[i], sum g[i] * x-hat[i]).
@inline(__always)
func planeSumsBehindReLU(_ dy: UnsafePointer<Float>, _ r: UnsafePointer<Float>, x: UnsafePointer<Float>, count n: Int,
                         mean: Float, scale: Float) -> (Double, Double) {
    twoSums { hm_plane_sums_relu_x(dy, r, x, n, mean, scale, $0) }
}

/// y[i] = (x[i] - mean) * scale, and max(0, that) with `relu` (-0 stays -0).
@inline(__always)
func normalize(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int, mean: Float, scale: Float,
               relu: Bool = false) {
    hm_normalize(x, y, n, mean, scale, relu ? 1 : 0)
}

/// Behind a fused ReLU: dx[i] = scale * (gamma * g[i] - meanDy - x-hat[i] * meanDyY) with
/// g[i] = dy[i] where r[i] > 0 (else 0) and x-hat[i] = (x[i] - mean) * scale, recomputed.
@inline(__always)
func normBackwardBehindReLU(_ dy: UnsafePointer<Float>, _ r: UnsafePointer<Float>, x: UnsafePointer<Float>,
                            _ dx: UnsafeMutablePointer<Float>, count n: Int, gamma: Float, mean: Float, meanDy: Float,
                            meanDyY: Float, scale: Float) {
    hm_norm_backward_relu(dy, r, x, dx, n, gamma, mean, meanDy, meanDyY, scale)
}

/// dx[i] = scale * (gamma * dy[i] - meanDy - xhat[i] * meanDyY).
@inline(__always)
func normBackward(_ dy: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count n: Int,
                  gamma: Float, meanDy: Float, meanDyY: Float, scale: Float) {
    hm_norm_backward(dy, xhat, dx, n, gamma, meanDy, meanDyY, scale)
}

/// y[i] = y[i] * scale + shift, in place, and max(0, that) with `relu`.
@inline(__always)
func scaleShift(_ y: UnsafeMutablePointer<Float>, count n: Int, scale: Float, shift: Float, relu: Bool = false) {
    let yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 16 <= n {
        let v = yr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * scale + shift
        yr.storeBytes(of: relu ? v.replacing(with: 0, where: v .< 0) : v, toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { let v = y[i] * scale + shift; y[i] = relu && v < 0 ? 0 : v; i += 1 }  // as the lanes: -0 stays -0
}
