// The MPI communicator: the only code that talks to Open MPI. Errors return codes (not the default
// abort-in-place) so a failure becomes an MPIError with the call's name; the caller then aborts
// the whole job, so no rank is left waiting in a collective.

import CMPI
import HiddenNetworks
import Foundation

public struct MPIError: Error, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public var description: String {
        var buffer = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        return "\(call) failed: \(String(cString: buffer)) (code \(code))"
    }
}

@inline(__always)
func check(_ code: Int32, _ call: String) throws {
    if code != cmpi_success() { throw MPIError(call: call, code: code) }
}

public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private let world = cmpi_comm_world()
    private static var initialized = false

    /// Initialises MPI (once per process) and reads rank and size of MPI_COMM_WORLD.
    public init() throws {
        precondition(!MPICommunicator.initialized, "MPI_Init may run once per process")
        MPICommunicator.initialized = true
        try check(MPI_Init(nil, nil), "MPI_Init")
        try check(MPI_Comm_set_errhandler(world, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(world, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(world, &s), "MPI_Comm_size")
        rank = Int(r); size = Int(s)
    }

    public func finalize() { MPI_Finalize() }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard size > 1, let base = buffer.baseAddress else { return }
        fatalIfFailed(MPI_Allreduce(cmpi_in_place(), base, Int32(buffer.count), cmpi_float(), cmpi_sum(), world),
                      "MPI_Allreduce")
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) {
        guard size > 1, let base = buffer.baseAddress else { return }
        fatalIfFailed(MPI_Allreduce(cmpi_in_place(), base, Int32(buffer.count), cmpi_int64(), cmpi_sum(), world),
                      "MPI_Allreduce")
    }

    public func allreduce(_ values: inout [Double], op: ReduceOp) {
        guard size > 1 else { return }
        values.withUnsafeMutableBufferPointer { allreduce($0, op: op) }
    }

    public func allreduce(_ values: UnsafeMutableBufferPointer<Double>, op: ReduceOp) {
        guard size > 1 else { return }
        fatalIfFailed(MPI_Allreduce(cmpi_in_place(), values.baseAddress, Int32(values.count), cmpi_double(), mpiOp(op), world),
                      "MPI_Allreduce")
    }

    /// Requests of the reductions in flight; grows once to the number of layers, then is reused.
    private var requests: [MPI_Request?] = []
    private var inFlight = 0
    /// One persistent allreduce per gradient buffer, made the first time that buffer is reduced.
    private var persistent: [UnsafeMutableRawPointer: (count: Int, request: MPI_Request?)] = [:]
    private var persistentUnavailable = false

    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard let base = buffer.baseAddress else { return }
        startSum(UnsafeMutableRawPointer(base), count: buffer.count, type: cmpi_float())
    }

    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) {
        guard let base = buffer.baseAddress else { return }
        startSum(UnsafeMutableRawPointer(base), count: buffer.count, type: cmpi_int64())
    }

    private func startSum(_ base: UnsafeMutableRawPointer, count: Int, type: MPI_Datatype) {
        guard size > 1 else { return }
        if inFlight == requests.count { requests.append(cmpi_request_null()) }
        if !persistentUnavailable {
            if persistent[base]?.count != count {
                var request: MPI_Request? = cmpi_request_null()
                if cmpi_allreduce_init(base, Int32(count), type, cmpi_sum(), world, &request) == cmpi_success() {
                    persistent[base] = (count, request)
                } else {
                    persistentUnavailable = true
                }
            }
            if var entry = persistent[base] {
                fatalIfFailed(MPI_Start(&entry.request), "MPI_Start")
                requests[inFlight] = entry.request
                inFlight += 1
                return
            }
        }
        let code = requests.withUnsafeMutableBufferPointer {
            MPI_Iallreduce(cmpi_in_place(), base, Int32(count), type, cmpi_sum(), world, $0.baseAddress! + inFlight)
        }
        fatalIfFailed(code, "MPI_Iallreduce")
        inFlight += 1
    }

    /// A request slot for one more non-blocking collective.
    private func startRequest(_ call: String, _ start: (UnsafeMutablePointer<MPI_Request?>) -> Int32) {
        if inFlight == requests.count { requests.append(cmpi_request_null()) }
        let slot = inFlight
        let code = requests.withUnsafeMutableBufferPointer { start($0.baseAddress! + slot) }
        fatalIfFailed(code, call)
        inFlight += 1
    }

    /// MPI_Ireduce_scatter. In Open MPI 4.1 (libnbc) it reduces the whole buffer to rank 0 in a
    /// binomial tree and scatters the shares from there, so rank 0 adds every rank's gradient and
    /// sends every share: a bottleneck that grows with the rank count (Docs/scaling.md). One
    /// reduce rooted at each share's rank was tried instead and was slower on 2 ranks.
    public func startReduceScatterSum(_ send: UnsafeMutableBufferPointer<Int64>, into recv: UnsafeMutablePointer<Int64>,
                                             counts: UnsafePointer<Int32>) {
        guard size > 1 else {
            if let base = send.baseAddress { recv.update(from: base, count: Int(counts[0])) }
            return
        }
        startRequest("MPI_Ireduce_scatter") { MPI_Ireduce_scatter(send.baseAddress, recv, counts, cmpi_int64(), cmpi_sum(), world, $0) }
    }

    public func startAllgather(_ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, displacements: UnsafePointer<Int32>) {
        guard size > 1 else { return }
        startRequest("MPI_Iallgatherv") {
            MPI_Iallgatherv(cmpi_in_place(), 0, cmpi_float(), buffer, counts, displacements, cmpi_float(), world, $0)
        }
    }

    public func allgather(_ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, displacements: UnsafePointer<Int32>) {
        guard size > 1 else { return }
        fatalIfFailed(MPI_Allgatherv(cmpi_in_place(), 0, cmpi_float(), buffer, counts, displacements, cmpi_float(), world),
                      "MPI_Allgatherv")
    }

    /// Blocking reduce-scatter (the collectives probe compares it with the non-blocking one).
    public func reduceScatterSum(_ send: UnsafeMutableBufferPointer<Int64>, into recv: UnsafeMutablePointer<Int64>,
                                 counts: UnsafePointer<Int32>) {
        guard size > 1 else {
            if let base = send.baseAddress { recv.update(from: base, count: Int(counts[0])) }
            return
        }
        fatalIfFailed(MPI_Reduce_scatter(send.baseAddress, recv, counts, cmpi_int64(), cmpi_sum(), world), "MPI_Reduce_scatter")
    }

    public func pollAllreduces() {
        guard inFlight > 0 else { return }
        var done: Int32 = 0
        let code = requests.withUnsafeMutableBufferPointer {
            MPI_Testall(Int32(inFlight), $0.baseAddress, &done, cmpi_statuses_ignore())
        }
        fatalIfFailed(code, "MPI_Testall")
        if done != 0 { inFlight = 0 }
    }

    public func waitAllreduces() {
        guard inFlight > 0 else { return }
        let code = requests.withUnsafeMutableBufferPointer {
            MPI_Waitall(Int32(inFlight), $0.baseAddress, cmpi_statuses_ignore())
        }
        fatalIfFailed(code, "MPI_Waitall")
        inFlight = 0
    }

    private func mpiOp(_ op: ReduceOp) -> MPI_Op {
        switch op {
        case .sum: return cmpi_sum()
        case .max: return cmpi_max()
        case .min: return cmpi_min()
        }
    }

    public func barrier() { fatalIfFailed(MPI_Barrier(world), "MPI_Barrier") }

    public func broadcast(_ bytes: inout [UInt8], root: Int) {
        guard size > 1 else { return }
        var length = Int64(rank == root ? bytes.count : 0)
        fatalIfFailed(MPI_Bcast(&length, 1, cmpi_int64(), Int32(root), world), "MPI_Bcast")
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(length)) }
        var start = 0
        while start < bytes.count {  // counts are ints: 1 GiB at a time
            let n = min(1 << 30, bytes.count - start)
            let code = bytes.withUnsafeMutableBytes { MPI_Bcast($0.baseAddress! + start, Int32(n), cmpi_byte(), Int32(root), world) }
            fatalIfFailed(code, "MPI_Bcast")
            start += n
        }
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(world, code)
        exit(code)
    }

    /// A collective that fails mid-run leaves the others waiting: report it and end the job.
    private func fatalIfFailed(_ code: Int32, _ call: String) {
        guard code != cmpi_success() else { return }
        let message = "hidden-mpi: error on rank \(rank): \(MPIError(call: call, code: code))\n"
        FileHandle.standardError.write(message.data(using: .utf8)!)
        abort(code: 3)
    }
}
