// A sequential model with every buffer it needs for a batch of up to `maxBatch` samples: the
// scores of all layers in one contiguous arena (so score gradients allreduce as one buffer), the
// batch norms' running statistics in another, activations per layer, and two ping-pong gradient
// buffers. A layer may be a residual block holding layers of its own; its weights take their
// place in the arena in the order `Layer.allLayers` walks them. Nothing is allocated per step.

public struct ModelConfig: Equatable, Sendable {
    public var architecture: Architecture
    public var width: Double = 1
    public var k: Double = 0.5
    public var weightInit: WeightInit = .signedConstant
    public var scaleFan: Bool = false
    public var seed: UInt64 = 0
    public var inputShape: Shape
    public var classes: Int = 10
    public var method: TrainingMethod = .edgePopup
    /// The reference's --first-layer-dense / --last-layer-dense: that layer's weights are trained
    /// (from the same init) while the others keep the run's method.
    public var firstLayerDense = false
    public var lastLayerDense = false

    public init(architecture: Architecture, width: Double = 1, k: Double = 0.5, weightInit: WeightInit = .signedConstant,
                scaleFan: Bool = false, seed: UInt64 = 0, inputShape: Shape, classes: Int = 10,
                method: TrainingMethod = .edgePopup, firstLayerDense: Bool = false, lastLayerDense: Bool = false) {
        self.architecture = architecture; self.width = width; self.k = k; self.weightInit = weightInit
        self.scaleFan = scaleFan; self.seed = seed; self.inputShape = inputShape; self.classes = classes
        self.method = method; self.firstLayerDense = firstLayerDense; self.lastLayerDense = lastLayerDense
    }

    /// What masked layer `l` of `count` trains: the run's method, or dense for a first or last
    /// layer made dense.
    public func method(ofLayer l: Int, of count: Int) -> TrainingMethod {
        (firstLayerDense && l == 0) || (lastLayerDense && l == count - 1) ? .dense : method
    }
}

public final class Model {
    public let config: ModelConfig
    /// The top-level layers, in the order forward runs them.
    public let layers: [Layer]
    /// Every layer, blocks and the layers inside them included (depth first).
    public let allLayers: [Layer]
    public let masked: [MaskedWeights]
    public let batchNorms: [BatchNorm2d]
    /// Running mean and variance of every batch norm, [2, C] each, one after the other: part of
    /// the run's state (checkpoints) and of a found subnetwork (export).
    public let runningStats: FloatBuffer
    /// Offset of each batch norm's running statistics in `runningStats`.
    public let runningOffsets: [Int]
    /// Training or evaluation mode, and how batch statistics are shared between ranks.
    public let norm = BatchNormContext()
    public let maxBatch: Int
    /// All scores, layer after layer; and their gradients, in the same order.
    public let scores: FloatBuffer
    public let scoreGrads: FloatBuffer
    /// The exact reduction's chunks (chunk 0: the float reduction) and its fixed-point gradient
    /// arena, int64 per score in the same order (empty under the float reduction).
    public let plan: ChunkPlan
    public let exactGrads: UnsafeMutableBufferPointer<Int64>
    /// Where the exact reduction's chunks wait to be added (MaskedWeights.chunkDone).
    public let chunkGradients: ChunkGradients
    /// Offset of each masked layer's slice in the arenas.
    public let offsets: [Int]
    public let input: FloatBuffer
    private let activations: [FloatBuffer]
    private let gradA: FloatBuffer
    private let gradB: FloatBuffer

    /// `chunk` > 0 cuts every batch into chunks of that many samples for the exact reduction
    /// (ExactReduction.swift); `maxBatch` should then be a multiple of it.
    public init(_ config: ModelConfig, maxBatch: Int, chunk: Int = 0) throws {
        self.config = config
        self.maxBatch = max(1, maxBatch)
        plan = ChunkPlan(chunk: chunk)
        norm.plan = plan
        norm.affine = config.method == .dense
        layers = try config.architecture.layers(input: config.inputShape, classes: config.classes,
                                                width: config.width, k: config.k, norm: norm)
        allLayers = layers.flatMap { $0.allLayers }
        masked = allLayers.compactMap { $0.masked }
        batchNorms = allLayers.compactMap { $0 as? BatchNorm2d }
        var runOffs: [Int] = []
        var runTotal = 0
        for bn in batchNorms { runOffs.append(runTotal); runTotal += 2 * bn.channels }
        runningOffsets = runOffs
        runningStats = FloatBuffer(count: runTotal)
        for (bn, o) in zip(batchNorms, runOffs) { bn.bind(running: runningStats.pointer + o) }
        var offs: [Int] = []
        var total = 0
        for m in masked { offs.append(total); total += m.count }
        offsets = offs
        scores = FloatBuffer(count: total)
        scoreGrads = FloatBuffer(count: total)
        exactGrads = .allocate(capacity: plan.exact ? total : 0)
        exactGrads.initialize(repeating: 0)
        chunkGradients = ChunkGradients(capacity: plan.exact ? masked.map(\.count).max() ?? 0 : 0)
        for (l, m) in masked.enumerated() {
            m.bind(scores: scores.pointer + offs[l], scoreGrad: scoreGrads.pointer + offs[l])
            m.plan = plan
            if plan.exact { m.bind(exactGrad: exactGrads.baseAddress! + offs[l], chunkGradients: chunkGradients) }
            if m.role == .normAffine {
                // PyTorch's BatchNorm2d init: scale 1, shift 0.
                m.weights.pointer.update(repeating: 1, count: m.count / 2)
                (m.weights.pointer + m.count / 2).update(repeating: 0, count: m.count / 2)
            } else {
                config.weightInit.fill(m.weights.pointer, count: m.count, layer: l, seed: config.seed,
                                       fanIn: m.fanIn, fanOut: m.fanOut, scaleFan: config.scaleFan, k: config.k)
            }
            let method = config.method(ofLayer: l, of: masked.count)
            m.configure(method: method, layer: l, seed: config.seed)
            if method == .dense {
                // The trained parameters start as the frozen init (still kept for the checksum).
                m.scores.update(from: m.weights.pointer, count: m.count)
            } else {
                initScores(m.scores, count: m.count, layer: l, seed: config.seed, fanIn: m.fanIn)
            }
        }
        let rows = self.maxBatch
        for layer in layers { layer.reserve(batch: rows) }
        input = FloatBuffer(count: rows * config.inputShape.count)
        activations = layers.map { FloatBuffer(count: rows * $0.outputShape.count) }
        let largest = layers.map { $0.outputShape.count }.max() ?? 1
        gradA = FloatBuffer(count: rows * max(largest, config.inputShape.count))
        gradB = FloatBuffer(count: rows * max(largest, config.inputShape.count))
    }

    deinit { exactGrads.deallocate() }

    public var parameterCount: Int { scores.count }
    public var outputCount: Int { config.classes }
    public var forwardFLOPsPerSample: Int { layers.reduce(0) { $0 + $1.forwardFLOPsPerSample } }

    /// Training mode: batch norms normalise with batch statistics and update their running ones.
    /// Evaluation mode (the default): they use the running statistics and talk to no other rank.
    public var training: Bool {
        get { norm.training }
        set { norm.training = newValue }
    }

    /// Recomputes every layer's mask from its scores (once per step, and before evaluation).
    /// `draw` numbers the supermask sample: the global step in training; nil (evaluation, export)
    /// gives one fixed sample from a stream of its own, so that an evaluation does not depend on
    /// the number of ranks or on how the test set is batched.
    public func updateMasks(draw: UInt64? = nil) {
        if let sharded { sharded.updateMasks(draw: draw) } else { for m in masked { m.updateMask(draw: draw) } }
    }

    /// Set by a trainer whose ranks share the update (ShardedUpdate.swift): masks are then made by
    /// all ranks together, so every rank must update them at the same points.
    public internal(set) weak var sharded: ShardedUpdate?

    /// Runs the forward pass on the first `batch` samples of `input`; returns the logits [batch, classes].
    @discardableResult
    public func forward(batch: Int) -> UnsafeMutablePointer<Float> {
        var x = UnsafePointer(input.pointer)
        for (i, layer) in layers.enumerated() {
            layer.profiledForward(x, activations[i].pointer, batch: batch)
            x = UnsafePointer(activations[i].pointer)
        }
        return activations[layers.count - 1].pointer
    }

    /// Backward pass from dL/dlogits; leaves dL/dS of every layer in `scoreGrads`. `afterLayer`
    /// runs after each top-level layer with its index; each masked layer's own
    /// `onGradientReady` runs as soon as its score gradients are final, inside blocks too.
    public func backward(logitGrad: UnsafePointer<Float>, batch: Int, afterLayer: (Int) -> Void = { _ in }) {
        var dy = logitGrad
        var out = gradA
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let x = i == 0 ? UnsafePointer(input.pointer) : UnsafePointer(activations[i - 1].pointer)
            let dx: UnsafeMutablePointer<Float>? = i == 0 ? nil : out.pointer
            layers[i].profiledBackward(x, UnsafePointer(activations[i].pointer), dy, dx, batch: batch)
            afterLayer(i)
            dy = UnsafePointer(out.pointer)
            out = out === gradA ? gradB : gradA
        }
    }

    /// FNV-1a over the bit patterns of every frozen weight: equal on every rank or the run is wrong.
    public func weightChecksum() -> UInt64 {
        var h = fnvOffset
        for m in masked { h = fnv1a(m.weights.pointer, count: m.count, h) }
        return h
    }

    /// FNV-1a over the bit patterns of every batch norm's running statistics: equal on every rank
    /// when the statistics are those of the global batch (`--bn-sync global`).
    public func runningChecksum() -> UInt64 { fnv1a(runningStats.pointer, count: runningStats.count, fnvOffset) }
}

let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325

func fnv1a(_ p: UnsafePointer<Float>, count: Int, _ start: UInt64) -> UInt64 {
    let bits = UnsafeRawPointer(p).assumingMemoryBound(to: UInt32.self)
    var h = start
    for i in 0..<count { h = (h ^ UInt64(bits[i])) &* 0x0000_0100_0000_01B3 }
    return h
}
