// Invariant 3 of DESIGN.md, resume is exact: a run stopped and resumed from its checkpoint ends
// with byte-identical scores and momentum and reports exactly the same epochs as the run that was
// never stopped, with one rank and with two, from an epoch's end and from the middle of an epoch;
// a two-rank checkpoint resumed on one rank agrees up to summation order. Also the checkpoint
// folder's housekeeping: what a run writes is what `--resume auto` finds next.

import Foundation
import XCTest

final class CheckpointResumeTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-resume")
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// fc on flat synthetic data: 600 samples, global batch 64, 10 steps per epoch (the last one of 24).
    static let fc = ["--dataset", "synthetic", "--input", "1x12x12", "--classes", "4", "--train-size", "600",
                     "--test-size", "100", "--model", "fc", "--batch-size", "64", "--seed", "11", "--progress", "0"]
    /// conv2 at width 0.25 on 3x16x16 images (4-D score tensors): 320 samples, 5 steps per epoch.
    static let conv = ["--dataset", "synthetic", "--input", "3x16x16", "--classes", "4", "--train-size", "320",
                       "--test-size", "64", "--model", "conv2", "--width", "0.25", "--batch-size", "64", "--seed", "5",
                       "--progress", "0"]

    /// Trains `hidden-mpi train args`; fails the test (and throws) unless it exits 0.
    @discardableResult
    func train(_ args: [String], np: Int? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let r = try Harness.hiddenMPI(["train"] + args, np: np, timeout: 90, file: file, line: line)
        guard r.status == 0 else {
            XCTFail("training failed\n\(r.transcript)", file: file, line: line)
            throw HarnessError("training failed")
        }
        return r
    }

    /// 2 epochs straight vs 1 epoch, then `--resume` of its end-of-epoch checkpoint with --epochs 2
    /// (the same flags repeated, as a job script repeats them): same tensors, same epoch reports.
    func assertOnePlusOneEqualsTwo(_ base: [String], np: Int?, tag: String) throws {
        let straight = path("\(tag)-straight"), split = path("\(tag)-split")
        try train(base + ["--epochs", "2", "--checkpoint-dir", straight, "--metrics", path("\(tag)-straight.jsonl")], np: np)
        try train(base + ["--epochs", "1", "--checkpoint-dir", split, "--metrics", path("\(tag)-split.jsonl")], np: np)
        let trainSize = Int(base[base.firstIndex(of: "--train-size")! + 1])!, batch = Int(base[base.firstIndex(of: "--batch-size")! + 1])!
        let steps = (trainSize + batch - 1) / batch
        let afterOne = (split as NSString).appendingPathComponent(CheckpointFolder.name(step: steps, epoch: 1))
        XCTAssertTrue(FileManager.default.fileExists(atPath: afterOne),
                      "[\(tag)] end-of-epoch checkpoint \(afterOne) missing; folder: \(CheckpointFolder.names(split))")
        let resumed = try train(base + ["--epochs", "2", "--resume", afterOne, "--checkpoint-dir", split,
                                        "--metrics", path("\(tag)-split.jsonl")], np: np)
        XCTAssertTrue(resumed.stderr.contains("resuming from \(afterOne)"), "[\(tag)] says where it resumes\n\(resumed.transcript)")
        let final = CheckpointFolder.name(step: 2 * steps, epoch: 2)
        assertSameTensors((straight as NSString).appendingPathComponent(final), (split as NSString).appendingPathComponent(final),
                          "[\(tag), np \(np ?? 1)] final checkpoint, 2 epochs vs 1 + resumed 1")
        assertSameEpochMetrics(path("\(tag)-straight.jsonl"), path("\(tag)-split.jsonl"), "[\(tag), np \(np ?? 1)]")
        // The resumed run appends to the metrics file: a second "run" object, then its epoch.
        let objects = try Harness.readJSONLines(path("\(tag)-split.jsonl"))
        XCTAssertEqual(objects.compactMap { $0["kind"] as? String }, ["run", "epoch", "run", "epoch"], "[\(tag)] metrics file")
    }

    func testResumeAfterOneEpochIsExactOnOneRank() throws {
        try assertOnePlusOneEqualsTwo(Self.fc, np: nil, tag: "fc")
    }

    func testResumeAfterOneEpochIsExactOnTwoRanks() throws {
        try assertOnePlusOneEqualsTwo(Self.conv, np: 2, tag: "conv")
    }

    /// Adam with a multistep schedule (a milestone at epoch 1, so the rate drops between the two
    /// epochs): the checkpoint holds the second moments, and a resume continues both the moments
    /// and the schedule bit for bit, on 2 ranks; the metrics show both rates.
    func testAdamWithMultistepResumesExactly() throws {
        let adam = Self.fc + ["--optimizer", "adam", "--lr", "0.003", "--schedule", "multistep", "--lr-milestones", "1", "--lr-gamma", "0.5"]
        try assertOnePlusOneEqualsTwo(adam, np: 2, tag: "adam")
        let final = (path("adam-straight") as NSString).appendingPathComponent(CheckpointFolder.name(step: 20, epoch: 2))
        let blob = try SafeTensorsBlob(path: final)
        XCTAssertEqual(blob.metadata["optimizer"], "adam")
        XCTAssertEqual(blob.metadata["lr_milestones"], "1")
        XCTAssertNotNil(blob.floats("second_moment.0"), "Adam's second moments are checkpointed")
        let metrics = try Metrics(path: path("adam-straight.jsonl"))
        XCTAssertEqual(metrics.run["optimizer"] as? String, "adam")
        XCTAssertEqual(metrics.run["lr_milestones"] as? [Int], [1], "a list, even of one")
        XCTAssertEqual(metrics.epochValue(0, "lr") ?? -1, 0.003, accuracy: 1e-15)
        XCTAssertEqual(metrics.epochValue(1, "lr") ?? -1, 0.0015, accuracy: 1e-15)
        // The checkpoint's optimiser cannot be swapped on resume.
        let swap = try Harness.hiddenMPI(["train"] + Self.fc + ["--optimizer", "sgd", "--epochs", "3", "--resume", final])
        XCTAssertEqual(swap.status, 1, swap.transcript)
        XCTAssertTrue(swap.stderr.contains("--optimizer sgd contradicts the checkpoint"), swap.transcript)
    }

    /// The baselines checkpoint what they train (dense: the weights; supermask: the sampling
    /// scores) and resume bit for bit; `eval` measures their checkpoints as training did, and
    /// `export` refuses them (no single mask to export) and writes nothing.
    func testBaselinesResumeExactlyAndEvaluate() throws {
        for method in ["dense", "supermask"] {
            try assertOnePlusOneEqualsTwo(Self.conv + ["--method", method], np: 2, tag: method)
            let final = (path("\(method)-straight") as NSString).appendingPathComponent(CheckpointFolder.name(step: 10, epoch: 2))
            let metrics = try Metrics(path: path("\(method)-straight.jsonl"))
            XCTAssertEqual(metrics.run["method"] as? String, method)
            let eval = try Harness.hiddenMPI(["eval", "--checkpoint", final, "--json"], np: 2)
            XCTAssertEqual(eval.status, 0, eval.transcript)
            let object = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any]
            let accuracy = (object?["test_acc"] as? NSNumber)?.doubleValue ?? .nan
            XCTAssertEqual(accuracy, metrics.epochValue(1, "test_acc") ?? -1, accuracy: 1e-12,
                           "[\(method)] eval of the final checkpoint vs the last epoch's test_acc\n\(eval.transcript)")
            let output = path("\(method).subnetwork")
            let export = try Harness.hiddenMPI(["export", "--checkpoint", final, "--output", output])
            XCTAssertEqual(export.status, 1, export.transcript)
            XCTAssertEqual(Harness.count("error:", in: export.stderr), 1, export.transcript)
            XCTAssertTrue(export.stderr.contains("\(final) is a \(method)-baseline run"), export.transcript)
            XCTAssertFalse(FileManager.default.fileExists(atPath: output), "[\(method)] export wrote \(output)")
        }
    }

    /// A ResNet (batch norm: running statistics are run state too) on 2 ranks: stopped after one
    /// epoch and resumed, it ends bit-identical to the uninterrupted run, running statistics
    /// included; `eval` of the last checkpoint and of the exported subnetwork (masks plus running
    /// statistics) gives training's last test accuracy.
    func testResNetResumesExactlyAndItsSubnetworkEvaluatesAsTrained() throws {
        let resnet = ["--dataset", "synthetic", "--input", "3x16x16", "--classes", "4", "--train-size", "192",
                      "--test-size", "64", "--model", "cifar-resnet18", "--width", "0.25", "--batch-size", "32",
                      "--seed", "6", "--progress", "0"]
        try assertOnePlusOneEqualsTwo(resnet, np: 2, tag: "resnet")
        let final = (path("resnet-straight") as NSString).appendingPathComponent(CheckpointFolder.name(step: 12, epoch: 2))
        let blob = try SafeTensorsBlob(path: final)
        XCTAssertEqual(blob.metadata["batchnorms"], "20", "cifar-resnet18: the stem, 2 in each of 8 blocks, 3 projections")
        let running = blob.floats("running.0") ?? []
        XCTAssertEqual(running.count, 2 * 16, "running.0 is [mean; var] of the stem's 16 channels")
        XCTAssertNotEqual(Array(running.prefix(16)), [Float](repeating: 0, count: 16), "the running mean moved from its start")
        let trained = try Metrics(path: path("resnet-straight.jsonl")).epochValue(1, "test_acc") ?? -1
        let subnetwork = path("resnet.subnetwork")
        let export = try Harness.hiddenMPI(["export", "--checkpoint", final, "--output", subnetwork])
        XCTAssertEqual(export.status, 0, export.transcript)
        for args in [["--checkpoint", final], ["--subnetwork", subnetwork]] {
            for np in [1, 2] {
                let eval = try Harness.hiddenMPI(["eval", "--json"] + args, np: np)
                XCTAssertEqual(eval.status, 0, eval.transcript)
                let object = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any]
                XCTAssertEqual((object?["test_acc"] as? NSNumber)?.doubleValue ?? .nan, trained, accuracy: 1e-12,
                               "eval \(args[0]) on \(np) rank(s) vs the last epoch's test_acc\n\(eval.transcript)")
            }
        }
    }

    /// Checkpoints every 3 steps; resuming from one in the middle of epoch 1 and from one in the
    /// middle of epoch 2 (the running loss and accuracy sums of the epoch come from the checkpoint)
    /// ends exactly where the uninterrupted run ends and reports the same epochs.
    func testResumeFromMidEpochCheckpointIsExact() throws {
        let straight = path("straight")
        try train(Self.fc + ["--epochs", "2", "--checkpoint-dir", straight, "--checkpoint-every", "3",
                             "--keep-checkpoints", "50", "--metrics", path("straight.jsonl")])
        let names = CheckpointFolder.names(straight)
        XCTAssertEqual(names, ["ckpt-s000000003-e0000", "ckpt-s000000006-e0000", "ckpt-s000000009-e0000",
                               "ckpt-s000000010-e0001", "ckpt-s000000012-e0001", "ckpt-s000000015-e0001",
                               "ckpt-s000000018-e0001", "ckpt-s000000020-e0002"].map { $0 + ".safetensors" },
                       "checkpoints every 3 steps and at each epoch's end")
        for (name, epoch, stepInEpoch) in [("ckpt-s000000006-e0000", 0, 6), ("ckpt-s000000015-e0001", 1, 5)] {
            let blob = try SafeTensorsBlob(path: (straight as NSString).appendingPathComponent(name + ".safetensors"))
            XCTAssertEqual(blob.metadata["epoch"], "\(epoch)", name)
            XCTAssertEqual(blob.metadata["step_in_epoch"], "\(stepInEpoch)", name)
            XCTAssertNotEqual(blob.metadata["epoch_seen"], "0", "\(name): mid-epoch running sums")

            let resumeDir = path("from-\(name)")
            try FileManager.default.createDirectory(atPath: resumeDir, withIntermediateDirectories: true)
            let start = (resumeDir as NSString).appendingPathComponent(name + ".safetensors")
            try CheckpointFolder.copy(blob.path, to: start)
            // The metrics of the epochs before the checkpoint, as the interrupted run would have left them.
            let metrics = path("from-\(name).jsonl")
            let before = try Harness.readJSONLines(path("straight.jsonl")).filter {
                $0["kind"] as? String == "run" || ($0["epoch"] as? NSNumber).map { $0.intValue <= epoch } == true
            }
            try before.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) + "\n" }
                .joined().write(toFile: metrics, atomically: true, encoding: .utf8)
            try train(Self.fc + ["--checkpoint-dir", resumeDir, "--resume", "auto", "--checkpoint-every", "3",
                                 "--keep-checkpoints", "50", "--metrics", metrics])
            assertSameTensors((straight as NSString).appendingPathComponent("ckpt-s000000020-e0002.safetensors"),
                              (resumeDir as NSString).appendingPathComponent("ckpt-s000000020-e0002.safetensors"),
                              "resumed from \(name)")
            assertSameEpochMetrics(path("straight.jsonl"), metrics, "resumed from \(name)")
            // Every checkpoint the resumed run wrote is the uninterrupted run's one, byte for byte.
            for later in CheckpointFolder.names(resumeDir) where later > name {
                XCTAssertEqual(FileManager.default.contents(atPath: (resumeDir as NSString).appendingPathComponent(later)),
                               FileManager.default.contents(atPath: (straight as NSString).appendingPathComponent(later)),
                               "resumed from \(name): \(later) differs from the uninterrupted run's")
            }
        }
    }

    /// --max-steps ending in the middle of an epoch leaves a checkpoint; resuming it (without
    /// --max-steps) must carry on with the rest of that epoch and end where the uninterrupted run ends.
    func testResumeAfterMaxStepsInTheMiddleOfAnEpochIsExact() throws {
        let straight = path("straight"), capped = path("capped")
        try train(Self.fc + ["--epochs", "2", "--checkpoint-dir", straight, "--metrics", path("straight.jsonl")])
        try train(Self.fc + ["--epochs", "2", "--max-steps", "3", "--checkpoint-dir", capped])
        let first = CheckpointFolder.paths(capped)
        XCTAssertEqual(first.count, 1, "one checkpoint after 3 steps: \(first)")
        if let only = first.first, let blob = try? SafeTensorsBlob(path: only) {
            XCTAssertEqual(CheckpointFolder.step(only), 3)
            XCTAssertEqual([blob.metadata["epoch"], blob.metadata["step_in_epoch"]], ["0", "3"],
                           "the checkpoint after 3 of the 10 steps of epoch 1 must say so (it is \((only as NSString).lastPathComponent))")
        }
        let r = try train(Self.fc + ["--epochs", "2", "--checkpoint-dir", capped, "--resume", "auto"])
        XCTAssertEqual(CheckpointFolder.step(CheckpointFolder.newest(capped) ?? ""), 20,
                       "the resumed run must train the remaining 17 steps\n\(r.transcript)")
        assertSameTensors((straight as NSString).appendingPathComponent("ckpt-s000000020-e0002.safetensors"),
                          CheckpointFolder.newest(capped) ?? "", "resumed after --max-steps 3")
    }

    /// A supermask run stopped in the middle of an epoch and resumed with no flags but --resume (and a --k, which it ignores):
    /// the checkpoint brings back the method and its defaults (lr 200, no weight decay), and the
    /// draws go on from the checkpoint's step, so the run ends exactly as the uninterrupted one.
    func testSupermaskResumesMidEpochWithItsOwnDefaults() throws {
        let base = Self.fc + ["--epochs", "2", "--method", "supermask"]
        let straight = path("sm-straight"), capped = path("sm-capped")
        try train(base + ["--checkpoint-dir", straight])
        try train(base + ["--max-steps", "3", "--checkpoint-dir", capped])
        let first = CheckpointFolder.paths(capped)
        XCTAssertEqual(first.map { CheckpointFolder.step($0) }, [3])
        let blob = try SafeTensorsBlob(path: first[0])
        XCTAssertEqual([blob.metadata["method"], blob.metadata["format_version"], blob.metadata["lr"], blob.metadata["weight_decay"]],
                       ["supermask", "2", "200.0", "0.0"])
        // --k plays no part in a supermask run: given on resume it is not a contradiction.
        let r = try train(["--checkpoint-dir", capped, "--resume", "auto", "--progress", "0", "--k", "0.3"])
        XCTAssertTrue(r.stdout.contains("SGD lr 200.0 momentum 0.9 wd 0.0,"), "the checkpoint's defaults, not edge-popup's\n\(r.transcript)")
        XCTAssertTrue(r.stdout.contains("(supermask baseline)"), r.transcript)
        assertSameTensors((straight as NSString).appendingPathComponent("ckpt-s000000020-e0002.safetensors"),
                          CheckpointFolder.newest(capped) ?? "", "supermask resumed after --max-steps 3")
        try train(Self.fc + ["--max-steps", "1", "--checkpoint-dir", path("sm-ep")])
        let edgePopup = try SafeTensorsBlob(path: CheckpointFolder.paths(path("sm-ep"))[0])
        XCTAssertEqual(edgePopup.metadata["format_version"], "1", "edge-popup checkpoints stay version 1")
    }

    /// A checkpoint written by two ranks, resumed on one: it runs, and ends within summation-order
    /// tolerance of the two-rank run.
    func testTwoRankCheckpointResumesOnOneRank() throws {
        let straight = path("np2"), mixed = path("np2-then-np1")
        try train(Self.fc + ["--epochs", "2", "--checkpoint-dir", straight, "--metrics", path("np2.jsonl")], np: 2)
        let afterOne = (straight as NSString).appendingPathComponent(CheckpointFolder.name(step: 10, epoch: 1))
        let blob = try SafeTensorsBlob(path: afterOne)
        XCTAssertEqual(blob.metadata["world_size"], "2")
        try FileManager.default.createDirectory(atPath: mixed, withIntermediateDirectories: true)
        try CheckpointFolder.copy(afterOne, to: (mixed as NSString).appendingPathComponent(CheckpointFolder.name(step: 10, epoch: 1)))
        try train(Self.fc + ["--checkpoint-dir", mixed, "--resume", "auto", "--metrics", path("np1.jsonl")])
        let a = try epochsByNumber(path("np2.jsonl")), b = try epochsByNumber(path("np1.jsonl"))
        XCTAssertEqual(b.keys.sorted(), [2], "the one-rank run trains the second epoch only")
        let la = (a[2]?["train_loss"] as? NSNumber)?.doubleValue ?? .nan, lb = (b[2]?["train_loss"] as? NSNumber)?.doubleValue ?? .nan
        XCTAssertTrue(relativelyClose(la, lb, 1e-3), "epoch 2 train_loss: \(lb) resumed on 1 rank vs \(la) on 2 (1e-3 relative)")
        let ta = (a[2]?["test_acc"] as? NSNumber)?.doubleValue ?? .nan, tb = (b[2]?["test_acc"] as? NSNumber)?.doubleValue ?? .nan
        XCTAssertLessThanOrEqual(abs(ta - tb), 1.0 / 100 + 1e-12, "epoch 2 test_acc: \(tb) on 1 rank vs \(ta) on 2 (one sample)")
        let final = try SafeTensorsBlob(path: (mixed as NSString).appendingPathComponent(CheckpointFolder.name(step: 20, epoch: 2)))
        XCTAssertEqual(final.metadata["world_size"], "1")
        XCTAssertEqual(final.metadata["global_step"], "20")
    }

    /// A run writes its checkpoints into a folder that holds checkpoints of an earlier, longer run
    /// (a reused folder). Either it refuses to start there (naming the folder, touching nothing), or
    /// what it reports writing stays there and `--resume auto` finds this run's newest checkpoint
    /// next, not the other run's.
    func testRunInAReusedFolderKeepsItsOwnCheckpoints() throws {
        let folder = path("reused")
        try train(Self.fc + ["--epochs", "4", "--checkpoint-dir", folder])
        XCTAssertEqual(CheckpointFolder.names(folder), ["ckpt-s000000020-e0002", "ckpt-s000000030-e0003",
                                                        "ckpt-s000000040-e0004"].map { $0 + ".safetensors" })
        let before = CheckpointFolder.snapshot(folder)
        let r = try Harness.hiddenMPI(["train"] + Self.fc + ["--epochs", "1", "--seed", "12", "--checkpoint-dir", folder], timeout: 60)
        if r.status != 0 {
            XCTAssertTrue(r.combined.contains(folder), "a refusal names the folder\n\(r.transcript)")
            XCTAssertEqual(CheckpointFolder.snapshot(folder), before, "a refusal leaves the folder alone")
            return
        }
        let reported = (folder as NSString).appendingPathComponent(CheckpointFolder.name(step: 10, epoch: 1))
        XCTAssertTrue(r.stderr.contains("checkpoint \(reported) (end of epoch 1)"), r.transcript)
        XCTAssertTrue(FileManager.default.fileExists(atPath: reported),
                      "the run reported writing \(reported) but it is gone; the folder holds \(CheckpointFolder.names(folder)) (--keep-checkpoints keeps the names that sort last, the other run's, and deleted this run's checkpoint right after writing it)")
        if let newest = CheckpointFolder.newest(folder), let blob = try? SafeTensorsBlob(path: newest) {
            XCTAssertEqual(blob.metadata["seed"], "12",
                           "`--resume auto` would now pick \(newest), a checkpoint of the earlier run (seed \(blob.metadata["seed"] ?? "?")), not this run's")
        }
    }
}
