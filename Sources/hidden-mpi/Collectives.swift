// `hidden-mpi collectives`: times the collectives a training step uses (the int64 allreduce of the
// replicated update, the int64 reduce-scatter and float allgather of the sharded one) for message
// sizes from bytes up to a model's gradient, and fits each a latency and a bandwidth:
// seconds = latency + bytes / bandwidth. scripts/cost_model.py turns the fit, with bench's compute
// times, into predicted scaling efficiency (Docs/scaling.md).

import ArgumentParser
import Foundation
import HiddenMPI
import HiddenNetworks

struct Collectives: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the collectives of a training step by message size and fit latency and bandwidth.",
        discussion: """
        Run under mpirun with the ranks and hosts of the job to model. For each collective (and the \
        blocking or non-blocking variant the step does not use, for comparison) and each \
        size (powers of 4 from 8 bytes up to --max-bytes, or to the int64 gradient of --model) it \
        repeats the operation for at least --min-seconds and reports the slowest rank's mean time, \
        then fits seconds = latency + bytes / bandwidth (least squares on relative error). Bytes \
        are the whole buffer: the gradient for the allreduce and the reduce-scatter, W_eff for the \
        allgather.

        Examples:
          mpirun -np 2 hidden-mpi collectives
          mpirun -np 32 --hostfile hosts hidden-mpi collectives --model resnet50 --json > net.json
        """)

    @Option(help: "Largest message in bytes (default 32 MiB, or the int64 gradient of --model).")
    var maxBytes: Int?

    @Option(help: "Size the largest message as this model's int64 score gradient (8 bytes per weight).")
    var model: Architecture?

    @Option(help: "Width multiplier of --model.")
    var width: Double = 1

    @Option(help: "Input shape CxHxW of --model (its weights depend on it only for fc and convN).")
    var input: Shape = Shape([3, 224, 224])

    @Option(help: "Time each size for at least this many seconds.")
    var minSeconds: Double = 0.2

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    func validate() throws {
        if let maxBytes, maxBytes < 8 { throw ValidationError("--max-bytes must be at least 8, got \(maxBytes)") }
        guard minSeconds > 0, minSeconds <= 60 else { throw ValidationError("--min-seconds must be in (0, 60], got \(minSeconds)") }
        guard width > 0 else { throw ValidationError("--width must be positive") }
    }

    func run() throws {
        var largest = maxBytes ?? 32 << 20
        if maxBytes == nil, let model {
            let config = ModelConfig(architecture: model, width: width, inputShape: input, classes: input.count > 3 * 32 * 32 ? 1000 : 10)
            largest = 8 * (try Model(config, maxBatch: 1).parameterCount)
        }
        let comm = try Launch.communicator()
        let P = comm.size
        var sizes: [Int] = []
        var s = 8
        while s < largest { sizes.append(s); s *= 4 }
        sizes.append(largest)
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: largest / 4 + 1)
        let ints = UnsafeMutableBufferPointer<Int64>.allocate(capacity: largest / 8 + 1)
        let share = UnsafeMutablePointer<Int64>.allocate(capacity: largest / 8 + 1)
        floats.initialize(repeating: 1, count: largest / 4 + 1)
        ints.initialize(repeating: 1)
        defer { floats.deallocate(); ints.deallocate(); share.deallocate() }
        var counts = [Int32](repeating: 0, count: P), displacements = [Int32](repeating: 0, count: P)
        func split(_ n: Int) {
            for r in 0..<P {
                let x = ShardedUpdate.share(count: n, rank: r, size: P)
                counts[r] = Int32(x.count); displacements[r] = Int32(x.lowerBound)
            }
        }
        // The step uses the non-blocking reduce-scatter (it overlaps the backward pass) and the
        // blocking allgather; the other variants are timed for comparison.
        let names = ["allreduce_int64", "reduce_scatter_int64", "reduce_scatter_int64_blocking", "allgather_float", "allgather_float_nonblocking"]
        let mpi = comm as? MPICommunicator
        var points: [String: [(Int, Double)]] = [:]
        for name in names {
            for bytes in sizes {
                let floatsOp = name.hasPrefix("allgather")
                let n = max(1, bytes / (floatsOp ? 4 : 8))
                split(n)
                let op: () -> Void
                switch name {
                case "allreduce_int64":
                    op = { comm.allreduceSum(UnsafeMutableBufferPointer(rebasing: ints[0..<n])) }
                case "reduce_scatter_int64":
                    op = {
                        counts.withUnsafeBufferPointer { c in
                            comm.startReduceScatterSum(UnsafeMutableBufferPointer(rebasing: ints[0..<n]), into: share, counts: c.baseAddress!)
                            comm.waitAllreduces()
                        }
                    }
                case "reduce_scatter_int64_blocking":
                    op = {
                        counts.withUnsafeBufferPointer { c in
                            if let mpi {
                                mpi.reduceScatterSum(UnsafeMutableBufferPointer(rebasing: ints[0..<n]), into: share, counts: c.baseAddress!)
                            } else {
                                comm.startReduceScatterSum(UnsafeMutableBufferPointer(rebasing: ints[0..<n]), into: share, counts: c.baseAddress!)
                                comm.waitAllreduces()
                            }
                        }
                    }
                case "allgather_float":
                    op = {
                        counts.withUnsafeBufferPointer { c in
                            displacements.withUnsafeBufferPointer { d in comm.allgather(floats, counts: c.baseAddress!, displacements: d.baseAddress!) }
                        }
                    }
                default:
                    op = {
                        counts.withUnsafeBufferPointer { c in
                            displacements.withUnsafeBufferPointer { d in
                                comm.startAllgather(floats, counts: c.baseAddress!, displacements: d.baseAddress!)
                                comm.waitAllreduces()
                            }
                        }
                    }
                }
                op(); op()  // warm-up: connections, registrations, first touch
                // Repetitions agreed by all ranks: rank 0's count after a timed trial.
                comm.barrier()
                let t0 = monotonicSeconds()
                op()
                var reps = [Double(min(1000, max(3, Int(minSeconds / max(monotonicSeconds() - t0, 1e-7)))))]
                comm.allreduce(&reps, op: .max)
                comm.barrier()
                let start = monotonicSeconds()
                for _ in 0..<Int(reps[0]) { op() }
                var mean = [(monotonicSeconds() - start) / reps[0]]
                comm.allreduce(&mean, op: .max)
                points[name, default: []].append((n * (floatsOp ? 4 : 8), mean[0]))
            }
        }
        let hosts = RankAgreement.gather(RankAgreement.hostName, comm)
        guard comm.rank == 0 else { Launch.finish(comm, code: 0) }
        var fits: [String: Any] = [:]
        var lines: [String] = []
        for name in names {
            let pts = points[name]!
            let (latency, perByte) = Self.fit(pts)
            fits[name] = ["latency_s": latency, "seconds_per_byte": perByte, "bandwidth_bytes_per_s": perByte > 0 ? 1 / perByte : NSNull(),
                          "points": pts.map { [$0.0, $0.1] as [Any] }]
            lines.append(name.padding(toLength: 30, withPad: " ", startingAt: 0)
                         + String(format: "latency %8.1f us   bandwidth %8.3f GB/s (whole buffer per second)", 1e6 * latency, perByte > 0 ? 1e-9 / perByte : .infinity))
        }
        let result: [String: Any] = ["world_size": P, "nodes": Set(hosts).count, "hosts": Array(Set(hosts)).sorted(),
                                     "min_seconds": minSeconds, "collectives": fits]
        if json {
            print(String(data: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), encoding: .utf8)!)
            Launch.finish(comm, code: 0)
        }
        print("hidden-mpi collectives: \(P) rank(s) on \(Set(hosts).count) node(s); mean of the slowest rank, seconds per operation")
        print("  bytes        " + names.map { $0.padding(toLength: 30, withPad: " ", startingAt: 0) }.joined())
        for (i, bytes) in sizes.enumerated() {
            let row = names.map { String(format: "%.3e", points[$0]![i].1).padding(toLength: 30, withPad: " ", startingAt: 0) }.joined()
            print("  " + String(bytes).padding(toLength: 13, withPad: " ", startingAt: 0) + row)
        }
        print("fit: seconds = latency + bytes / bandwidth")
        for l in lines { print("  " + l) }
        Launch.finish(comm, code: 0)
    }

    /// Least squares of t = a + b x on relative error (each point weighted by 1 / t^2), with
    /// a and b kept non-negative.
    static func fit(_ points: [(Int, Double)]) -> (Double, Double) {
        var sw = 0.0, sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0
        for (b, t) in points {
            let w = 1 / max(t * t, 1e-18), x = Double(b)
            sw += w; sx += w * x; sy += w * t; sxx += w * x * x; sxy += w * x * t
        }
        let det = sw * sxx - sx * sx
        guard det > 0 else { return (sy / max(sw, 1e-300), 0) }
        var slope = (sw * sxy - sx * sy) / det
        var intercept = (sy - slope * sx) / sw
        if slope < 0 { slope = 0; intercept = sy / sw }
        if intercept < 0 { intercept = 0; slope = sxy / max(sxx, 1e-300) }
        return (intercept, slope)
    }
}
