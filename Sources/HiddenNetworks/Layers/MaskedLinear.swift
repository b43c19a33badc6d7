// Masked fully connected layer, no bias. x: [B, In] (any input shape, flattened), W: [Out, In],
// y: [B, Out] = x W_eff^T. One sgemm forward, two backward.

import CBLAS

public final class MaskedLinear: Layer {
    public let kind = "linear"
    public let inputShape: Shape
    public let outputShape: Shape
    public let inFeatures: Int
    public let outFeatures: Int
    public let weights: MaskedWeights
    public var masked: MaskedWeights? { weights }
    public var forwardFLOPsPerSample: Int { 2 * inFeatures * outFeatures }

    public init(input: Shape, outFeatures: Int, k: Double) {
        inputShape = input
        inFeatures = input.count
        self.outFeatures = outFeatures
        outputShape = Shape([outFeatures])
        weights = MaskedWeights(count: inFeatures * outFeatures, fanIn: inFeatures, fanOut: outFeatures, k: k,
                                shape: [outFeatures, inFeatures])
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        guard batch > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(batch), Int32(outFeatures), Int32(inFeatures),
                    1, x, Int32(inFeatures), weights.effective.pointer, Int32(inFeatures), 0, y, Int32(outFeatures))
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        let g = weights.effectiveGrad.pointer
        guard batch > 0 else { weights.effectiveGrad.zero(); weights.accumulateScoreGrad(); return }
        // dW_eff [Out, In] = dy^T [Out, B] x [B, In]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), Int32(batch),
                    1, dy, Int32(outFeatures), x, Int32(inFeatures), 0, g, Int32(inFeatures))
        weights.accumulateScoreGrad()
        if let dx {
            // dx [B, In] = dy [B, Out] W_eff [Out, In]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(batch), Int32(inFeatures), Int32(outFeatures),
                        1, dy, Int32(outFeatures), weights.effective.pointer, Int32(inFeatures), 0, dx, Int32(inFeatures))
        }
    }
}
