// The frozen random weights of one layer with their learned scores (edge-popup):
// W_eff = W * h(|S|), h = 1 on the layer's top-k of |S|; dL/dS = sign(S) * W * dL/dW_eff.
// The baselines of TrainingMethod.swift reuse the same buffers: for dense the "scores" are the
// trained weights themselves, for supermask the logits of the sampling probabilities.

import CKernels
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
    /// Exact reduction: the model's chunk buffers, and how many hold chunks not added yet.
    private var chunkGradients: ChunkGradients?
    private var pendingChunks = 0

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
    public func bind(exactGrad: UnsafeMutablePointer<Int64>, chunkGradients: ChunkGradients) {
        precondition(chunkGradients.capacity >= count, "the chunk buffers are smaller than the layer")
        self.exactGrad = exactGrad
        self.chunkGradients = chunkGradients
    }

    /// Where the current chunk's dL/dW_eff goes: `effectiveGrad` under the float reduction; under
    /// the exact one the next free buffer of ChunkGradients, in the layer's own layout (the direct
    /// convolution's is blocked, see accumulateChunks). Ask once per chunk, then call chunkDone.
    public var chunkGradient: UnsafeMutablePointer<Float> {
        chunkGradients?.slot(pendingChunks) ?? effectiveGrad.pointer
    }

    /// Exact reduction: the chunk written to chunkGradient is done. Chunks wait in
    /// ChunkGradients' buffers and are added to the fixed-point sum a few at a time, so that the
    /// int64 sum (twice the floats' bytes) goes through memory once per ChunkGradients.slots
    /// chunks rather than once per chunk: the same integers (integer adds, in any order).
    public func chunkDone() {
        guard exactGrad != nil else { return }
        pendingChunks += 1
        if pendingChunks == ChunkGradients.slots { addPendingChunks() }
    }

    /// How the waiting chunks are added when their layout is not plain dL/dW_eff (the direct
    /// convolution's blocked one): (buffers, how many, the sum, the factor, first) -> in range.
    var accumulateChunks: ((UnsafePointer<UnsafePointer<Float>?>, Int, UnsafeMutablePointer<Int64>, Double, Bool) -> Bool)?

    /// Exact reduction, for a layer whose kernel adds its chunks to the fixed-point sum itself
    /// (the fully connected one, in one pass over the batch): `add(sum, factor, first)` adds
    /// `chunks` chunks and returns false when some value was out of range.
    func addChunks(_ chunks: Int, _ add: (UnsafeMutablePointer<Int64>, Double, Bool) -> Bool) {
        guard let exactGrad, chunks > 0 else { return }
        addPendingChunks()
        if !add(exactGrad, FixedPoint.factor(scale: plan.gradientScale), chunksAdded == 0) { plan.outOfRange = true }
        chunksAdded += chunks
    }

    private func addPendingChunks() {
        guard let exactGrad, let chunkGradients, pendingChunks > 0 else { return }
        let buffers = UnsafePointer(chunkGradients.pointers)
        let factor = FixedPoint.factor(scale: plan.gradientScale), first = chunksAdded == 0
        let inRange = accumulateChunks?(buffers, pendingChunks, exactGrad, factor, first)
            ?? (hm_fixed_accumulate_many(buffers, Int32(pendingChunks), exactGrad, count, factor, first ? 1 : 0) != 0)
        if !inRange { plan.outOfRange = true }
        chunksAdded += pendingChunks
        pendingChunks = 0
    }

    /// The backward pass of this layer is done: under the exact reduction its fixed-point sum is
    /// ready to reduce; under the float one the score gradient is computed from dL/dW_eff. Either
    /// way `onGradientReady` starts the reduction.
    public func gradientDone() {
        if let exactGrad {
            addPendingChunks()
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

    /// Sharded update (ShardedUpdate.swift): dL/dW_eff of the mean loss for `range` only, from
    /// that range's fixed-point sum over all ranks, and the score gradient from it.
    public func finishExactGradient(shard: UnsafePointer<Int64>, range: Range<Int>) {
        FixedPoint.decode(shard, into: effectiveGrad.pointer + range.lowerBound, count: range.count)
        computeScoreGrad(range: range)
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
            kept = sampleSupermask(draw: draw, range: 0..<count)
        }
    }

    /// The same for the weights in `range` only (a sharded update: this rank's share; the others
    /// arrive by allgather). Edge-popup needs the layer's threshold, found by all ranks together
    /// (`applyThreshold`); this serves dense and supermask. `range` starts at a multiple of 4.
    public func updateMask(draw: UInt64?, range: Range<Int>) {
        switch method {
        case .edgePopup:
            preconditionFailure("edge-popup masks need the layer's threshold: applyThreshold")
        case .dense:
            (effective.pointer + range.lowerBound).update(from: scores + range.lowerBound, count: range.count)
        case .supermask:
            _ = sampleSupermask(draw: draw, range: range)
        }
    }

    /// Edge-popup mask of `range` from the layer's threshold `t` (bit pattern of the kept count's
    /// smallest |S|): every |S| above it, and the first `ties` of the `equal` weights of the range
    /// whose |S| is t (the lower indices win ties, as `applyTopKMask`). As there, one pass without
    /// branches takes every |S| >= t (a branch per weight would be mispredicted half the time),
    /// then the surplus ties are given back from the highest index, with W_eff = +0.
    public func applyThreshold(range: Range<Int>, threshold t: UInt32, ties: Int, equal: Int) {
        let bits = UnsafeRawPointer(scores).assumingMemoryBound(to: UInt32.self)
        let w = weights.pointer, m = mask.pointer, e = effective.pointer
        for i in range {
            let keep: Float = bits[i] & 0x7FFF_FFFF >= t ? 1 : 0
            m[i] = keep
            e[i] = w[i] * keep
        }
        var surplus = equal - ties
        var i = range.upperBound - 1
        while surplus > 0, i >= range.lowerBound {
            if bits[i] & 0x7FFF_FFFF == t { m[i] = 0; e[i] = 0; surplus -= 1 }
            i -= 1
        }
    }

    /// mask_i = 1 when u_i < sigmoid(S_i), u_i uniform from (seed, layer, draw, i); returns the count.
    private func sampleSupermask(draw: UInt64?, range: Range<Int>) -> Int {
        precondition(range.lowerBound % 4 == 0, "samples come four to a random block")
        let s = scores, w = weights.pointer, m = mask.pointer, e = effective.pointer, p = probabilities!.pointer
        for i in range { p[i] = 1 / (1 + expf(-s[i])) }
        let stream = draw == nil ? evaluationSamples : samples
        let base = ((draw ?? 0) & 0x0FFF_FFFF) << 36
        var ones = 0
        var i = range.lowerBound
        while i < range.upperBound {
            let words = stream.words(base | UInt64(i >> 2))
            let n = min(4, range.upperBound - i)
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

    /// dL/dS from dL/dW_eff by the method's rule (see accumulateScoreGrad), for the weights in
    /// `range` (all by default).
    func computeScoreGrad(range: Range<Int>? = nil) {
        let w = weights.pointer, g = effectiveGrad.pointer, s = scores, d = scoreGrad
        let range = range ?? 0..<count
        switch method {
        case .edgePopup:
            for i in range {
                let sg: Float = s[i] > 0 ? 1 : (s[i] < 0 ? -1 : 0)
                d[i] = sg * w[i] * g[i]
            }
        case .dense:
            (d + range.lowerBound).update(from: g + range.lowerBound, count: range.count)
        case .supermask:
            // The scores have not changed since the sample: its probabilities still hold.
            let p = probabilities!.pointer
            for i in range { d[i] = w[i] * g[i] * p[i] * (1 - p[i]) }
        }
    }
}

/// The exact reduction's chunk buffers, shared by the layers of a model (a rank runs one layer's
/// backward at a time): `slots` buffers, each as large as the largest layer (4 x 9.4 MB for
/// ResNet-50's 512 -> 512 3x3 convolutions). Allocated with the model, never per step.
public final class ChunkGradients {
    public static let slots = 4
    public let capacity: Int
    private let storage: FloatBuffer
    /// The slots' addresses, as the C loops take them.
    let pointers = UnsafeMutablePointer<UnsafePointer<Float>?>.allocate(capacity: ChunkGradients.slots)

    init(capacity: Int) {
        self.capacity = capacity
        storage = FloatBuffer(count: ChunkGradients.slots * capacity)
        for k in 0..<ChunkGradients.slots { pointers[k] = UnsafePointer(storage.pointer + k * capacity) }
    }

    deinit { pointers.deallocate() }

    func slot(_ k: Int) -> UnsafeMutablePointer<Float> { storage.pointer + k * capacity }
}
