// `train --dataset imagefolder` under real mpirun, on a tree of JPEGs the test writes: rank 0
// lists the folder and sends the list, every rank decodes its own samples with the augmentation
// of (seed, epoch, sample), and with the exact reduction 1 and 2 ranks give the same bits. A PNG
// named .JPEG is trained as the mean image and named on stderr.

import Foundation
import XCTest
import HiddenNetworks

final class ImageFolderTrainingTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-imagefolder")
        let root = dir.appendingPathComponent("data").path
        func write(_ path: String, _ bytes: [UInt8]) throws {
            let full = (root as NSString).appendingPathComponent(path)
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            XCTAssertTrue(FileManager.default.createFile(atPath: full, contents: Data(bytes)))
        }
        // Two classes that differ in colour, 12 training and 2 validation images each, of varied sizes.
        for (c, name) in ["blue", "red"].enumerated() {
            for i in 0..<14 {
                let (w, h) = (24 + 5 * i, 40 - 2 * i)
                var p = [UInt8](repeating: 0, count: w * h * 3)
                for y in 0..<h { for x in 0..<w {
                    let o = (y * w + x) * 3
                    p[o + c * 2] = UInt8(150 + (x * 100) / w); p[o + 1] = UInt8((y * 255) / h)
                } }
                try write("\(i < 12 ? "train" : "val")/\(name)/\(i).JPEG", try JPEGEncoder.encode(width: w, height: h, pixels: p, format: .rgb))
            }
        }
        try write("train/red/broken.JPEG", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 1, count: 64))
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func testSameBitsOnOneAndTwoRanksAndBadFilesNamed() throws {
        let args = ["train", "--dataset", "imagefolder", "--data-dir", dir.appendingPathComponent("data").path, "--image-size", "16",
                    "--model", "conv2", "--width", "0.25", "--batch-size", "10", "--epochs", "2", "--seed", "3", "--progress", "0"]
        var folders: [String] = [], metrics: [String] = []
        for np in [1, 2] {
            let folder = dir.appendingPathComponent("ckpt\(np)").path, m = dir.appendingPathComponent("m\(np).jsonl").path
            // Decoded in the training thread on 1 rank, by two background threads per rank on 2.
            let r = try Harness.hiddenMPI(args + ["--checkpoint-dir", folder, "--metrics", m, "--data-threads", np == 1 ? "0" : "2"],
                                          np: np, timeout: 120)
            XCTAssertEqual(r.status, 0, r.transcript)
            XCTAssertTrue(r.stderr.contains("broken.JPEG not a JPEG: the file holds PNG"), r.transcript)
            XCTAssertTrue(r.stdout.contains("imagefolder"), r.transcript)
            folders.append(folder); metrics.append(m)
        }
        let run = try XCTUnwrap(try Harness.readJSONLines(metrics[0]).first { $0["kind"] as? String == "run" })
        XCTAssertEqual((run["train_size"] as? NSNumber)?.intValue, 25)
        XCTAssertEqual((run["classes"] as? NSNumber)?.intValue, 2)
        XCTAssertEqual(run["input"] as? String, "3x16x16")
        XCTAssertEqual(run["augment"] as? String, "reference")
        guard let a = CheckpointFolder.newest(folders[0]), let b = CheckpointFolder.newest(folders[1]) else { return XCTFail("no checkpoints") }
        assertSameTensors(a, b, "imagefolder -np 2 vs -np 1")
        assertSameEpochMetrics(metrics[0], metrics[1], "imagefolder -np 2 vs -np 1")
    }

    func testMissingFolderStopsEveryRankWithOneMessage() throws {
        let r = try Harness.hiddenMPI(["train", "--dataset", "imagefolder", "--data-dir", dir.appendingPathComponent("nowhere").path,
                                       "--max-steps", "1"], np: 2, timeout: 60)
        XCTAssertEqual(r.status, 1, r.transcript)
        XCTAssertEqual(Harness.count("nowhere/train does not exist", in: r.stderr), 1, r.transcript)
    }

    /// check-data on 2 ranks lists the PNG named .JPEG once, counts every file, exits 1.
    func testCheckDataListsTheBadFileAndExitsOne() throws {
        let root = dir.appendingPathComponent("data").path
        let r = try Harness.hiddenMPI(["check-data", "--data-dir", root, "--image-size", "32"], np: 2, timeout: 60)
        XCTAssertEqual(r.status, 1, r.transcript)
        XCTAssertEqual(Harness.count("bad: \(root)/train/red/broken.JPEG: not a JPEG: the file holds PNG", in: r.stdout), 1, r.transcript)
        XCTAssertTrue(r.stdout.contains("checked 29 files (25 train, 4 val, 2 classes"), r.transcript)
        try FileManager.default.removeItem(atPath: root + "/train/red/broken.JPEG")
        let good = try Harness.hiddenMPI(["check-data", "--data-dir", root, "--json"], np: 2, timeout: 60)
        XCTAssertEqual(good.status, 0, good.transcript)
        let object = try JSONSerialization.jsonObject(with: Data(good.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((object?["files"] as? NSNumber)?.intValue, 28)
        XCTAssertEqual((object?["bad"] as? [Any])?.count, 0)
    }

    /// Stopped after 4 steps and resumed (on 2 ranks instead of 1), the run ends where the
    /// uninterrupted one ends: each sample's crop and flip depend on (seed, epoch, index) alone.
    func testResumeOnImageFolderEqualsUninterruptedRun() throws {
        let args = ["train", "--dataset", "imagefolder", "--data-dir", dir.appendingPathComponent("data").path, "--image-size", "16",
                    "--model", "conv2", "--width", "0.25", "--batch-size", "10", "--epochs", "2", "--seed", "5", "--progress", "0"]
        let whole = dir.appendingPathComponent("whole").path, part = dir.appendingPathComponent("part").path
        let r1 = try Harness.hiddenMPI(args + ["--checkpoint-dir", whole], np: 1, timeout: 120)
        XCTAssertEqual(r1.status, 0, r1.transcript)
        let r2 = try Harness.hiddenMPI(args + ["--checkpoint-dir", part, "--max-steps", "4"], np: 1, timeout: 120)
        XCTAssertEqual(r2.status, 0, r2.transcript)
        let r3 = try Harness.hiddenMPI(args + ["--checkpoint-dir", part, "--resume", "auto"], np: 2, timeout: 120)
        XCTAssertEqual(r3.status, 0, r3.transcript)
        guard let a = CheckpointFolder.newest(whole), let b = CheckpointFolder.newest(part) else { return XCTFail("no checkpoints") }
        XCTAssertEqual(CheckpointFolder.step(a), CheckpointFolder.step(b))
        assertSameTensors(a, b, "imagefolder: resumed after 4 steps on 2 ranks vs uninterrupted on 1")
    }
}
