// The sweep runner (jobs/sweep.py, issue 14): a sweep stopped after some points resumes without
// redoing them; a row torn by a crash is cut off and its point runs again; a sweep signalled in
// the middle of a point exits 75 with that point's checkpoint, and the next call resumes it; the
// plot script reads what it wrote. Real 2-rank mpirun runs of fc on small synthetic data.

import Foundation
import XCTest

final class SweepTests: XCTestCase {
    var dir: URL!
    var root: String { Harness.packageRoot.path }

    override func setUpWithError() throws { dir = try Harness.makeTempDir(prefix: "hidden-mpi-sweep") }
    override func tearDownWithError() throws { if let dir { try? FileManager.default.removeItem(at: dir) } }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// jobs/sweep.py with a 2 x 2 grid (k 0.3, 0.5; seeds 0, 1) of fc on synthetic data, 2 ranks.
    func sweep(_ more: [String] = [], trainSize: Int = 128, epochs: Int = 2, timeout: Double = 240) throws -> RunResult {
        let env = Harness.childEnvironment(["HIDDEN_MPI_BIN": try Harness.binary()])
        return try Harness.run(["/usr/bin/env", "python3", "\(root)/jobs/sweep.py", "--name", "t", "--models", "fc",
                                "--k", "0.3,0.5", "--seeds", "0,1", "--epochs", "\(epochs)", "--dataset", "synthetic", "--np", "2",
                                "--runs", path("runs"), "--csv", path("results.csv")] + more
                               + ["--", "--input", "1x8x8", "--classes", "4", "--train-size", "\(trainSize)", "--test-size", "32",
                                  "--batch-size", "32"],
                               environment: env, timeout: timeout)
    }

    func rows() throws -> [[String: String]] {
        let text = try String(contentsOfFile: path("results.csv"), encoding: .utf8)
        if text.isEmpty { return [] }  // made before the first point, written by none yet
        XCTAssertTrue(text.hasSuffix("\n"), "the CSV ends with a whole line")
        let lines = text.split(separator: "\n").map(String.init)
        guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else { return [] }
        XCTAssertEqual(header.first, "sweep")
        return lines.dropFirst().map { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(fields.count, header.count, "a whole row: \(line)")
            return Dictionary(uniqueKeysWithValues: zip(header, fields))
        }
    }

    /// How many times a point's run started (one "run" object per start in its metrics file).
    func starts(_ point: String) throws -> Int {
        try Harness.readJSONLines(path("runs/\(point).jsonl")).filter { $0["kind"] as? String == "run" }.count
    }

    func testInterruptedSweepResumesWithoutRedoingPointsAndCutsATornRow() throws {
        let first = try sweep(["--max-points", "2"])
        XCTAssertEqual(first.status, 0, first.transcript)
        var table = try rows()
        XCTAssertEqual(table.map { $0["point"]! }, ["fc-w1-edge-popup-k0.3-signed-constant-e2-s0", "fc-w1-edge-popup-k0.3-signed-constant-e2-s1"].map { $0 + table[0]["point"]!.suffix(10) },
                       "the first two points, in grid order")
        let finishedBefore = table.map { $0["finished"]! }

        let second = try sweep()
        XCTAssertEqual(second.status, 0, second.transcript)
        XCTAssertEqual(Harness.count("done already", in: second.stdout), 2, second.transcript)
        table = try rows()
        XCTAssertEqual(table.count, 4, "every point once")
        XCTAssertEqual(Set(table.map { $0["point"]! }).count, 4)
        XCTAssertEqual(table.prefix(2).map { $0["finished"]! }, finishedBefore, "the first rows are untouched")
        for row in table {
            XCTAssertEqual(try starts(row["point"]!), 1, "\(row["point"]!) trained once")
            let acc = Double(row["test_acc"]!) ?? -1
            XCTAssertTrue(acc >= 0 && acc <= 1, "test_acc \(row["test_acc"]!)")
            XCTAssertEqual(row["ranks"], "2"); XCTAssertEqual(row["epochs"], "2")
            // The row is the metrics file's last epoch.
            let epochs = try Harness.readJSONLines(path("runs/\(row["point"]!).jsonl")).filter { $0["kind"] as? String == "epoch" }
            XCTAssertEqual((epochs.last?["test_acc"] as? NSNumber)?.doubleValue ?? -1, acc, accuracy: 1e-6)
        }

        // A crash in the middle of writing the last row: the file ends in half a line.
        let text = try String(contentsOfFile: path("results.csv"), encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        let torn = lines.dropLast().joined(separator: "\n") + "\n" + lines.last!.prefix(25)
        try torn.write(toFile: path("results.csv"), atomically: false, encoding: .utf8)
        let lost = table.last!["point"]!
        let third = try sweep()
        XCTAssertEqual(third.status, 0, third.transcript)
        XCTAssertTrue(third.stderr.contains("cutting off a torn last line"), third.transcript)
        XCTAssertEqual(Harness.count("done already", in: third.stdout), 3, third.transcript)
        table = try rows()
        XCTAssertEqual(table.count, 4)
        XCTAssertEqual(table.last?["point"], lost, "the torn row's point ran again")
        XCTAssertEqual(try starts(lost), 2, "once at first, once after the torn row (it resumed its finished checkpoint)")

        // --list numbers the points and marks them done.
        let list = try sweep(["--list"])
        XCTAssertEqual(list.status, 0, list.transcript)
        XCTAssertTrue(list.stdout.contains("4 points, 4 done"), list.transcript)

        // The plot script's table reads the CSV back: k 0.3 and 0.5, two seeds each.
        let plot = try Harness.run(["/usr/bin/env", "python3", "\(root)/scripts/plot_sweep.py", path("results.csv"), "--table"],
                                   environment: Harness.childEnvironment(), timeout: 60)
        XCTAssertEqual(plot.status, 0, plot.transcript)
        XCTAssertNotNil(plot.stdout.range(of: #"\| fc \| 0\.3 \| [0-9.]+ ± [0-9.]+ \| 2 \|"#, options: .regularExpression), plot.transcript)
        XCTAssertNotNil(plot.stdout.range(of: #"\| fc \| 0\.5 \| [0-9.]+ ± [0-9.]+ \| 2 \|"#, options: .regularExpression), plot.transcript)
    }

    /// plot_sweep.py's tables for each x axis, on rows written here: the mean and the sample
    /// standard deviation over seeds per line and x, only the chosen init's points for --x k and
    /// width, every init for --x init, the baselines once per model; --models keeps only those.
    func testPlotTablesGroupBySeedsForEveryAxis() throws {
        let header = "sweep,point,model,width,k,init,scale_fan,method,seed,epochs,ranks,dataset,extra,test_acc,test_top5,train_acc,train_loss,test_loss,best_test_acc,parameters,seconds,finished"
        func row(_ width: String, _ k: String, _ initName: String, _ scaled: String, _ method: String, _ seed: Int, _ acc: Double,
                 model: String = "conv2") -> String {
            "t,p\(model)\(seed)\(width)\(k)\(initName)\(scaled)\(method),\(model),\(width),\(k),\(initName),\(scaled),\(method),\(seed),3,2,fashion-mnist,,\(acc),,0.9,0.3,0.3,\(acc),1,1,x"
        }
        let rows = [row("1", "0.5", "signed-constant", "true", "edge-popup", 0, 0.80), row("1", "0.5", "signed-constant", "true", "edge-popup", 1, 0.82),
                    row("2", "0.5", "signed-constant", "true", "edge-popup", 0, 0.90), row("2", "0.5", "signed-constant", "true", "edge-popup", 1, 0.90),
                    row("1", "0.5", "kaiming-normal", "false", "edge-popup", 0, 0.70), row("1", "0.5", "kaiming-normal", "false", "edge-popup", 1, 0.74),
                    row("1", "", "", "", "dense", 0, 0.85),
                    row("1", "0.5", "signed-constant", "true", "edge-popup", 0, 0.60, model: "fc"), row("1", "", "", "", "dense", 0, 0.65, model: "fc")]
        try ([header] + rows).joined(separator: "\n").appending("\n").write(toFile: path("t.csv"), atomically: true, encoding: .utf8)
        func table(_ args: [String]) throws -> String {
            let r = try Harness.run(["/usr/bin/env", "python3", "\(root)/scripts/plot_sweep.py", path("t.csv"), "--table"] + args,
                                    environment: Harness.childEnvironment(), timeout: 60)
            XCTAssertEqual(r.status, 0, r.transcript)
            return r.stdout
        }
        let width = try table(["--x", "width"])
        XCTAssertTrue(width.contains("| conv2, k = 0.5 | 1 | 81.00 ± 1.41 | 2 |"), width)   // (80, 82): std sqrt(2)
        XCTAssertTrue(width.contains("| conv2, k = 0.5 | 2 | 90.00 ± 0.00 | 2 |"), width)
        XCTAssertFalse(width.contains("72.00"), "kaiming-normal points are not on the signed-constant line\n\(width)")
        let inits = try table(["--x", "init"])
        XCTAssertTrue(inits.contains("| conv2: kaiming-normal, unscaled | 0.5 | 72.00 ± 2.83 | 2 |"), inits)
        XCTAssertTrue(inits.contains("| conv2: signed-constant, scaled | 0.5 | 81.00 ± 1.41 | 2 |"), inits)
        XCTAssertTrue(inits.contains("| conv2 x2: signed-constant, scaled | 0.5 | 90.00 ± 0.00 | 2 |"), "another width, another line\n\(inits)")
        XCTAssertTrue(inits.contains("| conv2 dense (learned weights) | all | 85.00 ± 0.00 | 1 |"), inits)
        XCTAssertTrue(inits.contains("| fc: signed-constant, scaled | 0.5 | 60.00 ± 0.00 | 1 |"), inits)
        XCTAssertTrue(inits.contains("| fc dense (learned weights) | all | 65.00 ± 0.00 | 1 |"), inits)
        let conv2Only = try table(["--x", "init", "--models", "conv2"])
        XCTAssertTrue(conv2Only.contains("| conv2: signed-constant, scaled | 0.5 | 81.00 ± 1.41 | 2 |"), conv2Only)
        XCTAssertFalse(conv2Only.contains("fc"), "--models conv2 leaves fc's points and baseline out\n\(conv2Only)")
        let unscaled = try table(["--x", "k", "--init", "kaiming-normal", "--unscaled"])
        XCTAssertTrue(unscaled.contains("| conv2 | 0.5 | 72.00 ± 2.83 | 2 |"), unscaled)
    }

    /// SIGTERM to the sweep in the middle of a point (as Slurm's time limit sends it): the run
    /// checkpoints, the sweep exits 75 with no row for it, and the next call resumes that point
    /// from its checkpoint instead of starting it over.
    func testSignalledSweepExitsSeventyFiveAndResumesThePoint() throws {
        let env = Harness.childEnvironment(["HIDDEN_MPI_BIN": try Harness.binary()])
        let args = ["/usr/bin/env", "python3", "\(root)/jobs/sweep.py", "--name", "t", "--models", "fc", "--k", "0.5",
                    "--seeds", "0", "--epochs", "6", "--dataset", "synthetic", "--np", "2",
                    "--runs", path("runs"), "--csv", path("results.csv"),
                    "--", "--input", "1x16x16", "--classes", "4", "--train-size", "12000", "--test-size", "64",
                    "--batch-size", "32", "--checkpoint-every", "20"]
        let pid = try Harness.spawn(args, environment: env, stdout: path("out"), stderr: path("err"))
        defer { Harness.killTree(pid) }
        // Wait until the point has trained some steps (its first step checkpoint), then signal.
        let deadline = Date().addingTimeInterval(120)
        var started = false
        while Date() < deadline {
            let folder = (try? FileManager.default.contentsOfDirectory(atPath: path("runs"))) ?? []
            if let point = folder.first(where: { !$0.hasSuffix(".jsonl") && !$0.hasSuffix(".log") }),
               let files = try? FileManager.default.contentsOfDirectory(atPath: path("runs/\(point)")),
               files.contains(where: { $0.hasPrefix("ckpt-") && $0.hasSuffix(".safetensors") }) {
                started = true; break
            }
            usleep(100_000)
        }
        XCTAssertTrue(started, "the point wrote a checkpoint within 120 s")
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let err = (try? String(contentsOfFile: path("err"), encoding: .utf8)) ?? ""
        XCTAssertEqual((status >> 8) & 0xff, 75, "exit status 75 after a stop\n\(err)")
        XCTAssertTrue(err.contains("run the same command again to continue"), err)
        let rowsAfterStop = FileManager.default.fileExists(atPath: path("results.csv")) ? try rows().count : 0
        XCTAssertEqual(rowsAfterStop, 0, "no row for a stopped point")

        let again = try Harness.run(Array(args), environment: env, timeout: 300)
        XCTAssertEqual(again.status, 0, again.transcript)
        let table = try rows()
        XCTAssertEqual(table.count, 1)
        let point = table[0]["point"]!
        let log = try String(contentsOfFile: path("runs/\(point).log"), encoding: .utf8)
        XCTAssertTrue(log.contains("resuming from"), "the second call resumed the point\n\(log.suffix(2000))")
        XCTAssertEqual(try starts(point), 2)
    }
}
