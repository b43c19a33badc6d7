// The frozen random weights of one layer with their learned scores (edge-popup):
// W_eff = W * h(|S|), h = 1 on the layer's top-k of |S|; dL/dS = sign(S) * W * dL/dW_eff.
// The baselines of TrainingMethod.swift reuse the same buffers: for dense the "scores" are the
// trained weights themselves, for supermask the logits of the sampling probabilities.

import Foundation

public final class MaskedWeights {
    public let count: Int
    public let fanIn: Int
    public let fanOut: Int
    /// Weights in the mask: the top-k count (edge-popup), all (dense) or those of the last sample (supermask).
    public private(set) var kept: Int
    public private(set) var method: TrainingMethod = .edgePopup
    private var samples = RandomStream(seed: 0, purpose: .sampling)
    private var evaluationSamples = RandomStream(seed: 0, purpose: .evaluationSampling)
    /// Supermask only: sigmoid(S) of the last sample, reused by the backward pass.
    private var probabilities: FloatBuffer?
    /// Frozen at their random init; never trained, stored or sent.
    public let weights: FloatBuffer
    /// W * mask, rebuilt from the scores at every step.
    public let effective: FloatBuffer
    /// 0/1 mask of the last selection.
    public let mask: FloatBuffer
    /// dL/dW_eff of the last backward pass.
    public let effectiveGrad: FloatBuffer
    /// Views into the model's contiguous score and score-gradient arenas.
    public private(set) var scores: UnsafeMutablePointer<Float>
    public private(set) var scoreGrad: UnsafeMutablePointer<Float>
    private let scratch: UnsafeMutablePointer<UInt32>
    /// Called once the layer's score gradient of a backward pass is final: the trainer starts its
    /// allreduce here, so that it overlaps the backward pass of the layers below.
    public var onGradientReady: (() -> Void)?
    /// How the batch is cut into chunks (ExactReduction.swift); no chunks unless the model says so.
    public var plan = ChunkPlan(chunk: 0)
    /// Exact reduction: this layer's slice of the model's int64 gradient arena, where each
    /// chunk's dL/dW_eff is added in fixed point; and how many chunks were added this step.
    public private(set) var exactGrad: UnsafeMutablePointer<Int64>?
    private var chunksAdded = 0

    /// The weight tensor's shape: [out, in] for linear, [out, in, kh, kw] for conv, [2, C] for a
    /// batch norm's scale and shift.
    public let shape: [Int]

    /// What the parameters are: a layer's weights (random init, the seed's), or the scale and
    /// shift of an affine batch norm (the dense baseline; init 1 and 0, always trained densely).
    public enum Role: Sendable { case weights, normAffine }
    public let role: Role

    public init(count: Int, fanIn: Int, fanOut: Int, k: Double, shape: [Int]? = nil, role: Role = .weights) {
        self.count = count; self.fanIn = fanIn; self.fanOut = fanOut; self.role = role
        self.shape = shape ?? [count]
        precondition(self.shape.reduce(1, *) == count)
        kept = keptCount(n: count, k: k)
        weights = FloatBuffer(count: count)
        effective = FloatBuffer(count: count)
        mask = FloatBuffer(count: count)
        effectiveGrad = FloatBuffer(count: count)
        scratch = .allocate(capacity: topKScratchCount(count))
        scores = effective.pointer  // replaced by bind(scores:scoreGrad:)
        scoreGrad = effectiveGrad.pointer
    }

    deinit { scratch.deallocate() }

    /// Points the layer at its slices of the model's score arenas.
    public func bind(scores: UnsafeMutablePointer<Float>, scoreGrad: UnsafeMutablePointer<Float>) {
        self.scores = scores; self.scoreGrad = scoreGrad
    }

    /// Points the layer at its slice of the model's fixed-point gradient arena (exact reduction).
    public func bind(exactGrad: UnsafeMutablePointer<Int64>) { self.exactGrad = exactGrad }

    /// Exact reduction: adds `effectiveGrad`, one chunk's dL/dW_eff, to the fixed-point sum.
    public func chunkDone() {
        guard let exactGrad else { return }
        if !FixedPoint.accumulate(effectiveGrad.pointer, into: exactGrad, count: count, scale: plan.gradientScale,
                                  first: chunksAdded == 0) {
            plan.outOfRange = true
        }
        chunksAdded += 1
    }

    /// The backward pass of this layer is done: under the exact reduction its fixed-point sum is
    /// ready to reduce; under the float one the score gradient is computed from dL/dW_eff. Either
    /// way `onGradientReady` starts the reduction.
    public func gradientDone() {
        if let exactGrad {
            if chunksAdded == 0 { exactGrad.update(repeating: 0, count: count) }
            chunksAdded = 0
            onGradientReady?()
        } else {
            accumulateScoreGrad()
        }
    }

    /// Exact reduction, after the ranks' sums arrived: dL/dW_eff of the mean loss from the
    /// fixed-point sum, and the score gradient from it.
    public func finishExactGradient() {
        guard let exactGrad else { return }
        FixedPoint.decode(exactGrad, into: effectiveGrad.pointer, count: count)
        computeScoreGrad()
    }

    /// Chooses what this layer trains; `layer` and `seed` address its supermask samples.
    public func configure(method: TrainingMethod, layer: Int, seed: UInt64) {
        self.method = method
        samples = RandomStream(seed: seed, purpose: .sampling, sub: UInt32(layer))
        evaluationSamples = RandomStream(seed: seed, purpose: .evaluationSampling, sub: UInt32(layer))
        if method == .dense { kept = count; mask.pointer.update(repeating: 1, count: count) }
        probabilities = method == .supermask ? FloatBuffer(count: count) : nil
    }

    /// Recomputes the mask and W_eff from the scores. `draw` numbers the supermask sample: the
    /// global step in training (draws repeat after 2^28 steps), nil for the one fixed sample of
    /// evaluation, from a stream of its own. The other methods ignore it.
    public func updateMask(draw: UInt64? = nil) {
        switch method {
        case .edgePopup:
            applyTopKMask(scores: scores, weights: weights.pointer, count: count, kept: kept,
                          mask: mask.pointer, effective: effective.pointer, scratch: scratch)
        case .dense:
            effective.pointer.update(from: scores, count: count)
        case .supermask:
            kept = sampleSupermask(draw: draw)
        }
    }

    /// mask_i = 1 when u_i < sigmoid(S_i), u_i uniform from (seed, layer, draw, i); returns the count.
    private func sampleSupermask(draw: UInt64?) -> Int {
        let s = scores, w = weights.pointer, m = mask.pointer, e = effective.pointer, p = probabilities!.pointer
        for i in 0..<count { p[i] = 1 / (1 + expf(-s[i])) }
        let stream = draw == nil ? evaluationSamples : samples
        let base = ((draw ?? 0) & 0x0FFF_FFFF) << 36
        var ones = 0
        var i = 0
        while i < count {
            let words = stream.words(base | UInt64(i >> 2))
            let n = min(4, count - i)
            withUnsafeBytes(of: words) { raw in
                for j in 0..<n {
                    // 24-bit uniform in (0, 1), exact in Float.
                    let u = (Float(raw.load(fromByteOffset: 4 * j, as: UInt32.self) >> 8) + 0.5) * 0x1p-24
                    let keep: Float = u < p[i + j] ? 1 : 0
                    m[i + j] = keep
                    e[i + j] = w[i + j] * keep
                    ones += Int(keep)
                }
            }
            i += 4
        }
        return ones
    }

    /// The score gradient from dL/dW_eff: straight-through for edge-popup (sign(S) * W * g) and
    /// supermask (W * g * p (1 - p)), the gradient itself for dense.
    public func accumulateScoreGrad() {
        computeScoreGrad()
        onGradientReady?()
    }

    /// dL/dS from dL/dW_eff by the method's rule (see accumulateScoreGrad).
    func computeScoreGrad() {
        let w = weights.pointer, g = effectiveGrad.pointer, s = scores, d = scoreGrad
        switch method {
        case .edgePopup:
            for i in 0..<count {
                let sg: Float = s[i] > 0 ? 1 : (s[i] < 0 ? -1 : 0)
                d[i] = sg * w[i] * g[i]
            }
        case .dense:
            d.update(from: g, count: count)
        case .supermask:
            // The scores have not changed since the sample: its probabilities still hold.
            let p = probabilities!.pointer
            for i in 0..<count { d[i] = w[i] * g[i] * p[i] * (1 - p[i]) }
        }
    }
}
