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
        let status = checkStandardOutput(code)
        (comm as? MPICommunicator)?.finalize()
        exit(status)
    }

    /// Whether everything printed reached standard output (`> /dev/full`, a full disk): if not,
    /// one message and status 1 instead of a success nobody can read.
    static func checkStandardOutput(_ code: Int32) -> Int32 {
        if fflush(stdout) != 0 || ferror(stdout) != 0 || Reporter.failure != 0 {
            let e = Reporter.failure != 0 ? Reporter.failure : errno
            writeError("error: cannot write standard output: \(String(cString: strerror(e == 0 ? EIO : e)))"
                       + (code == 0 ? " (the run itself finished: its checkpoints and metrics file are complete)" : ""))
            return code == 0 ? 1 : code
        }
        return code
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
    /// The first errno of a failed write to standard output (checked when the process ends).
    nonisolated(unsafe) static var failure: Int32 = 0
    func line(_ s: String) {
        guard enabled else { return }
        if fputs(s + "\n", stdout) < 0 || fflush(stdout) != 0, Reporter.failure == 0 { Reporter.failure = errno == 0 ? EIO : errno }
    }
    func progress(_ s: String) {
        guard enabled else { return }
        FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
    }
}

/// One JSON object per line, written by rank 0 only.
final class JSONLines {
    let path: String
    private var fd: Int32
    /// Truncates the file, or appends to it (a resumed run continues its log).
    init(path: String, append: Bool = false) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o644)
        guard fd >= 0 else {
            throw HiddenError("cannot write metrics file \(path): \(String(cString: strerror(errno)))", hint: "check that its folder exists and is writable")
        }
    }
    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Appends one line in one write (a kill leaves no torn line). A failed or short write
    /// (a full disk, a quota) takes back what it wrote and throws, naming the file.
    func write(_ object: [String: Any]) throws {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        let line = Array(data) + [0x0A]
        let before = lseek(fd, 0, SEEK_END)
        var done = 0, failure: Int32 = 0
        line.withUnsafeBytes { raw in
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : ENOSPC; return }
                done += n
            }
        }
        guard failure != 0 else { return }
        if before >= 0, done > 0 { _ = ftruncate(fd, before) }  // no half line left behind
        throw HiddenError("cannot write metrics file \(path): \(String(cString: strerror(failure))) (the lines written before are kept)",
                          hint: "free space there (or raise the quota) and resume the run (--resume auto), or write --metrics elsewhere")
    }

    func close() throws {
        guard fd >= 0 else { return }
        let result = Glibc.close(fd)
        fd = -1
        if result != 0 {
            throw HiddenError("cannot write metrics file \(path): \(String(cString: strerror(errno)))", hint: "free space there and run again")
        }
    }
}
