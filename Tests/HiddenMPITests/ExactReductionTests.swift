// The exact reduction under real mpirun (Docs/reproducibility.md): the same seed and global batch
// give byte-identical checkpoint tensors (scores, momentum, batch-norm running statistics) and
// bit-identical epoch metrics on 1, 2, 3 and 4 ranks (4 oversubscribes 2 cores), uneven splits
// included; and a run checkpointed on 2 ranks and resumed on 3 ends where the uninterrupted
// 1-rank run ends, bit for bit.

import Foundation
import XCTest

final class ExactReductionTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-exact")
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// Trains with `args` under `mpirun -np np` into its own checkpoint folder and metrics file;
    /// returns (folder, metrics path). Fails on a non-zero exit.
    @discardableResult
    func train(_ args: [String], np: Int, tag: String, file: StaticString = #filePath, line: UInt = #line) throws -> (String, String) {
        let folder = dir.appendingPathComponent("\(tag)-np\(np)").path
        let metrics = dir.appendingPathComponent("\(tag)-np\(np).jsonl").path
        let result = try Harness.hiddenMPI(["train"] + args + ["--checkpoint-dir", folder, "--metrics", metrics, "--progress", "0"],
                                           np: np, timeout: 300, file: file, line: line)
        guard result.status == 0 else { throw HarnessError("\(tag) with -np \(np) failed\n\(result.transcript)") }
        return (folder, metrics)
    }

    /// Runs `args` on each of `nps` and checks the final checkpoints' tensors byte for byte and the
    /// epoch metrics (losses, accuracies) bit for bit against the first.
    func assertBitIdentical(_ args: [String], nps: [Int], tag: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let runs = try nps.map { try train(args, np: $0, tag: tag, file: file, line: line) }
        guard let reference = CheckpointFolder.newest(runs[0].0) else { return XCTFail("\(tag): no checkpoint", file: file, line: line) }
        let blob = try SafeTensorsBlob(path: reference)
        XCTAssertEqual(blob.metadata["reduction"], "exact", "\(tag): the default reduction", file: file, line: line)
        for (np, run) in zip(nps, runs).dropFirst() {
            guard let newest = CheckpointFolder.newest(run.0) else { XCTFail("\(tag): no checkpoint with -np \(np)", file: file, line: line); continue }
            XCTAssertEqual(CheckpointFolder.step(newest), CheckpointFolder.step(reference), "\(tag): final step with -np \(np)", file: file, line: line)
            assertSameTensors(reference, newest, "\(tag): -np \(np) vs -np \(nps[0])", file: file, line: line)
            assertSameEpochMetrics(runs[0].1, run.1, "\(tag): -np \(np) vs -np \(nps[0])", file: file, line: line)
        }
    }

    /// One Fashion-MNIST epoch of fc, seed 7, global batch 128 (469 steps, the last of 96 samples),
    /// on 1, 2, 3 and 4 ranks. The float reduction ended this epoch between 84.07% and 84.87%.
    func testFashionMNISTEpochOfFCIsBitIdenticalOnOneToFourRanks() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist"),
                          "needs Debian's dataset-fashion-mnist")
        try assertBitIdentical(["--model", "fc", "--epochs", "1", "--seed", "7"], nps: [1, 2, 3, 4], tag: "fc")
    }

    /// conv2 for 30 steps on Fashion-MNIST images (global batch 64: 16 chunks of 4, split 6/5/5 on 3 ranks).
    func testConv2ThirtyStepsAreBitIdenticalOnOneToFourRanks() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist"),
                          "needs Debian's dataset-fashion-mnist")
        try assertBitIdentical(["--model", "conv2", "--width", "0.5", "--batch-size", "64", "--max-steps", "30", "--seed", "3"],
                               nps: [1, 2, 3, 4], tag: "conv2")
    }

    static let resnet = ["--model", "cifar-resnet18", "--width", "0.25", "--dataset", "synthetic", "--input", "3x32x32",
                         "--train-size", "2000", "--test-size", "100", "--batch-size", "40", "--seed", "4"]

    /// cifar-resnet18 at width 0.25, CIFAR-shaped synthetic data, 30 steps: batch-norm statistics
    /// of the global batch summed exactly, running statistics checkpointed. Global batch 40 makes
    /// 14 chunks of 3 (the last of 1): uneven on 3 and 4 ranks.
    func testResNetThirtyStepsAreBitIdenticalOnOneToFourRanks() throws {
        try assertBitIdentical(Self.resnet + ["--max-steps", "30"], nps: [1, 2, 3, 4], tag: "resnet")
        let blob = try SafeTensorsBlob(path: CheckpointFolder.newest(dir.appendingPathComponent("resnet-np1").path)!)
        XCTAssertTrue(blob.entries.keys.contains { $0.hasPrefix("running") }, "resnet: running statistics in the checkpoint")
    }

    /// Checkpointed on 2 ranks after 12 steps, resumed on 3 to step 30: the same tensors and
    /// epoch metrics as the uninterrupted run on 1 rank.
    func testResumeFromTwoOnThreeRanksEqualsUninterruptedRun() throws {
        let (whole, wholeMetrics) = try train(Self.resnet + ["--max-steps", "30"], np: 1, tag: "whole")
        let (folder, _) = try train(Self.resnet + ["--max-steps", "12"], np: 2, tag: "part")
        XCTAssertEqual(CheckpointFolder.newest(folder).flatMap(CheckpointFolder.step), 12, "the 2-rank part stops at step 12")
        let resumedMetrics = dir.appendingPathComponent("resumed.jsonl").path
        let result = try Harness.hiddenMPI(["train"] + Self.resnet + ["--max-steps", "30", "--checkpoint-dir", folder,
                                            "--resume", "auto", "--metrics", resumedMetrics, "--progress", "0"], np: 3, timeout: 300)
        XCTAssertEqual(result.status, 0, result.transcript)
        guard let a = CheckpointFolder.newest(whole), let b = CheckpointFolder.newest(folder) else { return XCTFail("no checkpoints") }
        XCTAssertEqual(CheckpointFolder.step(b), 30)
        assertSameTensors(a, b, "resumed 2 -> 3 ranks vs uninterrupted on 1")
        assertSameEpochMetrics(wholeMetrics, resumedMetrics, "resumed 2 -> 3 ranks vs uninterrupted on 1")
        // eval on another number of ranks reports training's test loss bit for bit: the test set
        // is cut into chunks the same way.
        let trained = try XCTUnwrap(try epochsByNumber(wholeMetrics)[1]?["test_loss"] as? NSNumber).doubleValue
        for np in [2, 3] {
            let e = try Harness.hiddenMPI(["eval", "--json", "--checkpoint", b], np: np, timeout: 60)
            XCTAssertEqual(e.status, 0, e.transcript)
            let line = e.stdout.split(separator: "\n").last.map(String.init) ?? ""
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let loss = try XCTUnwrap((object?["test_loss"] as? NSNumber)?.doubleValue, e.transcript)
            XCTAssertEqual(loss.bitPattern, trained.bitPattern, "eval -np \(np): test loss \(loss) vs \(trained) in training on 1 rank")
        }
    }

    /// More ranks than chunks: one message that names --chunk, exit status 1 on every rank.
    func testMoreRanksThanChunksIsRefused() throws {
        let result = try Harness.hiddenMPI(["train", "--dataset", "synthetic", "--input", "1x8x8", "--model", "fc",
                                            "--batch-size", "8", "--chunk", "4", "--max-steps", "1"], np: 3, timeout: 60)
        XCTAssertEqual(result.status, 1, result.transcript)
        XCTAssertEqual(Harness.count("2 chunks of 4 samples, fewer than the 3 ranks", in: result.stderr), 1, result.transcript)
        XCTAssertTrue(result.stderr.contains("--chunk 2"), result.transcript)
    }

    /// A diverging dense run (lr 1e6: weights, activations and gradients blow up; edge-popup's
    /// scores never enter the forward pass, so its gradients stay bounded) leaves the fixed-point
    /// range: the step is not applied, the run stops with one message, and the last checkpoint
    /// stays the last good one.
    func testGradientsOutOfRangeStopTheRunCleanly() throws {
        let folder = dir.appendingPathComponent("diverge").path
        let result = try Harness.hiddenMPI(["train", "--dataset", "synthetic", "--input", "1x8x8", "--model", "fc",
                                            "--method", "dense", "--batch-size", "16", "--lr", "1e6", "--max-steps", "50", "--checkpoint-dir", folder,
                                            "--checkpoint-every", "1", "--progress", "0"], np: 2, timeout: 60)
        XCTAssertEqual(result.status, 1, result.transcript)
        XCTAssertEqual(Harness.count("beyond the exact reduction's range", in: result.stderr), 1, result.transcript)
        let newest = try XCTUnwrap(CheckpointFolder.newest(folder), "no checkpoint of the good steps")
        let step = try XCTUnwrap(CheckpointFolder.step(newest))
        XCTAssertTrue(result.stderr.contains("at step \(step + 1) a gradient"), result.transcript)
        if let blob = try? SafeTensorsBlob(path: newest) {
            for name in blob.entries.keys where name.hasPrefix("scores") {
                XCTAssertTrue((blob.floats(name) ?? []).allSatisfy(\.isFinite), "\(name) of the last checkpoint is not finite")
            }
        }
    }
}
