// The data-parallel training loop (DESIGN.md, section 2). The permutation of epoch e is a pure
// function of (seed, e); global batch b is split into contiguous per-rank slices; each rank's
// summed-loss score gradient is allreduced and divided by the global batch; every rank takes the
// same optimiser step. Evaluation is sharded and its counts allreduced.

import Foundation

public struct TrainConfig: Equatable, Sendable {
    public var model: ModelConfig
    public var optimizer: OptimizerConfig = OptimizerConfig()
    public var schedule: ScheduleKind = .cosine
    /// The multistep schedule's epochs at which the rate is multiplied by `lrGamma`.
    public var milestones: [Int] = []
    public var lrGamma: Double = 0.1
    public var warmup: Int = 0
    public var epochs: Int = 1
    public var globalBatch: Int = 128
    public var labelSmoothing: Double = 0
    /// Batch-norm statistics of the global batch (every rank the same) or of each rank's slice.
    public var bnSync: BatchNormSync = .global
    /// Stop after this many optimiser steps in all (tests, quick looks); nil runs every epoch out.
    public var maxSteps: Int? = nil
    /// Exact (the same bits for any number of ranks) or float reduction of gradients, batch-norm
    /// statistics and metrics; and the exact reduction's samples per chunk (nil: the default).
    public var reduction: GradientReduction = .exact
    public var chunk: Int? = nil
    /// The reference's training augmentation of the data set (CIFAR: crop and flip; image
    /// folders: random resized crop and flip), or none (image folders: the evaluation transform).
    public var augment: Bool = true

    /// Under the exact reduction on several ranks, each rank updates its share of the scores
    /// (ShardedUpdate.swift); false keeps every rank updating all of them. The bits are the same.
    public var shardUpdate = true

    /// Samples per chunk of the exact reduction (0 under the float reduction): --chunk, or by
    /// default a sixteenth of the global batch, so that up to 16 ranks share every batch.
    public var chunkSize: Int {
        guard reduction == .exact else { return 0 }
        return min(globalBatch, chunk ?? TrainConfig.defaultChunk(globalBatch: globalBatch))
    }

    public static func defaultChunk(globalBatch: Int) -> Int { max(1, (globalBatch + 15) / 16) }

    /// Chunks per global batch: the most ranks that share a batch under the exact reduction.
    public var chunksPerBatch: Int { chunkSize > 0 ? (globalBatch + chunkSize - 1) / chunkSize : globalBatch }

    public init(model: ModelConfig) { self.model = model }

    public var lrSchedule: LearningRateSchedule {
        LearningRateSchedule(kind: schedule, baseLR: optimizer.lr, epochs: epochs, warmup: warmup,
                             milestones: milestones, gamma: lrGamma)
    }
}

/// Where a run stands between two steps. With the scores and momentum it is everything the rest
/// of the run depends on: the running sums make a resumed epoch report exactly what an
/// uninterrupted one would have.
public struct TrainState: Equatable, Sendable {
    /// The epoch in progress (0-based) and how many of its steps are done.
    public var epoch = 0
    public var stepInEpoch = 0
    public var globalStep = 0
    /// Sums over the steps of the epoch in progress.
    public var lossSum = 0.0
    public var correct = 0.0
    public var seen = 0

    public init(epoch: Int = 0, stepInEpoch: Int = 0, globalStep: Int = 0, lossSum: Double = 0, correct: Double = 0, seen: Int = 0) {
        self.epoch = epoch; self.stepInEpoch = stepInEpoch; self.globalStep = globalStep
        self.lossSum = lossSum; self.correct = correct; self.seen = seen
    }
}

public enum RunOutcome: Sendable {
    case finished, stopped
    /// A step's gradients left the exact reduction's range (Trainer.outOfRange).
    case outOfRange
}

/// Seconds spent in each phase of one step on this rank. The score gradients of each layer are
/// allreduced (non-blocking) as soon as its backward pass is done; `allreduceWait` is the time
/// blocked after the backward pass until all of them completed, `allreduceLifetime` the time from
/// the first start to that completion: the difference was hidden behind the backward pass.
public struct StepTiming: Sendable {
    public var data = 0.0, mask = 0.0, forward = 0.0, backward = 0.0
    public var allreduceWait = 0.0, allreduceLifetime = 0.0, optimizer = 0.0, total = 0.0
    /// Sharded update: the parts of the mask phase spent allgathering W_eff and inside the
    /// selection's small allreduces (neither is in `mask`, which is this rank's selection work).
    public var allgatherWait = 0.0, selectionWait = 0.0
    public init() {}
}

/// One optimiser step as every rank saw it.
public struct StepMetrics: Sendable {
    public var epoch: Int
    public var step: Int          // global step count, from 1
    public var stepInEpoch: Int   // from 1
    public var stepsPerEpoch: Int
    public var loss: Double       // mean over the global batch
    public var accuracy: Double
    public var lr: Double
    /// This rank's phase times of the step.
    public var timing = StepTiming()
}

public struct EpochMetrics: Codable, Sendable {
    public var epoch: Int
    public var steps: Int
    public var train_loss: Double
    public var train_acc: Double
    public var test_loss: Double
    public var test_acc: Double
    public var lr: Double
    public var seconds: Double
    public var images_per_s: Double
    public var world_size: Int
    public var compute_s: Double
    public var allreduce_s: Double
    /// Seconds this rank's steps spent gathering their samples (decoding them, for an image
    /// folder whose background threads fell behind): part of compute_s.
    public var data_s: Double = 0
    /// Top-5 test accuracy, only with more than 10 classes (nil, and absent from the JSON, otherwise):
    /// a sample counts when fewer than 5 classes have a strictly larger logit than its label.
    public var test_top5: Double? = nil

    /// Whether epochs report top-5 accuracy: only with more than 10 classes, so that the output of
    /// a 10-class run stays as it was.
    public static func reportsTop5(classes: Int) -> Bool { classes > 10 }
}

public final class Trainer {
    public let config: TrainConfig
    public let data: Dataset
    public let comm: Communicator
    public let model: Model
    public let optimizer: Optimizer
    /// Each rank's share of the update, under the exact reduction on more than one rank.
    public let sharded: ShardedUpdate?
    /// Largest slice of a global batch any rank gets.
    public let maxLocalBatch: Int
    private let labels: UnsafeMutablePointer<Int32>
    private let evaluator: Evaluator
    private let logitGrad: FloatBuffer
    /// Loss sum, correct count and stop flag, reduced with every step.
    private let stepStats: UnsafeMutableBufferPointer<Double>
    /// The same under the exact reduction: the loss as ExactSum limbs, correct count, stop flag,
    /// out-of-range flag.
    private let exactStats: UnsafeMutableBufferPointer<Int64>
    /// The exact reduction's chunks (chunk 0: float reduction).
    public var plan: ChunkPlan { model.plan }
    /// When this step's first score-gradient reduction started (0: none yet).
    private var firstReduceStart = 0.0
    public var globalStep: Int { state.globalStep }

    public init(config: TrainConfig, data: Dataset, comm: Communicator) throws {
        guard config.globalBatch >= comm.size else {
            throw HiddenError("global batch \(config.globalBatch) is smaller than the \(comm.size) ranks: every rank needs at least one sample per step",
                              hint: "raise --batch-size to at least \(comm.size), or launch fewer ranks (mpirun -np \(config.globalBatch))")
        }
        if config.chunkSize > 0, config.chunksPerBatch < comm.size {
            throw HiddenError("the global batch of \(config.globalBatch) makes \(config.chunksPerBatch) chunks of \(config.chunkSize) samples, fewer than the \(comm.size) ranks: the exact reduction gives each rank whole chunks",
                              hint: "use --chunk \(max(1, config.globalBatch / comm.size)) or smaller (it changes the run's bits, not its meaning), raise --batch-size, or launch at most \(config.chunksPerBatch) ranks")
        }
        guard data.train.count >= comm.size else {
            throw HiddenError("the training set has \(data.train.count) samples, fewer than the \(comm.size) ranks",
                              hint: "launch at most \(data.train.count) ranks")
        }
        guard config.model.inputShape.count == data.shape.count else {
            throw HiddenError("the model is built for input \(config.model.inputShape) but data set \(data.name) gives \(data.shape)",
                              hint: "build the model with the data set's shape")
        }
        guard config.model.classes >= data.classes else {
            throw HiddenError("the model has \(config.model.classes) outputs but data set \(data.name) has \(data.classes) classes")
        }
        self.config = config
        self.data = data
        self.comm = comm
        let chunk = config.chunkSize
        maxLocalBatch = chunk > 0 ? largestShard(count: config.chunksPerBatch, size: comm.size) * chunk
                                  : largestShard(count: config.globalBatch, size: comm.size)
        model = try Model(config.model, maxBatch: maxLocalBatch, chunk: chunk)
        // As PyTorch: batch statistics need more than one value per channel.
        let statisticsBatch = config.bnSync == .global ? config.globalBatch : config.globalBatch / comm.size
        if let bn = model.batchNorms.first(where: { $0.inputShape.count / $0.channels * statisticsBatch < 2 }) {
            throw HiddenError("batch norm on \(bn.inputShape) would see one value per channel in a batch of \(statisticsBatch): its variance is undefined",
                              hint: "raise --batch-size\(config.bnSync == .local ? " (or use --bn-sync global)" : ""), or give the model larger inputs")
        }
        optimizer = Optimizer(config: config.optimizer, count: model.parameterCount)
        labels = .allocate(capacity: maxLocalBatch)
        evaluator = Evaluator(model: model, data: data, comm: comm)
        logitGrad = FloatBuffer(count: maxLocalBatch * config.model.classes)
        stepStats = .allocate(capacity: 3)
        exactStats = .allocate(capacity: ExactSum.limbs + 3)
        if config.bnSync == .global { model.norm.communicator = comm }
        sharded = config.shardUpdate && model.plan.exact && comm.size > 1 ? ShardedUpdate(model: model, optimizer: optimizer, comm: comm) : nil
        model.sharded = sharded
        // Each layer's score gradients (or their fixed-point sums) start reducing as soon as its
        // backward pass is done, in the same order on every rank.
        for (l, m) in model.masked.enumerated() {
            m.onGradientReady = { [unowned self, unowned m] in
                if self.firstReduceStart == 0 { self.firstReduceStart = monotonicSeconds() }
                if let sharded = self.sharded {
                    sharded.startReduction(layer: l)
                } else if let exact = m.exactGrad {
                    self.comm.startAllreduceSum(UnsafeMutableBufferPointer(start: exact, count: m.count))
                } else {
                    self.comm.startAllreduceSum(UnsafeMutableBufferPointer(start: m.scoreGrad, count: m.count))
                }
                self.comm.pollAllreduces()
            }
        }
    }

    deinit { labels.deallocate(); stepStats.deallocate(); exactStats.deallocate() }

    /// One optimiser step on global batch slice `lo..<lo+batch` of `order`; returns the global
    /// loss sum, correct count and whether any rank asked to stop, with this rank's phase times.
    func step(order: [Int32], lo: Int, batch: Int, epoch: Int, lr: Double, stop: Bool) -> (Double, Double, Bool, StepTiming) {
        var timing = StepTiming()
        let mine = localRange(count: batch)
        let t0 = monotonicSeconds()
        data.gatherTrain(order[(lo + mine.lowerBound)..<(lo + mine.upperBound)], epoch: epoch,
                         seed: config.model.seed, x: model.input.pointer, y: labels)
        let t1 = monotonicSeconds()
        model.updateMasks(draw: UInt64(state.globalStep))
        model.training = true
        plan.gradientScale = 1 / Double(batch)
        plan.outOfRange = false
        let t2 = monotonicSeconds()
        let logits = model.forward(batch: mine.count)
        let classes = config.model.classes
        var lossSum = 0.0, correct = 0
        ExactSum.clear(exactStats.baseAddress!)
        plan.forEachChunk(batch: mine.count) { first, n in
            // Under the exact reduction each chunk's loss is summed on its own, then exactly.
            let r = softmaxCrossEntropy(logits: logits + first * classes, labels: labels + first, batch: n, classes: classes,
                                        smoothing: config.labelSmoothing, grad: logitGrad.pointer + first * classes)
            if plan.exact { ExactSum.add(r.lossSum, to: exactStats.baseAddress!) } else { lossSum += r.lossSum }
            correct += r.correct
        }
        let t3 = monotonicSeconds()
        firstReduceStart = 0
        model.backward(logitGrad: logitGrad.pointer, batch: mine.count) { _ in self.comm.pollAllreduces() }
        let firstStart = firstReduceStart
        let t4 = monotonicSeconds()
        comm.waitAllreduces()
        var stopAll = false
        if plan.exact {
            let L = ExactSum.limbs
            exactStats[L] = Int64(correct); exactStats[L + 1] = stop ? 1 : 0; exactStats[L + 2] = plan.outOfRange ? 1 : 0
            comm.allreduceSum(exactStats)
            stepStats[0] = ExactSum.value(exactStats.baseAddress!); stepStats[1] = Double(exactStats[L])
            stopAll = exactStats[L + 1] > 0
            outOfRange = exactStats[L + 2] > 0
        } else {
            stepStats[0] = lossSum; stepStats[1] = Double(correct); stepStats[2] = stop ? 1 : 0
            comm.allreduce(stepStats, op: .sum)
            stopAll = stepStats[2] > 0
        }
        let t5 = monotonicSeconds()
        // The update: decoding the exact sums into score gradients, then the optimiser step, on
        // this rank's share (sharded) or on every score.
        if !outOfRange {
            if let sharded {
                sharded.step(lr: lr, t: state.globalStep + 1)
            } else {
                if plan.exact { for m in model.masked { m.finishExactGradient() } }
                optimizer.step(params: model.scores.pointer, grads: model.scoreGrads.pointer, count: model.parameterCount,
                               lr: lr, gradScale: plan.exact ? 1 : 1 / Float(batch), t: state.globalStep + 1)
            }
        }
        let t6 = monotonicSeconds()
        timing.allgatherWait = sharded?.allgatherSeconds ?? 0
        timing.selectionWait = sharded?.selectionCommunication ?? 0
        timing.data = t1 - t0; timing.mask = t2 - t1 - timing.allgatherWait - timing.selectionWait; timing.forward = t3 - t2; timing.backward = t4 - t3
        timing.allreduceWait = t5 - t4; timing.allreduceLifetime = firstStart > 0 ? t5 - firstStart : t5 - t4
        timing.optimizer = t6 - t5; timing.total = t6 - t0
        return (stepStats[0], stepStats[1], stopAll, timing)
    }

    /// How many steps ahead background decoders work (image folders with data threads).
    public static let prefetchSteps = 2
    /// The next epoch's permutation, made early when background decoders look into it.
    private var nextOrder: (epoch: Int, order: [Int32])?

    /// Starts `threads` background decoders for an image folder, holding at most the samples of
    /// `prefetchSteps` + 1 steps of this rank; nothing for data sets held in memory.
    public func startDataThreads(_ threads: Int) {
        data.startDataThreads(threads, capacity: (Self.prefetchSteps + 1) * maxLocalBatch)
    }

    /// Set when a step's gradients left the exact reduction's fixed-point range (or were not
    /// finite) on some rank: that step's update is skipped and `train` returns `.outOfRange`
    /// with the state of the step before.
    public private(set) var outOfRange = false

    public var stepsPerEpoch: Int { (data.train.count + config.globalBatch - 1) / config.globalBatch }

    /// This rank's contiguous slice of a batch of `count`: [count * r / P, count * (r + 1) / P),
    /// or whole chunks split so under the exact reduction.
    public func localRange(count: Int) -> Range<Int> {
        let chunk = plan.chunk
        return chunk > 0 ? chunkShard(count: count, chunk: chunk, rank: comm.rank, size: comm.size)
                         : shard(count: count, rank: comm.rank, size: comm.size)
    }

    /// Trains epochs `startEpoch..<epochs`, calling back after each step and each epoch.
    public func run(startEpoch: Int = 0, onStep: (StepMetrics) -> Void = { _ in },
                    onEpoch: (EpochMetrics) -> Void = { _ in }) {
        if startEpoch > state.epoch { state = TrainState(epoch: startEpoch, globalStep: state.globalStep) }
        train(onStep: { m, _ in onStep(m) }, onEpoch: { m, _ in onEpoch(m) })
    }

    /// Where the run stands: everything the future depends on besides scores and momentum.
    public internal(set) var state = TrainState()

    /// Continues from a checkpoint's state (scores and momentum are loaded separately).
    public func restore(_ s: TrainState) { state = s }

    /// Trains from `state` to the end of the last epoch (or `maxSteps`). `stopRequested` is polled
    /// on every rank before each step's allreduce; if any rank asks, every rank finishes that step
    /// and returns `.stopped`, together, at the same step boundary.
    @discardableResult
    public func train(stopRequested: () -> Bool = { false },
                      onStep: (StepMetrics, TrainState) -> Void,
                      onEpoch: (EpochMetrics, TrainState) -> Void) -> RunOutcome {
        let schedule = config.lrSchedule
        while state.epoch < config.epochs {
            if let cap = config.maxSteps, state.globalStep >= cap { break }
            let epoch = state.epoch
            let started = Date()
            var computeTime = 0.0, reduceTime = 0.0, dataTime = 0.0, trainedHere = 0
            let lr = schedule.lr(epoch: epoch)
            let order = nextOrder?.epoch == epoch ? nextOrder!.order : epochPermutation(count: data.train.count, seed: config.model.seed, epoch: epoch)
            nextOrder = nil
            while state.stepInEpoch < stepsPerEpoch {
                if let cap = config.maxSteps, state.globalStep >= cap { break }
                // This rank's samples of the next steps, for background decoders (image folders),
                // into the next epoch too: they then decode while this one's evaluation runs.
                if data.prefetches {
                    for ahead in 1...Self.prefetchSteps {
                        var (s, e, o) = (state.stepInEpoch + ahead, epoch, order)
                        if s >= stepsPerEpoch {
                            guard epoch + 1 < config.epochs else { break }
                            if nextOrder?.epoch != epoch + 1 {
                                nextOrder = (epoch + 1, epochPermutation(count: data.train.count, seed: config.model.seed, epoch: epoch + 1))
                            }
                            (s, e, o) = (s - stepsPerEpoch, epoch + 1, nextOrder!.order)
                            guard s < stepsPerEpoch else { break }  // an epoch of fewer steps than the look-ahead
                        }
                        let next = s * config.globalBatch
                        let r = localRange(count: min(config.globalBatch, data.train.count - next))
                        data.prefetchTrain(o[(next + r.lowerBound)..<(next + r.upperBound)], epoch: e, seed: config.model.seed)
                    }
                }
                let lo = state.stepInEpoch * config.globalBatch
                let batch = min(config.globalBatch, data.train.count - lo)
                let (lossSum, correct, stop, timing) = step(order: order, lo: lo, batch: batch, epoch: epoch, lr: lr,
                                                            stop: stopRequested())
                // Nothing of a step out of range is kept: the state stays at the last good step.
                if outOfRange { return .outOfRange }
                computeTime += timing.total - timing.allreduceWait - timing.allgatherWait - timing.selectionWait
                reduceTime += timing.allreduceWait + timing.allgatherWait + timing.selectionWait
                dataTime += timing.data
                state.lossSum += lossSum; state.correct += correct; state.seen += batch
                state.globalStep += 1; state.stepInEpoch += 1
                trainedHere += batch
                onStep(StepMetrics(epoch: epoch, step: state.globalStep, stepInEpoch: state.stepInEpoch,
                                   stepsPerEpoch: stepsPerEpoch, loss: lossSum / Double(batch),
                                   accuracy: correct / Double(batch), lr: lr, timing: timing), state)
                if stop { return .stopped }
            }
            let trainSeconds = Date().timeIntervalSince(started)
            let test = evaluateTop5()
            let seconds = Date().timeIntervalSince(started)
            let metrics = EpochMetrics(epoch: epoch + 1, steps: state.stepInEpoch,
                                       train_loss: state.seen > 0 ? state.lossSum / Double(state.seen) : .nan,
                                       train_acc: state.seen > 0 ? state.correct / Double(state.seen) : .nan,
                                       test_loss: test.loss, test_acc: test.accuracy, lr: lr, seconds: seconds,
                                       images_per_s: Double(trainedHere) / max(trainSeconds, 1e-9), world_size: comm.size,
                                       compute_s: computeTime, allreduce_s: reduceTime, data_s: dataTime,
                                       test_top5: EpochMetrics.reportsTop5(classes: config.model.classes) ? test.top5 : nil)
            if state.stepInEpoch < stepsPerEpoch {
                // Stopped by maxSteps inside the epoch: report what was trained, but the state
                // stays mid-epoch so that a resume trains the rest of it.
                onEpoch(metrics, state)
                return .finished
            }
            state = TrainState(epoch: epoch + 1, globalStep: state.globalStep)
            onEpoch(metrics, state)
        }
        return .finished
    }

    /// Mean loss and accuracy on the test split, sharded over the ranks, with the current scores.
    public func evaluate() -> (loss: Double, accuracy: Double) {
        let r = evaluateTop5()
        return (r.loss, r.accuracy)
    }

    /// Mean loss, top-1 and top-5 accuracy on the test split, sharded over the ranks, with the
    /// current scores (top-5: fewer than 5 classes have a strictly larger logit than the label).
    public func evaluateTop5() -> (loss: Double, accuracy: Double, top5: Double) {
        let r = evaluator.run()
        return (r.loss, r.accuracy, r.top5)
    }
}

extension Trainer {
    /// Makes scores and momentum whole on every rank after sharded updates (collective: every
    /// rank calls it at the same point; nothing to do otherwise). Checkpoints and state checks
    /// read the whole state.
    public func gatherState() { sharded?.gatherState() }

    /// Whether this rank holds the whole state (no sharded step since the last `gatherState`).
    public var stateIsWhole: Bool { sharded?.complete ?? true }

    /// Test hook (HIDDEN_MPI_FAULT_DRIFT_RANK): makes this rank's state differ from the others'.
    /// A shared update gives every score one owner, whose value every rank receives; what can
    /// still drift apart is what each rank keeps for itself, such as the epoch's running loss.
    public func perturbStateForTesting() {
        if sharded != nil { state.lossSum += 1e-3 } else { model.scores[0] += 1e-3 }
    }

    /// FNV-1a over everything the rest of the run depends on that every rank holds alike: scores
    /// (or trained weights), momentum, where the run stands, and the running statistics when they
    /// are the global batch's. Ranks that compare unequal have drifted apart.
    public func stateChecksum() -> UInt64 {
        precondition(stateIsWhole, "stateChecksum after sharded steps needs gatherState() first")
        var h = fnv1a(model.scores.pointer, count: model.scores.count, fnvOffset)
        for b in optimizer.stateBuffers { h = fnv1a(b.pointer, count: b.count, h) }
        if config.bnSync == .global { h = fnv1a(model.runningStats.pointer, count: model.runningStats.count, h) }
        let position = [UInt64(state.epoch), UInt64(state.stepInEpoch), UInt64(state.globalStep), UInt64(state.seen),
                        state.lossSum.bitPattern, state.correct.bitPattern]
        // fnv1a reads 32-bit words: each 64-bit value as its two halves.
        return position.withUnsafeBytes { fnv1a($0.bindMemory(to: Float.self).baseAddress!, count: 2 * position.count, h) }
    }
}
