// What a run prints and records: rank 0 alone writes the screen table and the metrics file, one
// table line and one "epoch" object per epoch, every promised key with a sane value.

import Foundation
import XCTest

final class OutputTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-output")
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    static let epochKeys = ["epoch", "train_loss", "train_acc", "test_acc", "lr", "seconds", "images_per_s",
                            "world_size", "compute_s", "allreduce_s"]

    func testOnlyRankZeroPrintsAndMetricsAreComplete() throws {
        let np = 2, epochs = 3
        let path = dir.appendingPathComponent("metrics.jsonl").path
        let result = try Harness.hiddenMPI(["train", "--dataset", "synthetic", "--input", "1x12x12", "--classes", "4",
                                            "--train-size", "256", "--test-size", "64", "--model", "fc",
                                            "--batch-size", "32", "--epochs", String(epochs), "--metrics", path], np: np)
        XCTAssertEqual(result.status, 0, result.transcript)

        // The table: one header, one line per epoch, numbered 1...epochs, in stdout only.
        let tableLine = try NSRegularExpression(pattern: #"^\s*(\d+)\s+\d+\.\d{4}\s+\d+\.\d{2}%\s+\d+\.\d{4}\s+\d+\.\d{2}%"#)
        let rows = result.stdout.split(separator: "\n").map(String.init).compactMap { line -> Int? in
            guard let m = tableLine.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)),
                  let r = Range(m.range(at: 1), in: line) else { return nil }
            return Int(line[r])
        }
        XCTAssertEqual(rows, Array(1...epochs), "one table line per epoch, from rank 0 only\n\(result.transcript)")
        XCTAssertEqual(Harness.count("epoch  train_loss", in: result.combined), 1, "table header once\n\(result.transcript)")
        XCTAssertEqual(Harness.count("hidden-mpi train:", in: result.combined), 1, "run header once\n\(result.transcript)")
        XCTAssertEqual(Harness.count("weight checksum", in: result.combined), 1, "checksum line once\n\(result.transcript)")
        XCTAssertLessThanOrEqual(Harness.count("hidden-mpi: note:", in: result.combined), 1,
                                 "notes come from rank 0 only\n\(result.transcript)")
        XCTAssertFalse(result.combined.contains("error"), "no error in a good run\n\(result.transcript)")

        let metrics = try Metrics(path: path)
        XCTAssertEqual(metrics.worldSize, np)
        XCTAssertEqual(metrics.checksums.count, np)
        XCTAssertEqual(metrics.epochs.count, epochs, "one epoch object per epoch (rank 0 alone writes the file)")
        for (i, epoch) in metrics.epochs.enumerated() {
            for key in Self.epochKeys {
                XCTAssertNotNil(epoch[key] as? NSNumber, "epoch \(i + 1): key \(key) missing or not a number in \(epoch)")
            }
            func value(_ key: String) -> Double { (epoch[key] as? NSNumber)?.doubleValue ?? .nan }
            XCTAssertEqual(value("epoch"), Double(i + 1))
            XCTAssertEqual(value("world_size"), Double(np))
            for key in ["train_acc", "test_acc"] {
                XCTAssertTrue((0...1).contains(value(key)), "epoch \(i + 1): \(key) = \(value(key)) outside [0, 1]")
            }
            XCTAssertTrue(value("train_loss").isFinite && value("train_loss") > 0, "epoch \(i + 1): train_loss \(value("train_loss"))")
            XCTAssertTrue(value("lr") > 0 && value("lr") <= 0.1 + 1e-12, "epoch \(i + 1): lr \(value("lr"))")
            XCTAssertTrue(value("seconds") > 0 && value("seconds") < 120, "epoch \(i + 1): seconds \(value("seconds"))")
            XCTAssertTrue(value("images_per_s") > 0 && value("images_per_s").isFinite, "epoch \(i + 1): images_per_s \(value("images_per_s"))")
            XCTAssertTrue(value("compute_s") > 0, "epoch \(i + 1): compute_s \(value("compute_s"))")
            XCTAssertTrue(value("allreduce_s") >= 0, "epoch \(i + 1): allreduce_s \(value("allreduce_s"))")
            XCTAssertLessThanOrEqual(value("compute_s") + value("allreduce_s"), value("seconds") + 1e-3,
                                     "epoch \(i + 1): compute and allreduce time fit in the epoch's seconds")
        }
        // One closing line, from rank 0, with the last epoch's test accuracy and where the metrics went.
        XCTAssertEqual(Harness.count("done: test accuracy", in: result.combined), 1, result.transcript)
        let lastAccuracy = 100 * ((metrics.epochs.last?["test_acc"] as? NSNumber)?.doubleValue ?? .nan)
        XCTAssertTrue(result.stdout.contains(String(format: "done: test accuracy %.2f%% after epoch %d", lastAccuracy, epochs)),
                      result.transcript)
        XCTAssertTrue(result.stdout.contains("metrics in \(path)"), result.transcript)
        // Cosine schedule: the rate never rises from one epoch to the next.
        let rates = metrics.epochs.compactMap { ($0["lr"] as? NSNumber)?.doubleValue }
        XCTAssertEqual(rates, rates.sorted(by: >), "cosine learning rates \(rates)")
    }

    /// Progress lines inside an epoch (stderr, rank 0 only) say where the run is and about how long
    /// the epoch and the run have left.
    func testProgressLinesSayWhatIsLeft() throws {
        let r = try Harness.hiddenMPI(["train", "--dataset", "synthetic", "--input", "1x12x12", "--classes", "4",
                                       "--train-size", "4096", "--test-size", "64", "--model", "fc", "--batch-size", "8",
                                       "--epochs", "2", "--progress", "0.02"], np: 2)
        XCTAssertEqual(r.status, 0, r.transcript)
        let pattern = try NSRegularExpression(pattern: #"^  epoch ([12])/2  step (\d+)/512  loss \d+\.\d{4}  acc \d+\.\d{2}%  about (\d+) s left in the epoch, (\d+) s in the run$"#)
        let lines = r.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("  epoch ") }
        XCTAssertGreaterThan(lines.count, 0, "no progress line\n\(r.transcript)")
        for line in lines {
            guard let m = pattern.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) else {
                XCTFail("progress line not as promised: \(line)"); continue
            }
            func group(_ i: Int) -> Int { Int(line[Range(m.range(at: i), in: line)!])! }
            XCTAssertLessThanOrEqual(group(3), group(4), "the run has at least the epoch left: \(line)")
            XCTAssertLessThan(group(2), 512, line)
        }
        XCTAssertFalse(r.stdout.contains("left in the epoch"), "progress goes to stderr, the table to stdout")
        // Rank 0 alone reports: no step of an epoch is reported twice.
        XCTAssertEqual(Set(lines).count, lines.count, "a progress line repeated (two ranks printing?)\n\(r.transcript)")
    }

    /// The default init is the reference's `sc` config: signed constant with the fan scaled by k.
    /// The default run builds the same weights as --scale-fan and others than --no-scale-fan.
    func testScaledFanIsTheDefault() throws {
        var seen: [String: (Bool?, [String])] = [:]
        for (name, flag) in [("default", [String]()), ("scaled", ["--scale-fan"]), ("unscaled", ["--no-scale-fan"])] {
            let path = dir.appendingPathComponent("\(name).jsonl").path
            let r = try Harness.hiddenMPI(["train", "--dataset", "synthetic", "--input", "1x12x12", "--classes", "4",
                                           "--train-size", "64", "--test-size", "16", "--model", "fc", "--batch-size", "32",
                                           "--max-steps", "1", "--metrics", path] + flag, np: nil)
            XCTAssertEqual(r.status, 0, r.transcript)
            let m = try Metrics(path: path)
            seen[name] = (m.run["scale_fan"] as? Bool, m.checksums)
            XCTAssertEqual(r.stdout.contains("init signed-constant (scaled fan)"), name != "unscaled", r.transcript)
        }
        XCTAssertEqual(seen["default"]?.0, true)
        XCTAssertEqual(seen["scaled"]?.0, true)
        XCTAssertEqual(seen["unscaled"]?.0, false)
        XCTAssertEqual(seen["default"]?.1, seen["scaled"]?.1)
        XCTAssertNotEqual(seen["default"]?.1, seen["unscaled"]?.1)
        XCTAssertEqual(seen["default"]?.1.count, 1)
    }

    /// --log-steps: exactly the first N steps, numbered from 1, in the file and (N <= 20) on screen once.
    func testStepLogging() throws {
        let path = dir.appendingPathComponent("steps.jsonl").path
        let result = try Harness.hiddenMPI(["train", "--dataset", "synthetic", "--input", "1x12x12", "--classes", "4",
                                            "--train-size", "256", "--test-size", "64", "--model", "fc",
                                            "--batch-size", "32", "--epochs", "1", "--log-steps", "5", "--metrics", path], np: 2)
        XCTAssertEqual(result.status, 0, result.transcript)
        let metrics = try Metrics(path: path)
        XCTAssertEqual(metrics.steps.compactMap { ($0["step"] as? NSNumber)?.intValue }, [1, 2, 3, 4, 5])
        XCTAssertEqual(Harness.count("  step ", in: result.stdout), 5, result.transcript)
        XCTAssertTrue(metrics.stepLosses.allSatisfy { $0.isFinite && $0 > 0 })
    }
}
