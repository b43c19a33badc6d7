// The parameter-free layers: ReLU, max-pool and flatten.

public final class ReLU: Layer {
    public let kind = "relu"
    public let inputShape: Shape
    public var outputShape: Shape { inputShape }
    public init(input: Shape) { inputShape = input }

    // 16 lanes at a time: the pointers may alias as far as the compiler knows, so it would not
    // vectorise the plain loops by itself.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        let n = batch * inputShape.count
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        var i = 0
        while i + 16 <= n {
            let v = xr.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            yr.storeBytes(of: v.replacing(with: 0, where: v .< 0), toByteOffset: 4 * i, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { y[i] = max(x[i], 0); i += 1 }
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let dx else { return }
        let n = batch * inputShape.count
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
}

/// Max-pool with a square window and stride equal to the window, no padding (the Conv models'
/// "pool"). Forward remembers where each maximum was (the first, on ties); backward sends each
/// gradient there.
public final class MaxPool2d: Layer {
    public let kind = "maxpool"
    public let inputShape: Shape
    public let outputShape: Shape
    public let size: Int
    /// Input offset (within the image) of each output's maximum; grows to the largest batch seen.
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var argmaxCapacity = 0

    public init(input: Shape, size: Int = 2) throws {
        guard input.dims.count == 3, input.dims[1] >= size, input.dims[2] >= size else {
            throw HiddenError("a \(size)x\(size) max-pool does not fit an input of \(input)")
        }
        inputShape = input; self.size = size
        outputShape = Shape([input.dims[0], input.dims[1] / size, input.dims[2] / size])
    }

    deinit { argmax.deallocate() }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        let (c, h, w) = (inputShape.dims[0], inputShape.dims[1], inputShape.dims[2])
        let (oh, ow) = (outputShape.dims[1], outputShape.dims[2])
        if batch * outputShape.count > argmaxCapacity {
            argmax.deallocate()
            argmaxCapacity = batch * outputShape.count
            argmax = .allocate(capacity: argmaxCapacity)
        }
        for plane in 0..<(batch * c) {
            let src = x + plane * h * w, dst = y + plane * oh * ow, arg = argmax + plane * oh * ow
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var best = -Float.infinity
                    var at = (oy * size) * w + ox * size
                    for dy in 0..<size {
                        let rowStart = (oy * size + dy) * w + ox * size
                        for dx in 0..<size where src[rowStart + dx] > best {
                            best = src[rowStart + dx]; at = rowStart + dx
                        }
                    }
                    dst[oy * ow + ox] = best
                    arg[oy * ow + ox] = Int32(at)
                }
            }
        }
    }

    /// Uses the positions of the last forward pass, which must have been on the same input.
    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let dx else { return }
        let (c, h, w) = (inputShape.dims[0], inputShape.dims[1], inputShape.dims[2])
        let outPlane = outputShape.dims[1] * outputShape.dims[2]
        dx.update(repeating: 0, count: batch * inputShape.count)
        for plane in 0..<(batch * c) {
            let g = dy + plane * outPlane, dst = dx + plane * h * w, arg = argmax + plane * outPlane
            for o in 0..<outPlane { dst[Int(arg[o])] += g[o] }
        }
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
