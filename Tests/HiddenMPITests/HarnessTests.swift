// The harness itself: a hung child is killed with everything it started, the child environment is
// clean of a parent's MPI variables, and a missing binary is a failure that says how to build it.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class HarnessTests: XCTestCase {
    func testHungChildIsKilledWithItsDescendants() throws {
        let dir = try Harness.makeTempDir(prefix: "hidden-mpi-harness")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pidFile = dir.appendingPathComponent("pid").path
        // A grandchild in its own session (like a rank an mpirun might start) and a sleeping parent.
        let script = "setsid sleep 300 & echo $! > \(pidFile); sleep 300"
        let r = try Harness.run(["/bin/sh", "-c", script], environment: Harness.childEnvironment(), timeout: 1)
        XCTAssertTrue(r.timedOut)
        XCTAssertLessThan(r.seconds, 10)
        XCTAssertNotEqual(r.status, 0)
        let pid = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // Gone, or a zombie waiting for a reaper: either way no longer running.
        var running = false
        for _ in 0..<100 {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            running = !stat.isEmpty && !stat.contains(") Z ")
            if !running { break }
            usleep(20_000)
        }
        XCTAssertFalse(running, "the grandchild \(pid) outlived the timeout")
    }

    func testOutputIsCapturedSeparatelyAndCompletely() throws {
        // More than a pipe buffer on both streams: no deadlock, nothing lost.
        let r = try Harness.run(["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' o; head -c 200000 /dev/zero | tr '\\0' e >&2; exit 3"],
                                environment: Harness.childEnvironment(), timeout: 30)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 3)
        XCTAssertEqual(r.stdout.count, 300_000)
        XCTAssertEqual(r.stderr.count, 200_000)
        XCTAssertFalse(r.stdout.contains("e"))
    }

    func testChildEnvironmentDropsInheritedMPIVariables() {
        setenv("OMPI_COMM_WORLD_RANK", "1", 1)
        setenv("PMIX_RANK", "1", 1)
        setenv("OPAL_PREFIX", "/nowhere", 1)
        defer { unsetenv("OMPI_COMM_WORLD_RANK"); unsetenv("PMIX_RANK"); unsetenv("OPAL_PREFIX") }
        let env = Harness.childEnvironment()
        XCTAssertNil(env["OMPI_COMM_WORLD_RANK"])
        XCTAssertNil(env["PMIX_RANK"])
        XCTAssertNil(env["OPAL_PREFIX"])
        XCTAssertEqual(env["OMPI_ALLOW_RUN_AS_ROOT"], "1")
        XCTAssertEqual(env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"], "1")
        XCTAssertEqual(env["OMPI_MCA_rmaps_base_oversubscribe"], "1")
        XCTAssertEqual(env["OMPI_MCA_mpi_yield_when_idle"], "1")
        XCTAssertEqual(env["OMPI_MCA_pml"], "ob1")
        XCTAssertEqual(env["OPENBLAS_NUM_THREADS"], "1")
        XCTAssertNotNil(env["PATH"])
    }

    func testMissingBinaryFailsWithBuildHint() {
        let saved = ProcessInfo.processInfo.environment["HIDDEN_MPI_BIN"]
        setenv("HIDDEN_MPI_BIN", "/nonexistent/hidden-mpi", 1)
        defer { if let saved { setenv("HIDDEN_MPI_BIN", saved, 1) } else { unsetenv("HIDDEN_MPI_BIN") } }
        XCTAssertThrowsError(try Harness.binary()) { error in
            XCTAssertTrue("\(error)".contains("swift build -c release"), "\(error)")
        }
    }

    func testDeinterleavingRemovesOnlyMPINotices() {
        let dashes = String(repeating: "-", count: 74)
        let torn = "E\(dashes)\nPrimary job  terminated normally, but 1 process returned\na non-zero exit code.\n\(dashes)\nrror: --epochs must be at least 1, got 0\n\(dashes)\nmpirun detected that one or more processes exited\n\(dashes)\n"
        let r = RunResult(command: ["x"], status: 1, stdout: "", stderr: torn, seconds: 0, timedOut: false)
        XCTAssertEqual(r.combinedWithoutMPINotices, "\nError: --epochs must be at least 1, got 0\n")
    }
}
