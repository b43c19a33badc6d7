// The random initialisations of REFERENCE.md. Weight i of layer l is a pure function of
// (seed, l, i): the weights stream with sub-stream l, element i. `--scale-fan` replaces fan by
// fan * k as the paper does (std grows by sqrt(1/k)); the reference's (1 - k) is not copied.

import Foundation

public enum WeightInit: String, CaseIterable, Sendable {
    case kaimingNormal = "kaiming-normal"
    case signedConstant = "signed-constant"
    case unsignedConstant = "unsigned-constant"
    case kaimingUniform = "kaiming-uniform"
    case xavierNormal = "xavier-normal"
    case xavierConstant = "xavier-constant"

    /// The scale each init uses: a standard deviation, a constant's magnitude or a uniform bound.
    public func scale(fanIn: Int, fanOut: Int, scaleFan: Bool, k: Double) -> Double {
        let f = scaleFan ? k : 1.0
        let gain = 2.0.squareRoot()
        switch self {
        case .kaimingNormal, .signedConstant, .unsignedConstant:
            return gain / (Double(fanIn) * f).squareRoot()
        case .kaimingUniform:
            return gain * (3.0 / (Double(fanIn) * f)).squareRoot()
        case .xavierNormal, .xavierConstant:
            return (2.0 / (Double(fanIn + fanOut) * f)).squareRoot()
        }
    }

    /// Fills `count` weights of layer `layer`.
    public func fill(_ w: UnsafeMutablePointer<Float>, count: Int, layer: Int, seed: UInt64,
                     fanIn: Int, fanOut: Int, scaleFan: Bool, k: Double) {
        let s = scale(fanIn: fanIn, fanOut: fanOut, scaleFan: scaleFan, k: k)
        let stream = RandomStream(seed: seed, purpose: .weights, sub: UInt32(layer))
        for i in 0..<count {
            let v: Double
            switch self {
            case .kaimingNormal, .xavierNormal:
                v = s * stream.normal(UInt64(i))
            case .signedConstant, .xavierConstant:
                v = stream.words(UInt64(i)).0 & 1 == 0 ? s : -s
            case .unsignedConstant:
                v = s
            case .kaimingUniform:
                v = s * (2 * stream.uniform(UInt64(i)) - 1)
            }
            w[i] = Float(v)
        }
    }
}

/// Scores start U(-1/sqrt(fan_in), +1/sqrt(fan_in)) (PyTorch's kaiming_uniform with a = sqrt(5)),
/// from their own stream.
public func initScores(_ s: UnsafeMutablePointer<Float>, count: Int, layer: Int, seed: UInt64, fanIn: Int) {
    let bound = 1.0 / Double(fanIn).squareRoot()
    let stream = RandomStream(seed: seed, purpose: .scores, sub: UInt32(layer))
    for i in 0..<count { s[i] = Float(bound * (2 * stream.uniform(UInt64(i)) - 1)) }
}
