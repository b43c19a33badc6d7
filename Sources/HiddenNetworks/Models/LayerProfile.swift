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
        for kind in model.allLayers.map(\.kind) + ["residual-add", "batchnorm-add-relu"] where seconds[kind] == nil { seconds[kind] = 0 }
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

/// The three products of a convolution or linear layer.
public enum GEMMDirection: Int, CaseIterable, Sendable {
    case forward, weightGradient, inputGradient
}

/// The sgemm calls of one convolution or linear layer while the profile is on: seconds and FLOPs
/// of each direction, so that `bench` can tell the BLAS's share of the step, and how fast it runs
/// on each layer shape, from the rest (im2col, copies, the exact sums, batch norm).
public final class GEMMTally {
    /// What the layer is, e.g. "conv 3x3/1 64->64 @32x32": layers with the same shape add up.
    public let shape: String
    /// "sgemm", "direct" for the direct 3x3 convolution (whose times include its padding and
    /// re-layout of the data, as sgemm's include OpenBLAS's packing), or "own" for the fully
    /// connected layers' kernels (linear.c; the weight gradient's time includes its fixed-point sum).
    public let kernel: String
    public private(set) var seconds = [Double](repeating: 0, count: GEMMDirection.allCases.count)
    public private(set) var flops = [Double](repeating: 0, count: GEMMDirection.allCases.count)

    init(shape: String, kernel: String = "sgemm") { (self.shape, self.kernel) = (shape, kernel) }

    /// body (one sgemm of m x n x k), timed when the profile is on.
    @inline(__always)
    func time(_ direction: GEMMDirection, m: Int, n: Int, k: Int, _ body: () -> Void) {
        guard LayerProfile.shared.enabled else { return body() }
        let t = monotonicSeconds()
        body()
        seconds[direction.rawValue] += monotonicSeconds() - t
        flops[direction.rawValue] += 2 * Double(m) * Double(n) * Double(k)
    }
}
