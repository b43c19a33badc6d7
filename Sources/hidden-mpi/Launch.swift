// Process start-up under mpirun or alone: which rank this is, the communicator, and how a failure
// reaches the user (once, from one rank) while every rank exits and none is left waiting.

import Foundation
import HiddenMPI
import HiddenNetworks

enum Launch {
    /// The rank the launcher gave this process, read before MPI_Init (for argument errors).
    static var environmentRank: Int? {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"] {
            if let v = env[key], let r = Int(v) { return r }
        }
        return nil
    }

    static var isRankZero: Bool { (environmentRank ?? 0) == 0 }

    /// MPI when launched by mpirun, the one-process communicator otherwise.
    static func communicator() throws -> Communicator {
        environmentRank == nil ? SingleProcessCommunicator() : try MPICommunicator()
    }

    static func finish(_ comm: Communicator, code: Int32) -> Never {
        (comm as? MPICommunicator)?.finalize()
        exit(code)
    }

    /// Every rank calls this with its own outcome of a phase. If any rank failed, the failure is
    /// printed once (rank 0's own, else the failing rank's, with its number) and all ranks exit 1.
    static func agree(_ comm: Communicator, _ error: Error?, exitCode: Int32 = 1) {
        var flags = [error == nil ? 0.0 : 1.0, (comm.rank == 0 && error != nil) ? 1.0 : 0.0]
        comm.allreduce(&flags, op: .max)
        guard flags[0] > 0 else { return }
        if let error, comm.rank == 0 || flags[1] == 0 {
            let who = comm.size > 1 && comm.rank != 0 ? " (rank \(comm.rank))" : ""
            writeError("error\(who): \(error)")
        }
        finish(comm, code: exitCode)
    }

    static func writeError(_ text: String) {
        FileHandle.standardError.write("hidden-mpi: \(text)\n".data(using: .utf8)!)
    }
}

/// Rank 0's output: lines to stdout, flushed at once so they interleave sanely under mpirun.
struct Reporter {
    let enabled: Bool
    func line(_ s: String) {
        guard enabled else { return }
        FileHandle.standardOutput.write((s + "\n").data(using: .utf8)!)
    }
    func progress(_ s: String) {
        guard enabled else { return }
        FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
    }
}

/// One JSON object per line, written by rank 0 only.
final class JSONLines {
    private let handle: FileHandle
    /// Truncates the file, or appends to it (a resumed run continues its log).
    init(path: String, append: Bool = false) throws {
        let exists = FileManager.default.fileExists(atPath: path)
        guard (append && exists) || FileManager.default.createFile(atPath: path, contents: nil),
              let h = FileHandle(forWritingAtPath: path) else {
            throw HiddenError("cannot write metrics file \(path)", hint: "check that its folder exists and is writable")
        }
        if append { h.seekToEndOfFile() }
        handle = h
    }
    func write(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        handle.write(data + "\n".data(using: .utf8)!)  // one write: a kill leaves no torn line
    }
    func close() { try? handle.close() }
}
