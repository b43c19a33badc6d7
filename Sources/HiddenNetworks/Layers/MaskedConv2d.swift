// Masked 2-D convolution, no bias, any kernel, stride and padding: im2col + sgemm per image; a
// 1x1 convolution with stride 1 is a plain sgemm on the image itself (no im2col, no col2im).
// x: [B, C, H, W], W: [Co, C*KH*KW], y: [B, Co, OH, OW]. Per image y_b = W_eff col_b; backward
// rebuilds col_b instead of keeping a batch of them (memory), then dW_eff += dy_b col_b^T and
// dcol = W_eff^T dy_b, scattered back by col2im.

import CBLAS

public final class MaskedConv2d: Layer {
    public let kind = "conv2d"
    public let inputShape: Shape
    public let outputShape: Shape
    public let inChannels, outChannels, kernel, stride, padding: Int
    public let height, width, outHeight, outWidth: Int
    public let weights: MaskedWeights
    public var masked: MaskedWeights? { weights }
    private let col: FloatBuffer
    /// 1x1, stride 1, no padding: the image [C, H*W] is its own im2col matrix.
    private let pointwise: Bool
    private var colRows: Int { inChannels * kernel * kernel }
    private var positions: Int { outHeight * outWidth }
    public var forwardFLOPsPerSample: Int { 2 * weights.count * positions }

    /// Throws when the kernel does not fit the input.
    public init(input: Shape, outChannels: Int, kernel: Int = 3, stride: Int = 1, padding: Int = 1, k: Double) throws {
        guard input.dims.count == 3 else {
            throw HiddenError("conv2d needs an image input CxHxW, got \(input)")
        }
        inputShape = input
        (inChannels, height, width) = (input.dims[0], input.dims[1], input.dims[2])
        self.outChannels = outChannels; self.kernel = kernel; self.stride = stride; self.padding = padding
        outHeight = (height + 2 * padding - kernel) / stride + 1
        outWidth = (width + 2 * padding - kernel) / stride + 1
        guard height + 2 * padding >= kernel, width + 2 * padding >= kernel, outHeight > 0, outWidth > 0 else {
            throw HiddenError("a \(kernel)x\(kernel) convolution does not fit an input of \(input)")
        }
        outputShape = Shape([outChannels, outHeight, outWidth])
        let rows = inChannels * kernel * kernel
        weights = MaskedWeights(count: outChannels * rows, fanIn: rows, fanOut: outChannels * kernel * kernel, k: k,
                                shape: [outChannels, inChannels, kernel, kernel])
        pointwise = kernel == 1 && stride == 1 && padding == 0
        col = FloatBuffer(count: pointwise ? 0 : rows * outHeight * outWidth)
    }

    /// The im2col matrix [C*KH*KW, OH*OW] of image b: the image itself when pointwise.
    @inline(__always)
    private func columns(_ x: UnsafePointer<Float>, image b: Int) -> UnsafePointer<Float> {
        if pointwise { return x + b * inputShape.count }
        im2col(x + b * inputShape.count, col.pointer)
        return UnsafePointer(col.pointer)
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        let outSize = outputShape.count
        for b in 0..<batch {
            let cols = columns(x, image: b)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outChannels), Int32(positions), Int32(colRows),
                        1, weights.effective.pointer, Int32(colRows), cols, Int32(positions),
                        0, y + b * outSize, Int32(positions))
        }
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        let inSize = inputShape.count, outSize = outputShape.count
        let g = weights.effectiveGrad.pointer
        if batch == 0 { weights.effectiveGrad.zero() }
        for b in 0..<batch {
            let cols = columns(x, image: b)
            // dW_eff [Co, K] (+)= dy_b [Co, P] col_b^T [P, K]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(outChannels), Int32(colRows), Int32(positions),
                        1, dy + b * outSize, Int32(positions), cols, Int32(positions),
                        b == 0 ? 0 : 1, g, Int32(colRows))
            if let dx, pointwise {
                // dx_b [C, P] = W_eff^T [C, Co] dy_b [Co, P]
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(colRows), Int32(positions), Int32(outChannels),
                            1, weights.effective.pointer, Int32(colRows), dy + b * outSize, Int32(positions),
                            0, dx + b * inSize, Int32(positions))
            } else if let dx {
                // dcol [K, P] = W_eff^T [K, Co] dy_b [Co, P], reusing col's storage.
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(colRows), Int32(positions), Int32(outChannels),
                            1, weights.effective.pointer, Int32(colRows), dy + b * outSize, Int32(positions),
                            0, col.pointer, Int32(positions))
                col2im(col.pointer, dx + b * inSize)
            }
        }
        weights.accumulateScoreGrad()
    }

    /// Output columns ox whose input column ox * stride - padding + kj lies inside the image.
    @inline(__always)
    private func validColumns(_ kj: Int) -> Range<Int> {
        // ix = ox * stride - padding + kj in [0, width)  <=>  ox in [ceil((p - kj) / s), ceil((W + p - kj) / s))
        func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
        let lo = max(0, ceilDiv(padding - kj, stride))
        let hi = min(outWidth, ceilDiv(width + padding - kj, stride))
        return lo..<max(lo, hi)
    }

    /// col [C*KH*KW, OH*OW] from one image [C, H, W]; zero where the window leaves the image.
    func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>) {
        let P = positions
        for c in 0..<inChannels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * P
                    let valid = validColumns(kj)
                    for oy in 0..<outHeight {
                        let iy = oy * stride - padding + ki
                        let out = row + oy * outWidth
                        if iy < 0 || iy >= height || valid.isEmpty {
                            out.update(repeating: 0, count: outWidth); continue
                        }
                        let src = x + (c * height + iy) * width - padding + kj
                        if valid.lowerBound > 0 { out.update(repeating: 0, count: valid.lowerBound) }
                        if stride == 1 {
                            (out + valid.lowerBound).update(from: src + valid.lowerBound, count: valid.count)
                        } else {
                            for ox in valid { out[ox] = src[ox * stride] }
                        }
                        if valid.upperBound < outWidth {
                            (out + valid.upperBound).update(repeating: 0, count: outWidth - valid.upperBound)
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of im2col: dx [C, H, W] = sum of dcol's entries at the pixels they were read from.
    func col2im(_ col: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
        let P = positions
        dx.update(repeating: 0, count: inputShape.count)
        for c in 0..<inChannels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * P
                    let valid = validColumns(kj)
                    for oy in 0..<outHeight {
                        let iy = oy * stride - padding + ki
                        if iy < 0 || iy >= height { continue }
                        let dst = dx + (c * height + iy) * width - padding + kj
                        let src = row + oy * outWidth
                        if stride == 1 {
                            addInPlace(dst + valid.lowerBound, src + valid.lowerBound, count: valid.count)
                        } else {
                            for ox in valid { dst[ox * stride] += src[ox] }
                        }
                    }
                }
            }
        }
    }
}

/// dst[i] += src[i], 16 lanes at a time (the compiler cannot rule out aliasing by itself).
@inline(__always)
func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count n: Int) {
    let d = UnsafeMutableRawPointer(dst), s = UnsafeRawPointer(src)
    var i = 0
    while i + 16 <= n {
        let v = d.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) + s.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        d.storeBytes(of: v, toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i + 4 <= n {
        let v = d.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self) + s.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self)
        d.storeBytes(of: v, toByteOffset: 4 * i, as: SIMD4<Float>.self)
        i += 4
    }
    while i < n { dst[i] += src[i]; i += 1 }
}
