// The paper's baselines on the same models: dense (the weights are trained, from the same init)
// and Zhou et al.'s supermask (masks sampled from sigmoid(scores) at every pass). Their gradients
// are checked against finite differences in ModelGradientTests; here, what is sampled and trained.

import XCTest
@testable import HiddenNetworks

final class BaselineTests: XCTestCase {
    func fcConfig(_ method: TrainingMethod, seed: UInt64 = 2) -> ModelConfig {
        ModelConfig(architecture: .fc, width: 0.5, k: 0.5, weightInit: .kaimingNormal, seed: seed,
                    inputShape: Shape([40]), classes: 5, method: method)
    }

    /// 256 training and 128 test samples of 40 features in 5 classes (fcConfig's input).
    func syntheticData() throws -> Dataset {
        let spec = SyntheticSpec(shape: Shape([40]), classes: 5, trainCount: 256, testCount: 128)
        return try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)
    }

    /// The sample of draw t is a pure function of (seed, layer, t, index): two models agree, another
    /// draw or seed differs, and the fraction kept follows sigmoid(S).
    func testSupermaskSamplesArePureFunctionsOfSeedLayerAndDraw() throws {
        let a = try Model(fcConfig(.supermask), maxBatch: 1), b = try Model(fcConfig(.supermask), maxBatch: 1)
        let c = try Model(fcConfig(.supermask, seed: 3), maxBatch: 1)
        a.updateMasks(draw: 7); b.updateMasks(draw: 7)
        for (ma, mb) in zip(a.masked, b.masked) {
            XCTAssertEqual(ma.mask.array, mb.mask.array)
            XCTAssertEqual(ma.kept, Int(ma.mask.array.reduce(0, +)))
            for i in 0..<ma.count {
                XCTAssert(ma.mask[i] == 0 || ma.mask[i] == 1)
                XCTAssertEqual(ma.effective[i], ma.weights[i] * ma.mask[i])
            }
        }
        let first = a.masked.map(\.mask.array)
        a.updateMasks(draw: 8)
        XCTAssertNotEqual(a.masked.map(\.mask.array), first, "a new draw gives a new sample")
        a.updateMasks(draw: 7)
        XCTAssertEqual(a.masked.map(\.mask.array), first, "the same draw gives the same sample again")
        c.updateMasks(draw: 7)
        XCTAssertNotEqual(c.masked[0].scores[0], a.masked[0].scores[0], "another seed, other scores")

        // Fraction kept against the mean probability, with the scores set to spread p over (0, 1).
        let m = a.masked[0]
        var rng = TestRNG(11)
        for i in 0..<m.count { m.scores[i] = 3 * rng.normal() }
        var expected = 0.0
        for i in 0..<m.count { expected += 1 / (1 + exp(-Double(m.scores[i]))) }
        var total = 0
        for draw: UInt64 in 0..<20 { m.updateMask(draw: draw); total += m.kept }
        let mean = Double(total) / 20
        // Sum of 20 x count Bernoullis: sd about sqrt(20 n / 4) / 20, well under 1% of n here.
        XCTAssertEqual(mean, expected, accuracy: 0.01 * Double(m.count), "kept per draw \(mean), sum of p \(expected)")
        for i in 0..<m.count { m.scores[i] = i % 2 == 0 ? 30 : -30 }
        m.updateMask(draw: 3)
        XCTAssertEqual(m.mask.array, (0..<m.count).map { $0 % 2 == 0 ? 1 : 0 }, "p near 1 keeps, p near 0 drops")
    }

    /// The supermask score gradient of the sample just drawn: W * dL/dW_eff * p (1 - p) with p
    /// recomputed from the scores, after the scores moved between two draws.
    func testSupermaskGradientUsesTheCurrentProbabilities() throws {
        let model = try Model(fcConfig(.supermask), maxBatch: 1)
        var rng = TestRNG(5)
        for draw: UInt64 in [1, 2] {
            for i in 0..<model.scores.count { model.scores[i] = 2 * rng.normal() }
            model.updateMasks(draw: draw)
            for m in model.masked {
                for i in 0..<m.count { m.effectiveGrad[i] = rng.normal() }
                m.accumulateScoreGrad()
                for i in stride(from: 0, to: m.count, by: 7) {
                    let p = 1 / (1 + exp(-Double(m.scores[i])))
                    let expected = Double(m.weights[i]) * Double(m.effectiveGrad[i]) * p * (1 - p)
                    XCTAssertEqual(Double(m.scoreGrad[i]), expected, accuracy: 1e-5 * max(1, abs(expected)), "draw \(draw) weight \(i)")
                }
            }
        }
        // Evaluation (no draw) has a sample of its own, the same every time.
        model.updateMasks()
        let evaluation = model.masked.map(\.mask.array)
        model.updateMasks(draw: 0)
        XCTAssertNotEqual(model.masked.map(\.mask.array), evaluation, "evaluation's sample is not training step 0's")
        model.updateMasks()
        XCTAssertEqual(model.masked.map(\.mask.array), evaluation)
    }

    /// Dense: the parameters start as the init, W_eff is the parameters, training moves them while
    /// the frozen init (and so the weight checksum) stays.
    func testDenseTrainsTheWeightsFromTheInit() throws {
        let data = try syntheticData()
        var config = TrainConfig(model: fcConfig(.dense))
        config.optimizer = OptimizerConfig(lr: 0.05, momentum: 0.9, weightDecay: 1e-4)
        config.epochs = 3; config.globalBatch = 32
        let trainer = try Trainer(config: config, data: data, comm: SingleProcessCommunicator())
        let model = trainer.model
        let checksum = model.weightChecksum()
        for m in model.masked {
            XCTAssertEqual(m.kept, m.count)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: m.scores, count: m.count)), m.weights.array)
        }
        let before = model.scores.array
        var epochs: [EpochMetrics] = []
        trainer.run(onEpoch: { epochs.append($0) })
        XCTAssertEqual(model.weightChecksum(), checksum, "the frozen init is not what trains")
        XCTAssertNotEqual(model.scores.array, before, "the weights were trained")
        model.updateMasks()
        for m in model.masked {
            XCTAssertEqual(m.effective.array, Array(UnsafeBufferPointer(start: m.scores, count: m.count)))
            XCTAssert(m.mask.array.allSatisfy { $0 == 1 })
        }
        XCTAssertLessThan(epochs[2].train_loss, epochs[0].train_loss, "\(epochs.map(\.train_loss))")
        XCTAssertGreaterThan(epochs[2].test_acc, 0.2 + 0.2, "\(epochs.map(\.test_acc))")
    }

    /// Supermask trains too: the loss falls with the paper's very high learning rate.
    func testSupermaskLearnsTheSyntheticTask() throws {
        let data = try syntheticData()
        var config = TrainConfig(model: fcConfig(.supermask))
        config.optimizer = OptimizerConfig(lr: TrainingMethod.supermask.defaultLR, momentum: 0.9, weightDecay: 0)
        config.epochs = 4; config.globalBatch = 32
        let trainer = try Trainer(config: config, data: data, comm: SingleProcessCommunicator())
        var epochs: [EpochMetrics] = []
        trainer.run(onEpoch: { epochs.append($0) })
        XCTAssertLessThan(epochs[3].train_loss, epochs[0].train_loss, "\(epochs.map(\.train_loss))")
        XCTAssertGreaterThan(epochs[3].test_acc, 0.2 + 0.15, "\(epochs.map(\.test_acc))")
    }
}
