// The library's only view of other ranks. The MPI implementation lives in HiddenMPI; the
// one-process communicator here runs the same trainer in unit tests and single-process runs.

public enum ReduceOp: Sendable { case sum, max, min }

public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In-place sum over all ranks.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// In-place integer sum over all ranks: exact and associative (the exact reduction).
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>)
    /// In-place reduction of a few doubles (counters, timings, checksums).
    func allreduce(_ values: inout [Double], op: ReduceOp)
    /// The same without an array (the step loop allocates nothing).
    func allreduce(_ values: UnsafeMutableBufferPointer<Double>, op: ReduceOp)
    /// Starts a non-blocking in-place sum of `buffer`; it is complete after `waitAllreduces()`.
    /// The score gradients of a layer start as soon as its backward pass is done.
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>)
    /// Starts a non-blocking integer reduce-scatter: `send` (the sum of `counts[0] + ... +
    /// counts[size - 1]` values, rank 0's segment first) is summed over all ranks and this rank's
    /// segment of the sum is left in `recv`. `counts` must stay valid until `waitAllreduces()`.
    func startReduceScatterSum(_ send: UnsafeMutableBufferPointer<Int64>, into recv: UnsafeMutablePointer<Int64>,
                               counts: UnsafePointer<Int32>)
    /// Starts a non-blocking in-place allgather: segment r of `buffer` (`counts[r]` floats at
    /// `displacements[r]`) is rank r's on every rank after `waitAllreduces()`.
    func startAllgather(_ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, displacements: UnsafePointer<Int32>)
    /// The same, blocking: done on return.
    func allgather(_ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, displacements: UnsafePointer<Int32>)
    /// Lets started reductions progress (MPI moves them on only inside MPI calls).
    func pollAllreduces()
    /// Blocks until every started reduction is complete.
    func waitAllreduces()
    func barrier()
    /// Rank `root`'s `bytes` on every rank (collective; the others' contents are replaced).
    func broadcast(_ bytes: inout [UInt8], root: Int)
    /// Ends every rank of the job with `code`.
    func abort(code: Int32) -> Never
}

extension Communicator {
    public func allreduce(_ values: UnsafeMutableBufferPointer<Double>, op: ReduceOp) {
        var copy = Array(values)
        allreduce(&copy, op: op)
        for i in 0..<values.count { values[i] = copy[i] }
    }
    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) { allreduceSum(buffer) }
    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) { allreduceSum(buffer) }
    /// Rank 0's `bytes` on every rank.
    public func broadcast(_ bytes: inout [UInt8]) { broadcast(&bytes, root: 0) }

    /// By allreduce (test communicators): the length, then the bytes as doubles, 4096 at a time.
    public func broadcast(_ bytes: inout [UInt8], root: Int) {
        guard size > 1 else { return }
        var length = [rank == root ? Double(bytes.count) : 0]
        allreduce(&length, op: .sum)
        var out = [UInt8](repeating: 0, count: Int(length[0]))
        var start = 0
        while start < out.count {
            let n = min(4096, out.count - start)
            var slots = (0..<n).map { rank == root ? Double(bytes[start + $0]) : 0 }
            allreduce(&slots, op: .sum)
            for k in 0..<n { out[start + k] = UInt8(slots[k]) }
            start += n
        }
        bytes = out
    }
    public func pollAllreduces() {}
    public func waitAllreduces() {}

    /// By an integer allreduce of the whole buffer (test communicators, one process): exact.
    public func startReduceScatterSum(_ send: UnsafeMutableBufferPointer<Int64>, into recv: UnsafeMutablePointer<Int64>,
                                      counts: UnsafePointer<Int32>) {
        var sum = Array(send)
        sum.withUnsafeMutableBufferPointer { allreduceSum($0) }
        let first = (0..<rank).reduce(0) { $0 + Int(counts[$1]) }
        for i in 0..<Int(counts[rank]) { recv[i] = sum[first + i] }
    }

    public func allgather(_ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, displacements: UnsafePointer<Int32>) {
        startAllgather(buffer, counts: counts, displacements: displacements)
        waitAllreduces()
    }

    /// By an integer allreduce of the bit patterns, zero outside this rank's segment (test
    /// communicators, one process): every float arrives bit for bit, negative zeros included.
    public func startAllgather(_ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, displacements: UnsafePointer<Int32>) {
        guard size > 1 else { return }
        let end = (0..<size).map { Int(displacements[$0]) + Int(counts[$0]) }.max() ?? 0
        let mine = Int(displacements[rank])..<(Int(displacements[rank]) + Int(counts[rank]))
        var bits = (0..<end).map { mine.contains($0) ? Int64(buffer[$0].bitPattern) : 0 }
        bits.withUnsafeMutableBufferPointer { allreduceSum($0) }
        for r in 0..<size {
            for i in Int(displacements[r])..<(Int(displacements[r]) + Int(counts[r])) { buffer[i] = Float(bitPattern: UInt32(truncatingIfNeeded: bits[i])) }
        }
    }
}

/// Seconds on a monotonic clock, for timing phases of a step.
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) {}
    public func allreduce(_ values: inout [Double], op: ReduceOp) {}
    public func allreduce(_ values: UnsafeMutableBufferPointer<Double>, op: ReduceOp) {}
    public func barrier() {}
    public func abort(code: Int32) -> Never { exit(code) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
