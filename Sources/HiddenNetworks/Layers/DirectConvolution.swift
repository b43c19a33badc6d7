// The direct 3x3 convolution (padding 1, channels in multiples of 16; stride 1, or stride 2 on
// inputs of even height and width) that MaskedConv2d runs instead of im2col + sgemm where the CPU
// has AVX-512 (or, with HIDDEN_MPI_CONV=avx2, AVX2; CKernels/direct_conv*.c): the input gets a zero
// border (stride 2: and is split into its four row/column parities), the weights are laid out in
// blocks of 16 output channels once per forward (and once per backward), and a micro-kernel keeps
// a tile of outputs in registers for the whole reduction. No im2col matrix, so no 9x copy of the
// input for OpenBLAS to pack again: the layers with 64 channels, where that copy cost as much as the arithmetic, gain
// most (Docs/performance.md). A stride-2 layer's input gradient goes as four stride-1
// convolutions, one per parity class of input positions, with the taps that reach it.
//
// The results differ from the sgemm path's in their rounding (another summation order) and are
// the same on every run, rank count and batch split: a sample's output and input gradient are
// its own, and a chunk's weight gradient sums its images in order. The AVX-512 and AVX2 kernels do
// the same fused multiply-adds in the same order: nodes with either give the same bits.

import CKernels
import Foundation

public final class DirectConvolution {
    let inChannels, outChannels, stride: Int
    let height, width: Int                                // the input's
    let outHeight, outWidth: Int
    private var paddedInput = FloatBuffer(count: 0)       // [n][C][H+2][W+2]; stride 2: [n][C][4][OH+1][OW+1]
    private var paddedGrad = FloatBuffer(count: 0)        // [n][Co][OH+2][OW+2]
    private var blockedGrad = FloatBuffer(count: 0)       // [n][Co/16][OH][OW][16]
    private var partialSums = FloatBuffer(count: 0)       // [n][2][OH][OW][16]
    private var classParts = FloatBuffer(count: 0)        // stride 2: [n][C][OH][OW], one parity class of dx
    private let forwardWeights, backwardWeights: FloatBuffer
    /// The blocked weight-gradient sums of a chunk under the float reduction.
    let gradBlocks: FloatBuffer
    private let unpackedBlock: FloatBuffer                // [16][C][3][3]: one output block's weight gradient
    private var paddedCount: Int { stride == 1 ? (height + 2) * (width + 2) : 4 * (outHeight + 1) * (outWidth + 1) }

    /// Whether the process may use it. By default where the CPU has AVX-512; HIDDEN_MPI_CONV=avx2
    /// takes the AVX2 kernels (on a CPU with AVX-512 too: the same bits, at half the vector width),
    /// HIDDEN_MPI_CONV=im2col none. On CPUs with AVX2 alone the AVX2 kernels are not the default:
    /// on the one machine measured (a Xeon, OpenBLAS's AVX2 kernel forced for im2col) they only
    /// tied im2col + sgemm (Docs/performance.md). Layers also need one BLAS thread per rank (the
    /// kernel has one thread; with more, sgemm's threads win).
    nonisolated(unsafe) static var enabled: Bool = {
        switch setting.lowercased() {
        case "im2col": return false
        case "avx2": return hm_conv3x3_limit(1) == 1
        default: return hm_conv3x3_limit(-1) == 2
        }
    }()

    private static let setting = ProcessInfo.processInfo.environment["HIDDEN_MPI_CONV"] ?? ""

    /// HIDDEN_MPI_CONV's value where it is none of "im2col" and "avx2" (nor empty): the default
    /// then applies, and the run's header says so.
    public static var ignoredSetting: String? {
        ["", "im2col", "avx2"].contains(setting.lowercased()) ? nil : setting
    }

    /// The instruction set of the kernels the direct convolution runs on this CPU ("" for none).
    public static var instructionSet: String {
        guard enabled else { return "" }
        switch hm_conv3x3_available() {
        case 2: return "AVX-512"
        case 1: return "AVX2"
        default: return ""
        }
    }

    /// The level (hm_conv3x3_available) at which this process runs CKernels' own kernels, the
    /// direct convolution's and the fully connected layers' (linear.c); nil where it may not
    /// (switched off, neither instruction set, or more than one BLAS thread): sgemm then.
    static var ownKernelLevel: Int32? {
        enabled && hm_conv3x3_available() != 0 && BLASThreads.current == 1 ? hm_conv3x3_available() : nil
    }

    static func qualifies(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int, height: Int,
                          width: Int) -> Bool {
        kernel == 3 && padding == 1 && inChannels % 16 == 0 && outChannels % 16 == 0
            && (stride == 1 || (stride == 2 && height % 2 == 0 && width % 2 == 0)) && ownKernelLevel != nil
    }

    init(inChannels: Int, outChannels: Int, stride: Int, height: Int, width: Int) {
        precondition(stride == 1 || (stride == 2 && height % 2 == 0 && width % 2 == 0))
        (self.inChannels, self.outChannels, self.stride, self.height, self.width) = (inChannels, outChannels, stride, height, width)
        (outHeight, outWidth) = (height / stride, width / stride)
        let count = inChannels * outChannels * 9
        forwardWeights = FloatBuffer(count: count)
        unpackedBlock = FloatBuffer(count: 16 * inChannels * 9)
        backwardWeights = FloatBuffer(count: count)
        gradBlocks = FloatBuffer(count: count)
    }

    /// Buffers for groups of up to `group` images.
    func reserve(group: Int) {
        paddedInput = FloatBuffer(count: group * inChannels * paddedCount)
        let outPositions = outHeight * outWidth
        paddedGrad = FloatBuffer(count: group * outChannels * (outHeight + 2) * (outWidth + 2))
        blockedGrad = FloatBuffer(count: group * outChannels * outPositions)
        partialSums = FloatBuffer(count: group * outPositions * 32)  // two output blocks
        if stride == 2 { classParts = FloatBuffer(count: group * inChannels * outPositions) }
    }

    func packForward(_ w: UnsafePointer<Float>) {
        hm_conv3x3_pack_forward(w, forwardWeights.pointer, Int32(inChannels), Int32(outChannels))
    }

    func packBackward(_ w: UnsafePointer<Float>) {
        if stride == 2 {
            hm_conv3x3_pack_s2_backward(w, backwardWeights.pointer, Int32(inChannels), Int32(outChannels))
        } else {
            hm_conv3x3_pack_backward(w, backwardWeights.pointer, Int32(inChannels), Int32(outChannels))
        }
    }

    /// The input's zero border (stride 2: and its four parities) for n images x [n][C][H][W].
    private func padInput(_ x: UnsafePointer<Float>, count n: Int) {
        let (c, h, w) = (Int32(inChannels), Int32(height), Int32(width))
        if stride == 2 {
            hm_conv3x3_split2(x, paddedInput.pointer, c, h, w, Int32(n))
        } else {
            hm_conv3x3_pad(x, paddedInput.pointer, c, h, w, Int32(n))
        }
    }

    /// y [n][Co][OH][OW] of images x [n][C][H][W].
    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        let (c, co, oh, ow) = (Int32(inChannels), Int32(outChannels), Int32(outHeight), Int32(outWidth))
        padInput(x, count: n)
        if stride == 2 {
            hm_conv3x3_s2(paddedInput.pointer, forwardWeights.pointer, y, c, co, oh, ow, Int32(n), partialSums.pointer)
        } else {
            hm_conv3x3(paddedInput.pointer, forwardWeights.pointer, y, c, co, oh, ow, Int32(n), 0, partialSums.pointer)
        }
    }

    /// The weight gradient of n images, added to the blocked sums `sums` (gradBlocks, or a buffer
    /// of the exact reduction's; started when `first`).
    func weightGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, count n: Int, into sums: UnsafeMutablePointer<Float>,
                        first: Bool) {
        let (c, co, oh, ow) = (Int32(inChannels), Int32(outChannels), Int32(outHeight), Int32(outWidth))
        padInput(x, count: n)
        hm_conv3x3_block(dy, blockedGrad.pointer, co, oh, ow, Int32(n))
        if stride == 2 {
            hm_conv3x3_s2_weight_grad(paddedInput.pointer, blockedGrad.pointer, sums, c, co, oh, ow, Int32(n), first ? 1 : 0)
        } else {
            hm_conv3x3_weight_grad(paddedInput.pointer, blockedGrad.pointer, sums, c, co, oh, ow, Int32(n), first ? 1 : 0)
        }
    }

    /// dx [n][C][H][W] (+)= the input gradient of n images' dy.
    func inputGradient(_ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count n: Int, accumulate: Bool) {
        let (c, co, oh, ow) = (Int32(inChannels), Int32(outChannels), Int32(outHeight), Int32(outWidth))
        hm_conv3x3_pad(dy, paddedGrad.pointer, co, oh, ow, Int32(n))
        if stride == 2 {
            hm_conv3x3_s2_input_grad(paddedGrad.pointer, backwardWeights.pointer, dx, c, co, oh, ow, Int32(n), accumulate ? 1 : 0,
                                     partialSums.pointer, classParts.pointer)
        } else {
            hm_conv3x3(paddedGrad.pointer, backwardWeights.pointer, dx, co, c, oh, ow, Int32(n), accumulate ? 1 : 0,
                       partialSums.pointer)
        }
    }

    /// The blocked weight-gradient sums to dW [Co][C][3][3].
    func finishWeightGradient(_ dw: UnsafeMutablePointer<Float>) {
        hm_conv3x3_unpack_weight_grad(gradBlocks.pointer, dw, Int32(inChannels), Int32(outChannels))
    }

    /// Exact reduction: `count` chunks' blocked weight-gradient sums added to the fixed-point sum
    /// `acc` ([Co][C][3][3]) one output block at a time, the same integers as finishWeightGradient
    /// then FixedPoint.accumulate for each, without the unpacked dW going through memory. False
    /// when a value was out of range.
    func accumulateWeightGradients(_ sums: UnsafePointer<UnsafePointer<Float>?>, count: Int, into acc: UnsafeMutablePointer<Int64>,
                                   factor: Double, first: Bool) -> Bool {
        hm_conv3x3_accumulate_weight_grads(sums, Int32(count), unpackedBlock.pointer, acc, Int32(inChannels), Int32(outChannels),
                                           factor, first ? 1 : 0) != 0
    }
}
