// Softmax cross-entropy with optional label smoothing, summed over the batch (not averaged): each
// rank's summed-loss gradient is allreduced and divided by the global batch (DESIGN.md, 2.2).
// It also counts the samples right at top-1 and at top-5.

import Foundation

public struct LossResult: Equatable {
    public var lossSum: Double
    /// Top-1: the first index of the largest logit is the label.
    public var correct: Int
    /// Top-5: fewer than 5 classes have a logit strictly larger than the label's. Ties go the
    /// sample's way: a label tied with the 5th largest logit (or with several others) counts as
    /// correct, so every top-1 correct sample is top-5 correct too, and with 5 classes or fewer
    /// every sample is.
    public var top5Correct: Int = 0
}

/// logits, grad: [batch, classes]; targets with smoothing eps are (1 - eps) one-hot + eps / classes.
/// Writes dL/dlogits = softmax - target into `grad` (may be nil for evaluation). Allocates nothing.
/// Counts top-1 and top-5 correct samples (see LossResult for the rule on ties).
public func softmaxCrossEntropy(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
                                smoothing: Double, grad: UnsafeMutablePointer<Float>?) -> LossResult {
    var total = 0.0
    var correct = 0, top5 = 0
    let off = smoothing / Double(classes)
    for b in 0..<batch {
        let z = logits + b * classes
        let label = Int(labels[b])
        var maxZ = z[0]
        var arg = 0
        for j in 1..<classes where z[j] > maxZ { maxZ = z[j]; arg = j }
        if arg == label { correct += 1 }
        let zLabel = z[label]
        var above = 0
        for j in 0..<classes where z[j] > zLabel { above += 1 }
        if above < 5 { top5 += 1 }
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
    return LossResult(lossSum: total, correct: correct, top5Correct: top5)
}
