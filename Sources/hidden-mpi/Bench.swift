// `hidden-mpi bench`: training steps on synthetic data, timed by phase, against the sgemm peak
// this machine reaches with the same threads. A benchmark, not a test: compare ratios in one run.

import ArgumentParser
import CBLAS
import Foundation
import HiddenNetworks

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time training steps by phase on synthetic data and compare with the sgemm peak.",
        discussion: """
        Runs --warmup-steps, then --steps timed steps of the same training step `train` runs (masks, \
        forward, backward with the per-layer non-blocking allreduce, optimiser) on random data, and \
        reports medians. Under mpirun, rank 0 reports, with the spread of step times over ranks.

        Examples:
          hidden-mpi bench --model conv4 --input 3x32x32 --batch-size 128
          mpirun -np 2 hidden-mpi bench --model conv4 --rank-batch 128 --json
        """)

    @OptionGroup(title: "Model") var modelOptions: ModelOptions

    @Option(help: "Per-sample input shape CxHxW (or F).")
    var input: Shape = Shape([3, 32, 32])

    @Option(help: "Number of classes.")
    var classes: Int = 10

    @Option(help: "Global batch, split over the ranks.")
    var batchSize: Int = 128

    @Option(help: "Per-rank batch instead: the global batch becomes this times the number of ranks.")
    var rankBatch: Int?

    @Option(help: "Timed steps.")
    var steps: Int = 20

    @Option(help: "Untimed steps first (caches, page faults, first-touch).")
    var warmupSteps: Int = 3

    @Option(help: ArgumentHelp("exact (default, as train) or float: how gradients, batch-norm statistics and metrics are summed (see train --help).", valueName: "exact|float"))
    var reduction: GradientReduction = .exact

    @Option(help: "Samples per chunk of the exact reduction (default as train: the global batch / 16, rounded up).")
    var chunk: Int?

    @Flag(help: "Every rank updates every score (decoding, optimiser, top-k selection), as before the sharded update; for comparison: the bits are the same.")
    var replicatedUpdate = false

    @OptionGroup var blas: BLASOptions

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        guard steps >= 1, warmupSteps >= 0 else { throw ValidationError("--steps must be at least 1 and --warmup-steps at least 0") }
        if let chunk, chunk < 1 { throw ValidationError("--chunk must be at least 1, got \(chunk)") }
        guard batchSize >= 1, (rankBatch ?? 1) >= 1 else { throw ValidationError("batch sizes must be at least 1") }
    }

    func run() throws {
        blas.apply()
        // Before MPI starts (the probe runs child processes): every correct kernel's peak.
        let probe = try? KernelProbe.results(refresh: false).0
        let comm = try Launch.communicator()
        let global = rankBatch.map { $0 * comm.size } ?? batchSize
        var trainer: Trainer?
        var failure: Error?
        do {
            let total = warmupSteps + steps
            let data = try loadDataset(.synthetic, directory: nil, synthetic: SyntheticSpec(shape: input, classes: classes, trainCount: global * total,
                                                   testCount: comm.size), seed: modelOptions.seed)
            var config = TrainConfig(model: modelOptions.config(input: input, classes: classes))
            config.globalBatch = global
            config.epochs = 1
            config.maxSteps = total
            config.reduction = reduction
            config.chunk = chunk
            config.shardUpdate = !replicatedUpdate
            trainer = try Trainer(config: config, data: data, comm: comm)
        } catch { failure = error }
        Launch.agree(comm, failure)
        guard let trainer else { Launch.finish(comm, code: 1) }

        let current = GEMMProbe.peakGFLOPs()
        // Share of peak is taken against the best correct kernel's peak, so that a slow kernel
        // cannot look efficient. The probe times one thread; more threads scale by this kernel's ratio.
        let own = probe?.candidates.first { $0.isUsable && $0.core == BLASThreads.coreName }?.peakGFLOPs
        let best = probe?.bestPeak
        let peak = max(current, best.map { b in BLASThreads.current == 1 ? b.gflops : current * b.gflops / (own ?? b.gflops) } ?? current)
        let peakCore = best.map { current >= peak ? BLASThreads.coreName : $0.core } ?? BLASThreads.coreName
        var timings: [StepTiming] = []
        timings.reserveCapacity(steps)
        // Counted from the end of the warm-up (from here when there is none) to the last timed step.
        var allocationsBefore = allocationCount() ?? (0, 0), allocationsAfter = (all: 0, blas: 0)
        // Per-kind layer times of the timed steps (the profile's clock reads are off in the
        // warm-up, whose allocations are not counted either).
        LayerProfile.shared.prepare(for: trainer.model)
        LayerProfile.shared.enabled = warmupSteps == 0
        trainer.train(onStep: { s, _ in
            if s.step == warmupSteps { allocationsBefore = allocationCount() ?? (0, 0); LayerProfile.shared.enabled = true }
            if s.step > warmupSteps { timings.append(s.timing) }
            if s.step == warmupSteps + steps { allocationsAfter = allocationCount() ?? (0, 0) }
        }, onEpoch: { _, _ in })

        func median(_ f: (StepTiming) -> Double) -> Double {
            let v = timings.map(f).sorted()
            return v.count % 2 == 1 ? v[v.count / 2] : 0.5 * (v[v.count / 2 - 1] + v[v.count / 2])
        }
        let step = median { $0.total }
        var spread = [step, -step, current, -current]
        comm.allreduce(&spread, op: .max)
        let model = trainer.model
        let flopsPerImage = 3.0 * Double(model.forwardFLOPsPerSample)
        let localBatch = trainer.localRange(count: global).count
        let gflops = flopsPerImage * Double(localBatch) / step / 1e9
        let wait = median { $0.allreduceWait }, lifetime = median { $0.allreduceLifetime }
        let phases: [(String, Double)] = [("data", median { $0.data }), ("mask selection", median { $0.mask }),
                                          ("forward", median { $0.forward }), ("backward", median { $0.backward }),
                                          ("allreduce wait", wait), ("optimizer", median { $0.optimizer }),
                                          ("allgather wait", median { $0.allgatherWait }),
                                          ("selection wait", median { $0.selectionWait })]
        LayerProfile.shared.enabled = false
        // Mean seconds per timed step by kind of layer, largest first.
        let kinds = LayerProfile.shared.seconds.filter { $0.value > 0 }.map { ($0.key, $0.value / Double(steps)) }.sorted { $0.1 > $1.1 }
        // The kinds' and the sgemm calls' seconds are means over the timed steps: their shares are
        // of the mean step (the median step is what the speed figures use).
        let meanStep = timings.map(\.total).reduce(0, +) / Double(max(1, timings.count))
        let overhead = kinds.filter { ["batchnorm", "batchnorm-relu", "batchnorm-add-relu", "residual-add", "maxpool", "avgpool", "relu"].contains($0.0) }.reduce(0) { $0 + $1.1 }
        let gemms = GEMMShare(model: model, steps: steps)
        // Bytes each rank sends per step for the scores by ring algorithms: an allreduce sends its
        // buffer twice less one share; a reduce-scatter of int64 and an allgather of W_eff once each.
        let P = Double(comm.size), N = Double(model.parameterCount)
        let gradientBytes = Int(((trainer.sharded != nil ? 8 + 4 : 2 * (reduction == .exact ? 8 : 4)) * N * (P - 1) / P).rounded())
        let nodes = Set(RankAgreement.gather(RankAgreement.hostName, comm)).count
        let hidden: Double? = comm.size > 1 && lifetime > 0 ? max(0, 1 - wait / lifetime) : nil
        let counting = allocationCount() != nil
        let allocations: Double? = counting ? Double(allocationsAfter.all - allocationsBefore.all) / Double(steps) : nil
        let blasAllocations: Double? = counting ? Double(allocationsAfter.blas - allocationsBefore.blas) / Double(steps) : nil
        guard comm.rank == 0 else { Launch.finish(comm, code: 0) }

        let result: [String: Any] = [
            "model": modelOptions.model.rawValue, "width": modelOptions.width, "k": modelOptions.k,
            "method": modelOptions.method.rawValue,
            "input": input.description, "global_batch": global, "rank_batch": localBatch,
            "world_size": comm.size, "nodes": nodes, "threads": BLASThreads.current, "blas_core": BLASThreads.coreName,
            "direct_convolutions": ConvolutionPaths(model).direct, "direct_convolution_isa": DirectConvolution.instructionSet,
            "steps": steps, "step_s": step, "step_s_mean": meanStep, "step_s_min_rank": -spread[1], "step_s_max_rank": spread[0],
            "images_per_s": Double(global) / step, "images_per_s_per_rank": Double(localBatch) / step,
            "mflop_per_image": flopsPerImage / 1e6, "step_gflops": gflops,
            "sgemm_peak_gflops": peak, "sgemm_peak_core": peakCore, "sgemm_peak_gflops_current_kernel": current,
            "sgemm_peak_gflops_min_rank": -spread[3], "peak_fraction": gflops / peak,
            "blas_core_reason": KernelChoice.reason,
            "mask_fraction": median { $0.mask } / step,
            "phases_s": Dictionary(uniqueKeysWithValues: phases.map { ($0.0.replacingOccurrences(of: " ", with: "_"), $0.1) }),
            "allreduce_lifetime_s": lifetime, "allreduce_wait_s": wait,
            "allreduce_hidden_fraction": hidden.map { $0 as Any } ?? NSNull(),
            "reduction": reduction.rawValue, "chunk": trainer.config.chunkSize,
            "update": trainer.sharded != nil ? "sharded" : "replicated",
            "allreduce_bytes_per_step": (reduction == .exact ? 8 : 4) * model.parameterCount,
            "gradient_bytes_sent_per_rank": gradientBytes,
            "allreduce_stats_bytes_per_step": reduction == .exact ? 8 * (ExactSum.limbs + 3) : 24,
            "allreduce_batchnorm_bytes_per_step": model.batchNorms.reduce(0) { $0 + (reduction == .exact ? 8 * (4 * $1.channels * ExactSum.limbs + 1) : 8 * (4 * $1.channels + 1)) },
            "allocations_per_step": allocations.map { $0 as Any } ?? NSNull(),
            "allocations_per_step_in_blas": blasAllocations.map { $0 as Any } ?? NSNull(),
            "layer_kinds_s": Dictionary(uniqueKeysWithValues: kinds.map { ($0.0.replacingOccurrences(of: "-", with: "_"), $0.1) }),
            "norm_pool_add_relu_fraction": overhead / meanStep,
            "gemm_s": gemms.seconds, "gemm_fraction": gemms.seconds / meanStep, "gemm_gflops": gemms.gflops,
            "gemm_by_shape": gemms.json,
        ]
        if json {
            print(String(data: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), encoding: .utf8)!)
            Launch.finish(comm, code: 0)
        }
        print("hidden-mpi bench: \(modelOptions.model.rawValue) x\(modelOptions.width), \(modelOptions.method == .edgePopup ? "k \(modelOptions.k)" : modelOptions.method.rawValue), input \(input), batch \(global) (\(localBatch) per rank), \(comm.size) rank(s) x \(BLASThreads.current) BLAS thread(s), OpenBLAS \(BLASThreads.coreName)")
        print("OpenBLAS kernel \(BLASThreads.coreName): \(KernelChoice.reason)")
        if let line = ConvolutionPaths(model).summary { print(line) }
        print((reduction == .exact ? "reduction: exact, chunks of \(trainer.config.chunkSize) samples" : "reduction: float")
              + (trainer.sharded != nil ? "; update sharded (each rank steps 1/\(comm.size) of the scores)" : comm.size > 1 ? "; update replicated (every rank steps every score)" : ""))
        print(String(format: "sgemm peak (1024^3, same threads): %.1f GFLOP/s with the best correct kernel (%@), %.1f with this one (slowest rank %.1f)",
                     peak, peakCore, current, -spread[3]))
        print(String(format: "step: median %.2f ms over %d steps (ranks %.2f..%.2f ms)  ->  %.1f images/s (%.1f per rank)",
                     1e3 * step, steps, -1e3 * spread[1], 1e3 * spread[0], Double(global) / step, Double(localBatch) / step))
        for (name, t) in phases {
            let label = name + String(repeating: " ", count: max(0, 16 - name.count))
            print("  " + label + String(format: "%9.2f ms  %5.1f%%", 1e3 * t, 100 * t / step))
        }
        print(String(format: "  by kind of layer (forward + backward, mean per step; shares of the mean step, %.2f ms):", 1e3 * meanStep))
        for (kind, t) in kinds {
            let label = kind + String(repeating: " ", count: max(0, 18 - kind.count))
            print("    " + label + String(format: "%9.2f ms  %5.1f%%", 1e3 * t, 100 * t / meanStep))
        }
        print(String(format: "  batch norm, residual adds, pooling and ReLU together: %.1f%% of the step", 100 * overhead / meanStep))
        gemms.printTable(step: meanStep, peak: peak)
        print(String(format: "achieved: %.1f GFLOP/s over the whole step (%.1f MFLOP per image) = %.1f%% of the sgemm peak",
                     gflops, flopsPerImage / 1e6, 100 * gflops / peak))
        if let hidden {
            print(String(format: "gradients: %@ of %d bytes, %d bytes sent per rank per step by ring algorithms%@; %.2f ms in flight, %.2f ms waited: %.0f%% hidden behind backward",
                         trainer.sharded != nil ? "reduce-scatter" : "allreduce", (reduction == .exact ? 8 : 4) * model.parameterCount, gradientBytes,
                         trainer.sharded != nil ? " (with the allgather of W_eff)" : "", 1e3 * lifetime, 1e3 * wait, 100 * hidden))
        }
        if let allocations, let blasAllocations {
            print(String(format: "heap allocations per step (counted by the preloaded counter): %.1f, of which %.1f inside the BLAS", allocations, blasAllocations))
        }
        Launch.finish(comm, code: 0)
    }
}

/// `--threads`, shared by train and bench.
struct BLASOptions: ParsableArguments {
    @Option(help: "BLAS threads per rank (default: OPENBLAS_NUM_THREADS, else 1). Keep ranks x threads <= cores.")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func apply() { setBLASThreads(threads) }
}

/// BLAS threads per rank: the flag, else OPENBLAS_NUM_THREADS (OpenBLAS reads it itself), else 1.
func setBLASThreads(_ threads: Int?) {
    if let threads { BLASThreads.set(threads) } else if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil { BLASThreads.set(1) }
}

/// Heap allocations so far, all and those made inside the BLAS library, when the counting
/// allocator of scripts/alloc-count.c is preloaded.
func allocationCount() -> (all: Int, blas: Int)? {
    typealias Counter = @convention(c) () -> UInt64
    guard let symbol = dlsym(nil, "hidden_mpi_alloc_count") else { return nil }
    let blas = dlsym(nil, "hidden_mpi_alloc_count_blas").map { Int(unsafeBitCast($0, to: Counter.self)()) } ?? 0
    return (Int(unsafeBitCast(symbol, to: Counter.self)()), blas)
}

/// The sgemm calls (and direct convolutions) of the timed steps, by layer shape (layers of one
/// shape together), mean per step.
struct GEMMShare {
    typealias Row = (shape: String, kernel: String, layers: Int, seconds: [Double], flops: [Double])
    var rows: [Row] = []

    init(model: Model, steps: Int) {
        let tallies = model.allLayers.compactMap { ($0 as? MaskedConv2d)?.gemm ?? ($0 as? MaskedLinear)?.gemm }
        for t in tallies {
            let s = t.seconds.map { $0 / Double(steps) }, f = t.flops.map { $0 / Double(steps) }
            if let i = rows.firstIndex(where: { $0.shape == t.shape && $0.kernel == t.kernel }) {
                rows[i].layers += 1
                for d in s.indices { rows[i].seconds[d] += s[d]; rows[i].flops[d] += f[d] }
            } else {
                rows.append((t.shape, t.kernel, 1, s, f))
            }
        }
        rows.sort { $0.seconds.reduce(0, +) > $1.seconds.reduce(0, +) }
    }

    var seconds: Double { rows.reduce(0) { $0 + $1.seconds.reduce(0, +) } }
    var gflops: Double { seconds > 0 ? rows.reduce(0) { $0 + $1.flops.reduce(0, +) } / seconds / 1e9 : 0 }

    static let directions = ["forward", "weight_gradient", "input_gradient"]

    /// GFLOP/s of one row's sgemms in direction d (0 where it made none).
    static func gflops(_ row: Row, _ d: Int) -> Double {
        row.seconds[d] > 0 ? row.flops[d] / row.seconds[d] / 1e9 : 0
    }

    var json: [[String: Any]] {
        rows.map { row in
            var o: [String: Any] = ["shape": row.shape, "kernel": row.kernel, "layers": row.layers]
            for (d, name) in Self.directions.enumerated() {
                o[name + "_s"] = row.seconds[d]
                o[name + "_gflops"] = Self.gflops(row, d)
            }
            return o
        }
    }

    func printTable(step: Double, peak: Double) {
        guard seconds > 0 else { return }
        print("  sgemm calls by layer shape (ms per step and GFLOP/s: forward | weight gradient | input gradient;")
        print("  * the direct 3x3 convolution instead, its padding and re-layout included;")
        print("  + the fully connected layers' own kernels instead, the weight gradient's fixed-point sum included):")
        for row in rows {
            let label = "\(row.shape) x\(row.layers)" + (row.kernel == "direct" ? " *" : row.kernel == "own" ? " +" : "")
            var line = "    " + label + String(repeating: " ", count: max(0, 34 - label.count))
            for d in row.seconds.indices {
                line += String(format: "%8.1f ms %6.1f", 1e3 * row.seconds[d], Self.gflops(row, d)) + (d < 2 ? " |" : "")
            }
            print(line)
        }
        print(String(format: "  sgemm and own kernels in all: %.1f ms, %.1f%% of the step, at %.1f GFLOP/s (%.0f%% of the peak); the rest of the step: %.1f%%",
                     1e3 * seconds, 100 * seconds / step, gflops, 100 * gflops / peak, 100 * (1 - seconds / step)))
    }
}
