// The parameter-free layers: ReLU, max-pool and flatten.

public final class ReLU: Layer {
    public let kind = "relu"
    public let inputShape: Shape
    public var outputShape: Shape { inputShape }
    public init(input: Shape) { inputShape = input }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        for i in 0..<(batch * inputShape.count) { y[i] = max(x[i], 0) }
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let dx else { return }
        for i in 0..<(batch * inputShape.count) { dx[i] = x[i] > 0 ? dy[i] : 0 }
    }
}

/// Max-pool with a square window and stride equal to the window, no padding (the Conv models'
/// "pool"). Backward sends each gradient to the first maximum of its window.
public final class MaxPool2d: Layer {
    public let kind = "maxpool"
    public let inputShape: Shape
    public let outputShape: Shape
    public let size: Int

    public init(input: Shape, size: Int = 2) throws {
        guard input.dims.count == 3, input.dims[1] >= size, input.dims[2] >= size else {
            throw HiddenError("a \(size)x\(size) max-pool does not fit an input of \(input)")
        }
        inputShape = input; self.size = size
        outputShape = Shape([input.dims[0], input.dims[1] / size, input.dims[2] / size])
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        let (c, h, w) = (inputShape.dims[0], inputShape.dims[1], inputShape.dims[2])
        let (oh, ow) = (outputShape.dims[1], outputShape.dims[2])
        for plane in 0..<(batch * c) {
            let src = x + plane * h * w, dst = y + plane * oh * ow
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var best = -Float.infinity
                    for dy in 0..<size {
                        let row = src + (oy * size + dy) * w + ox * size
                        for dx in 0..<size where row[dx] > best { best = row[dx] }
                    }
                    dst[oy * ow + ox] = best
                }
            }
        }
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let dx else { return }
        let (c, h, w) = (inputShape.dims[0], inputShape.dims[1], inputShape.dims[2])
        let (oh, ow) = (outputShape.dims[1], outputShape.dims[2])
        dx.update(repeating: 0, count: batch * inputShape.count)
        for plane in 0..<(batch * c) {
            let src = x + plane * h * w, g = dy + plane * oh * ow, dst = dx + plane * h * w
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let best = y[plane * oh * ow + oy * ow + ox]
                    var found = false
                    for ddy in 0..<size where !found {
                        for ddx in 0..<size where !found {
                            let idx = (oy * size + ddy) * w + ox * size + ddx
                            if src[idx] == best { dst[idx] += g[oy * ow + ox]; found = true }
                        }
                    }
                }
            }
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
