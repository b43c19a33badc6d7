// Softmax cross-entropy with optional label smoothing, summed over the batch (not averaged): each
// rank's summed-loss gradient is allreduced and divided by the global batch (DESIGN.md, 2.2).

import Foundation

public struct LossResult: Equatable {
    public var lossSum: Double
    public var correct: Int
}

/// logits, grad: [batch, classes]; targets with smoothing eps are (1 - eps) one-hot + eps / classes.
/// Writes dL/dlogits = softmax - target into `grad` (may be nil for evaluation).
public func softmaxCrossEntropy(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
                                smoothing: Double, grad: UnsafeMutablePointer<Float>?) -> LossResult {
    var total = 0.0
    var correct = 0
    let off = smoothing / Double(classes)
    for b in 0..<batch {
        let z = logits + b * classes
        let label = Int(labels[b])
        var maxZ = z[0]
        var arg = 0
        for j in 1..<classes where z[j] > maxZ { maxZ = z[j]; arg = j }
        if arg == label { correct += 1 }
        var sum = 0.0
        for j in 0..<classes { sum += exp(Double(z[j] - maxZ)) }
        let logSum = log(sum)
        var loss = 0.0
        for j in 0..<classes {
            let logp = Double(z[j] - maxZ) - logSum
            let target = (j == label ? 1 - smoothing : 0) + off
            loss -= target * logp
            if let grad { grad[b * classes + j] = Float(exp(logp) - target) }
        }
        total += loss
    }
    return LossResult(lossSum: total, correct: correct)
}
