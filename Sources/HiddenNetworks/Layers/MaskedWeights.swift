// The frozen random weights of one layer with their learned scores (edge-popup):
// W_eff = W * h(|S|), h = 1 on the layer's top-k of |S|; dL/dS = sign(S) * W * dL/dW_eff.

public final class MaskedWeights {
    public let count: Int
    public let fanIn: Int
    public let fanOut: Int
    public let kept: Int
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

    /// The weight tensor's shape: [out, in] for linear, [out, in, kh, kw] for conv.
    public let shape: [Int]

    public init(count: Int, fanIn: Int, fanOut: Int, k: Double, shape: [Int]? = nil) {
        self.count = count; self.fanIn = fanIn; self.fanOut = fanOut
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

    /// Recomputes the mask from |scores| and W_eff from it.
    public func updateMask() {
        applyTopKMask(scores: scores, weights: weights.pointer, count: count, kept: kept,
                      mask: mask.pointer, effective: effective.pointer, scratch: scratch)
    }

    /// Straight-through estimator: dL/dS = sign(S) * W * dL/dW_eff for every edge, pruned ones too.
    public func accumulateScoreGrad() {
        let w = weights.pointer, g = effectiveGrad.pointer, s = scores, d = scoreGrad
        for i in 0..<count {
            let sg: Float = s[i] > 0 ? 1 : (s[i] < 0 ? -1 : 0)
            d[i] = sg * w[i] * g[i]
        }
    }
}
