// Masked 2-D convolution, no bias, any kernel, stride and padding: im2col + sgemm.
// x: [B, C, H, W], W: [Co, K = C*KH*KW], y: [B, Co, OH, OW], P = OH*OW positions per image.
//
// Large images take one sgemm per image: y_b [Co, P] = W_eff col_b [K, P]. Small ones (the late
// stages of a ResNet: 7x7 or 4x4) would give sgemms with N = P = 49 or 16, far from the BLAS
// peak, and a weight gradient dW += dy_b col_b^T whose inner dimension is P: the whole [Co, K]
// gradient read and written once per image. So images go in groups of G, G*P >= columnsPerGEMM:
// the group's columns side by side, col_g [K, G*P], one sgemm, and the output copied from
// channel-major [Co, G*P] back to [G, Co, P] (the gradient dy gathered the other way). A 1x1
// convolution with stride 1 needs no im2col: the image [C, P] is its own column matrix.
// Backward rebuilds the columns instead of keeping a batch of them (memory), then
// dW_eff += dy_g col_g^T and dcol = W_eff^T dy_g, scattered back by col2im. Under the exact
// reduction groups stay inside a chunk, and each chunk's dW_eff goes to the fixed-point sum.
// With `accumulatesInputGradient` (set by a residual block for the convolution whose input is
// also the shortcut's), backward adds dL/dx to what dx holds instead of overwriting it: the sgemm
// with beta 1, col2im without zeroing first, which saves the block a buffer and two passes.
// A 3x3 convolution with padding 1 and channels in multiples of 16, stride 1 (or stride 2 on an
// input of even height and width), runs the direct convolution instead where the CPU has AVX-512
// (DirectConvolution.swift), in the same groups.

import CBLAS
import CKernels

public final class MaskedConv2d: Layer {
    public let kind = "conv2d"
    public let inputShape: Shape
    public let outputShape: Shape
    public let inChannels, outChannels, kernel, stride, padding: Int
    public let height, width, outHeight, outWidth: Int
    public let weights: MaskedWeights
    public var masked: MaskedWeights? { weights }
    /// Its sgemms' seconds and FLOPs while LayerProfile is on.
    public let gemm: GEMMTally
    /// Columns of a group of images [K, G*P], and its output or output gradient [Co, G*P].
    private var col = FloatBuffer(count: 0)
    private var channelMajor = FloatBuffer(count: 0)
    /// Images per sgemm (1 for images of at least `columnsPerGEMM` positions).
    public private(set) var group = 0
    /// 1x1, stride 1, no padding: the image [C, H*W] is its own im2col matrix.
    private let pointwise: Bool
    /// The direct 3x3 convolution, where this layer qualifies for it (else im2col + sgemm).
    let direct: DirectConvolution?
    /// Whether this layer runs the direct 3x3 convolution (AVX-512 or AVX2) rather than im2col + sgemm.
    public var usesDirectConvolution: Bool { direct != nil }
    /// Backward adds dL/dx to dx's contents (a residual block's other path put there) instead of
    /// overwriting them.
    public var accumulatesInputGradient = false
    private var colRows: Int { inChannels * kernel * kernel }
    private var positions: Int { outHeight * outWidth }
    public var forwardFLOPsPerSample: Int { 2 * weights.count * positions }

    /// The smallest sgemm width (G * P) worth grouping images for; tests lower it.
    nonisolated(unsafe) static var columnsPerGEMM = 512

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
        direct = DirectConvolution.qualifies(inChannels: inChannels, outChannels: outChannels, kernel: kernel,
                                             stride: stride, padding: padding, height: height, width: width)
            ? DirectConvolution(inChannels: inChannels, outChannels: outChannels, stride: stride, height: height, width: width)
            : nil
        gemm = GEMMTally(shape: "conv \(kernel)x\(kernel)/\(stride) \(inChannels)->\(outChannels) @\(outHeight)x\(outWidth)",
                         kernel: direct == nil ? "sgemm" : "direct")
        if let direct {  // the exact reduction's chunks arrive in the direct convolution's blocked layout
            weights.accumulateChunks = { direct.accumulateWeightGradients($0, count: $1, into: $2, factor: $3, first: $4) }
        }
    }

    /// Sizes the group and its buffers for batches of up to `batch` images.
    public func reserve(batch: Int) {
        // Under the exact reduction a group never spans two chunks, and its size depends on the
        // chunk alone, not on how many samples this rank holds.
        let cap = weights.plan.exact ? min(batch, weights.plan.chunk) : batch
        let g = min(max(1, cap), max(1, (Self.columnsPerGEMM + positions - 1) / positions))
        guard g > group else { return }
        group = g
        if let direct { direct.reserve(group: g); return }
        let grouped = g > 1
        col = FloatBuffer(count: pointwise && !grouped ? 0 : colRows * g * positions)
        channelMajor = FloatBuffer(count: grouped ? outChannels * g * positions : 0)
    }

    /// Columns [K, n*P] of images first..<first+n with row stride n*P; a single pointwise image is its own.
    @inline(__always)
    private func columns(_ x: UnsafePointer<Float>, first: Int, count n: Int) -> UnsafePointer<Float> {
        if pointwise && n == 1 { return x + first * inputShape.count }
        let ld = n * positions
        for j in 0..<n {
            let image = x + (first + j) * inputShape.count
            if pointwise {
                for c in 0..<inChannels { (col.pointer + c * ld + j * positions).update(from: image + c * positions, count: positions) }
            } else {
                im2col(image, col.pointer + j * positions, ld: ld)
            }
        }
        return UnsafePointer(col.pointer)
    }

    /// [Co, n*P] <-> n images [Co, P] of y (or dy) starting at image `first`.
    @inline(__always)
    private func copyChannelMajor(_ images: UnsafeMutablePointer<Float>, first: Int, count n: Int, toImages: Bool) {
        let P = positions, ld = n * P, outSize = outputShape.count
        for j in 0..<n {
            for co in 0..<outChannels {
                let a = images + (first + j) * outSize + co * P, b = channelMajor.pointer + co * ld + j * P
                if toImages { a.update(from: b, count: P) } else { b.update(from: a, count: P) }
            }
        }
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        reserve(batch: 1)  // a no-op once the model reserved its batch
        if let direct { return directForward(direct, x, y, batch: batch) }
        weights.plan.forEachChunk(batch: batch) { start, count in
            var first = start
            while first < start + count {
                let n = min(group, start + count - first), ld = n * positions
                let cols = columns(x, first: first, count: n)
                let out = n == 1 ? y + first * outputShape.count : channelMajor.pointer
                gemm.time(.forward, m: outChannels, n: ld, k: colRows) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outChannels), Int32(ld), Int32(colRows),
                                1, weights.effective.pointer, Int32(colRows), cols, Int32(ld), 0, out, Int32(ld))
                }
                if n > 1 { copyChannelMajor(y, first: first, count: n, toImages: true) }
                first += n
            }
        }
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        reserve(batch: 1)
        if batch == 0 { weights.effectiveGrad.zero() }
        if let direct { return directBackward(direct, x, dy, dx, batch: batch) }
        weights.plan.forEachChunk(batch: batch) { start, count in
            let g = weights.chunkGradient
            var first = start
            while first < start + count {
                backwardGroup(x, dy, dx, g, first: first, count: min(group, start + count - first), accumulate: first > start)
                first += group
            }
            if count > 0 { weights.chunkDone() }
        }
        weights.gradientDone()
    }

    private func directForward(_ direct: DirectConvolution, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        direct.packForward(weights.effective.pointer)
        var first = 0
        while first < batch {
            let n = min(group, batch - first)
            gemm.time(.forward, m: outChannels, n: n * positions, k: colRows) {
                direct.forward(x + first * inputShape.count, y + first * outputShape.count, count: n)
            }
            first += n
        }
    }

    /// As backward's sgemm path, by the direct convolution: groups inside chunks, each chunk's
    /// weight gradient summed image after image and handed on.
    private func directBackward(_ direct: DirectConvolution, _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                                _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        if dx != nil { direct.packBackward(weights.effective.pointer) }
        weights.plan.forEachChunk(batch: batch) { start, count in
            // The chunk's blocked sums: in a buffer of the exact reduction's (accumulateChunks adds
            // them), or the direct convolution's own, unpacked below into dL/dW_eff.
            let sums = weights.exactGrad == nil ? direct.gradBlocks.pointer : weights.chunkGradient
            var first = start
            while first < start + count {
                let n = min(group, start + count - first)
                gemm.time(.weightGradient, m: outChannels, n: colRows, k: n * positions) {
                    direct.weightGradient(x + first * inputShape.count, dy + first * outputShape.count, count: n,
                                          into: sums, first: first == start)
                }
                if let dx {
                    gemm.time(.inputGradient, m: colRows, n: n * positions, k: outChannels) {
                        direct.inputGradient(dy + first * outputShape.count, dx + first * inputShape.count, count: n,
                                             accumulate: accumulatesInputGradient)
                    }
                }
                first += n
            }
            if count > 0 {
                if weights.exactGrad != nil {
                    weights.chunkDone()
                } else {  // the float reduction: dL/dW_eff itself
                    direct.finishWeightGradient(weights.effectiveGrad.pointer)
                }
            }
        }
        weights.gradientDone()
    }

    /// Backward of images first..<first+n, one sgemm group: dW_eff (+)= dy_g col_g^T, and dx.
    @inline(__always)
    private func backwardGroup(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>?,
                               _ g: UnsafeMutablePointer<Float>, first: Int, count n: Int, accumulate: Bool) {
        let ld = n * positions
        let grad: UnsafePointer<Float>
        if n == 1 {
            grad = dy + first * outputShape.count
        } else {
            copyChannelMajor(UnsafeMutablePointer(mutating: dy), first: first, count: n, toImages: false)
            grad = UnsafePointer(channelMajor.pointer)
        }
        let cols = columns(x, first: first, count: n)
        // dW_eff [Co, K] (+)= dy_g [Co, n*P] col_g^T [n*P, K]
        gemm.time(.weightGradient, m: outChannels, n: colRows, k: ld) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(outChannels), Int32(colRows), Int32(ld),
                        1, grad, Int32(ld), cols, Int32(ld), accumulate ? 1 : 0, g, Int32(colRows))
        }
        guard let dx else { return }
        let add = accumulatesInputGradient
        if pointwise && n == 1 {
            // dx_b [C, P] (+)= W_eff^T [C, Co] dy_b [Co, P]
            gemm.time(.inputGradient, m: colRows, n: ld, k: outChannels) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(colRows), Int32(ld), Int32(outChannels), 1,
                            weights.effective.pointer, Int32(colRows), grad, Int32(ld), add ? 1 : 0, dx + first * inputShape.count, Int32(ld))
            }
        } else {
            // dcol [K, n*P] = W_eff^T [K, Co] dy_g [Co, n*P], reusing col's storage.
            gemm.time(.inputGradient, m: colRows, n: ld, k: outChannels) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(colRows), Int32(ld), Int32(outChannels),
                            1, weights.effective.pointer, Int32(colRows), grad, Int32(ld), 0, col.pointer, Int32(ld))
            }
            for j in 0..<n {
                let image = dx + (first + j) * inputShape.count
                if pointwise {
                    for c in 0..<inChannels {
                        let from = col.pointer + c * ld + j * positions
                        if add { addInPlace(image + c * positions, from, count: positions) } else { (image + c * positions).update(from: from, count: positions) }
                    }
                } else {
                    col2im(col.pointer + j * positions, image, ld: ld, accumulate: add)
                }
            }
        }
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

    /// A stride-1 "same" convolution (kernel 2p+1): output and input rows have the same width, so
    /// each col row is the channel shifted by (ki-p, kj-p) rows/columns, one contiguous block; only
    /// the columns a horizontal shift wraps around and the rows past the top or bottom are zero.
    private var shiftsWholeRows: Bool { stride == 1 && kernel > 1 && kernel == 2 * padding + 1 }

    /// For a col row of tap (ki, kj) of a shiftsWholeRows convolution: the output rows inside the
    /// image, the flattened source offset of output position 0 within the channel, and the output
    /// columns whose source wrapped into a neighbouring row.
    @inline(__always)
    private func shift(_ ki: Int, _ kj: Int) -> (rows: Range<Int>, offset: Int, wrapped: Range<Int>) {
        let dy = ki - padding, dx = kj - padding, W = width
        let top = min(height, max(0, -dy))  // a shift past the whole image leaves no row inside
        let rows = top..<max(top, min(height, height - dy))
        let wrapped = dx < 0 ? 0..<min(W, -dx) : max(0, W - dx)..<W
        return (rows, dy * W + dx, wrapped)
    }

    /// body(col row of tap (c, ki, kj), c, shift(ki, kj)) for every tap, in im2col's row order.
    @inline(__always)
    private func forEachTap(_ col: UnsafeMutablePointer<Float>, ld: Int,
                            _ body: (UnsafeMutablePointer<Float>, Int, Range<Int>, Int, Range<Int>) -> Void) {
        for c in 0..<inChannels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let (rows, offset, wrapped) = shift(ki, kj)
                    body(col + ((c * kernel + ki) * kernel + kj) * ld, c, rows, offset, wrapped)
                }
            }
        }
    }

    /// col [C*KH*KW, OH*OW] from one image [C, H, W], rows `ld` floats apart; zero where the
    /// window leaves the image.
    func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, ld: Int) {
        if shiftsWholeRows {
            let W = width, plane = height * width
            forEachTap(col, ld: ld) { row, c, rows, offset, wrapped in
                let first = rows.lowerBound * W, end = rows.upperBound * W
                row.update(repeating: 0, count: first)
                (row + end).update(repeating: 0, count: plane - end)
                // Sources outside the channel only ever feed wrapped columns, zeroed below.
                let lo = max(first, -offset), hi = min(end, plane - offset)
                if hi > lo { (row + lo).update(from: x + c * plane + lo + offset, count: hi - lo) }
                for oy in rows { for ox in wrapped { row[oy * W + ox] = 0 } }
            }
            return
        }
        for c in 0..<inChannels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * ld
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

    /// The adjoint of im2col: dx [C, H, W] = sum of dcol's entries at the pixels they were read from
    /// (added to dx's contents with `accumulate`). Each pixel gets its taps added in the same
    /// (ki, kj) order on both paths. The fast path zeroes the entries of `col` that read padding
    /// (their gradient is discarded anyway).
    func col2im(_ col: UnsafeMutablePointer<Float>, _ dx: UnsafeMutablePointer<Float>, ld: Int, accumulate: Bool = false) {
        if !accumulate { dx.update(repeating: 0, count: inputShape.count) }
        if shiftsWholeRows {
            let W = width, plane = height * width
            forEachTap(col, ld: ld) { row, c, rows, offset, wrapped in
                for oy in rows { for ox in wrapped { row[oy * W + ox] = 0 } }
                let lo = max(rows.lowerBound * W, -offset), hi = min(rows.upperBound * W, plane - offset)
                if hi > lo { addInPlace(dx + c * plane + lo + offset, row + lo, count: hi - lo) }
            }
            return
        }
        for c in 0..<inChannels {
            for ki in 0..<kernel {
                for kj in 0..<kernel {
                    let row = col + ((c * kernel + ki) * kernel + kj) * ld
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

/// dst[i] += src[i] (CKernels: AVX2 where the CPU has it).
@inline(__always)
func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count n: Int) { hm_add_inplace(dst, src, n) }
