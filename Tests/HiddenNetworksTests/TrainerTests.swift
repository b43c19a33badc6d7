// The trainer end to end on a small synthetic set: it learns, it is bit-reproducible, it refuses
// impossible rank counts, per-rank slices tile each global batch, and P in-process "ranks"
// (threads joined by a test communicator) follow the one-process trajectory up to summation
// order (DESIGN.md invariant 2).

import Foundation
import XCTest
@testable import HiddenNetworks

/// A communicator of any rank and size whose collectives do nothing: enough to build a trainer
/// as rank r of P and ask for its slices.
final class FakeCommunicator: Communicator {
    let rank: Int, size: Int
    init(rank: Int = 0, size: Int) { self.rank = rank; self.size = size }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) {}
    func allreduce(_ values: inout [Double], op: ReduceOp) {}
    func barrier() {}
    func abort(code: Int32) -> Never { fatalError("abort(\(code)) in a test") }
}

/// P communicators in one process, one per thread: each collective waits for every rank and
/// combines the contributions in rank order, like a deterministic MPI allreduce.
final class InProcessGroup {
    let size: Int
    private let condition = NSCondition()
    private var contributions: [[Double]?]
    private var result: [Double] = []
    private var generation = 0

    init(size: Int) { self.size = size; contributions = Array(repeating: nil, count: size) }

    func collective(rank: Int, _ mine: [Double], _ combine: ([[Double]]) -> [Double]) -> [Double] {
        condition.lock()
        defer { condition.unlock() }
        contributions[rank] = mine
        if contributions.allSatisfy({ $0 != nil }) {
            result = combine(contributions.map { $0! })
            contributions = Array(repeating: nil, count: size)
            generation += 1
            condition.broadcast()
            return result
        }
        let waitingFor = generation
        while generation == waitingFor { condition.wait() }
        return result
    }

    final class Member: Communicator {
        let group: InProcessGroup, rank: Int
        init(_ group: InProcessGroup, rank: Int) { self.group = group; self.rank = rank }
        var size: Int { group.size }
        func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
            // Summed in Float, rank after rank, as an MPI_SUM over MPI_FLOAT would.
            let out = group.collective(rank: rank, buffer.map(Double.init)) { parts in
                (0..<parts[0].count).map { i in Double(parts.reduce(Float(0)) { $0 + Float($1[i]) }) }
            }
            for i in 0..<buffer.count { buffer[i] = Float(out[i]) }
        }
        func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) {
            // Wrapping int64 sums, carried through the collective as the doubles' bit patterns.
            let out = group.collective(rank: rank, buffer.map { Double(bitPattern: UInt64(bitPattern: $0)) }) { parts in
                (0..<parts[0].count).map { i in
                    Double(bitPattern: UInt64(bitPattern: parts.reduce(Int64(0)) { $0 &+ Int64(bitPattern: $1[i].bitPattern) }))
                }
            }
            for i in 0..<buffer.count { buffer[i] = Int64(bitPattern: out[i].bitPattern) }
        }
        func allreduce(_ values: inout [Double], op: ReduceOp) {
            values = group.collective(rank: rank, values) { parts in
                (0..<parts[0].count).map { i in
                    let column = parts.map { $0[i] }
                    switch op {
                    case .sum: return column.reduce(0, +)
                    case .max: return column.max()!
                    case .min: return column.min()!
                    }
                }
            }
        }
        func barrier() { _ = group.collective(rank: rank, []) { _ in [] } }
        func abort(code: Int32) -> Never { fatalError("abort(\(code)) in a test") }
    }
}

final class TrainerTests: XCTestCase {
    let spec = SyntheticSpec(shape: Shape([20]), classes: 4, trainCount: 256, testCount: 128)

    func config(epochs: Int = 3, batch: Int = 32, lr: Double = 0.5, seed: UInt64 = 1) -> TrainConfig {
        var c = TrainConfig(model: ModelConfig(architecture: .fc, width: 0.2, k: 0.5, weightInit: .signedConstant,
                                               seed: seed, inputShape: spec.shape, classes: spec.classes))
        c.optimizer = OptimizerConfig(lr: lr, momentum: 0.9, weightDecay: 1e-4)
        c.epochs = epochs
        c.globalBatch = batch
        c.schedule = .cosine
        return c
    }

    func train(_ config: TrainConfig, data: Dataset, comm: Communicator = SingleProcessCommunicator())
        throws -> (steps: [StepMetrics], epochs: [EpochMetrics], trainer: Trainer) {
        let trainer = try Trainer(config: config, data: data, comm: comm)
        var steps: [StepMetrics] = [], epochs: [EpochMetrics] = []
        trainer.run(onStep: { steps.append($0) }, onEpoch: { epochs.append($0) })
        return (steps, epochs, trainer)
    }

    func testLearnsTheSyntheticTask() throws {
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)
        let (steps, epochs, trainer) = try train(config(), data: data)
        XCTAssertEqual(trainer.stepsPerEpoch, 8)
        XCTAssertEqual(steps.count, 24)
        XCTAssertEqual(steps.map(\.step), Array(1...24))
        XCTAssertEqual(steps.map(\.stepInEpoch), Array(repeating: Array(1...8), count: 3).flatMap { $0 })
        XCTAssertEqual(epochs.map(\.epoch), [1, 2, 3])
        XCTAssertEqual(epochs.map(\.steps), [8, 8, 8])
        XCTAssertEqual(epochs.map(\.world_size), [1, 1, 1])
        let schedule = config().lrSchedule
        XCTAssertEqual(epochs.map(\.lr), (0..<3).map { schedule.lr(epoch: $0) })
        XCTAssert(steps.allSatisfy { $0.loss.isFinite && (0...1).contains($0.accuracy) })
        for t in steps.map(\.timing) {
            let phases = [t.data, t.mask, t.forward, t.backward, t.allreduceWait, t.optimizer]
            XCTAssert(phases.allSatisfy { $0 >= 0 }, "negative phase time \(t)")
            XCTAssertEqual(phases.reduce(0, +), t.total, accuracy: 1e-9, "phases do not add up to the step")
        }
        // The epoch's train loss is the mean of its steps' losses (equal batches).
        XCTAssertEqual(epochs[0].train_loss, steps[0..<8].reduce(0) { $0 + $1.loss } / 8, accuracy: 1e-9)
        let chance = 1 / Double(spec.classes)
        XCTAssertLessThan(epochs[2].train_loss, epochs[0].train_loss, "train loss did not fall: \(epochs.map(\.train_loss))")
        XCTAssertLessThan(epochs[2].train_loss, 0.9 * log(Double(spec.classes)), "train loss: \(epochs.map(\.train_loss))")
        XCTAssertGreaterThan(epochs[2].test_acc, chance + 0.2, "test accuracy \(epochs.map(\.test_acc))")
        XCTAssertGreaterThan(epochs[2].train_acc, chance + 0.2, "train accuracy \(epochs.map(\.train_acc))")
        // The evaluation the epoch reported is what evaluate() gives for the final scores.
        let (testLoss, testAcc) = trainer.evaluate()
        XCTAssertEqual(testLoss, epochs[2].test_loss)
        XCTAssertEqual(testAcc, epochs[2].test_acc)
    }

    func testSameSeedIsBitIdentical() throws {
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)
        var c = config(epochs: 2)
        c.optimizer.nesterov = true
        c.labelSmoothing = 0.1
        let a = try train(c, data: data), b = try train(c, data: data)
        XCTAssertEqual(a.steps.map { $0.loss.bitPattern }, b.steps.map { $0.loss.bitPattern })
        XCTAssertEqual(a.steps.map(\.accuracy), b.steps.map(\.accuracy))
        XCTAssertEqual(a.epochs.map { $0.test_loss.bitPattern }, b.epochs.map { $0.test_loss.bitPattern })
        XCTAssertEqual(a.trainer.model.scores.array, b.trainer.model.scores.array)
        XCTAssertEqual(a.trainer.optimizer.momentum.array, b.trainer.optimizer.momentum.array)
        // Another seed takes another path.
        let other = try train(config(epochs: 2, seed: 2), data: data)
        XCTAssertNotEqual(a.steps.map(\.loss), other.steps.map(\.loss))
    }

    func testMaxStepsAndPartialLastBatch() throws {
        // 250 samples in batches of 32: seven full steps and one of 26.
        let small = SyntheticSpec(shape: Shape([20]), classes: 4, trainCount: 250, testCount: 10)
        let data = try loadDataset(.synthetic, directory: nil, synthetic: small, seed: 3)
        let full = try train(config(epochs: 1), data: data)
        XCTAssertEqual(full.steps.count, 8)
        XCTAssert(full.steps.allSatisfy { $0.stepsPerEpoch == 8 })
        var capped = config(epochs: 3)
        capped.maxSteps = 5
        let (steps, epochs, trainer) = try train(capped, data: data)
        XCTAssertEqual(steps.count, 5)
        XCTAssertEqual(trainer.globalStep, 5)
        XCTAssertEqual(epochs.count, 1)
        XCTAssertEqual(epochs.first?.steps, 5)
    }

    func testRefusesMoreRanksThanTheBatchOrTheData() throws {
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)
        var three = config(batch: 3)
        three.reduction = .float
        assertThrowsHiddenError(try Trainer(config: three, data: data, comm: FakeCommunicator(size: 4)),
                                containing: ["global batch 3", "smaller than the 4 ranks"], hintContaining: ["--batch-size", "-np 3"])
        XCTAssertNoThrow(try Trainer(config: config(batch: 4), data: data, comm: FakeCommunicator(size: 4)))
        // The exact reduction gives ranks whole chunks: batch 32 in chunks of 8 serves 4 ranks, not 5.
        var chunked = config(batch: 32)
        chunked.chunk = 8
        XCTAssertNoThrow(try Trainer(config: chunked, data: data, comm: FakeCommunicator(size: 4)))
        assertThrowsHiddenError(try Trainer(config: chunked, data: data, comm: FakeCommunicator(size: 5)),
                                containing: ["4 chunks of 8 samples", "fewer than the 5 ranks"], hintContaining: ["--chunk 6"])
        let tiny = try loadDataset(.synthetic, directory: nil,
                                   synthetic: SyntheticSpec(shape: Shape([20]), classes: 4, trainCount: 3, testCount: 2), seed: 1)
        assertThrowsHiddenError(try Trainer(config: config(batch: 8), data: tiny, comm: FakeCommunicator(size: 4)),
                                containing: ["3 samples", "fewer than the 4 ranks"])
    }

    /// A model built for another input would have gatherTrain write past the end of its input
    /// buffer: the trainer must refuse the pair at the boundary, not corrupt memory later.
    func testRefusesDataThatDoesNotFitTheModel() throws {
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)  // 20 features, 4 classes
        var wider = config()
        wider.model.inputShape = Shape([10])
        XCTAssertThrowsError(try Trainer(config: wider, data: data, comm: SingleProcessCommunicator()),
                             "model input \(wider.model.inputShape) accepted for data of shape \(data.shape)")
        var fewerClasses = config()
        fewerClasses.model.classes = 2
        XCTAssertThrowsError(try Trainer(config: fewerClasses, data: data, comm: SingleProcessCommunicator()),
                             "a 2-class model accepted for 4-class data")
    }

    func testLocalRangesTileEveryBatch() throws {
        let data = try loadDataset(.synthetic, directory: nil,
                                   synthetic: SyntheticSpec(shape: Shape([20]), classes: 4, trainCount: 16, testCount: 8), seed: 1)
        for size in [1, 3, 4] {
            for batch in 4...13 where batch >= size {
                var c = config(batch: batch)
                c.reduction = .float  // slices of samples; the exact reduction's chunks are tested below
                let trainers = try (0..<size).map { try Trainer(config: c, data: data, comm: FakeCommunicator(rank: $0, size: size)) }
                XCTAssert(trainers.allSatisfy { $0.maxLocalBatch == (batch + size - 1) / size })
                // Every count a step can have: full batches and any shorter last batch.
                for count in 0...batch {
                    let ranges = trainers.map { $0.localRange(count: count) }
                    let what = "P \(size) batch \(batch) count \(count): \(ranges)"
                    XCTAssertEqual(ranges.first?.lowerBound, 0, what)
                    XCTAssertEqual(ranges.last?.upperBound, count, what)
                    for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound, "contiguous: \(what)") }
                    XCTAssertEqual(ranges.reduce(0) { $0 + $1.count }, count, what)
                    let sizes = ranges.map(\.count)
                    XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1, "balanced: \(what)")
                    XCTAssert(sizes.allSatisfy { $0 <= trainers[0].maxLocalBatch }, "fits the buffers: \(what)")
                    if count >= size { XCTAssert(sizes.allSatisfy { $0 >= 1 }, "every rank has a sample: \(what)") }
                }
            }
        }
    }

    /// Under the exact reduction ranks take whole chunks: contiguous, in order, chunk-aligned, and
    /// within the buffers; with 13 samples in chunks of 3 the last chunk has 1.
    func testExactReductionSlicesAreWholeChunks() throws {
        let data = try loadDataset(.synthetic, directory: nil,
                                   synthetic: SyntheticSpec(shape: Shape([20]), classes: 4, trainCount: 16, testCount: 8), seed: 1)
        var c = config(batch: 13)
        c.chunk = 3
        for size in [1, 2, 3, 5] {
            let trainers = try (0..<size).map { try Trainer(config: c, data: data, comm: FakeCommunicator(rank: $0, size: size)) }
            XCTAssertEqual(trainers[0].maxLocalBatch, (5 + size - 1) / size * 3)
            for count in 0...13 {
                let ranges = trainers.map { $0.localRange(count: count) }
                XCTAssertEqual(ranges.reduce(0) { $0 + $1.count }, count)
                for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                XCTAssert(ranges.allSatisfy { ($0.isEmpty || $0.lowerBound % 3 == 0) && $0.count <= trainers[0].maxLocalBatch }, "\(ranges)")
            }
        }
    }

    struct RankResult { var steps: [StepMetrics] = [], epochs: [EpochMetrics] = [], outcome = RunOutcome.finished }

    /// Trains `size` ranks of one in-process group, one thread each; `stopAt(rank, call)` answers
    /// each rank's stop poll.
    func runRanks(_ size: Int, config: TrainConfig, data: Dataset, stopAt: @escaping (Int, Int) -> Bool = { _, _ in false },
                  file: StaticString = #filePath, line: UInt = #line) throws -> ([Trainer], [RankResult]) {
        let group = InProcessGroup(size: size)
        let trainers = try (0..<size).map { try Trainer(config: config, data: data, comm: InProcessGroup.Member(group, rank: $0)) }
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var byRank: [RankResult]
            init(_ size: Int) { byRank = Array(repeating: RankResult(), count: size) }
        }
        let results = Results(size)
        let done = DispatchGroup()
        for r in 0..<size {
            done.enter()
            let thread = Thread {
                var mine = RankResult(), calls = 0
                mine.outcome = trainers[r].train(stopRequested: { calls += 1; return stopAt(r, calls) },
                                                 onStep: { m, _ in mine.steps.append(m) }, onEpoch: { m, _ in mine.epochs.append(m) })
                // A sharded update leaves each rank its share only: make the state whole (collective).
                trainers[r].gatherState()
                results.lock.lock(); results.byRank[r] = mine; results.lock.unlock()
                done.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "ranks did not finish (a collective hung)", file: file, line: line)
        results.lock.lock(); defer { results.lock.unlock() }
        return (trainers, results.byRank)
    }

    func testAnyRankCanStopEveryRankAtTheSameStep() throws {
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)
        // Rank 2 asks on its third poll; the others never do.
        let (trainers, results) = try runRanks(3, config: config(epochs: 2), data: data, stopAt: { rank, call in rank == 2 && call == 3 })
        for (r, result) in results.enumerated() {
            XCTAssertEqual(result.outcome, .stopped, "rank \(r)")
            XCTAssertEqual(result.steps.count, 3, "rank \(r) stopped after another step")
            XCTAssertEqual(trainers[r].state, TrainState(epoch: 0, stepInEpoch: 3, globalStep: 3,
                                                         lossSum: trainers[0].state.lossSum, correct: trainers[0].state.correct, seen: 96))
            XCTAssertEqual(trainers[r].model.scores.array, trainers[0].model.scores.array)
        }
    }

    func testStopAndResumeIsBitExact() throws {
        // DESIGN.md invariant 3: scores, momentum and TrainState are everything the future depends on.
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)
        var c = config(epochs: 3)
        c.optimizer.nesterov = true
        c.labelSmoothing = 0.1
        c.warmup = 1
        let full = try train(c, data: data)
        for stopAfter in [3, 8, 11] {  // mid-epoch, at an epoch's last step, in the second epoch
            let first = try Trainer(config: c, data: data, comm: SingleProcessCommunicator())
            var steps: [StepMetrics] = [], epochs: [EpochMetrics] = [], calls = 0
            let outcome = first.train(stopRequested: { calls += 1; return calls == stopAfter },
                                      onStep: { m, _ in steps.append(m) }, onEpoch: { m, _ in epochs.append(m) })
            XCTAssertEqual(outcome, .stopped)
            XCTAssertEqual(steps.count, stopAfter, "the step that asked to stop is finished")
            XCTAssertEqual(first.globalStep, stopAfter)

            // A fresh trainer (a new process) with the saved scores, momentum and state.
            let second = try Trainer(config: c, data: data, comm: SingleProcessCommunicator())
            second.model.scores.pointer.update(from: first.model.scores.pointer, count: first.model.scores.count)
            second.optimizer.momentum.pointer.update(from: first.optimizer.momentum.pointer, count: first.optimizer.momentum.count)
            second.restore(first.state)
            let outcome2 = second.train(onStep: { m, _ in steps.append(m) }, onEpoch: { m, _ in epochs.append(m) })
            XCTAssertEqual(outcome2, .finished)

            let what = "stopped after \(stopAfter) steps"
            XCTAssertEqual(steps.map(\.step), full.steps.map(\.step), what)
            XCTAssertEqual(steps.map { $0.loss.bitPattern }, full.steps.map { $0.loss.bitPattern }, what)
            XCTAssertEqual(steps.map(\.lr), full.steps.map(\.lr), what)
            XCTAssertEqual(epochs.map(\.epoch), full.epochs.map(\.epoch), what)
            XCTAssertEqual(epochs.map(\.steps), full.epochs.map(\.steps), what)
            XCTAssertEqual(epochs.map { $0.train_loss.bitPattern }, full.epochs.map { $0.train_loss.bitPattern }, "\(what): epoch train loss")
            XCTAssertEqual(epochs.map(\.train_acc), full.epochs.map(\.train_acc), "\(what): epoch train accuracy")
            XCTAssertEqual(epochs.map { $0.test_loss.bitPattern }, full.epochs.map { $0.test_loss.bitPattern }, "\(what): test loss")
            XCTAssertEqual(second.model.scores.array, full.trainer.model.scores.array, "\(what): final scores")
            XCTAssertEqual(second.optimizer.momentum.array, full.trainer.optimizer.momentum.array, "\(what): final momentum")
            XCTAssertEqual(second.state, full.trainer.state, what)
        }
    }

    /// The exact reduction: 1, 3 and 4 in-process ranks give the same bits (scores, momentum,
    /// every step's loss and accuracy, the test loss), with batches of 32 in chunks of 4 (3 ranks
    /// take 3/3/2 chunks) and a last batch of 4 samples that one rank computes alone.
    func testExactReductionIsBitIdenticalForAnyNumberOfRanks() throws {
        let small = SyntheticSpec(shape: Shape([20]), classes: 4, trainCount: 100, testCount: 30)
        let data = try loadDataset(.synthetic, directory: nil, synthetic: small, seed: 5)
        var c = config(epochs: 2, seed: 5)
        c.labelSmoothing = 0.05
        c.chunk = 4
        let single = try train(c, data: data)
        XCTAssertEqual(single.trainer.plan.chunk, 4)
        for size in [3, 4] {
            let (trainers, results) = try runRanks(size, config: c, data: data)
            for r in 0..<size {
                XCTAssertEqual(trainers[r].model.scores.array, single.trainer.model.scores.array, "scores of rank \(r) of \(size)")
                XCTAssertEqual(trainers[r].optimizer.momentum.array, single.trainer.optimizer.momentum.array, "momentum of rank \(r) of \(size)")
                XCTAssertEqual(results[r].steps.map(\.loss.bitPattern), single.steps.map(\.loss.bitPattern), "losses of rank \(r) of \(size)")
                XCTAssertEqual(results[r].steps.map(\.accuracy), single.steps.map(\.accuracy))
                XCTAssertEqual(results[r].epochs.map(\.test_loss.bitPattern), single.epochs.map(\.test_loss.bitPattern))
                XCTAssertEqual(results[r].epochs.map(\.train_loss.bitPattern), single.epochs.map(\.train_loss.bitPattern))
            }
        }
        // And it trains like the float reduction (the same mean gradient, rounded otherwise).
        c.reduction = .float
        let float = try train(c, data: data)
        assertAllClose(single.trainer.model.scores.array, float.trainer.model.scores.array, rtol: 1e-3, atol: 1e-5, "exact vs float scores")
    }

    /// The dense baseline's batch-norm scale and shift train under the exact reduction with
    /// per-rank statistics too (--bn-sync local: the rank's slice is one chunk of their gradient).
    func testAffineBatchNormTrainsWithLocalStatisticsUnderTheExactReduction() throws {
        let data = try loadDataset(.synthetic, directory: nil,
                                   synthetic: SyntheticSpec(shape: Shape([3, 8, 8]), classes: 4, trainCount: 32, testCount: 8), seed: 2)
        var c = TrainConfig(model: ModelConfig(architecture: .cifarResNet18, width: 0.125, weightInit: .kaimingNormal, seed: 2,
                                               inputShape: Shape([3, 8, 8]), classes: 4, method: .dense))
        c.globalBatch = 8
        c.maxSteps = 2
        c.optimizer = OptimizerConfig(lr: 0.1, momentum: 0.9, weightDecay: 0)
        for sync in [BatchNormSync.local, .global] {
            c.bnSync = sync
            let trainer = try Trainer(config: c, data: data, comm: SingleProcessCommunicator())
            XCTAssertTrue(trainer.plan.exact)
            trainer.run()
            let affine = trainer.model.masked.filter { $0.role == .normAffine }
            XCTAssertFalse(affine.isEmpty)
            let moved = affine.contains { m in (0..<m.count).contains { i in m.scores[i] != (i < m.count / 2 ? 1 : 0) } }
            XCTAssertTrue(moved, "--bn-sync \(sync): gamma and beta never left their init")
        }
    }

    func testRanksFollowTheOneProcessTrajectory() throws {
        // 3 ranks over a global batch of 32 (slices 10, 11, 11), 100 samples (a last batch of 4).
        let small = SyntheticSpec(shape: Shape([20]), classes: 4, trainCount: 100, testCount: 30)
        let data = try loadDataset(.synthetic, directory: nil, synthetic: small, seed: 5)
        var c = config(epochs: 2, seed: 5)
        c.labelSmoothing = 0.05
        c.reduction = .float  // up to summation order; the exact reduction's bits are tested above
        let single = try train(c, data: data)

        let size = 3
        let (trainers, results) = try runRanks(size, config: c, data: data)
        let (steps, epochs) = (results.map(\.steps), results.map(\.epochs))

        for r in 1..<size {
            XCTAssertEqual(trainers[r].model.scores.array, trainers[0].model.scores.array, "rank \(r) drifted from rank 0")
            XCTAssertEqual(steps[r].map(\.loss), steps[0].map(\.loss), "rank \(r) saw other losses")
        }
        XCTAssertEqual(steps[0].count, single.steps.count)
        for (a, b) in zip(steps[0], single.steps) {
            assertClose(a.loss, b.loss, rtol: 1e-5, atol: 1e-6, "step \(a.step) loss, 3 ranks vs 1")
            XCTAssertEqual(a.accuracy, b.accuracy, accuracy: 1.0 / 32 + 1e-9, "step \(a.step) accuracy")
        }
        XCTAssertEqual(epochs[0].map(\.world_size), [3, 3])
        assertClose(epochs[0][1].test_loss, single.epochs[1].test_loss, rtol: 1e-3, atol: 1e-5, "final test loss")
        assertAllClose(trainers[0].model.scores.array, single.trainer.model.scores.array, rtol: 1e-3, atol: 1e-5, "scores, 3 ranks vs 1")
    }
}
