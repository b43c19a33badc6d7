// Shared helpers of the multi-rank and command-line tests: where the release binary and mpirun
// are, the clean environment a child mpirun needs (PLATFORM.md), a process runner with a hard
// timeout that kills the whole process tree, and a JSON Lines reader.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What a finished (or killed) child left behind.
struct RunResult {
    let command: [String]
    /// Exit status; for a child ended by a signal, 128 + signal number.
    let status: Int32
    let stdout: String
    let stderr: String
    let seconds: Double
    let timedOut: Bool

    /// stdout then stderr (each captured on its own; this is not their interleaving in time).
    var combined: String { stdout + "\n" + stderr }

    /// `combined` without Open MPI's own notices (the blocks between lines of dashes that mpirun
    /// prints when a rank exits non-zero). mpirun writes such a block in one piece, but it can land
    /// in the middle of a rank's line when the rank writes its message in many small pieces, so
    /// phrases are searched in this text (see the report on ArgumentParser's per-byte stderr).
    var combinedWithoutMPINotices: String {
        combined.replacingOccurrences(of: #"-{20,}\n[\s\S]*?-{20,}\n"#, with: "", options: .regularExpression)
    }

    var shellLine: String { command.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ") }

    /// Everything a failure message needs to be understood without a rerun.
    var transcript: String {
        "$ \(shellLine)\nexit \(status)\(timedOut ? " (killed: hung)" : ""), \(String(format: "%.1f", seconds)) s\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)"
    }
}

enum Harness {
    /// Seconds a child may run before it is killed and the test fails with "hung".
    static let defaultTimeout: Double = 120

    /// The package root: Tests/HiddenMPITests/Harness.swift is three levels below it.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The release binary under test: $HIDDEN_MPI_BIN, else <root>/.build/release/hidden-mpi.
    static func binary() throws -> String {
        let path: String
        if let env = ProcessInfo.processInfo.environment["HIDDEN_MPI_BIN"], !env.isEmpty {
            path = env
        } else {
            path = packageRoot.appendingPathComponent(".build/release/hidden-mpi").path
        }
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("hidden-mpi release binary not found at \(path): run `swift build -c release` first (in \(packageRoot.path)), or set HIDDEN_MPI_BIN")
        }
        return path
    }

    static func mpirun() throws -> String {
        try executable("mpirun", or: "mpirun not found on PATH: install openmpi-bin (scripts/install-deps.sh)")
    }

    /// The first executable `name` on PATH (then /usr/bin, /usr/local/bin), or `message` as the error.
    static func executable(_ name: String, or message: String) throws -> String {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        for dir in dirs + ["/usr/bin", "/usr/local/bin"] {
            let path = (dir as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw HarnessError(message)
    }

    /// The inherited environment without any Open MPI / PMIx / OPAL variable (a child mpirun that
    /// inherits them exits 1 silently) or batch-system task count, plus what mpirun needs as root and on 2 cores.
    static func childEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            // Also no batch system's task count: the tests launch their own mpirun.
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("OPAL_") || key.hasPrefix("SLURM_") || key.hasPrefix("PBS_"))
        }
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
        env["OMPI_MCA_mpi_yield_when_idle"] = "1"
        env["OMPI_MCA_pml"] = "ob1"
        env["OPENBLAS_NUM_THREADS"] = "1"
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Runs `hidden-mpi args`, under `mpirun -np np` when np is given, directly otherwise.
    /// A child still running after `timeout` seconds is killed with its whole process tree and the
    /// calling test fails with "hung".
    @discardableResult
    static func hiddenMPI(_ args: [String], np: Int? = nil, timeout: Double = defaultTimeout,
                          env: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let bin = try binary()
        let command = try np.map { [try mpirun(), "-np", String($0), bin] + args } ?? [bin] + args
        let result = try run(command, environment: childEnvironment(env), timeout: timeout)
        if result.timedOut {
            XCTFail("hung: no exit within \(Int(timeout)) s, killed\n\(result.transcript)", file: file, line: line)
        }
        return result
    }

    /// Spawns `command` in its own process group with stdin from /dev/null and stdout / stderr
    /// into files (no pipe can fill up), waits at most `timeout` seconds, then kills the tree.
    static func run(_ command: [String], environment: [String: String], timeout: Double) throws -> RunResult {
        let dir = try makeTempDir(prefix: "hidden-mpi-run")
        defer { try? FileManager.default.removeItem(at: dir) }
        let outPath = dir.appendingPathComponent("stdout").path
        let errPath = dir.appendingPathComponent("stderr").path

        let started = Date()
        let pid = try spawn(command, environment: environment, stdout: outPath, stderr: errPath)

        var status: Int32 = 0
        var timedOut = false
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw HarnessError("waitpid: \(String(cString: strerror(errno)))") }
            if Date().timeIntervalSince(started) > timeout {
                timedOut = true
                killTree(pid)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                break
            }
            usleep(10_000)
        }
        let seconds = Date().timeIntervalSince(started)
        let signal = status & 0x7f
        let code: Int32 = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return RunResult(command: command, status: code, stdout: out, stderr: err, seconds: seconds, timedOut: timedOut)
    }

    /// Starts `command` in its own process group, stdin from /dev/null, stdout and stderr into
    /// the given files; returns its pid without waiting.
    static func spawn(_ command: [String], environment: [String: String], stdout: String, stderr: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)

        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, command[0], &actions, &attr, argv, envp)
        guard rc == 0 else { throw HarnessError("cannot start \(command[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// SIGKILL to `root` and every process descended from it (found through /proc before any is
    /// killed, so none is lost to re-parenting), and to its process group.
    static func killTree(_ root: pid_t) {
        var children: [pid_t: [pid_t]] = [:]
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") {
            for name in entries {
                guard let pid = pid_t(name),
                      let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                      let close = stat.range(of: ")", options: .backwards) else { continue }
                let fields = stat[close.upperBound...].split(separator: " ")
                if fields.count > 1, let ppid = pid_t(fields[1]) { children[ppid, default: []].append(pid) }
            }
        }
        var tree: [pid_t] = []
        var queue = [root]
        while let p = queue.popLast() {
            tree.append(p)
            queue += children[p] ?? []
        }
        for p in tree.reversed() { kill(p, SIGKILL) }
        kill(-root, SIGKILL)
    }

    static func makeTempDir(prefix: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Every line of a JSON Lines file as an object; a line that is not an object fails the read.
    static func readJSONLines(_ path: String) throws -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw HarnessError("metrics file \(path) was not written")
        }
        return try text.split(separator: "\n", omittingEmptySubsequences: true).enumerated().map { i, line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw HarnessError("\(path) line \(i + 1) is not a JSON object: \(line)")
            }
            return object
        }
    }

    /// How often `phrase` occurs in `text` (non-overlapping).
    static func count(_ phrase: String, in text: String) -> Int {
        text.components(separatedBy: phrase).count - 1
    }
}

/// A training run's metrics file, split by kind.
struct Metrics {
    let run: [String: Any]
    let steps: [[String: Any]]
    let epochs: [[String: Any]]

    init(path: String) throws {
        let objects = try Harness.readJSONLines(path)
        guard let first = objects.first, first["kind"] as? String == "run" else {
            throw HarnessError("\(path): the first line is not the \"run\" object")
        }
        run = first
        steps = objects.filter { $0["kind"] as? String == "step" }
        epochs = objects.filter { $0["kind"] as? String == "epoch" }
    }

    var stepLosses: [Double] { steps.compactMap { ($0["loss"] as? NSNumber)?.doubleValue } }
    var checksums: [String] { run["weight_checksums"] as? [String] ?? [] }
    var worldSize: Int? { (run["world_size"] as? NSNumber)?.intValue }
    func epochValue(_ index: Int, _ key: String) -> Double? {
        index < epochs.count ? (epochs[index][key] as? NSNumber)?.doubleValue : nil
    }
}

/// |a - b| <= tol * max(|a|, |b|).
func relativelyClose(_ a: Double, _ b: Double, _ tol: Double) -> Bool {
    a.isFinite && b.isFinite && abs(a - b) <= tol * max(abs(a), abs(b))
}
