// The sharded update: per-rank work on the scores that shrinks as ranks are added (issue 12).
//
// Under the exact reduction every rank used to allreduce all fixed-point gradients and then
// repeat, over every score, the decoding, the optimiser step and each layer's top-k selection.
// Here each layer's weights are cut into P contiguous shares (whole blocks of 4, rank order), and
//
//   1. each layer's fixed-point gradient is reduce-scattered (MPI_Ireduce_scatter, int64) as soon
//      as its backward pass is done: rank r receives the exact sum of its share only;
//   2. rank r decodes its share, computes its score gradients and takes the optimiser step on its
//      share of the scores and momentum (edge-popup layers: all three in one pass);
//   3. at the next mask update the ranks find each layer's top-k threshold together: a radix
//      selection whose three histograms (11, 10 and 10 bits of |S|) are summed over the ranks,
//      so each rank reads only its share; ties at the threshold go to the lowest indices across
//      all ranks (each rank learns how many ties lie on the ranks before it);
//   4. each rank writes W_eff of its share, and W_eff is allgathered (float32, blocking
//      MPI_Allgatherv per layer) for the forward pass. Dense and supermask layers write their
//      share directly (a supermask sample is a pure function of (seed, layer, step, index)).
//
// Every value is computed by the same arithmetic as the replicated update, so the bits are the
// same for any number of ranks. Bytes sent per rank and step by ring algorithms: 8 N (P-1)/P for
// the reduce-scatter plus 4 N (P-1)/P for the allgather, against 16 N (P-1)/P for the allreduce
// of int64 gradients; the three histogram allreduces add (2048 + 1024 + 1024) x 8 bytes per
// selecting layer, and the ties one int64 per layer and rank.
//
// Between steps the scores and momentum outside a rank's share are stale on that rank;
// `gatherState()` (collective) makes them whole on every rank before a checkpoint or a check.

import Foundation

public final class ShardedUpdate {
    public let comm: Communicator
    public let model: Model
    public let optimizer: Optimizer
    /// This rank's share of each masked layer's weights.
    public let ranges: [Range<Int>]
    /// Per layer, each rank's share: counts and displacements (size P each, layer after layer).
    private let counts: UnsafeMutablePointer<Int32>
    private let displacements: UnsafeMutablePointer<Int32>
    /// This rank's share of the summed fixed-point gradients, layer after layer.
    private let gradShare: UnsafeMutablePointer<Int64>
    private let shareOffsets: [Int]
    /// Candidates of the radix selection (|S| bit patterns), at the same offsets.
    private let candidates: UnsafeMutablePointer<UInt32>
    private var candidateCounts: [Int]
    /// Edge-popup layers that select (0 < kept < count), and per selecting layer its histogram
    /// (2048 slots), the rank of the threshold still sought, the threshold's bits found so far, and
    /// how many weights lie above it.
    private let selecting: [Int]
    private let histograms: UnsafeMutableBufferPointer<Int64>
    private let tieCounts: UnsafeMutableBufferPointer<Int64>
    private var sought: [Int64]
    private var prefixes: [UInt32]
    private var above: [Int64]
    /// Whether every rank holds all scores and momentum (after `gatherState`, or before any step).
    public private(set) var complete = true

    /// Share boundaries: blocks of 4 weights (the supermask's random blocks), split as evenly as
    /// whole blocks allow.
    public static func share(count n: Int, rank r: Int, size p: Int) -> Range<Int> {
        let blocks = (n + 3) / 4
        return min(n, 4 * (blocks * r / p))..<min(n, 4 * (blocks * (r + 1) / p))
    }

    public init(model: Model, optimizer: Optimizer, comm: Communicator) {
        precondition(model.plan.exact, "the sharded update reduce-scatters the exact reduction's integers")
        self.model = model; self.optimizer = optimizer; self.comm = comm
        let P = comm.size, L = model.masked.count
        counts = .allocate(capacity: L * P)
        displacements = .allocate(capacity: L * P)
        var ranges: [Range<Int>] = [], offsets: [Int] = [], total = 0
        for (l, m) in model.masked.enumerated() {
            precondition(m.count < Int(Int32.max), "a layer of \(m.count) weights exceeds MPI's int counts")
            for r in 0..<P {
                let s = Self.share(count: m.count, rank: r, size: P)
                counts[l * P + r] = Int32(s.count); displacements[l * P + r] = Int32(s.lowerBound)
            }
            let mine = Self.share(count: m.count, rank: comm.rank, size: P)
            ranges.append(mine); offsets.append(total); total += mine.count
        }
        self.ranges = ranges
        shareOffsets = offsets
        gradShare = .allocate(capacity: max(1, total))
        candidates = .allocate(capacity: max(1, total))
        candidateCounts = Array(repeating: 0, count: L)
        selecting = model.masked.indices.filter { model.masked[$0].method == .edgePopup && model.masked[$0].kept > 0 && model.masked[$0].kept < model.masked[$0].count }
        histograms = .allocate(capacity: max(1, selecting.count * 2048))
        tieCounts = .allocate(capacity: max(1, selecting.count * P))
        sought = Array(repeating: 0, count: selecting.count)
        prefixes = Array(repeating: 0, count: selecting.count)
        above = Array(repeating: 0, count: selecting.count)
    }

    deinit {
        counts.deallocate(); displacements.deallocate(); gradShare.deallocate(); candidates.deallocate()
        histograms.deallocate(); tieCounts.deallocate()
    }

    /// Starts the reduce-scatter of layer `l`'s fixed-point gradient (its backward pass is done).
    public func startReduction(layer l: Int) {
        let m = model.masked[l]
        comm.startReduceScatterSum(UnsafeMutableBufferPointer(start: m.exactGrad!, count: m.count),
                                   into: gradShare + shareOffsets[l], counts: counts + l * comm.size)
    }

    /// After the reductions completed: the optimiser step on this rank's share of every layer
    /// (the rest is stale until `gatherState`). Edge-popup layers decode the exact sums, form the
    /// score gradient and step scores and momentum in one pass (the separate passes of the
    /// replicated update moved 48 bytes per weight through memory, this one 28); each value is
    /// computed by the same operations in the same order, so the bits are the same. Other
    /// methods, and Adam, take the separate passes.
    public func step(lr: Double, t: Int) {
        let c = optimizer.config
        let mom = Float(c.momentum), wd = Float(c.weightDecay), rate = Float(lr), gradScale: Float = 1
        for (l, m) in model.masked.enumerated() {
            let r = ranges[l]
            guard !r.isEmpty else { continue }
            guard m.method == .edgePopup, c.kind == .sgd else {
                m.finishExactGradient(shard: gradShare + shareOffsets[l], range: r)
                optimizer.step(params: model.scores.pointer, grads: model.scoreGrads.pointer, offset: model.offsets[l] + r.lowerBound,
                               count: r.count, lr: lr, gradScale: 1, t: t)
                continue
            }
            let acc = gradShare + shareOffsets[l] - r.lowerBound  // indexed by weight
            let s = m.scores, w = m.weights.pointer, buf = optimizer.momentum.pointer + model.offsets[l]
            if c.nesterov {
                for i in r {
                    let ge = Float(Double(acc[i]) * 0x1p-40)                       // FixedPoint.decode
                    let sg: Float = s[i] > 0 ? 1 : (s[i] < 0 ? -1 : 0)
                    let d = sg * w[i] * ge                                          // computeScoreGrad
                    let g = d * gradScale + wd * s[i]                               // SGD.step
                    buf[i] = mom * buf[i] + g
                    s[i] -= rate * (g + mom * buf[i])
                }
            } else {
                for i in r {
                    let ge = Float(Double(acc[i]) * 0x1p-40)
                    let sg: Float = s[i] > 0 ? 1 : (s[i] < 0 ? -1 : 0)
                    let d = sg * w[i] * ge
                    let g = d * gradScale + wd * s[i]
                    buf[i] = mom * buf[i] + g
                    s[i] -= rate * buf[i]
                }
            }
        }
        complete = false
    }

    /// Allgathers scores and momentum, so that every rank holds them whole (collective; nothing
    /// to do when no step was taken since the last gather).
    public func gatherState() {
        guard !complete else { return }
        let P = comm.size
        for l in model.masked.indices {
            let o = model.offsets[l]
            comm.allgather(model.scores.pointer + o, counts: counts + l * P, displacements: displacements + l * P)
            for b in optimizer.stateBuffers {
                comm.allgather(b.pointer + o, counts: counts + l * P, displacements: displacements + l * P)
            }
        }
        complete = true
    }

    /// Every layer's mask and W_eff from the current scores (collective): each rank computes its
    /// share, edge-popup thresholds are selected together, and W_eff is allgathered.
    public func updateMasks(draw: UInt64?) {
        let P = comm.size
        selectionCommunication = 0
        for (l, m) in model.masked.enumerated() {
            switch m.method {
            case .edgePopup:
                // kept == count: everything (every |S| >= 0); kept == 0: nothing (no |S| reaches 0xFFFFFFFF).
                if m.kept == m.count { m.applyThreshold(range: ranges[l], threshold: 0, ties: 0, equal: 0) }
                if m.kept == 0 { m.applyThreshold(range: ranges[l], threshold: .max, ties: 0, equal: 0) }
            case .dense, .supermask:
                m.updateMask(draw: draw, range: ranges[l])
            }
        }
        if !selecting.isEmpty { selectThresholds() }
        // Blocking, layer after layer: Open MPI 4.1's blocking allgatherv picks ring-like algorithms,
        // its non-blocking one sends every share to every rank directly (Docs/scaling.md).
        let started = monotonicSeconds()
        for l in model.masked.indices {
            comm.allgather(model.masked[l].effective.pointer, counts: counts + l * P, displacements: displacements + l * P)
        }
        allgatherSeconds = monotonicSeconds() - started
    }

    /// Seconds the last `updateMasks` spent allgathering W_eff, and inside the selection's four
    /// small allreduces (their latency, and waiting for the slowest rank to arrive): communication,
    /// not selection work.
    public private(set) var allgatherSeconds = 0.0
    public private(set) var selectionCommunication = 0.0

    /// The distributed radix selection of every selecting layer's threshold (three histogram
    /// passes, each one allreduce for all layers), then the ties, then this rank's share of the mask.
    private func selectThresholds() {
        let P = comm.size
        let passes: [(shift: UInt32, buckets: Int)] = [(20, 2048), (10, 1024), (0, 1024)]
        for (pass, (shift, buckets)) in passes.enumerated() {
            let all = UnsafeMutableBufferPointer(rebasing: histograms[0..<(selecting.count * buckets)])
            all.update(repeating: 0)
            for (j, l) in selecting.enumerated() {
                let h = histograms.baseAddress! + j * buckets
                if pass == 0 {
                    let m = model.masked[l], r = ranges[l]
                    let bits = UnsafeRawPointer(m.scores).assumingMemoryBound(to: UInt32.self)
                    for i in r { h[Int((bits[i] & 0x7FFF_FFFF) >> 20)] += 1 }
                    sought[j] = Int64(m.count - m.kept)  // ascending rank of the kept count's smallest |S|
                    prefixes[j] = 0; above[j] = 0
                } else {
                    let c = candidates + shareOffsets[l]
                    for i in 0..<candidateCounts[l] { h[Int((c[i] >> shift) & 0x3FF)] += 1 }
                }
            }
            let waitStart = monotonicSeconds()
            comm.allreduceSum(all)
            selectionCommunication += monotonicSeconds() - waitStart
            for (j, l) in selecting.enumerated() {
                let h = histograms.baseAddress! + j * buckets
                var b = 0
                while sought[j] >= h[b] { sought[j] -= h[b]; b += 1 }
                for k in (b + 1)..<buckets { above[j] += h[k] }
                prefixes[j] |= UInt32(b) << shift
                // Keep the candidates in bucket b: all of this rank's share in pass 1, the last ones after.
                let c = candidates + shareOffsets[l]
                var n = 0
                if pass == 0 {
                    let m = model.masked[l]
                    let bits = UnsafeRawPointer(m.scores).assumingMemoryBound(to: UInt32.self)
                    for i in ranges[l] {
                        let v = bits[i] & 0x7FFF_FFFF
                        if v >> 20 == UInt32(b) { c[n] = v; n += 1 }
                    }
                } else {
                    for i in 0..<candidateCounts[l] where (c[i] >> shift) & 0x3FF == UInt32(b) { c[n] = c[i]; n += 1 }
                }
                candidateCounts[l] = n  // after the last pass: this rank's weights equal to the threshold
            }
        }
        // Ties: this rank's count in its slot; ranks before it hold the lower indices.
        tieCounts.update(repeating: 0)
        for (j, l) in selecting.enumerated() { tieCounts[j * P + comm.rank] = Int64(candidateCounts[l]) }
        let waitStart = monotonicSeconds()
        comm.allreduceSum(tieCounts)
        selectionCommunication += monotonicSeconds() - waitStart
        for (j, l) in selecting.enumerated() {
            let m = model.masked[l]
            var ties = Int64(m.kept) - above[j]
            for r in 0..<comm.rank { ties -= tieCounts[j * P + r] }
            let equal = candidateCounts[l]
            m.applyThreshold(range: ranges[l], threshold: prefixes[j], ties: Int(min(Int64(equal), max(0, ties))), equal: equal)
        }
    }
}
