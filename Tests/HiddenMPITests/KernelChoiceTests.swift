// The OpenBLAS kernel probe (hidden-mpi kernels, and the choice train/bench/eval make before MPI
// starts): every candidate is checked against a double-precision loop in a child process of its
// own; a kernel that computes wrong results, crashes or hangs is reported and never chosen; the
// results are cached per CPU and OpenBLAS build, and ranks that start together probe once.
// Timings are the probe's own business: these tests check its decisions, never a speed.

import Foundation
import XCTest

final class KernelChoiceTests: XCTestCase {
    var cache: URL!

    override func setUpWithError() throws {
        cache = try Harness.makeTempDir(prefix: "hidden-mpi-kernels")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: cache)
    }

    /// One probe round, two candidates: OpenBLAS's own choice and Haswell (on a CPU without AVX2
    /// that one crashes, and is reported so).
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ["HIDDEN_MPI_CACHE_DIR": cache.path, "HIDDEN_MPI_PROBE_ROUNDS": "1", "HIDDEN_MPI_PROBE_CORES": "default,Haswell"]
            .merging(extra) { $1 }
    }

    func probe(_ r: RunResult) throws -> (result: [String: Any], candidates: [String: [String: Any]]) {
        XCTAssertEqual(r.status, 0, r.transcript)
        let line = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let list = object["candidates"] as? [[String: Any]] else {
            throw HarnessError("kernels --json printed no probe result\n\(r.transcript)")
        }
        return (object, Dictionary(uniqueKeysWithValues: list.map { ($0["requested"] as? String ?? "?", $0) }))
    }

    func benchReport(_ r: RunResult) throws -> [String: Any] {
        XCTAssertEqual(r.status, 0, r.transcript)
        let line = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw HarnessError("bench --json printed no JSON object\n\(r.transcript)")
        }
        return object
    }

    func testProbeChecksTimesEveryFamilyAndCaches() throws {
        let (first, candidates) = try probe(try Harness.hiddenMPI(["kernels", "--json"], env: environment()))
        XCTAssertEqual(Set(candidates.keys), ["default", "Haswell"])
        let usable = candidates.values.filter { $0["status"] as? String == "ok" }
        XCTAssertFalse(usable.isEmpty, "no kernel passed: \(candidates)")
        for c in usable {
            let error = try XCTUnwrap((c["maxRelativeError"] as? NSNumber)?.doubleValue)
            XCTAssertLessThan(error, 1e-5, "a passing kernel agrees with the double-precision loop")
            XCTAssertGreaterThan((c["peakGFLOPs"] as? NSNumber)?.doubleValue ?? 0, 0)
            let families = try XCTUnwrap(c["familySeconds"] as? [String: NSNumber])
            XCTAssertEqual(Set(families.keys), ["linear", "conv", "cifar-resnet", "imagenet-resnet"])
            XCTAssertTrue(families.values.allSatisfy { $0.doubleValue > 0 }, "\(families)")
            XCTAssertFalse((c["core"] as? String ?? "").isEmpty, "the kernel OpenBLAS actually ran is named")
            XCTAssertEqual((c["resultDigest"] as? String ?? "").count, 16, "a digest of the check's output bits: \(c)")
            XCTAssertEqual((c["roundFamilySeconds"] as? [Any])?.count, 1, "one round's family times: \(c)")
        }
        for c in candidates.values where c["status"] as? String != "ok" {
            XCTAssertEqual(c["status"] as? String, "crashed", "only a CPU without AVX2 fails a kernel here: \(c)")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: cache.path).filter { $0.hasSuffix(".json") }
        XCTAssertEqual(files.count, 1, "one cache file per CPU and OpenBLAS build: \(files)")

        // The second run reads the cache: the same probe, and the table says where it came from.
        let (again, _) = try probe(try Harness.hiddenMPI(["kernels", "--json"], env: environment()))
        XCTAssertEqual(again["probedAt"] as? String, first["probedAt"] as? String, "the cache was used, not a new probe")
        let table = try Harness.hiddenMPI(["kernels", "--model", "resnet50"], env: environment())
        XCTAssertEqual(table.status, 0, table.transcript)
        XCTAssertTrue(table.stdout.contains("cached in \(cache.path)"), table.stdout)
        XCTAssertTrue(table.stdout.contains("resnet50 (imagenet-resnet shapes) runs with:"), table.stdout)

        // --refresh probes again.
        let (fresh, _) = try probe(try Harness.hiddenMPI(["kernels", "--json", "--refresh"], env: environment()))
        XCTAssertNotNil(fresh["probeSeconds"])
    }

    func testWrongCrashingAndHangingKernelsAreNeverChosen() throws {
        let env = environment(["HIDDEN_MPI_PROBE_CORES": "default,Haswell,Zen,Sandybridge",
                               "HIDDEN_MPI_PROBE_FAULT": "Haswell:wrong,Zen:crash,Sandybridge:hang",
                               "HIDDEN_MPI_PROBE_TIMEOUT": "3"])
        let r = try Harness.hiddenMPI(["kernels", "--json"], timeout: 60, env: env)
        let (_, candidates) = try probe(r)
        let wrong = try XCTUnwrap(candidates["Haswell"])
        XCTAssertEqual(wrong["status"] as? String, "wrong")
        XCTAssertGreaterThan((wrong["maxRelativeError"] as? NSNumber)?.doubleValue ?? 0, 1e-5)
        XCTAssertNil(wrong["familySeconds"], "a wrong kernel is not timed")
        XCTAssertEqual(candidates["Zen"]?["status"] as? String, "crashed")
        XCTAssertTrue((candidates["Zen"]?["detail"] as? String ?? "").contains("signal 4"), "\(candidates["Zen"]!)")
        XCTAssertEqual(candidates["Sandybridge"]?["status"] as? String, "timeout")

        // A run on this cache keeps OpenBLAS's own choice, the one candidate left, and says why.
        // (A core type set in the machine's environment wins instead; the tests keep it.)
        let bench = try Harness.hiddenMPI(BenchTests.small + ["--rank-batch", "4"], env: env)
        XCTAssertEqual(bench.status, 0, bench.transcript)
        let reason = try XCTUnwrap(try benchReport(bench)["blas_core_reason"] as? String)
        if let set = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            XCTAssertEqual(reason, "set in the environment (OPENBLAS_CORETYPE=\(set))")
        } else if candidates["default"]?["status"] as? String == "ok" {
            XCTAssertTrue(reason.hasPrefix("the only correct kernel of the probe") && reason.contains("OpenBLAS's choice"), reason)
            XCTAssertEqual(Harness.count(" ms", in: reason), 1, "the faulty kernels are out of the running: \(reason)")
        }
    }

    /// The choice's rule, on a cache whose timings the test sets: another kernel must beat
    /// OpenBLAS's own choice by more than the spread of one kernel's timings between the probe's
    /// rounds (at most 10% when the two compute different results; the whole spread when they
    /// compute bit-identical results, i.e. run the same arithmetic).
    func testAnotherKernelMustBeatOpenBLASsChoiceByMoreThanTheProbesOwnSpread() throws {
        let (_, probed) = try probe(try Harness.hiddenMPI(["kernels", "--json"], env: environment()))
        guard probed.values.allSatisfy({ $0["status"] as? String == "ok" }) else {
            throw XCTSkip("this CPU cannot run the Haswell kernel: \(probed)")
        }
        let file = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cache.path).first { $0.hasSuffix(".json") })
        let url = cache.appendingPathComponent(file)
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])

        /// Rewrites the cache: conv times (ms) per round for OpenBLAS's choice and Haswell, and
        /// whether their check results are the same bits; returns the kernel `kernels` says conv4 gets.
        func choice(own: [Double], haswell: [Double], sameResults: Bool) throws -> String {
            var list = try XCTUnwrap(object["candidates"] as? [[String: Any]])
            for i in list.indices {
                let isOwn = list[i]["requested"] as? String == "default"
                let rounds = (isOwn ? own : haswell).map { ["conv": $0 / 1e3] }
                list[i]["roundFamilySeconds"] = rounds
                list[i]["familySeconds"] = ["conv": (isOwn ? own : haswell).min()! / 1e3]
                list[i]["resultDigest"] = isOwn || sameResults ? "1234abcd" : "5678ef01"
            }
            object["candidates"] = list
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            let r = try Harness.hiddenMPI(["kernels", "--model", "conv4"], env: environment())
            XCTAssertEqual(r.status, 0, r.transcript)
            let line = try XCTUnwrap(r.stdout.split(separator: "\n").last { $0.hasPrefix("conv4 (conv shapes) runs with: ") }, r.stdout)
            return String(line.dropFirst("conv4 (conv shapes) runs with: ".count))
        }
        // A quiet machine (rounds within 0.5%): a 5% faster kernel is chosen, whatever it computes.
        XCTAssertTrue(try choice(own: [100, 100.5], haswell: [95, 95.2], sameResults: false).hasPrefix("Haswell: fastest correct kernel"))
        XCTAssertTrue(try choice(own: [100, 100.5], haswell: [95, 95.2], sameResults: true).hasPrefix("Haswell: fastest correct kernel"))
        // A 0.5% win is a tie: no re-execution.
        XCTAssertTrue(try choice(own: [100, 100.2], haswell: [99.5, 99.6], sameResults: false).contains("OpenBLAS's choice, within 1.0%"))
        // A noisy machine (the same kernel's rounds 20% apart): a 15% win of the same arithmetic
        // is noise; of different arithmetic it counts (the band stops at 10%).
        let same = try choice(own: [100, 120], haswell: [85, 90], sameResults: true)
        XCTAssertTrue(same.contains("OpenBLAS's choice, within 20.0%") && same.contains("bit-identical"), same)
        XCTAssertTrue(try choice(own: [100, 120], haswell: [85, 90], sameResults: false).hasPrefix("Haswell: fastest correct kernel"))
        // ... and a 25% win counts for both.
        XCTAssertTrue(try choice(own: [100, 120], haswell: [75, 80], sameResults: true).hasPrefix("Haswell: fastest correct kernel"))
    }

    func testRanksThatStartTogetherProbeOnce() throws {
        let r = try Harness.hiddenMPI(["kernels", "--json"], np: 2, env: environment())
        XCTAssertEqual(r.status, 0, r.transcript)
        let stamps = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .map { $0["probedAt"] as? String ?? "" }
        XCTAssertEqual(stamps.count, 2, r.transcript)
        XCTAssertEqual(Set(stamps).count, 1, "the second rank waited for the first one's probe: \(stamps)")
    }

    func testAnUnreadableCacheIsProbedAgain() throws {
        let (_, _) = try probe(try Harness.hiddenMPI(["kernels", "--json"], env: environment()))
        let file = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cache.path).first { $0.hasSuffix(".json") })
        try Data("{\"format\": 1, \"cpu\": ".utf8).write(to: cache.appendingPathComponent(file))
        let r = try Harness.hiddenMPI(["kernels", "--json"], env: environment())
        let (_, candidates) = try probe(r)
        XCTAssertEqual(candidates.count, 2)
        XCTAssertTrue(r.stderr.contains("ignoring the unreadable or foreign kernel cache"), r.transcript)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(contentsOf: cache.appendingPathComponent(file))), "rewritten whole")
    }

    func testACoreTypeInTheEnvironmentWins() throws {
        let bench = try Harness.hiddenMPI(BenchTests.small + ["--rank-batch", "4"],
                                          env: environment(["OPENBLAS_CORETYPE": ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "Haswell"]))
        let report = try benchReport(bench)
        XCTAssertTrue((report["blas_core_reason"] as? String ?? "").hasPrefix("set in the environment (OPENBLAS_CORETYPE="), "\(report)")
        // bench still compares with the best correct kernel's peak, which it probed for.
        XCTAssertNotNil(report["sgemm_peak_core"])
        XCTAssertGreaterThanOrEqual((report["sgemm_peak_gflops"] as? NSNumber)?.doubleValue ?? 0,
                                    (report["sgemm_peak_gflops_current_kernel"] as? NSNumber)?.doubleValue ?? 1)
    }
}
