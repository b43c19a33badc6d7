// Preemption under real mpirun -np 2 (DESIGN.md invariants 3-5): one rank killed outright takes
// the job down within seconds and the newest checkpoint on disk is whole; SIGTERM or SIGUSR1 to one
// rank (or SIGUSR1 to mpirun, which forwards it: the Slurm `--signal=B:USR1@...` path) stops every
// rank at the same step boundary, rank 0 writes a checkpoint, and everything exits 75. In each case
// `--resume auto` with the same command line finishes bit for bit where an uninterrupted run does.

import Foundation
import XCTest

final class CheckpointPreemptionTests: XCTestCase {
    /// fc, 3200 samples, global batch 64: 50 steps per epoch, 500 steps in all (several seconds on
    /// two ranks), a checkpoint every 5 steps. The signal goes out once step 25 is on disk.
    static let args = ["--dataset", "synthetic", "--input", "1x12x12", "--classes", "4", "--train-size", "3200",
                       "--test-size", "100", "--model", "fc", "--batch-size", "64", "--epochs", "10", "--seed", "21",
                       "--checkpoint-every", "5", "--progress", "0"]
    static let finalName = CheckpointFolder.name(step: 500, epoch: 10)
    static let signalAfterStep = 25

    static var root: URL?
    /// The uninterrupted run every scenario is compared with (run once, by the first test that needs it).
    static var reference: (dir: String, metrics: String)?

    override class func tearDown() {
        if let root { try? FileManager.default.removeItem(at: root) }
        root = nil
        reference = nil
    }

    func rootDir() throws -> URL {
        if let r = Self.root { return r }
        let r = try Harness.makeTempDir(prefix: "hidden-mpi-preempt")
        Self.root = r
        return r
    }

    func uninterrupted() throws -> (dir: String, metrics: String) {
        if let r = Self.reference { return r }
        let dir = try rootDir().appendingPathComponent("reference").path, metrics = dir + ".jsonl"
        let r = try Harness.hiddenMPI(["train"] + Self.args + ["--checkpoint-dir", dir, "--metrics", metrics], np: 2, timeout: 120)
        guard r.status == 0, FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent(Self.finalName)) else {
            throw HarnessError("the uninterrupted reference run failed\n\(r.transcript)")
        }
        Self.reference = (dir, metrics)
        return (dir, metrics)
    }

    enum Target: CustomStringConvertible {
        case rank(Int), mpirun
        var description: String {
            switch self { case .rank(let r): return "rank \(r)"; case .mpirun: return "mpirun" }
        }
    }

    struct Interrupted {
        let result: RunResult
        /// Seconds from the signal to mpirun's exit.
        let exitAfter: Double
        let dir: String
        let metrics: String
        let rankPids: [pid_t]
    }

    /// Starts the run under mpirun -np 2, waits until step `signalAfterStep` is checkpointed, sends
    /// `sig` to `target`, and waits for the job to end.
    func interrupt(_ sig: Int32, _ target: Target, tag: String, file: StaticString = #filePath, line: UInt = #line) throws -> Interrupted {
        let dir = try rootDir().appendingPathComponent(tag).path, metrics = dir + ".jsonl"
        let job = try BackgroundRun.hiddenMPI(["train"] + Self.args + ["--checkpoint-dir", dir, "--metrics", metrics], np: 2)
        var ranks: [Int: pid_t] = [:]
        let ready = job.waitUntil(timeout: 90) {
            if ranks.count < 2 { ranks = job.ranks() }
            return ranks.count == 2 && (CheckpointFolder.newest(dir).flatMap(CheckpointFolder.step) ?? 0) >= Self.signalAfterStep
        }
        guard ready, !job.hasExited else {
            let r = job.wait(timeout: 5)
            XCTFail("[\(tag)] the run was not in progress at step \(Self.signalAfterStep) (ranks found: \(ranks))\n\(r.transcript)",
                    file: file, line: line)
            throw HarnessError("no run to interrupt")
        }
        let pid: pid_t
        switch target {
        case .rank(let r): pid = ranks[r]!
        case .mpirun: pid = job.pid
        }
        let sent = Date()
        kill(pid, sig)
        let result = job.wait(timeout: 60)
        let after = Date().timeIntervalSince(sent)
        XCTAssertFalse(result.timedOut, "[\(tag)] hung after \(target) got signal \(sig)\n\(result.transcript)", file: file, line: line)
        let total = CheckpointFolder.newest(dir).flatMap(CheckpointFolder.step) ?? 0
        XCTAssertLessThan(total, 500, "[\(tag)] the signal came too late: the run had finished\n\(result.transcript)", file: file, line: line)
        return Interrupted(result: result, exitAfter: after, dir: dir, metrics: metrics, rankPids: Array(ranks.values))
    }

    /// No rank process of the job is left running (a zombie waiting for its reaper is not running).
    func assertRanksGone(_ pids: [pid_t], _ tag: String, file: StaticString = #filePath, line: UInt = #line) {
        for p in pids {
            guard let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8),
                  let close = stat.range(of: ")", options: .backwards) else { continue }
            let state = stat[close.upperBound...].split(separator: " ").first ?? ""
            XCTAssertEqual(state, "Z", "[\(tag)] rank process \(p) still running after mpirun exited", file: file, line: line)
        }
    }

    /// `hidden-mpi eval --checkpoint` loads and evaluates `path`.
    func assertLoads(_ path: String, _ tag: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Harness.hiddenMPI(["eval", "--checkpoint", path, "--json"], timeout: 60, file: file, line: line)
        XCTAssertEqual(r.status, 0, "[\(tag)] \(path) does not load\n\(r.transcript)", file: file, line: line)
        let object = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertNotNil(object?["test_acc"] as? NSNumber, "[\(tag)] eval --json output\n\(r.transcript)", file: file, line: line)
    }

    /// `--resume auto` with the same command line (as a requeued job script runs it) finishes exactly
    /// where the uninterrupted run does.
    func assertResumesExactly(_ run: Interrupted, _ tag: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let reference = try uninterrupted()
        let newest = CheckpointFolder.newest(run.dir) ?? "(none)"
        let r = try Harness.hiddenMPI(["train"] + Self.args + ["--checkpoint-dir", run.dir, "--metrics", run.metrics, "--resume", "auto"],
                                      np: 2, timeout: 120, file: file, line: line)
        XCTAssertEqual(r.status, 0, "[\(tag)] resume\n\(r.transcript)", file: file, line: line)
        XCTAssertTrue(r.stderr.contains("resuming from \(newest)"), "[\(tag)] resumes from the newest checkpoint \(newest)\n\(r.transcript)",
                      file: file, line: line)
        assertSameTensors((reference.dir as NSString).appendingPathComponent(Self.finalName),
                          (run.dir as NSString).appendingPathComponent(Self.finalName), "[\(tag)] final checkpoint", file: file, line: line)
        assertSameEpochMetrics(reference.metrics, run.metrics, "[\(tag)]", file: file, line: line)
    }

    func testSIGKILLOfOneRankEndsTheJobAndResumeIsExact() throws {
        let run = try interrupt(SIGKILL, .rank(1), tag: "sigkill")
        XCTAssertNotEqual(run.result.status, 0, "mpirun must fail when a rank is killed\n\(run.result.transcript)")
        XCTAssertNotEqual(run.result.status, 75, "a killed rank is not a clean stop\n\(run.result.transcript)")
        XCTAssertLessThanOrEqual(run.exitAfter, 10, "mpirun exited \(run.exitAfter) s after the kill\n\(run.result.transcript)")
        assertRanksGone(run.rankPids, "sigkill")
        let paths = CheckpointFolder.paths(run.dir)
        XCTAssertFalse(paths.isEmpty)
        XCTAssertLessThanOrEqual(paths.count, 3, "--keep-checkpoints 3: \(paths)")
        for p in paths { try assertLoads(p, "sigkill") }
        try assertResumesExactly(run, "sigkill")
    }

    /// The stop is clean: exit 75 from mpirun and every rank, a "stopped by signal" checkpoint that
    /// is the newest on disk and matches the "stopped" record in the metrics, and an exact resume.
    func assertCleanStop(_ sig: Int32, _ target: Target, tag: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try interrupt(sig, target, tag: tag, file: file, line: line)
        let r = run.result
        XCTAssertEqual(r.status, 75, "[\(tag)] mpirun exit status after \(target) got signal \(sig)\n\(r.transcript)", file: file, line: line)
        XCTAssertLessThanOrEqual(run.exitAfter, 30, "[\(tag)] the job took \(run.exitAfter) s to stop\n\(r.transcript)", file: file, line: line)
        assertRanksGone(run.rankPids, tag, file: file, line: line)
        XCTAssertTrue(r.stderr.contains("exit status 75"), "[\(tag)]\n\(r.transcript)", file: file, line: line)
        XCTAssertFalse(r.combinedWithoutMPINotices.lowercased().contains("error"), "[\(tag)] a stop is not an error\n\(r.transcript)",
                       file: file, line: line)
        guard let newest = CheckpointFolder.newest(run.dir), let step = CheckpointFolder.step(newest) else {
            return XCTFail("[\(tag)] no checkpoint after the stop", file: file, line: line)
        }
        XCTAssertEqual(Harness.count("stopped by a signal at step \(step);", in: r.stderr), 1,
                       "[\(tag)] the run stops at the step of the newest checkpoint \(newest)\n\(r.transcript)", file: file, line: line)
        // The stop writes its own checkpoint, unless it falls on a step that --checkpoint-every 5 has just written.
        XCTAssertEqual(Harness.count("checkpoint \(newest) (stopped by signal)", in: r.stderr), step % 5 == 0 ? 0 : 1,
                       "[\(tag)] the stop's checkpoint\n\(r.transcript)", file: file, line: line)
        let stopped = try Harness.readJSONLines(run.metrics).filter { $0["kind"] as? String == "stopped" }
        XCTAssertEqual(stopped.count, 1, "[\(tag)] one \"stopped\" record", file: file, line: line)
        XCTAssertEqual((stopped.first?["step"] as? NSNumber)?.intValue, step, "[\(tag)] stopped record vs \(newest)", file: file, line: line)
        let blob = try SafeTensorsBlob(path: newest)
        XCTAssertEqual(blob.metadata["global_step"], "\(step)", file: file, line: line)
        XCTAssertEqual(blob.metadata["world_size"], "2", file: file, line: line)
        try assertLoads(newest, tag, file: file, line: line)
        try assertResumesExactly(run, tag, file: file, line: line)
    }

    func testSIGTERMToOneRankStopsAllWithExitStatus75AndResumeIsExact() throws {
        try assertCleanStop(SIGTERM, .rank(1), tag: "sigterm-rank1")
    }

    func testSIGUSR1ToRankZeroStopsAllWithExitStatus75AndResumeIsExact() throws {
        try assertCleanStop(SIGUSR1, .rank(0), tag: "sigusr1-rank0")
    }

    /// Open MPI's mpirun forwards SIGUSR1 to every rank: what `#SBATCH --signal=B:USR1@120` plus a
    /// `trap` that signals mpirun relies on (Docs/checkpoints.md).
    func testSIGUSR1ToMpirunStopsAllWithExitStatus75AndResumeIsExact() throws {
        try assertCleanStop(SIGUSR1, .mpirun, tag: "sigusr1-mpirun")
    }
}
