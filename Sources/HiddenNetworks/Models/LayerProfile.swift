// Seconds spent per kind of layer ("conv2d", "batchnorm", "residual-add", ...), forward and
// backward together, for `hidden-mpi bench`. Off unless a benchmark turns it on; when off it costs
// one branch per layer call. Only plain layers are timed (a residual block times its own layers
// and its add + ReLU as "residual-add"), so the kinds add up to the forward and backward passes.

public final class LayerProfile {
    public static let shared = LayerProfile()
    public var enabled = false
    public private(set) var seconds: [String: Double] = [:]

    /// Makes room for every kind `model` has before timing starts, so that timing allocates nothing.
    public func prepare(for model: Model) {
        for kind in model.allLayers.map(\.kind) + ["residual-add"] where seconds[kind] == nil { seconds[kind] = 0 }
    }

    @inline(__always)
    func time(_ kind: String, _ body: () -> Void) {
        guard enabled else { return body() }
        let t = monotonicSeconds()
        body()
        seconds[kind, default: 0] += monotonicSeconds() - t
    }
}

extension Layer {
    /// forward, timed under the layer's kind when it is a plain layer (a block times its own).
    @inline(__always)
    func profiledForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        if children.isEmpty { LayerProfile.shared.time(kind) { forward(x, y, batch: batch) } } else { forward(x, y, batch: batch) }
    }

    /// backward, timed the same way.
    @inline(__always)
    func profiledBackward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                          _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        if children.isEmpty {
            LayerProfile.shared.time(kind) { backward(x, y, dy, dx, batch: batch) }
        } else {
            backward(x, y, dy, dx, batch: batch)
        }
    }
}
