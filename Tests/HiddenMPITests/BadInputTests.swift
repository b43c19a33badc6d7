// Bad input, one table row each: the run exits non-zero, no rank hangs, and the user reads exactly
// one clear error message (its key phrase once in all of the output, even with two ranks that
// both hit the error). Rows run under `mpirun -np 2` (or 4) and, for some, directly.

import Foundation
import XCTest

final class BadInputTests: XCTestCase {
    var dir: URL!

    struct Case {
        let name: String
        let args: [String]
        /// nil: the binary alone, no mpirun.
        let np: Int?
        /// Each must appear exactly once in the output.
        let phrases: [String]
        /// At least one of these must appear too (for messages whose wording may vary).
        var oneOf: [String] = []
        /// Must also appear (any number of times), e.g. the hint.
        var alsoContains: [String] = []
    }

    /// A small synthetic run the rows below break one flag of.
    static let synthetic = ["--dataset", "synthetic", "--input", "1x12x12", "--classes", "4", "--train-size", "64",
                            "--test-size", "16", "--model", "fc", "--batch-size", "16", "--epochs", "1", "--progress", "0"]

    // MARK: fixtures

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-bad-input")
        let train = (20, 28, 28), test = (10, 28, 28)
        func images(_ d: (Int, Int, Int)) -> [UInt8] {
            Fixtures.idx(dims: [d.0, d.1, d.2], data: (0..<(d.0 * d.1 * d.2)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        }
        func labels(_ n: Int) -> [UInt8] { Fixtures.idx(dims: [n], data: (0..<n).map { UInt8($0 % 10) }) }
        let good: [String: [UInt8]] = ["train-images-idx3-ubyte": images(train), "train-labels-idx1-ubyte": labels(train.0),
                                       "t10k-images-idx3-ubyte": images(test), "t10k-labels-idx1-ubyte": labels(test.0)]

        // A complete, valid set (plain and gzipped): the control that the fixtures themselves load.
        try Fixtures.write(good, to: path("idx-good"))
        try Fixtures.write(good.mapValues(Fixtures.gzip), to: path("idx-good-gz"), suffix: ".gz")

        // Valid header, fewer data bytes than it promises.
        var truncated = good
        truncated["train-images-idx3-ubyte"] = Array(good["train-images-idx3-ubyte"]!.dropLast(28 * 28 * 3 + 5))
        try Fixtures.write(truncated, to: path("idx-truncated"))
        // The same truncated file inside a valid gzip stream.
        try Fixtures.write(truncated.mapValues(Fixtures.gzip), to: path("idx-truncated-gz"), suffix: ".gz")

        // A gzip stream with one data byte flipped: its CRC-32 no longer matches.
        var corrupt = good.mapValues(Fixtures.gzip)
        corrupt["train-labels-idx1-ubyte"]![Fixtures.gzipHeaderCount + 5 + 12] ^= 0xFF
        try Fixtures.write(corrupt, to: path("gz-corrupt"), suffix: ".gz")
        // A gzip file cut short in the middle of its data.
        var cut = good.mapValues(Fixtures.gzip)
        cut["t10k-images-idx3-ubyte"] = Array(cut["t10k-images-idx3-ubyte"]!.prefix(2000))
        try Fixtures.write(cut, to: path("gz-cut"), suffix: ".gz")
        // Not gzip, not IDX: a file that starts like neither.
        var garbage = good.mapValues(Fixtures.gzip)
        garbage["train-images-idx3-ubyte"] = Array("this is not a data file\n".utf8) + [UInt8](repeating: 7, count: 100)
        try Fixtures.write(garbage, to: path("gz-garbage"), suffix: ".gz")

        // Bad magic: the first two bytes of an IDX file are zero.
        var badMagic = good
        badMagic["train-labels-idx1-ubyte"]![0] = 0x12
        badMagic["train-labels-idx1-ubyte"]![1] = 0x34
        try Fixtures.write(badMagic, to: path("idx-bad-magic"))
        // Right magic, wrong element type (0x0D: float).
        var badType = good
        badType["t10k-images-idx3-ubyte"]![2] = 0x0D
        try Fixtures.write(badType, to: path("idx-bad-type"))

        // CIFAR-10 binary version: all six files present, data_batch_1.bin cut mid-record.
        let record = 1 + 3 * 32 * 32
        func batch(_ records: Int) -> [UInt8] {
            (0..<(records * record)).map { $0 % record == 0 ? UInt8(($0 / record) % 10) : UInt8(truncatingIfNeeded: $0) }
        }
        var cifar: [String: [UInt8]] = [:]
        for i in 1...5 { cifar["data_batch_\(i).bin"] = batch(4) }
        cifar["test_batch.bin"] = batch(4)
        cifar["data_batch_1.bin"] = Array(batch(4).dropLast(1000))
        try Fixtures.write(cifar, to: path("cifar-truncated"))
        cifar["data_batch_1.bin"] = batch(4)
        cifar["data_batch_3.bin"] = nil
        try Fixtures.write(cifar, to: path("cifar-missing"))
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    // MARK: the check of one row

    /// "error:" as hidden-mpi ("hidden-mpi: error:", "error (rank 1):") and ArgumentParser ("Error:") write it.
    static let errorLine = try! NSRegularExpression(pattern: #"(?i)\berror( \(rank \d+\))?:"#)

    func check(_ c: Case, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Harness.hiddenMPI(c.args, np: c.np, timeout: 60, file: file, line: line)
        let how = c.np.map { "mpirun -np \($0)" } ?? "direct"
        let text = r.combinedWithoutMPINotices
        XCTAssertFalse(r.timedOut, "[\(c.name), \(how)] hung", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "[\(c.name), \(how)] exit status\n\(r.transcript)", file: file, line: line)
        for phrase in c.phrases {
            XCTAssertEqual(Harness.count(phrase, in: text), 1,
                           "[\(c.name), \(how)] '\(phrase)' must appear exactly once\n\(r.transcript)", file: file, line: line)
        }
        if !c.oneOf.isEmpty {
            XCTAssertTrue(c.oneOf.contains { text.contains($0) },
                          "[\(c.name), \(how)] one of \(c.oneOf) must appear\n\(r.transcript)", file: file, line: line)
        }
        for phrase in c.alsoContains {
            XCTAssertTrue(text.contains(phrase), "[\(c.name), \(how)] '\(phrase)' must appear\n\(r.transcript)", file: file, line: line)
        }
        let errors = Self.errorLine.numberOfMatches(in: text, range: NSRange(text.startIndex..., in: text))
        XCTAssertEqual(errors, 1, "[\(c.name), \(how)] exactly one error message\n\(r.transcript)", file: file, line: line)
        XCTAssertFalse(r.stdout.contains("epoch  train_loss"), "[\(c.name), \(how)] no training starts\n\(r.transcript)",
                       file: file, line: line)
    }

    func check(_ cases: [Case], file: StaticString = #filePath, line: UInt = #line) throws {
        for c in cases { try check(c, file: file, line: line) }
    }

    // MARK: the tables

    func testBadOptions() throws {
        let s = Self.synthetic
        func both(_ name: String, _ extra: [String], _ phrases: [String], np: Int = 2) -> [Case] {
            [Case(name: name, args: ["train"] + s + extra, np: np, phrases: phrases),
             Case(name: name, args: ["train"] + s + extra, np: nil, phrases: phrases)]
        }
        try check(
            both("unknown model", ["--model", "conv3"], ["is invalid for '--model"])
            + both("unknown init", ["--init", "gaussian"], ["is invalid for '--init"])
            + both("unknown method", ["--method", "pruning"], ["is invalid for '--method"])
            + both("k zero", ["--k", "0"], ["--k must be in (0, 1]"])
            + both("k above one", ["--k", "1.5"], ["--k must be in (0, 1]"])
            + both("k negative, spelled --k=-0.1", ["--k=-0.1"], ["--k must be in (0, 1]"])
            // Numeric options parse unconditionally, so "-0.1" is a value, not a flag.
            + both("k negative, spelled --k -0.1", ["--k", "-0.1"], ["--k must be in (0, 1]"])
            + both("zero epochs", ["--epochs", "0"], ["--epochs must be at least 1"])
            + both("nesterov with adam", ["--optimizer", "adam", "--nesterov"], ["--nesterov is SGD's; drop it with --optimizer adam"])
            + both("adam's betas without adam", ["--beta2", "0.99"], ["--beta2 belongs to --optimizer adam"])
            + both("beta of one", ["--optimizer", "adam", "--beta1", "1"], ["--beta1 must be in [0, 1)"])
            + both("milestones without multistep", ["--lr-milestones", "3"], ["--lr-milestones and --lr-gamma belong to --schedule multistep"])
            + both("milestones out of order", ["--schedule", "multistep", "--lr-milestones", "5,3"], ["--lr-milestones must be ascending"])
            + both("milestones not numbers", ["--schedule", "multistep", "--lr-milestones", "five"], ["--lr-milestones must list epochs"])
            + both("metrics file in a missing folder", ["--metrics", "/nonexistent-hidden-mpi/dir/m.jsonl"],
                   ["cannot write metrics file /nonexistent-hidden-mpi/dir/m.jsonl"])
            + both("model too deep for the input", ["--model", "conv8", "--input", "3x8x8"], ["does not fit input 3x8x8"])
            // An ImageNet ResNet on 8x8 images ends at 1x1: one value per channel in a batch of 1.
            + [Case(name: "batch norm with one value per channel", args: ["train"] + s + ["--model", "resnet18", "--width", "0.125",
                                                                                         "--input", "3x8x8", "--batch-size", "1"],
                    np: nil, phrases: ["would see one value per channel in a batch of 1"], oneOf: ["raise --batch-size"]),
               Case(name: "per-rank batch norm with one value per channel",
                    args: ["train"] + s + ["--model", "resnet18", "--width", "0.125", "--input", "3x8x8", "--batch-size", "2",
                                           "--bn-sync", "local"],
                    np: 2, phrases: ["would see one value per channel in a batch of 1"], oneOf: ["--bn-sync global"])]
            + [Case(name: "more ranks than the global batch", args: ["train"] + s + ["--batch-size", "2"], np: 4,
                    phrases: ["global batch 2 is smaller than the 4 ranks"], alsoContains: ["--batch-size"]),
               Case(name: "more ranks than training samples",
                    args: ["train"] + s + ["--train-size", "2", "--batch-size", "4"], np: 4,
                    phrases: ["the training set has 2 samples, fewer than the 4 ranks"], alsoContains: ["launch at most 2 ranks"])]
        )
    }

    func testMissingDataSet() throws {
        let args = ["train", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent", "--model", "fc", "--epochs", "1"]
        for np in [2, nil] {
            try check(Case(name: "missing data set", args: args, np: np,
                           phrases: ["data set fashion-mnist not found", "apt-get install dataset-fashion-mnist"],
                           alsoContains: ["--data-dir"]))
        }
        try check(Case(name: "cifar10 without --data-dir", args: ["train", "--dataset", "cifar10", "--model", "conv2"],
                       np: 2, phrases: ["cifar10 needs --data-dir"]))
    }

    /// The fixtures are right: the same files, whole, train (so each row below fails for its one flaw).
    func testGoodFixturesLoad() throws {
        for name in ["idx-good", "idx-good-gz"] {
            let r = try Harness.hiddenMPI(["train", "--dataset", "mnist", "--data-dir", path(name), "--model", "fc",
                                           "--batch-size", "4", "--epochs", "1", "--progress", "0"], np: 2)
            XCTAssertEqual(r.status, 0, "[\(name)] the control set must train\n\(r.transcript)")
            XCTAssertTrue(r.stdout.contains("20 train / 10 test"), "[\(name)]\n\(r.transcript)")
        }
    }

    func testBadIDXFiles() throws {
        func idx(_ name: String, _ fixture: String, _ phrases: [String], np: Int? = 2, oneOf: [String] = []) -> Case {
            Case(name: name, args: ["train", "--dataset", "fashion-mnist", "--data-dir", path(fixture), "--model", "fc",
                                    "--batch-size", "4", "--epochs", "1", "--progress", "0"],
                 np: np, phrases: phrases, oneOf: oneOf)
        }
        let images = "train-images-idx3-ubyte"
        try check([
            idx("truncated IDX", "idx-truncated", ["\(images) is truncated"]),
            idx("truncated IDX", "idx-truncated", ["\(images) is truncated"], np: nil),
            idx("truncated IDX inside gzip", "idx-truncated-gz", ["\(images).gz is truncated"]),
            idx("corrupted gzip (CRC)", "gz-corrupt", ["train-labels-idx1-ubyte.gz is corrupt"]),
            idx("corrupted gzip (CRC)", "gz-corrupt", ["train-labels-idx1-ubyte.gz is corrupt"], np: nil),
            idx("gzip cut short", "gz-cut", ["t10k-images-idx3-ubyte.gz"], oneOf: ["truncated", "corrupt"]),
            idx("neither gzip nor IDX", "gz-garbage", ["\(images).gz is not an IDX file"]),
            idx("bad IDX magic", "idx-bad-magic", ["train-labels-idx1-ubyte is not an IDX file"]),
            idx("IDX of floats", "idx-bad-type", ["t10k-images-idx3-ubyte: IDX type 0xd is not unsigned bytes"]),
        ])
    }

    func testBadCIFARFiles() throws {
        func cifar(_ fixture: String) -> [String] {
            ["train", "--dataset", "cifar10", "--data-dir", path(fixture), "--model", "conv2", "--width", "0.125",
             "--batch-size", "4", "--epochs", "1", "--progress", "0"]
        }
        try check([
            Case(name: "truncated CIFAR batch", args: cifar("cifar-truncated"), np: 2,
                 phrases: ["data_batch_1.bin is truncated"]),
            Case(name: "truncated CIFAR batch", args: cifar("cifar-truncated"), np: nil,
                 phrases: ["data_batch_1.bin is truncated"]),
            Case(name: "missing CIFAR batch", args: cifar("cifar-missing"), np: 2,
                 phrases: ["missing data_batch_3.bin"], alsoContains: ["cifar-10-batches-bin"]),
        ])
    }
}

/// Writers of the files the data readers take: IDX, gzip (stored deflate blocks), folders of them.
enum Fixtures {
    /// IDX: 0, 0, type 0x08 (unsigned bytes), rank; big-endian sizes; data.
    static func idx(dims: [Int], data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        return out + data
    }

    static let gzipHeaderCount = 10

    /// A valid gzip member (RFC 1952) holding `data` in stored deflate blocks (RFC 1951, BTYPE 00).
    static func gzip(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]
        var offset = 0
        repeat {
            let n = min(65535, data.count - offset)
            let last = offset + n == data.count
            out.append(last ? 1 : 0)
            out += le16(n) + le16(~n & 0xFFFF)
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        return out + le32(crc32(data)) + le32(UInt32(truncatingIfNeeded: data.count))
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var table = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            table[i] = c
        }
        var crc: UInt32 = 0xFFFF_FFFF
        for b in data { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }

    static func write(_ files: [String: [UInt8]], to dir: String, suffix: String = "") throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, bytes) in files {
            try Data(bytes).write(to: URL(fileURLWithPath: dir).appendingPathComponent(name + suffix))
        }
    }
}
