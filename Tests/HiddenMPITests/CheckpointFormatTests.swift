// The two file formats as outside code sees them, and what `eval` reports from them:
// - Tests/python/test_checkpoint_format.py reads a conv model's checkpoint and its exported
//   subnetwork with plain numpy, rebuilds every mask from the scores and checks it against the
//   packed bits and against `hidden-mpi info --json`;
// - Docs/checkpoints.md shows the same reader (checked to be identical, and run) and names every
//   metadata key the files hold;
// - `eval --checkpoint` and `eval --subnetwork` report exactly the test accuracy the training run
//   reported for that point, on one rank and under mpirun -np 2;
// - the size of an exported Conv4 subnetwork against its float weights.

import Foundation
import XCTest

final class CheckpointFormatTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-format")
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    static let pythonTest = Harness.packageRoot.appendingPathComponent("Tests/python/test_checkpoint_format.py").path
    static let docs = Harness.packageRoot.appendingPathComponent("Docs/checkpoints.md").path

    /// conv2 at width 0.25 on 3x16x16 images (4-D score tensors) with k 0.3, where the kept count
    /// n - int((1 - k) * n) differs from round(k * n) for some layers; 256 samples, global batch 64,
    /// one epoch of 4 steps.
    static let model = ["--dataset", "synthetic", "--input", "3x16x16", "--classes", "4", "--model", "conv2", "--width", "0.25",
                        "--k", "0.3"]
    static let conv = model + ["--train-size", "256", "--test-size", "64", "--batch-size", "64", "--seed", "9", "--progress", "0"]

    static func python() throws -> String {
        try Harness.executable("python3", or: "python3 not found on PATH (the format test needs python3 with numpy)")
    }

    /// Trains the conv model for one epoch, exports its subnetwork and writes `info --json`.
    func convFiles(_ extra: [String] = [], tag: String = "conv") throws -> (checkpoint: String, subnetwork: String, info: String) {
        let ckdir = path(tag)
        let t = try Harness.hiddenMPI(["train"] + Self.conv + extra + ["--epochs", "1", "--checkpoint-dir", ckdir], timeout: 60)
        guard t.status == 0 else { throw HarnessError("training failed\n\(t.transcript)") }
        let checkpoint = (ckdir as NSString).appendingPathComponent(CheckpointFolder.name(step: 4, epoch: 1))
        let subnetwork = path("\(tag).subnet")
        let e = try Harness.hiddenMPI(["export", "--checkpoint", checkpoint, "--output", subnetwork], timeout: 60)
        guard e.status == 0 else { throw HarnessError("export failed\n\(e.transcript)") }
        let i = try Harness.hiddenMPI(["info", "--json"] + Self.model, timeout: 60)
        guard i.status == 0 else { throw HarnessError("info failed\n\(i.transcript)") }
        let info = path("info.jsonl")
        try i.stdout.write(toFile: info, atomically: true, encoding: .utf8)
        return (checkpoint, subnetwork, info)
    }

    func testPythonReadsCheckpointAndSubnetworkAndRebuildsTheMasks() throws {
        let files = try convFiles()
        let r = try Harness.run([try Self.python(), Self.pythonTest, files.checkpoint, files.subnetwork, files.info],
                                environment: Harness.childEnvironment(), timeout: 60)
        XCTAssertEqual(r.status, 0, r.transcript)
        XCTAssertTrue(r.stdout.contains("OK: 5 layers (2 convolutional), 0 batch norms"), r.transcript)
        XCTAssertEqual(Harness.count("info agrees", in: r.stdout), 5, r.transcript)
    }

    /// An Adam run with a multistep schedule: the documented extra fields (beta1, beta2, adam_eps,
    /// lr_milestones, lr_gamma) and a second_moment tensor per layer, nothing else.
    func testPythonReadsAnAdamMultistepCheckpoint() throws {
        let files = try convFiles(["--optimizer", "adam", "--schedule", "multistep", "--lr-milestones", "1"], tag: "adam")
        let r = try Harness.run([try Self.python(), Self.pythonTest, files.checkpoint, files.subnetwork, files.info],
                                environment: Harness.childEnvironment(), timeout: 60)
        XCTAssertEqual(r.status, 0, r.transcript)
        XCTAssertTrue(r.stdout.contains("OK: 5 layers (2 convolutional), 0 batch norms"), r.transcript)
    }

    /// The same on a ResNet: masked layers inside residual blocks (in `info`'s order) and each
    /// batch norm's running statistics, `running.<b>`, in the checkpoint and in the subnetwork.
    func testPythonReadsResNetCheckpointWithRunningStatistics() throws {
        let model = ["--dataset", "synthetic", "--input", "3x8x8", "--classes", "4", "--model", "cifar-resnet18",
                     "--width", "0.125", "--k", "0.3"]
        let ckdir = path("resnet")
        let t = try Harness.hiddenMPI(["train"] + model + ["--train-size", "64", "--test-size", "16", "--batch-size", "32",
                                                           "--epochs", "1", "--checkpoint-dir", ckdir, "--progress", "0"], timeout: 60)
        XCTAssertEqual(t.status, 0, t.transcript)
        let checkpoint = (ckdir as NSString).appendingPathComponent(CheckpointFolder.name(step: 2, epoch: 1))
        let subnetwork = path("resnet.subnet"), info = path("resnet-info.jsonl")
        let e = try Harness.hiddenMPI(["export", "--checkpoint", checkpoint, "--output", subnetwork], timeout: 60)
        XCTAssertEqual(e.status, 0, e.transcript)
        let i = try Harness.hiddenMPI(["info", "--json"] + model, timeout: 60)
        XCTAssertEqual(i.status, 0, i.transcript)
        try i.stdout.write(toFile: info, atomically: true, encoding: .utf8)
        let r = try Harness.run([try Self.python(), Self.pythonTest, checkpoint, subnetwork, info],
                                environment: Harness.childEnvironment(), timeout: 60)
        XCTAssertEqual(r.status, 0, r.transcript)
        // 17 convolutions (stem, 16 in blocks) + 3 projections + the classifier; 20 batch norms.
        XCTAssertTrue(r.stdout.contains("OK: 21 layers (20 convolutional), 20 batch norms"), r.transcript)
    }

    /// The documentation's ```python block contains the test's reader verbatim, and runs.
    func testDocumentedPythonSnippetIsTheTestedOneAndRuns() throws {
        let test = try String(contentsOfFile: Self.pythonTest, encoding: .utf8)
        guard let begin = test.range(of: "# --- Docs/checkpoints.md snippet begins ---\n"),
              let end = test.range(of: "# --- Docs/checkpoints.md snippet ends ---") else {
            return XCTFail("snippet markers missing in \(Self.pythonTest)")
        }
        let snippet = String(test[begin.upperBound..<end.lowerBound])
        let docs = try String(contentsOfFile: Self.docs, encoding: .utf8)
        guard let open = docs.range(of: "```python\n"), let close = docs.range(of: "```", range: open.upperBound..<docs.endIndex) else {
            return XCTFail("no ```python block in \(Self.docs)")
        }
        let block = String(docs[open.upperBound..<close.lowerBound])
        XCTAssertTrue(block.hasPrefix(snippet),
                      "the first python block of Docs/checkpoints.md must begin with the tested reader of \(Self.pythonTest), verbatim")
        let files = try convFiles()
        let script = path("snippet.py")
        try block.write(toFile: script, atomically: true, encoding: .utf8)
        let r = try Harness.run([try Self.python(), script, files.checkpoint, files.subnetwork],
                                environment: Harness.childEnvironment(), timeout: 60)
        XCTAssertEqual(r.status, 0, r.transcript)
        // It prints, per layer, the kept count of the rebuilt mask: compare with `info --json`.
        let info = try Harness.readJSONLines(files.info).filter { $0["masked_index"] != nil }
        for row in info {
            let l = (row["masked_index"] as? NSNumber)?.intValue ?? -1, kept = (row["kept"] as? NSNumber)?.intValue ?? -1
            XCTAssertTrue(r.stdout.contains("layer \(l): kept \(kept) "), "layer \(l) kept \(kept)\n\(r.transcript)")
        }
        XCTAssertTrue(r.stdout.contains("the subnetwork's masks match"), r.transcript)
    }

    /// Every metadata key a checkpoint and a subnetwork hold is named in Docs/checkpoints.md
    /// (`key`, or `shape.<l>` for per-layer keys), and the tensor names too.
    func testDocumentationNamesEveryMetadataKey() throws {
        let files = try convFiles()
        let docs = try String(contentsOfFile: Self.docs, encoding: .utf8)
        for file in [files.checkpoint, files.subnetwork] {
            let blob = try SafeTensorsBlob(path: file)
            let names = Set(blob.metadata.keys.map { $0.replacingOccurrences(of: #"\.\d+$"#, with: ".<l>", options: .regularExpression) })
                .union(blob.entries.keys.map { $0.replacingOccurrences(of: #"\.\d+$"#, with: ".<l>", options: .regularExpression) })
            for name in names.sorted() {
                XCTAssertTrue(docs.contains("`\(name)`"), "Docs/checkpoints.md does not describe `\(name)` (in \((file as NSString).lastPathComponent))")
            }
        }
    }

    // MARK: eval reports what training reported

    struct Evaluation { let acc: Double; let loss: Double; let correct: Int }

    func eval(_ args: [String], np: Int?, file: StaticString = #filePath, line: UInt = #line) throws -> Evaluation {
        let r = try Harness.hiddenMPI(["eval", "--json"] + args, np: np, timeout: 60, file: file, line: line)
        guard r.status == 0, let line1 = r.stdout.split(separator: "\n").first,
              let o = try JSONSerialization.jsonObject(with: Data(line1.utf8)) as? [String: Any],
              let acc = (o["test_acc"] as? NSNumber)?.doubleValue, let loss = (o["test_loss"] as? NSNumber)?.doubleValue,
              let correct = (o["correct"] as? NSNumber)?.intValue else {
            XCTFail("eval failed\n\(r.transcript)", file: file, line: line)
            throw HarnessError("eval failed")
        }
        XCTAssertEqual(Harness.count("test_acc", in: r.stdout), 1, "rank 0 alone prints\n\(r.transcript)", file: file, line: line)
        return Evaluation(acc: acc, loss: loss, correct: correct)
    }

    /// Trains with `np` ranks; for every end-of-epoch checkpoint, eval of the checkpoint and of its
    /// export (with the same number of ranks) report exactly the epoch's test_acc and test_loss.
    func assertEvalMatchesTraining(_ args: [String], epochs: Int, stepsPerEpoch: Int, testSize: Int, np: Int?, tag: String) throws {
        let ckdir = path("\(tag)-ck"), metrics = path("\(tag).jsonl")
        let t = try Harness.hiddenMPI(["train"] + args + ["--epochs", "\(epochs)", "--checkpoint-dir", ckdir, "--metrics", metrics],
                                      np: np, timeout: 90)
        XCTAssertEqual(t.status, 0, t.transcript)
        let reported = try epochsByNumber(metrics)
        for e in 1...epochs {
            let checkpoint = (ckdir as NSString).appendingPathComponent(CheckpointFolder.name(step: e * stepsPerEpoch, epoch: e))
            guard let acc = (reported[e]?["test_acc"] as? NSNumber)?.doubleValue,
                  let loss = (reported[e]?["test_loss"] as? NSNumber)?.doubleValue else { return XCTFail("[\(tag)] epoch \(e) not reported") }
            let subnetwork = path("\(tag)-e\(e).subnet")
            let x = try Harness.hiddenMPI(["export", "--checkpoint", checkpoint, "--output", subnetwork], timeout: 60)
            XCTAssertEqual(x.status, 0, x.transcript)
            for (what, source) in [("checkpoint", ["--checkpoint", checkpoint]), ("subnetwork", ["--subnetwork", subnetwork])] {
                let r = try eval(source, np: np)
                let how = "[\(tag), epoch \(e), eval --\(what), \(np.map { "-np \($0)" } ?? "direct")]"
                XCTAssertEqual(r.acc, acc, "\(how) test_acc \(r.acc) vs \(acc) reported by training")
                XCTAssertEqual(r.loss, loss, "\(how) test_loss \(r.loss) vs \(loss) reported by training")
                XCTAssertEqual(r.correct, Int((acc * Double(testSize)).rounded()), "\(how) correct")
            }
        }
    }

    func testEvalReportsExactlyTheTrainingAccuracyOnOneRank() throws {
        try assertEvalMatchesTraining(CheckpointResumeTests.fc, epochs: 2, stepsPerEpoch: 10, testSize: 100, np: nil, tag: "fc")
    }

    func testEvalReportsExactlyTheTrainingAccuracyOnTwoRanks() throws {
        try assertEvalMatchesTraining(Self.conv, epochs: 1, stepsPerEpoch: 4, testSize: 64, np: 2, tag: "conv-np2")
        // The same two-rank checkpoint evaluated on one rank: the same up to summation order (one sample).
        let checkpoint = (path("conv-np2-ck") as NSString).appendingPathComponent(CheckpointFolder.name(step: 4, epoch: 1))
        let two = try eval(["--checkpoint", checkpoint], np: 2), one = try eval(["--checkpoint", checkpoint], np: nil)
        XCTAssertLessThanOrEqual(abs(two.correct - one.correct), 1, "eval on 1 rank \(one.correct) vs 2 ranks \(two.correct)")
        XCTAssertTrue(relativelyClose(two.loss, one.loss, 1e-5), "test_loss \(one.loss) vs \(two.loss)")
    }

    // MARK: size

    /// A Conv4 subnetwork (CIFAR-sized input) is one bit per weight plus a small header: about
    /// 1/32 of the float weights.
    func testConv4SubnetworkSize() throws {
        let ckdir = path("conv4")
        let t = try Harness.hiddenMPI(["train", "--dataset", "synthetic", "--input", "3x32x32", "--classes", "10", "--model", "conv4",
                                       "--train-size", "128", "--test-size", "16", "--max-steps", "1", "--progress", "0",
                                       "--checkpoint-dir", ckdir], timeout: 120)
        XCTAssertEqual(t.status, 0, t.transcript)
        guard let checkpoint = CheckpointFolder.newest(ckdir) else { return XCTFail("no checkpoint\n\(t.transcript)") }
        let subnetwork = path("conv4.subnet")
        let x = try Harness.hiddenMPI(["export", "--checkpoint", checkpoint, "--output", subnetwork], timeout: 60)
        XCTAssertEqual(x.status, 0, x.transcript)
        let blob = try SafeTensorsBlob(path: subnetwork)
        let weights = (0..<blob.layers).map { l in (blob.metadata["shape.\(l)"] ?? "").split(separator: "x").compactMap { Int($0) }.reduce(1, *) }
        let params = weights.reduce(0, +)
        let maskBytes = weights.map { ($0 + 7) / 8 }.reduce(0, +)
        let fileBytes = blob.bytes.count, floatBytes = 4 * params
        let checkpointBytes = (try FileManager.default.attributesOfItem(atPath: checkpoint)[.size] as? NSNumber)?.intValue ?? 0
        print(String(format: "Conv4 (3x32x32, 10 classes): %d weights in %d layers; float weights %d bytes; subnetwork %d bytes (%d of packed masks + %d of header), 1/%.1f of the floats; score checkpoint %d bytes",
                     params, blob.layers, floatBytes, fileBytes, maskBytes, 8 + blob.headerLength, Double(floatBytes) / Double(fileBytes), checkpointBytes))
        XCTAssertEqual(params, 2_425_024, "Conv4's weight count (hidden-mpi info --model conv4 --dataset cifar10)")
        XCTAssertEqual(fileBytes, 8 + blob.headerLength + maskBytes, "one bit per weight, whole bytes per layer, and the header")
        XCTAssertLessThan(blob.headerLength, 4096)
        XCTAssertGreaterThan(Double(floatBytes) / Double(fileBytes), 31, "about 1/32 of the float weights")
        XCTAssertEqual(checkpointBytes, 8 + (try SafeTensorsBlob(path: checkpoint)).headerLength + 2 * floatBytes,
                       "a score checkpoint holds scores and momentum: twice the float weights, plus its header")
        XCTAssertTrue(x.stdout.contains("\(fileBytes) bytes (the float weights would take \(floatBytes))"), x.transcript)
    }
}
