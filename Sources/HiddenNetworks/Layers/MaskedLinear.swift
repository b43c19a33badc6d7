// Masked fully connected layer, no bias. x: [B, In] (any input shape, flattened), W: [Out, In],
// y: [B, Out] = x W_eff^T. Where the direct convolution runs, CKernels' own kernels (linear.c):
// a sample's sums never depend on the other samples of a call, so the whole batch takes one call,
// and the weight gradient goes straight into the exact reduction's fixed-point sum. Elsewhere one
// sgemm forward and two backward, per chunk under the exact reduction.

import CBLAS
import CKernels

public final class MaskedLinear: Layer {
    public let kind = "linear"
    public let inputShape: Shape
    public let outputShape: Shape
    public let inFeatures: Int
    public let outFeatures: Int
    public let weights: MaskedWeights
    public var masked: MaskedWeights? { weights }
    /// Its sgemms' seconds and FLOPs while LayerProfile is on.
    public let gemm: GEMMTally
    public var forwardFLOPsPerSample: Int { 2 * inFeatures * outFeatures }
    /// The own kernels' level (hm_conv3x3_available), nil for sgemm.
    public let kernelLevel: Int32?

    public init(input: Shape, outFeatures: Int, k: Double) {
        inputShape = input
        inFeatures = input.count
        self.outFeatures = outFeatures
        outputShape = Shape([outFeatures])
        weights = MaskedWeights(count: inFeatures * outFeatures, fanIn: inFeatures, fanOut: outFeatures, k: k,
                                shape: [outFeatures, inFeatures])
        kernelLevel = DirectConvolution.ownKernelLevel
        gemm = GEMMTally(shape: "linear \(inFeatures)->\(outFeatures)", kernel: kernelLevel == nil ? "sgemm" : "own")
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        guard batch > 0 else { return }
        if let level = kernelLevel {
            gemm.time(.forward, m: batch, n: outFeatures, k: inFeatures) {
                hm_linear_forward(x, weights.effective.pointer, y, batch, inFeatures, outFeatures, level)
            }
            return
        }
        // Under the exact reduction one sgemm per chunk, so that a sample's output never depends
        // on how many other samples share its sgemm.
        weights.plan.forEachChunk(batch: batch) { first, n in
            gemm.time(.forward, m: n, n: outFeatures, k: inFeatures) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(outFeatures), Int32(inFeatures),
                            1, x + first * inFeatures, Int32(inFeatures), weights.effective.pointer, Int32(inFeatures),
                            0, y + first * outFeatures, Int32(outFeatures))
            }
        }
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        if batch == 0 { weights.effectiveGrad.zero() }
        let plan = weights.plan
        if let level = kernelLevel, plan.exact, batch > 0 {
            // Every chunk of the batch into the fixed-point sum in one call.
            gemm.time(.weightGradient, m: outFeatures, n: inFeatures, k: batch) {
                weights.addChunks((batch + plan.chunk - 1) / plan.chunk) { sum, factor, first in
                    hm_linear_weight_grad_fixed(dy, x, batch, plan.chunk, inFeatures, outFeatures, sum, factor,
                                                first ? 1 : 0, level) != 0
                }
            }
        } else {
            sgemmWeightGradient(x, dy, batch: batch)
        }
        weights.gradientDone()
        guard let dx, batch > 0 else { return }
        if let level = kernelLevel {
            gemm.time(.inputGradient, m: batch, n: inFeatures, k: outFeatures) {
                hm_linear_input_grad(dy, weights.effective.pointer, dx, batch, inFeatures, outFeatures, level)
            }
            return
        }
        weights.plan.forEachChunk(batch: batch) { first, n in
            // dx [n, In] = dy [n, Out] W_eff [Out, In]
            gemm.time(.inputGradient, m: n, n: inFeatures, k: outFeatures) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(inFeatures), Int32(outFeatures),
                            1, dy + first * outFeatures, Int32(outFeatures), weights.effective.pointer, Int32(inFeatures),
                            0, dx + first * inFeatures, Int32(inFeatures))
            }
        }
    }

    /// dL/dW_eff by sgemm, one chunk at a time (one piece under the float reduction).
    private func sgemmWeightGradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, batch: Int) {
        weights.plan.forEachChunk(batch: batch) { first, n in
            guard n > 0 else { return }
            let g = weights.chunkGradient
            // dW_eff [Out, In] = dy^T [Out, n] x [n, In], each chunk's added to the exact sum
            gemm.time(.weightGradient, m: outFeatures, n: inFeatures, k: n) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), Int32(n),
                            1, dy + first * outFeatures, Int32(outFeatures), x + first * inFeatures, Int32(inFeatures), 0, g, Int32(inFeatures))
            }
            weights.chunkDone()
        }
    }
}
