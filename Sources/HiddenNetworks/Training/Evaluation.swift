// Test-set evaluation of a model, sharded over the ranks: rank r takes the contiguous slice
// [n * r / P, n * (r + 1) / P) of the n test samples in batches of up to the model's maxBatch,
// and the loss and the two correct counts are allreduced. It needs no training set and no
// Trainer (`hidden-mpi eval` builds only a model and the test split). Batch norms use their
// running statistics, so no rank talks to another before the final reduction, and the result
// does not depend on how the test set is batched.

public struct EvaluationResult: Sendable {
    public var loss: Double
    public var accuracy: Double
    /// Fewer than 5 classes have a strictly larger logit than the label.
    public var top5: Double
}

public final class Evaluator {
    public let model: Model
    public let data: Dataset
    public let comm: Communicator
    private let labels: UnsafeMutablePointer<Int32>

    public init(model: Model, data: Dataset, comm: Communicator) {
        self.model = model; self.data = data; self.comm = comm
        labels = .allocate(capacity: model.maxBatch)
    }

    deinit { labels.deallocate() }

    /// Mean loss, top-1 and top-5 accuracy on the test split with the model's current scores.
    /// Under the exact reduction (the model's plan has chunks) the test set is cut into chunks
    /// like a training batch, ranks take whole chunks, and the loss is summed exactly: the
    /// result has the same bits for any number of ranks.
    public func run() -> EvaluationResult {
        model.updateMasks()
        model.training = false
        let n = data.test.count, plan = model.plan, classes = model.config.classes
        let mine = plan.exact ? chunkShard(count: n, chunk: plan.chunk, rank: comm.rank, size: comm.size)
                              : shard(count: n, rank: comm.rank, size: comm.size)
        // Batches of whole chunks, so that every chunk runs the same sgemms on any rank.
        let batchCap = plan.exact ? max(plan.chunk, model.maxBatch / plan.chunk * plan.chunk) : model.maxBatch
        var lossSum = 0.0, correct = 0, top5 = 0
        var exactLoss = [Int64](repeating: 0, count: ExactSum.limbs)
        var start = mine.lowerBound
        while start < mine.upperBound {
            let count = min(batchCap, mine.upperBound - start)
            data.gatherTest(start: start, count: count, x: model.input.pointer, y: labels)
            let logits = model.forward(batch: count)
            plan.forEachChunk(batch: count) { first, size in
                let r = softmaxCrossEntropy(logits: logits + first * classes, labels: labels + first, batch: size,
                                            classes: classes, smoothing: 0, grad: nil)
                if plan.exact { exactLoss.withUnsafeMutableBufferPointer { ExactSum.add(r.lossSum, to: $0.baseAddress!) } }
                lossSum += r.lossSum; correct += r.correct; top5 += r.top5Correct
            }
            start += count
        }
        let total = Double(max(n, 1))
        if plan.exact {
            var stats = exactLoss + [Int64(correct), Int64(top5)]
            stats.withUnsafeMutableBufferPointer { comm.allreduceSum($0) }
            let loss = stats.withUnsafeBufferPointer { ExactSum.value($0.baseAddress!) }
            let L = ExactSum.limbs
            return EvaluationResult(loss: loss / total, accuracy: Double(stats[L]) / total, top5: Double(stats[L + 1]) / total)
        }
        var stats = [lossSum, Double(correct), Double(top5)]
        comm.allreduce(&stats, op: .sum)
        return EvaluationResult(loss: stats[0] / total, accuracy: stats[1] / total, top5: stats[2] / total)
    }
}

/// Rank `rank`'s contiguous slice of `count` items split over `size` ranks:
/// [count * rank / size, count * (rank + 1) / size). Training batches and the test set split so.
public func shard(count: Int, rank: Int, size: Int) -> Range<Int> {
    (count * rank / size)..<(count * (rank + 1) / size)
}

/// The most items any rank's slice of `count` holds: ceil(count / size).
public func largestShard(count: Int, size: Int) -> Int { (count + size - 1) / size }
