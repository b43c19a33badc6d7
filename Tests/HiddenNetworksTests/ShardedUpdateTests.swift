// The sharded update (ShardedUpdate.swift) against the replicated one: the ranks' jointly
// selected masks equal one process's top-k, ties at the threshold included, and training with
// every method (edge-popup at k < 1 with Nesterov and k = 1, dense, supermask) on 2, 3 and 5 in-process ranks
// ends with the same scores and momentum, bit for bit, as on one.

import Foundation
import XCTest
@testable import HiddenNetworks

final class ShardedUpdateTests: XCTestCase {
    /// Runs `body(rank)` on `size` threads at once (the ranks of one InProcessGroup).
    func onRanks(_ size: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchGroup()
        for r in 0..<size {
            done.enter()
            let thread = Thread { body(r); done.leave() }
            thread.stackSize = 8 << 20
            thread.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "a collective hung")
    }

    func testSharesCoverEveryLayerInBlocksOfFour() {
        for n in [1, 3, 4, 5, 17, 100, 1001] {
            for p in 1...7 {
                let shares = (0..<p).map { ShardedUpdate.share(count: n, rank: $0, size: p) }
                XCTAssertEqual(shares.first?.lowerBound, 0)
                XCTAssertEqual(shares.last?.upperBound, n)
                for (a, b) in zip(shares, shares.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound, "n \(n) p \(p)") }
                XCTAssert(shares.allSatisfy { $0.lowerBound % 4 == 0 || $0.isEmpty }, "n \(n) p \(p): \(shares)")
                let sizes = shares.map(\.count)
                XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 4, "balanced to a block: n \(n) p \(p)")
            }
        }
    }

    /// Scores with few distinct magnitudes (so thousands of ties at every threshold) and some
    /// zeros: every rank's W_eff after the joint selection equals one process's, and each rank's
    /// share of the mask equals the same share of one process's mask.
    func testJointSelectionEqualsOneProcessTopKWithTies() throws {
        let config = ModelConfig(architecture: .fc, width: 0.1, k: 0.3, seed: 4, inputShape: Shape([50]), classes: 7)
        func tied(_ model: Model) {
            for i in 0..<model.parameterCount { model.scores[i] = Float(i % 5) * 0.25 * (i % 3 == 0 ? -1 : 1) }
        }
        let reference = try Model(config, maxBatch: 4, chunk: 2)
        tied(reference)
        reference.updateMasks()
        for size in [2, 3, 5] {
            let group = InProcessGroup(size: size)
            let models = try (0..<size).map { _ in try Model(config, maxBatch: 4, chunk: 2) }
            let updates = (0..<size).map { r -> ShardedUpdate in
                tied(models[r])
                return ShardedUpdate(model: models[r], optimizer: Optimizer(config: OptimizerConfig(), count: models[r].parameterCount),
                                     comm: InProcessGroup.Member(group, rank: r))
            }
            onRanks(size) { r in updates[r].updateMasks(draw: nil) }
            for r in 0..<size {
                for (l, m) in models[r].masked.enumerated() {
                    let ref = reference.masked[l]
                    XCTAssertEqual(m.effective.array.map(\.bitPattern), ref.effective.array.map(\.bitPattern), "W_eff of layer \(l), rank \(r) of \(size)")
                    let share = updates[r].ranges[l]
                    XCTAssertEqual(Array(m.mask.array[share]), Array(ref.mask.array[share]), "mask share of layer \(l), rank \(r) of \(size)")
                }
            }
        }
        // The reference keeps exactly the top-k count of each layer, with ties.
        for m in reference.masked { XCTAssertEqual(Int(m.mask.array.reduce(0, +)), m.kept) }
    }

    func testEveryMethodTrainsToTheSameBitsOnAnyNumberOfRanks() throws {
        let spec = SyntheticSpec(shape: Shape([20]), classes: 4, trainCount: 96, testCount: 24)
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 3)
        let cases: [(String, TrainingMethod, Double, Double)] = [("edge-popup k 0.5", .edgePopup, 0.5, 0.5), ("edge-popup k 1", .edgePopup, 1, 0.5),
                                                                  ("dense", .dense, 0.5, 0.05), ("supermask", .supermask, 0.5, 50),
                                                                  ("edge-popup adam", .edgePopup, 0.5, 0.01), ("dense adam", .dense, 0.5, 0.003)]
        for (what, method, k, lr) in cases {
            var c = TrainConfig(model: ModelConfig(architecture: .fc, width: 0.2, k: k, weightInit: method.defaultInit, seed: 3,
                                                   inputShape: spec.shape, classes: spec.classes, method: method))
            // Nesterov on the first case: the fused edge-popup step has a loop of its own for it.
            c.optimizer = OptimizerConfig(lr: lr, momentum: 0.9, weightDecay: 1e-4, nesterov: what == "edge-popup k 0.5")
            if what.hasSuffix("adam") { c.optimizer = .adam(lr: lr, weightDecay: 1e-4) }
            c.epochs = 2
            c.globalBatch = 24
            c.chunk = 4
            let single = try Trainer(config: c, data: data, comm: SingleProcessCommunicator())
            var singleEpochs: [EpochMetrics] = []
            single.run(onEpoch: { singleEpochs.append($0) })
            for size in [2, 3, 5] {
                let group = InProcessGroup(size: size)
                let trainers = try (0..<size).map { try Trainer(config: c, data: data, comm: InProcessGroup.Member(group, rank: $0)) }
                XCTAssertNotNil(trainers[0].sharded, what)
                final class Box: @unchecked Sendable { var epochs: [[EpochMetrics]]; init(_ n: Int) { epochs = Array(repeating: [], count: n) } }
                let box = Box(size)
                let lock = NSLock()
                onRanks(size) { r in
                    var mine: [EpochMetrics] = []
                    trainers[r].run(onEpoch: { mine.append($0) })
                    trainers[r].gatherState()
                    lock.lock(); box.epochs[r] = mine; lock.unlock()
                }
                for r in 0..<size {
                    XCTAssertEqual(trainers[r].model.scores.array.map(\.bitPattern), single.model.scores.array.map(\.bitPattern), "\(what): scores, rank \(r) of \(size)")
                    XCTAssertEqual(trainers[r].optimizer.momentum.array.map(\.bitPattern), single.optimizer.momentum.array.map(\.bitPattern), "\(what): momentum, rank \(r) of \(size)")
                    XCTAssertEqual(trainers[r].optimizer.secondMoment?.array.map(\.bitPattern), single.optimizer.secondMoment?.array.map(\.bitPattern), "\(what): second moments, rank \(r) of \(size)")
                    XCTAssertEqual(box.epochs[r].map(\.test_loss.bitPattern), singleEpochs.map(\.test_loss.bitPattern), "\(what): test loss, rank \(r) of \(size)")
                    XCTAssertEqual(box.epochs[r].map(\.train_loss.bitPattern), singleEpochs.map(\.train_loss.bitPattern), "\(what): train loss, rank \(r) of \(size)")
                }
            }
        }
    }
}
