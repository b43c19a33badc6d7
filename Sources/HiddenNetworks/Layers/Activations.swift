// The parameter-free layers: ReLU and flatten (pooling is in Pooling.swift).

public final class ReLU: Layer {
    public let kind = "relu"
    public let inputShape: Shape
    public var outputShape: Shape { inputShape }
    public init(input: Shape) { inputShape = input }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        relu(x, y, count: batch * inputShape.count)
    }

    // 16 lanes at a time: the pointers may alias as far as the compiler knows, so it would not
    // vectorise the plain loop by itself.
    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let dx else { return }
        reluBackward(x, dy, dx, count: batch * inputShape.count)
    }
}

/// [C, H, W] -> [C*H*W]: the memory is already in that order, so this copies.
public final class Flatten: Layer {
    public let kind = "flatten"
    public let inputShape: Shape
    public let outputShape: Shape
    public init(input: Shape) { inputShape = input; outputShape = Shape([input.count]) }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        y.update(from: x, count: batch * inputShape.count)
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        dx?.update(from: dy, count: batch * inputShape.count)
    }
}

/// y[i] = max(x[i], 0), 16 lanes at a time; x and y may be the same buffer (in place).
@inline(__always)
func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
    let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 16 <= n {
        let v = xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        yr.storeBytes(of: v.replacing(with: 0, where: v .< 0), toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] = x[i] < 0 ? 0 : x[i]; i += 1 }  // as the lanes: -0 stays -0
}

/// y[i] = max(a[i] + b[i], 0): a residual block's sum and its ReLU in one pass.
@inline(__always)
func addRelu(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
    let ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b), yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 16 <= n {
        let v = ar.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) + br.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        yr.storeBytes(of: v.replacing(with: 0, where: v .< 0), toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { let v = a[i] + b[i]; y[i] = v < 0 ? 0 : v; i += 1 }
}

/// dx[i] = dy[i] where x[i] > 0, else 0 (x: the ReLU's input, or its output: same sign test).
@inline(__always)
func reluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count n: Int) {
    let xr = UnsafeRawPointer(x), gr = UnsafeRawPointer(dy), dr = UnsafeMutableRawPointer(dx)
    var i = 0
    while i + 16 <= n {
        let v = xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        let g = gr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        dr.storeBytes(of: g.replacing(with: 0, where: .!(v .> 0)), toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { dx[i] = x[i] > 0 ? dy[i] : 0; i += 1 }
}
