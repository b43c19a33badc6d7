// Invariants 1 and 2 of DESIGN.md under real mpirun: the same seed and global batch give the same
// weights on every rank and the same trajectory for -np 1, 2 and 4 (4 oversubscribes 2 cores), up
// to floating-point summation order; uneven splits of a batch over the ranks included.

import Foundation
import XCTest

final class RankEquivalenceTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-ranks")
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// Trains with `args` under `mpirun -np np` and returns its metrics; fails on a non-zero exit.
    func train(_ args: [String], np: Int, tag: String, file: StaticString = #filePath, line: UInt = #line) throws -> Metrics {
        let path = dir.appendingPathComponent("\(tag)-np\(np).jsonl").path
        let result = try Harness.hiddenMPI(["train"] + args + ["--metrics", path, "--progress", "0"], np: np,
                                           file: file, line: line)
        guard result.status == 0 else {
            throw HarnessError("training with -np \(np) failed\n\(result.transcript)")
        }
        return try Metrics(path: path)
    }

    /// Runs `args` for every np and checks steps, epoch losses and weight checksums against np 1.
    func assertSameTrajectory(_ args: [String], nps: [Int], steps: Int, epochs: Int, tag: String,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let runs = try nps.map { try train(args, np: $0, tag: tag, file: file, line: line) }
        let reference = runs[0]
        XCTAssertEqual(reference.stepLosses.count, steps, "\(tag): steps logged with -np \(nps[0])", file: file, line: line)
        XCTAssertEqual(reference.epochs.count, epochs, "\(tag): epochs with -np \(nps[0])", file: file, line: line)
        guard let referenceChecksum = reference.checksums.first else {
            return XCTFail("\(tag): no weight_checksums in the run object", file: file, line: line)
        }
        for (np, run) in zip(nps, runs) {
            XCTAssertEqual(run.worldSize, np, "\(tag): world_size of the run object", file: file, line: line)
            XCTAssertEqual(run.checksums.count, np, "\(tag): one weight checksum per rank with -np \(np)", file: file, line: line)
            XCTAssertEqual(Set(run.checksums), [referenceChecksum],
                           "\(tag): weight checksums with -np \(np) \(run.checksums) differ from -np \(nps[0]) \(referenceChecksum)",
                           file: file, line: line)
            XCTAssertEqual(run.stepLosses.count, reference.stepLosses.count, "\(tag): steps logged with -np \(np)", file: file, line: line)
            for (i, (a, b)) in zip(reference.stepLosses, run.stepLosses).enumerated() {
                XCTAssertTrue(relativelyClose(a, b, 1e-5),
                              "\(tag): step \(i + 1) loss \(b) with -np \(np) vs \(a) with -np \(nps[0]) (tolerance 1e-5 relative)",
                              file: file, line: line)
            }
            XCTAssertEqual(run.epochs.count, reference.epochs.count, "\(tag): epochs with -np \(np)", file: file, line: line)
            for e in 0..<min(run.epochs.count, reference.epochs.count) {
                let a = reference.epochValue(e, "train_loss") ?? .nan, b = run.epochValue(e, "train_loss") ?? .nan
                XCTAssertTrue(relativelyClose(a, b, 1e-3),
                              "\(tag): epoch \(e + 1) train_loss \(b) with -np \(np) vs \(a) with -np \(nps[0]) (tolerance 1e-3 relative)",
                              file: file, line: line)
                // Evaluation is sharded too; allow one test sample to flip on a near-tie of logits.
                let testSize = (run.run["test_size"] as? NSNumber)?.doubleValue ?? 1
                let ta = reference.epochValue(e, "test_acc") ?? .nan, tb = run.epochValue(e, "test_acc") ?? .nan
                XCTAssertLessThanOrEqual(abs(ta - tb), 1.0 / testSize + 1e-12,
                                         "\(tag): epoch \(e + 1) test_acc \(tb) with -np \(np) vs \(ta) with -np \(nps[0])",
                                         file: file, line: line)
                XCTAssertEqual((run.epochs[e]["steps"] as? NSNumber)?.intValue,
                               (reference.epochs[e]["steps"] as? NSNumber)?.intValue,
                               "\(tag): epoch \(e + 1) step count with -np \(np)", file: file, line: line)
            }
        }
    }

    /// fc on flat synthetic data: 1024 samples, global batch 64, 16 steps, the first 10 logged.
    func testFullyConnectedSameTrajectoryForOneTwoAndFourRanks() throws {
        try assertSameTrajectory(["--dataset", "synthetic", "--input", "1x12x12", "--classes", "4",
                                  "--train-size", "1024", "--test-size", "128", "--model", "fc",
                                  "--batch-size", "64", "--epochs", "1", "--log-steps", "10", "--seed", "7"],
                                 nps: [1, 2, 4], steps: 10, epochs: 1, tag: "fc")
    }

    /// conv2 at width 0.25 on 3x16x16 images: 640 samples, global batch 64, 10 steps (seed given by the test).
    static let conv2 = ["--dataset", "synthetic", "--input", "3x16x16", "--classes", "4",
                        "--train-size", "640", "--test-size", "128", "--model", "conv2", "--width", "0.25",
                        "--batch-size", "64", "--epochs", "1", "--log-steps", "10"]

    /// Global batch 50 over 4 ranks (slices 12, 13, 12, 13), and 502 samples so that the last batch
    /// of each epoch has 2 samples: two of the four ranks get none. Two epochs, so the second
    /// epoch's permutation is covered too; all 11 steps of epoch 1 logged (the partial one last).
    static let unevenFC = ["--dataset", "synthetic", "--input", "1x12x12", "--classes", "4",
                           "--train-size", "502", "--test-size", "130", "--model", "fc",
                           "--batch-size", "50", "--epochs", "2", "--log-steps", "11", "--seed", "5"]

    func testConvolutionalSameTrajectoryForOneTwoAndFourRanks() throws {
        try assertSameTrajectory(Self.conv2 + ["--seed", "3"], nps: [1, 2, 4], steps: 10, epochs: 1, tag: "conv2")
    }

    /// The baselines split the same way: dense (weight gradients allreduced) and supermask (every
    /// rank draws the same sample of step t from the seed, or the ranks would train different masks).
    func testBaselinesSameTrajectoryForOneTwoAndFourRanks() throws {
        for method in ["dense", "supermask"] {
            try assertSameTrajectory(Self.conv2 + ["--seed", "9", "--method", method],
                                     nps: [1, 2, 4], steps: 10, epochs: 1, tag: method)
            // The uneven split: ranks with no sample in the last batch still draw the step's mask.
            try assertSameTrajectory(Self.unevenFC + ["--method", method], nps: [1, 4], steps: 11, epochs: 2,
                                     tag: "uneven-\(method)")
        }
    }

    /// cifar-resnet18 at width 0.25 (batch norm after every convolution, statistics of the global
    /// batch): 10 steps at global batch 32, which 3 ranks split 10/11/11 (uneven), with the same
    /// losses as one rank and the same running statistics on every rank after the epoch.
    func testResNetSameLossesAndRunningStatisticsForOneTwoAndThreeRanks() throws {
        let args = ["--dataset", "synthetic", "--input", "3x16x16", "--classes", "4", "--train-size", "320",
                    "--test-size", "64", "--model", "cifar-resnet18", "--width", "0.25", "--batch-size", "32",
                    "--epochs", "1", "--log-steps", "10", "--seed", "4"]
        try assertSameTrajectory(args, nps: [1, 2, 3], steps: 10, epochs: 1, tag: "resnet")
        for np in [2, 3] {
            let run = try Metrics(path: dir.appendingPathComponent("resnet-np\(np).jsonl").path)
            let sums = run.epochs.first?["running_checksums"] as? [String] ?? []
            XCTAssertEqual(sums.count, np, "resnet: one running-statistics checksum per rank with -np \(np)")
            XCTAssertEqual(Set(sums).count, 1, "resnet: ranks hold different running statistics with -np \(np): \(sums)")
        }
        // --bn-sync local: each rank normalises its own slice, so 2 ranks leave the 1-rank path.
        let local = try train(args + ["--bn-sync", "local"], np: 2, tag: "resnet-local")
        let global = try Metrics(path: dir.appendingPathComponent("resnet-np1.jsonl").path)
        XCTAssertEqual(local.run["bn_sync"] as? String, "local")
        XCTAssertNotEqual(local.stepLosses.dropFirst().first, global.stepLosses.dropFirst().first,
                          "--bn-sync local on 2 ranks should not reproduce the global-statistics loss of step 2")
    }

    /// The uneven split of `unevenFC` on 4 and 3 ranks.
    func testUnevenBatchesMatchOneRank() throws {
        try assertSameTrajectory(Self.unevenFC, nps: [1, 4, 3], steps: 11, epochs: 2, tag: "uneven")
    }

    /// The same uneven split on a deeper conv model (conv4 at width 0.125: two conv pairs, two
    /// pools): its im2col and pooling buffers see a zero-sample slice too.
    func testUnevenBatchesOnConvModelMatchOneRank() throws {
        try assertSameTrajectory(["--dataset", "synthetic", "--input", "3x16x16", "--classes", "4",
                                  "--train-size", "202", "--test-size", "66", "--model", "conv4", "--width", "0.125",
                                  "--batch-size", "50", "--epochs", "1", "--log-steps", "5"],
                                 nps: [1, 4], steps: 5, epochs: 1, tag: "uneven-conv")
    }
}
