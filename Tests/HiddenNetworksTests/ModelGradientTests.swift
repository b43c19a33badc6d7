// A whole Model end to end: the score gradients Model.backward leaves in `scoreGrads` against
// sign(S) * W * dL/dW_eff, with dL/dW_eff from central differences of the summed softmax
// cross-entropy, for sampled kept and pruned edges of every masked layer.
//
// The loss is piecewise smooth: it has kinks wherever a ReLU input crosses 0 or a max-pool window
// changes its maximum, and a perturbation of one early weight moves hundreds of units. So the
// differences are taken with the model's own layers on buffers of ours, recording the activation
// pattern (ReLU signs, pool winners); a step counts only if neither side changes the pattern, where
// L is smooth. An edge whose every step changes it sits on a kink (a ReLU input exactly 0, as where
// all kept taps of a filter read padding): L is not differentiable there and the edge is skipped.

import XCTest
@testable import HiddenNetworks

final class ModelGradientTests: XCTestCase {
    /// The model's layers run on our own buffers: loss and activation pattern.
    struct Probe {
        let model: Model
        let labels: [Int32]
        let batch: Int
        let smoothing: Double
        let outputs: [FloatBuffer]

        init(_ model: Model, labels: [Int32], smoothing: Double) {
            self.model = model; self.labels = labels; batch = labels.count; self.smoothing = smoothing
            let b = labels.count
            outputs = model.layers.map { FloatBuffer(count: b * $0.outputShape.count) }
        }

        func run() -> (loss: Double, pattern: [Int32], logits: [Float]) {
            var x = UnsafePointer(model.input.pointer)
            var pattern: [Int32] = []
            for (layer, y) in zip(model.layers, outputs) {
                let n = batch * layer.inputShape.count
                if layer is ReLU {
                    for i in 0..<n { pattern.append(x[i] > 0 ? 1 : 0) }
                }
                layer.forward(x, y.pointer, batch: batch)
                if let pool = layer as? MaxPool2d {
                    // Index of the first maximum of every window, as the backward pass routes it.
                    let (c, h, w) = (pool.inputShape.dims[0], pool.inputShape.dims[1], pool.inputShape.dims[2])
                    let (oh, ow, s) = (h / pool.size, w / pool.size, pool.size)
                    for plane in 0..<(batch * c) {
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                var best = -Float.infinity, arg: Int32 = -1
                                for dy in 0..<s {
                                    for dx in 0..<s {
                                        let v = x[plane * h * w + (oy * s + dy) * w + ox * s + dx]
                                        if v > best { best = v; arg = Int32(dy * s + dx) }
                                    }
                                }
                                pattern.append(arg)
                            }
                        }
                    }
                }
                x = UnsafePointer(y.pointer)
            }
            let classes = model.config.classes
            let loss = softmaxCrossEntropy(logits: x, labels: labels, batch: batch, classes: classes, smoothing: smoothing, grad: nil).lossSum
            return (loss, pattern, Array(UnsafeBufferPointer(start: x, count: batch * classes)))
        }
    }

    /// dL/dp over steps that keep the activation pattern: central where both sides keep it; else
    /// one-sided (second order) on a side that keeps it, which is the piece the backward pass's
    /// conventions describe (ReLU'(0) = 0: a ReLU input at exactly 0 that stays <= 0). Nil when
    /// every step changes the pattern on both sides.
    func smoothDifference(_ probe: Probe, at p: UnsafeMutablePointer<Float>, base: (loss: Double, pattern: [Int32])) -> Double? {
        let orig = p.pointee
        defer { p.pointee = orig }
        func at(_ offset: Float) -> (x: Double, loss: Double, same: Bool) {
            p.pointee = orig + offset
            let r = probe.run()
            return (Double(p.pointee) - Double(orig), r.loss, r.pattern == base.pattern)
        }
        for step: Float in [1e-2, 3e-3, 1e-3, 3e-4] {
            let plus = at(step), minus = at(-step)
            if plus.same && minus.same { return (plus.loss - minus.loss) / (plus.x - minus.x) }
        }
        for step: Float in [1e-3, 3e-4] {
            for sign: Float in [1, -1] {
                let one = at(sign * step), two = at(2 * sign * step)
                guard one.same && two.same else { continue }
                // Fit L(x) = L0 + a x + b x^2 through the three points; a is the slope at p.
                let (x1, x2) = (one.x, two.x)
                let (d1, d2) = ((one.loss - base.loss) / x1, (two.loss - base.loss) / x2)
                return (d1 * x2 - d2 * x1) / (x2 - x1)
            }
        }
        return nil
    }

    func checkModel(_ config: ModelConfig, batch: Int, samplesPerLayer: Int, smoothing: Double = 0,
                    file: StaticString = #filePath, line: UInt = #line) throws {
        let pass = try ModelForwardPass(config, batch: batch, seed: config.seed &+ 100, smoothing: smoothing)
        let model = pass.model
        var rng = pass.rng
        model.backward(logitGrad: pass.logitGrad.pointer, batch: batch)
        let scoreGrads = model.scoreGrads.array

        let probe = Probe(model, labels: pass.labels, smoothing: smoothing)
        let base = probe.run()
        XCTAssertEqual(base.logits, pass.logits, "the layers run one by one give Model.forward's logits", file: file, line: line)

        let maskedLayers = model.layers.filter { $0.masked != nil }
        for (l, m) in model.masked.enumerated() {
            let offset = model.offsets[l]
            var checked = 0, kinks = 0, biggest: Float = 0
            for j in sampledEdges(m, perKind: samplesPerLayer / 2, largestOf: { scoreGrads[offset + $0] }, rng: &rng) {
                let s = model.scores[offset + j]
                // dL/dS = factor * dL/dW_eff: straight-through for edge-popup and supermask, 1 for dense.
                let factor: Double
                switch config.method {
                case .edgePopup: factor = straightThroughFactor(score: s, weight: m.weights[j])
                case .dense: factor = 1
                case .supermask:
                    let p = 1 / (1 + exp(-Double(s)))
                    factor = Double(m.weights[j]) * p * (1 - p)
                }
                let analytic = Double(scoreGrads[offset + j])
                guard let fd = smoothDifference(probe, at: m.effective.pointer + j, base: (base.loss, base.pattern)) else { kinks += 1; continue }
                checked += 1
                biggest = max(biggest, Float(abs(analytic)))
                XCTAssert(isClose(analytic, factor * fd, rtol: 1e-2, atol: 1e-3),
                          "\(config.architecture) layer \(l) (\(maskedLayers[l].summary)) edge \(j) mask \(m.mask[j]): dL/dS \(analytic), sign(S) W dL/dW_eff by differences \(factor * fd)",
                          file: file, line: line)
            }
            XCTAssertLessThanOrEqual(kinks, (checked + kinks) / 3, "layer \(l): \(kinks) of \(checked + kinks) sampled edges sit on kinks", file: file, line: line)
            XCTAssertGreaterThan(biggest, 5e-3, "layer \(l): checked score gradients all but zero, the check is vacuous", file: file, line: line)
        }
    }

    func testConv2ScoreGradients() throws {
        let config = ModelConfig(architecture: .conv2, width: 0.125, k: 0.5, weightInit: .signedConstant,
                                 seed: 3, inputShape: Shape([1, 8, 8]), classes: 10)
        try checkModel(config, batch: 3, samplesPerLayer: 10)
    }

    func testConv2NonSquareScoreGradients() throws {
        let config = ModelConfig(architecture: .conv2, width: 0.125, k: 0.3, weightInit: .kaimingNormal,
                                 seed: 8, inputShape: Shape([2, 6, 7]), classes: 4)
        try checkModel(config, batch: 2, samplesPerLayer: 10, smoothing: 0.1)
    }

    func testFCScoreGradients() throws {
        let config = ModelConfig(architecture: .fc, width: 0.1, k: 0.3, weightInit: .kaimingNormal,
                                 seed: 4, inputShape: Shape([12]), classes: 5)
        try checkModel(config, batch: 4, samplesPerLayer: 12, smoothing: 0.1)
    }

    /// The dense baseline: the trained parameters are the weights, dL/dW straight from the layers.
    func testDenseWeightGradients() throws {
        try checkConv2AndFC(.dense, weightInit: .kaimingNormal, seed: 5, convInput: Shape([1, 8, 8]), classes: 6)
    }

    /// The supermask baseline: dL/dS = W * dL/dW_eff * sigmoid'(S) through the sampled mask.
    func testSupermaskScoreGradients() throws {
        try checkConv2AndFC(.supermask, weightInit: .signedConstant, seed: 6, convInput: Shape([2, 8, 8]), classes: 5)
    }

    /// A small conv2, then a small fc, trained by `method`.
    func checkConv2AndFC(_ method: TrainingMethod, weightInit: WeightInit, seed: UInt64, convInput: Shape, classes: Int,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        var config = ModelConfig(architecture: .conv2, width: 0.125, k: 0.5, weightInit: weightInit,
                                 seed: seed, inputShape: convInput, classes: classes, method: method)
        try checkModel(config, batch: 3, samplesPerLayer: 10, file: file, line: line)
        config.architecture = .fc; config.inputShape = Shape([10]); config.width = 0.1
        try checkModel(config, batch: 4, samplesPerLayer: 12, smoothing: 0.1, file: file, line: line)
    }

    func testLayerListsAndParameterCounts() throws {
        // REFERENCE.md's parameter counts for a 32x32x3 input (10 classes) and 784 for FC.
        let table: [(Architecture, Shape, Int)] = [
            (.conv2, Shape([3, 32, 32]), 4_300_992),
            (.conv4, Shape([3, 32, 32]), 2_425_024),
            (.conv6, Shape([3, 32, 32]), 2_261_184),
            (.conv8, Shape([3, 32, 32]), 5_275_840),
            (.fc, Shape([784]), 266_200),
        ]
        for (arch, shape, count) in table {
            let layers = try arch.layers(input: shape, classes: 10, width: 1, k: 0.5)
            XCTAssertEqual(layers.compactMap { $0.masked }.reduce(0) { $0 + $1.count }, count, "\(arch)")
            XCTAssertEqual(layers.last?.outputShape, Shape([10]))
            for (a, b) in zip(layers, layers.dropFirst()) {
                XCTAssertEqual(a.outputShape.count, b.inputShape.count, "\(arch): \(a.summary) then \(b.summary)")
            }
        }
        assertThrowsHiddenError(try Architecture.conv2.layers(input: Shape([784]), classes: 10, width: 1, k: 0.5),
                                containing: ["needs image input"])
        assertThrowsHiddenError(try Architecture.conv8.layers(input: Shape([1, 8, 8]), classes: 10, width: 0.125, k: 0.5),
                                containing: ["does not fit input"])
    }
}
