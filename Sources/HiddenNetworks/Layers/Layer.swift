// One layer is a forward/backward pair over flat float buffers (NCHW, batch-major). Shapes are
// per sample; `batch` is the number of samples in the buffers.

public protocol Layer: AnyObject {
    /// Short name of the kind: "conv2d", "linear", "relu", "maxpool", "flatten".
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
}

extension Layer {
    public var masked: MaskedWeights? { nil }
    public var forwardFLOPsPerSample: Int { 0 }
    /// A one-line description of the layer's geometry for `info`.
    public var summary: String { "\(kind) \(inputShape) -> \(outputShape)" }
}
