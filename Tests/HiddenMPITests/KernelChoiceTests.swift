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

    /// The choice's rule, on a cache whose timings the test sets: another kernel replaces
    /// OpenBLAS's own choice only if it is more than 1% faster on the best times and faster in
    /// every round of the probe (a noisy win is no reason to re-execute).
    func testAnotherKernelMustBeatOpenBLASsChoiceInEveryRound() throws {
        let (_, probed) = try probe(try Harness.hiddenMPI(["kernels", "--json"], env: environment()))
        guard probed.values.allSatisfy({ $0["status"] as? String == "ok" }) else {
            throw XCTSkip("this CPU cannot run the Haswell kernel: \(probed)")
        }
        let file = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cache.path).first { $0.hasSuffix(".json") })
        let url = cache.appendingPathComponent(file)
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])

        /// Rewrites the cache: conv times (ms) per round for OpenBLAS's choice and Haswell (the
        /// best times are the rounds' minima); returns what `kernels` says conv4 runs with.
        func choice(own: [Double], haswell: [Double]) throws -> String {
            var list = try XCTUnwrap(object["candidates"] as? [[String: Any]])
            for i in list.indices {
                let rounds = list[i]["requested"] as? String == "default" ? own : haswell
                list[i]["roundFamilySeconds"] = rounds.map { ["conv": $0 / 1e3] }
                list[i]["familySeconds"] = ["conv": rounds.min()! / 1e3]
            }
            object["candidates"] = list
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            let r = try Harness.hiddenMPI(["kernels", "--model", "conv4"], env: environment())
            XCTAssertEqual(r.status, 0, r.transcript)
            let line = try XCTUnwrap(r.stdout.split(separator: "\n").last { $0.hasPrefix("conv4 (conv shapes) runs with: ") }, r.stdout)
            return String(line.dropFirst("conv4 (conv shapes) runs with: ".count))
        }
        // 5% faster in both rounds: chosen, and said why.
        let faster = try choice(own: [100, 101], haswell: [95, 96])
        XCTAssertTrue(faster.hasPrefix("Haswell: fastest correct kernel") && faster.contains("in each of the probe's 2 rounds"), faster)
        // Faster in both rounds but by 0.5%: a tie, OpenBLAS's choice stays.
        XCTAssertTrue(try choice(own: [100, 100.2], haswell: [99.5, 99.8]).contains("OpenBLAS's choice: Haswell"))
        XCTAssertTrue(try choice(own: [100, 100.2], haswell: [99.5, 99.8]).hasSuffix("by less than 1%"))
        // 15% faster on the best times, but slower in the second round: noise, OpenBLAS's choice stays.
        let noisy = try choice(own: [100, 120], haswell: [85, 125])
        XCTAssertTrue(noisy.contains("OpenBLAS's choice: Haswell") && noisy.contains("not in every one of the probe's 2 rounds"), noisy)
        // The same best times, faster in both rounds: chosen.
        XCTAssertTrue(try choice(own: [100, 120], haswell: [85, 110]).hasPrefix("Haswell: fastest correct kernel"))
        // OpenBLAS's choice the faster one: it stays, with no talk of rounds.
        let core = try XCTUnwrap(probed["default"]?["core"] as? String)
        let own = try choice(own: [90, 91], haswell: [95, 96])
        XCTAssertTrue(own.hasPrefix("\(core) (OpenBLAS's choice): fastest correct kernel") && !own.contains("round"), own)
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
