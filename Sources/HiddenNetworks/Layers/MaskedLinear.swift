// Masked fully connected layer, no bias. x: [B, In] (any input shape, flattened), W: [Out, In],
// y: [B, Out] = x W_eff^T. One sgemm forward, two backward (per chunk under the exact reduction).

import CBLAS

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

    public init(input: Shape, outFeatures: Int, k: Double) {
        inputShape = input
        inFeatures = input.count
        self.outFeatures = outFeatures
        outputShape = Shape([outFeatures])
        weights = MaskedWeights(count: inFeatures * outFeatures, fanIn: inFeatures, fanOut: outFeatures, k: k,
                                shape: [outFeatures, inFeatures])
        gemm = GEMMTally(shape: "linear \(inFeatures)->\(outFeatures)")
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        guard batch > 0 else { return }
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
        weights.gradientDone()
        guard let dx, batch > 0 else { return }
        weights.plan.forEachChunk(batch: batch) { first, n in
            // dx [n, In] = dy [n, Out] W_eff [Out, In]
            gemm.time(.inputGradient, m: n, n: inFeatures, k: outFeatures) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(inFeatures), Int32(outFeatures),
                            1, dy + first * outFeatures, Int32(outFeatures), weights.effective.pointer, Int32(inFeatures),
                            0, dx + first * inFeatures, Int32(inFeatures))
            }
        }
    }
}
