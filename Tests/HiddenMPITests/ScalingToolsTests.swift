// The scaling kit runs end to end (Docs/scaling.md): jobs/scaling-sweep.sh writes one CSV row per
// point with the first point of each model and mode as its reference and the oversubscription
// mark from CORES; plot_scaling.py reads it back; `hidden-mpi collectives` probes and fits every
// collective; scripts/cost_model.py predicts from the committed measurements.

import Foundation
import XCTest

final class ScalingToolsTests: XCTestCase {
    var root: String { Harness.packageRoot.path }

    func testSweepWritesOneRowPerPointAndThePlotScriptReadsIt() throws {
        let bin = try Harness.binary()
        let env = Harness.childEnvironment(["RANKS": "1 2", "MODELS": "fc", "MODES": "strong weak", "STEPS": "2",
                                            "RANK_BATCH": "32", "CORES": "1", "MACHINE": "test machine", "HIDDEN_MPI_BIN": bin])
        let sweep = try Harness.run(["/bin/bash", "\(root)/jobs/scaling-sweep.sh"], environment: env, timeout: 240)
        XCTAssertEqual(sweep.status, 0, sweep.transcript)
        let lines = sweep.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 5, sweep.transcript)
        guard lines.count == 5 else { return }
        let header = lines[0].split(separator: ",").map(String.init)
        XCTAssertEqual(header, ["ranks", "nodes", "model", "mode", "global_batch", "rank_batch", "images_per_s", "step_s", "compute_s",
                                "reduction_s", "waiting_s", "hidden_share", "speedup", "efficiency", "oversubscribed", "update", "machine"])
        let rows = lines.dropFirst().map { line -> [String: String] in
            Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
        }
        // strong 1, strong 2, weak 1, weak 2
        XCTAssertEqual(rows.map { $0["mode"]! }, ["strong", "strong", "weak", "weak"])
        XCTAssertEqual(rows.map { $0["ranks"]! }, ["1", "2", "1", "2"])
        XCTAssertEqual(rows.map { $0["global_batch"]! }, ["128", "128", "32", "64"])
        XCTAssertEqual(rows.map { $0["rank_batch"]! }, ["128", "64", "32", "32"])
        XCTAssertEqual(rows.map { $0["update"]! }, ["replicated", "sharded", "replicated", "sharded"])
        XCTAssertEqual(rows.map { $0["oversubscribed"]! }, ["0", "1", "0", "1"], "CORES=1: two ranks are oversubscribed")
        XCTAssertEqual(rows[0]["efficiency"], "1.000")
        XCTAssertEqual(rows[2]["speedup"], "1.000")
        for r in rows {
            let ips = Double(r["images_per_s"]!) ?? 0, step = Double(r["step_s"]!) ?? 0
            XCTAssertGreaterThan(ips, 0); XCTAssertGreaterThan(step, 0)
            // images/s is the global batch over the step; efficiency the per-rank rate against the first point's.
            XCTAssertEqual(ips, Double(r["global_batch"]!)! / step, accuracy: 0.01 * ips)
        }
        let strongEfficiency = Double(rows[1]["efficiency"]!)!, speedup = Double(rows[1]["speedup"]!)!
        XCTAssertEqual(strongEfficiency, speedup / 2, accuracy: 0.002)

        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(getpid()).csv").path
        try sweep.stdout.write(toFile: csv, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let table = try Harness.run(["/usr/bin/env", "python3", "\(root)/scripts/plot_scaling.py", csv], environment: env, timeout: 60)
        XCTAssertEqual(table.status, 0, table.transcript)
        XCTAssertEqual(Harness.count("oversubscribed: functional check only", in: table.stdout), 2, table.transcript)

        // A bad setting stops before anything runs.
        let bad = try Harness.run(["/bin/bash", "\(root)/jobs/scaling-sweep.sh"], environment: Harness.childEnvironment(["RANKS": "1 x"]), timeout: 60)
        XCTAssertEqual(bad.status, 2, bad.transcript)
        XCTAssertTrue(bad.stderr.contains("RANKS has 'x'"), bad.transcript)
    }

    func testCollectivesProbeFitsEveryCollective() throws {
        let r = try Harness.hiddenMPI(["collectives", "--max-bytes", "65536", "--min-seconds", "0.01", "--json"], np: 2, timeout: 120)
        XCTAssertEqual(r.status, 0, r.transcript)
        let line = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        XCTAssertEqual(object?["world_size"] as? Int, 2)
        let fits = object?["collectives"] as? [String: [String: Any]] ?? [:]
        XCTAssertEqual(Set(fits.keys), ["allreduce_int64", "reduce_scatter_int64", "reduce_scatter_int64_blocking", "allgather_float", "allgather_float_nonblocking"])
        for (name, fit) in fits {
            let points = fit["points"] as? [[Double]] ?? []
            XCTAssertEqual(points.map { $0[0] }, [8, 32, 128, 512, 2048, 8192, 32768, 65536], name)
            XCTAssert(points.allSatisfy { $0[1] > 0 }, "\(name): \(points)")
            XCTAssertGreaterThanOrEqual(fit["latency_s"] as? Double ?? -1, 0, name)
            XCTAssertGreaterThanOrEqual(fit["seconds_per_byte"] as? Double ?? -1, 0, name)
        }
        let bad = try Harness.hiddenMPI(["collectives", "--max-bytes", "4"], timeout: 60)
        XCTAssertNotEqual(bad.status, 0, bad.transcript)
        XCTAssertTrue(bad.stderr.contains("--max-bytes must be at least 8"), bad.transcript)
    }

    func testCostModelPredictsFromTheCommittedMeasurements() throws {
        let results = "\(root)/Docs/results"
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cost-\(getpid()).csv").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try Harness.run(["/usr/bin/env", "python3", "\(root)/scripts/cost_model.py",
                                 "--probe", "\(results)/collectives-shm-2ranks-2026-12-01-epyc-zen3.json",
                                 "--probe", "TCP=\(results)/collectives-tcp-veth-2hosts-2026-12-01.json",
                                 "--bench", "\(results)/cost-model-bench-2026-12-01-epyc-zen3.jsonl", "--openmpi-csv", out],
                                environment: Harness.childEnvironment(), timeout: 120)
        XCTAssertEqual(r.status, 0, r.transcript)
        let rows = try String(contentsOfFile: out, encoding: .utf8).split(whereSeparator: \.isNewline)  // the csv module ends rows with \r\n
        // 4 models x (one shared-memory row at 16 ranks + 5 rank counts x 5 networks).
        XCTAssertEqual(rows.count, 1 + 4 * (1 + 5 * 5), r.transcript)
        XCTAssertTrue(rows[0].hasPrefix("model,interconnect,ranks,nodes,rank_batch"), String(rows[0]))
    }
}
