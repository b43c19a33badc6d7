// Pooling: max-pool with any square window, stride and padding (the Conv models' 2x2 "pool" and
// the ImageNet ResNets' 3x3/2 pad 1 after the stem), and global average pooling (the ResNets'
// last spatial layer). x: [B, C, H, W].

import CKernels

/// Max-pool. Forward remembers where each maximum was (the first in row-major order, on ties);
/// backward sends each gradient there. Padding counts as -infinity, as in PyTorch, so a window
/// always takes one of the image's own pixels.
public final class MaxPool2d: Layer {
    public let kind = "maxpool"
    public let inputShape: Shape
    public let outputShape: Shape
    public let kernel, stride, padding: Int
    /// The window's side (the Conv models' pool has stride = size and no padding).
    public var size: Int { kernel }
    /// Input offset (within the image plane) of each output's maximum.
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var argmaxCapacity = 0

    /// The Conv models' pool: a `size` x `size` window with stride `size`, no padding.
    public convenience init(input: Shape, size: Int = 2) throws {
        try self.init(input: input, kernel: size, stride: size, padding: 0)
    }

    public init(input: Shape, kernel: Int, stride: Int, padding: Int) throws {
        guard input.dims.count == 3, kernel >= 1, stride >= 1, padding >= 0, 2 * padding <= kernel,
              input.dims[1] + 2 * padding >= kernel, input.dims[2] + 2 * padding >= kernel else {
            throw HiddenError("a \(kernel)x\(kernel) max-pool does not fit an input of \(input) (stride \(stride), padding \(padding))")
        }
        inputShape = input; self.kernel = kernel; self.stride = stride; self.padding = padding
        outputShape = Shape([input.dims[0], (input.dims[1] + 2 * padding - kernel) / stride + 1,
                             (input.dims[2] + 2 * padding - kernel) / stride + 1])
    }

    deinit { argmax.deallocate() }

    /// The Conv models' 2x2 pool, which CKernels runs vectorised (the same bits as the loops here;
    /// so is the ImageNet ResNets' 3x3/2 pool's forward pass).
    private var isPlain2x2: Bool { kernel == 2 && stride == 2 && padding == 0 }

    public func reserve(batch: Int) {
        guard batch * outputShape.count > argmaxCapacity else { return }
        argmax.deallocate()
        argmaxCapacity = batch * outputShape.count
        argmax = .allocate(capacity: argmaxCapacity)
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        let (c, h, w) = (inputShape.dims[0], inputShape.dims[1], inputShape.dims[2])
        let (oh, ow) = (outputShape.dims[1], outputShape.dims[2])
        reserve(batch: batch)  // a no-op once the model reserved its largest batch
        if isPlain2x2 { hm_maxpool2_forward(x, y, argmax, batch * c, h, w); return }
        if kernel == 3 && stride == 2 && padding == 1 { hm_maxpool3s2_forward(x, y, argmax, batch * c, h, w); return }
        for plane in 0..<(batch * c) {
            let src = x + plane * h * w, dst = y + plane * oh * ow, arg = argmax + plane * oh * ow
            for oy in 0..<oh {
                let y0 = max(0, oy * stride - padding), y1 = min(h, oy * stride - padding + kernel)
                for ox in 0..<ow {
                    let x0 = max(0, ox * stride - padding), x1 = min(w, ox * stride - padding + kernel)
                    var best = -Float.infinity
                    var at = y0 * w + x0
                    for iy in y0..<y1 {
                        for ix in x0..<x1 where src[iy * w + ix] > best {
                            best = src[iy * w + ix]; at = iy * w + ix
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
        if isPlain2x2 { hm_maxpool2_backward(dy, argmax, dx, batch * c, h, w); return }
        let outPlane = outputShape.dims[1] * outputShape.dims[2]
        dx.update(repeating: 0, count: batch * inputShape.count)
        for plane in 0..<(batch * c) {
            let g = dy + plane * outPlane, dst = dx + plane * h * w, arg = argmax + plane * outPlane
            for o in 0..<outPlane { dst[Int(arg[o])] += g[o] }
        }
    }
}

/// Global average pooling: [C, H, W] -> [C], each channel's mean over its H x W positions
/// (PyTorch's AdaptiveAvgPool2d(1) followed by flatten).
public final class GlobalAvgPool: Layer {
    public let kind = "avgpool"
    public let inputShape: Shape
    public let outputShape: Shape
    private let channels, plane: Int

    public init(input: Shape) throws {
        guard input.dims.count == 3 else { throw HiddenError("global average pooling needs an image input CxHxW, got \(input)") }
        inputShape = input
        channels = input.dims[0]; plane = input.dims[1] * input.dims[2]
        outputShape = Shape([channels])
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        let scale = 1 / Float(plane)
        for p in 0..<(batch * channels) {
            let src = x + p * plane
            var sum: Float = 0
            for i in 0..<plane { sum += src[i] }
            y[p] = sum * scale
        }
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let dx else { return }
        let scale = 1 / Float(plane)
        for p in 0..<(batch * channels) { (dx + p * plane).update(repeating: dy[p] * scale, count: plane) }
    }
}
