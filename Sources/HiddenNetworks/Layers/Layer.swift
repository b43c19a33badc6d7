// One layer is a forward/backward pair over flat float buffers (NCHW, batch-major). Shapes are
// per sample; `batch` is the number of samples in the buffers.

public protocol Layer: AnyObject {
    /// Short name of the kind: "conv2d", "linear", "relu", "maxpool", "batchnorm", "batchnorm-relu", "avgpool",
    /// "flatten", "basic-block", "bottleneck".
    var kind: String { get }
    var inputShape: Shape { get }
    var outputShape: Shape { get }
    /// The layer's frozen weights and scores, where it has any.
    var masked: MaskedWeights? { get }
    /// Multiply-adds times two, per sample, of the dense forward pass.
    var forwardFLOPsPerSample: Int { get }
    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int)
    /// Writes dL/dx into `dx` (nil for the first layer, which needs none) and, for a masked
    /// layer, dL/dW_eff and dL/dS.
    func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                  _ dx: UnsafeMutablePointer<Float>?, batch: Int)
    /// The layers this one is made of (a residual block's branch and shortcut), in the order their
    /// weights take in the model's score arena; empty for a plain layer.
    var children: [Layer] { get }
    /// Sizes any buffers the layer keeps for batches of up to `batch` samples (once, before the
    /// step loop, which then allocates nothing).
    func reserve(batch: Int)
}

extension Layer {
    public var masked: MaskedWeights? { nil }
    public var forwardFLOPsPerSample: Int { 0 }
    public var children: [Layer] { [] }
    public func reserve(batch: Int) {}
    /// This layer and every layer inside it, depth first, parents before their children.
    public var allLayers: [Layer] { [self] + children.flatMap { $0.allLayers } }
    /// A one-line description of the layer's geometry for `info`.
    public var summary: String { "\(kind) \(inputShape) -> \(outputShape)" }
}
