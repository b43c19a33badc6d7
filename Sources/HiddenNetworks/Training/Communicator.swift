// The library's only view of other ranks. The MPI implementation lives in HiddenMPI; the
// one-process communicator here runs the same trainer in unit tests and single-process runs.

public enum ReduceOp: Sendable { case sum, max, min }

public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In-place sum over all ranks.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// In-place reduction of a few doubles (counters, timings, checksums).
    func allreduce(_ values: inout [Double], op: ReduceOp)
    func barrier()
    /// Ends every rank of the job with `code`.
    func abort(code: Int32) -> Never
}

public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func allreduce(_ values: inout [Double], op: ReduceOp) {}
    public func barrier() {}
    public func abort(code: Int32) -> Never { exit(code) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
