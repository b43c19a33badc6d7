// The file readers on real files in a temporary directory: IDX (plain and gzipped) and the
// CIFAR-10 and CIFAR-100 binary versions; one line per bad input with the phrase its error must name.

import Foundation
import XCTest
@testable import HiddenNetworks

/// An IDX file: magic 0 0 type rank, big-endian dims, data.
func idxBytes(type: UInt8 = 0x08, dims: [Int], data: [UInt8], magic: [UInt8] = [0, 0]) -> [UInt8] {
    var out = magic + [type, UInt8(dims.count)]
    for d in dims { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
    return out + data
}

/// Writes a complete MNIST-style set (train n images, test m images of h x w).
func writeIDXSet(_ dir: TemporaryDirectory, train: Int = 3, test: Int = 2, h: Int = 4, w: Int = 5, gzip: Bool = false,
                 seed: UInt64 = 1) throws -> (trainPixels: [UInt8], trainLabels: [UInt8]) {
    var rng = TestRNG(seed)
    var result: ([UInt8], [UInt8]) = ([], [])
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let pixels = (0..<(n * h * w)).map { _ in UInt8(rng.int(256)) }
        let labels = (0..<n).map { _ in UInt8(rng.int(10)) }
        var images = idxBytes(dims: [n, h, w], data: pixels)
        var labelFile = idxBytes(dims: [n], data: labels)
        var suffix = ""
        if gzip { images = try gzipped(images); labelFile = try gzipped(labelFile); suffix = ".gz" }
        try dir.write("\(prefix)-images-idx3-ubyte\(suffix)", images)
        try dir.write("\(prefix)-labels-idx1-ubyte\(suffix)", labelFile)
        if prefix == "train" { result = (pixels, labels) }
    }
    return result
}

final class ReaderTests: XCTestCase {
    func testValidIDXPlainAndGzipped() throws {
        let pixels: [UInt8] = (0..<24).map { UInt8($0 * 10) }
        let plain = idxBytes(dims: [2, 3, 4], data: pixels)
        let dir = try TemporaryDirectory()
        for (name, bytes) in [("plain", plain), ("zipped.gz", try gzipped(plain))] {
            let path = try dir.write(name, bytes)
            let read = try readMaybeGzipped(path)
            XCTAssertEqual(read, plain, name)
            let idx = try IDXFile(bytes: read, name: path)
            XCTAssertEqual(idx.dims, [2, 3, 4], name)
            XCTAssertEqual(Array(idx.data), pixels, name)
        }
        let labels = try IDXFile(bytes: idxBytes(dims: [3], data: [7, 0, 9]), name: "labels")
        XCTAssertEqual(labels.dims, [3])
        XCTAssertEqual(Array(labels.data), [7, 0, 9])
        // Sizes above 255 use every byte of the big-endian header.
        let big = try IDXFile(bytes: idxBytes(dims: [1, 300], data: [UInt8](repeating: 1, count: 300)), name: "wide")
        XCTAssertEqual(big.dims, [1, 300])
    }

    func testBadIDXThrows() {
        let good = idxBytes(dims: [2, 2, 2], data: [UInt8](repeating: 5, count: 8))
        // (what, bytes, phrases the message must hold)
        let table: [(String, [UInt8], [String])] = [
            ("empty", [], ["truncated"]),
            ("shorter than a header", [0, 0, 8], ["truncated"]),
            ("wrong magic", idxBytes(dims: [2, 2, 2], data: [UInt8](repeating: 5, count: 8), magic: [0x1f, 0x8b]), ["not an IDX file"]),
            ("wrong type byte (float)", idxBytes(type: 0x0D, dims: [2, 2, 2], data: [UInt8](repeating: 5, count: 32)), ["0xd", "not unsigned bytes"]),
            ("header cut short", Array(good.prefix(10)), ["truncated or malformed", "3 dimensions"]),
            ("zero dimensions", [0, 0, 8, 0], ["malformed"]),
            ("data truncated", Array(good.dropLast(3)), ["truncated", "2x2x2 = 8 bytes", "file has 5"]),
            ("header claims more data", idxBytes(dims: [5, 2, 2], data: [UInt8](repeating: 5, count: 8)), ["truncated", "= 20 bytes", "file has 8"]),
            ("more data than the header", good + [1, 2], ["malformed", "file has 10"]),
            // Four sizes of 2^32 - 1 multiply past Int.max: refused, not wrapped to a small count.
            ("sizes that overflow", [0, 0, 8, 4] + [UInt8](repeating: 0xFF, count: 16) + [1, 2, 3], ["truncated", "more than 9223372036854775807 bytes", "file has 3"]),
        ]
        for (what, bytes, phrases) in table {
            assertThrowsHiddenError(try IDXFile(bytes: bytes, name: "f.idx"), containing: ["f.idx"] + phrases, what)
        }
    }

    func gzippedIDX(_ seed: UInt64) throws -> [UInt8] {
        var rng = TestRNG(seed)
        return try gzipped(idxBytes(dims: [40, 28, 28], data: (0..<(40 * 784)).map { _ in UInt8(rng.int(256)) }))
    }

    func testCorruptGzipThrows() throws {
        let dir = try TemporaryDirectory()
        let gz = try gzippedIDX(50)
        // Cut in the middle of the deflate stream: refused, by the gzip reader or by the IDX size check.
        let cut = try dir.write("cut.gz", Array(gz.prefix(gz.count / 2)))
        let error = thrownHiddenError { try IDXFile(bytes: readMaybeGzipped(cut), name: cut) }
        XCTAssertNotNil(error, "gzip cut in half was accepted")
        if let error {
            XCTAssert(error.message.contains(cut) && (error.message.contains("truncated") || error.message.contains("corrupt")),
                      "names the file and the problem: \(error.message)")
        }
        // A flipped byte inside the compressed data.
        var flipped = gz
        flipped[gz.count / 2] ^= 0xFF
        let bad = try dir.write("flipped.gz", flipped)
        assertThrowsHiddenError(try IDXFile(bytes: readMaybeGzipped(bad), name: bad), containing: [bad], "flipped byte")
        // A wrong CRC in the trailer.
        var badCRC = gz
        badCRC[gz.count - 8] ^= 0x01
        let crc = try dir.write("crc.gz", badCRC)
        assertThrowsHiddenError(try readMaybeGzipped(crc), containing: [crc, "corrupt"], "gzip with a wrong CRC")
        // A missing file.
        assertThrowsHiddenError(try readMaybeGzipped(dir.file("absent")), containing: ["cannot read", "absent"])
    }

    /// A gzip file that ends early must be refused by the gzip reader itself: zlib's gzread hands
    /// back what it could inflate and only records "unexpected end of file" (Z_BUF_ERROR) for
    /// gzerror. Cut before its 8-byte CRC/size trailer, every data byte is there, so no size check
    /// downstream can notice.
    func testGzipThatEndsEarlyThrows() throws {
        let dir = try TemporaryDirectory()
        let gz = try gzippedIDX(51)
        for (what, bytes) in [("without its 8-byte trailer", Array(gz.dropLast(8))), ("cut in half", Array(gz.prefix(gz.count / 2)))] {
            let path = try dir.write("early.gz", bytes)
            let error = thrownHiddenError { try readMaybeGzipped(path) }
            XCTAssertNotNil(error, "readMaybeGzipped accepted a gzip file \(what)")
            if let error {
                XCTAssert(error.message.contains(path) && (error.message.contains("truncated") || error.message.contains("corrupt")),
                          "names the file and the problem: \(error.message)")
            }
        }
    }

    func testLoadIDXSetPlainAndGzipped() throws {
        for gzip in [false, true] {
            let dir = try TemporaryDirectory()
            let (pixels, labels) = try writeIDXSet(dir, train: 3, test: 2, h: 4, w: 5, gzip: gzip)
            for source in [DataSource.mnist, .fashionMNIST] {
                let data = try loadDataset(source, directory: dir.path)
                let (mean, std): (Double, Double) = source == .mnist ? (0.1307, 0.3081) : (0.2860, 0.3530)
                XCTAssertEqual(data.shape, Shape([1, 4, 5]))
                XCTAssertEqual(data.classes, 10)
                XCTAssertEqual(data.train.count, 3)
                XCTAssertEqual(data.test.count, 2)
                XCTAssertEqual(data.train.images.count, 60)
                XCTAssertEqual(data.test.images.count, 40)
                XCTAssertEqual(data.train.labels, labels.map(Int32.init))
                XCTAssertFalse(data.augment)
                for i in [0, 1, 17, 59] {
                    XCTAssertEqual(Double(data.train.images[i]), (Double(pixels[i]) / 255 - mean) / std, accuracy: 1e-5,
                                   "\(source) gzip \(gzip) pixel \(i) = \(pixels[i])")
                }
                XCTAssertEqual(Double(data.padValue[0]), -mean / std, accuracy: 1e-6)
            }
        }
    }

    func testDottedFileNamesAreFound() throws {
        let dir = try TemporaryDirectory()
        _ = try writeIDXSet(dir)
        for prefix in ["train", "t10k"] {
            for kind in ["images-idx3", "labels-idx1"] {
                try FileManager.default.moveItem(atPath: dir.file("\(prefix)-\(kind)-ubyte"),
                                                 toPath: dir.file("\(prefix)-\(kind.replacingOccurrences(of: "-idx", with: ".idx"))-ubyte"))
            }
        }
        XCTAssertEqual(try loadDataset(.mnist, directory: dir.path).train.count, 3)
    }

    func testBadIDXSetsThrow() throws {
        // Images and labels disagree on the count.
        let dir = try TemporaryDirectory()
        _ = try writeIDXSet(dir)
        try dir.write("train-labels-idx1-ubyte", idxBytes(dims: [2], data: [1, 2]))
        assertThrowsHiddenError(try loadDataset(.mnist, directory: dir.path), containing: ["3 images", "2 labels"])
        // A label above 9.
        try dir.write("train-labels-idx1-ubyte", idxBytes(dims: [3], data: [1, 10, 2]))
        assertThrowsHiddenError(try loadDataset(.mnist, directory: dir.path), containing: ["label 10", "outside 0...9"])
        // Images with the wrong rank.
        try dir.write("train-labels-idx1-ubyte", idxBytes(dims: [3], data: [1, 1, 2]))
        try dir.write("train-images-idx3-ubyte", idxBytes(dims: [3, 20], data: [UInt8](repeating: 0, count: 60)))
        assertThrowsHiddenError(try loadDataset(.mnist, directory: dir.path), containing: ["expected 3 dimensions"])
        // Train and test image sizes differ.
        try dir.write("train-images-idx3-ubyte", idxBytes(dims: [3, 5, 4], data: [UInt8](repeating: 0, count: 60)))
        assertThrowsHiddenError(try loadDataset(.mnist, directory: dir.path), containing: ["1x5x4", "1x4x5"])
        // A truncated image file.
        try dir.write("train-images-idx3-ubyte", Array(idxBytes(dims: [3, 4, 5], data: [UInt8](repeating: 0, count: 60)).dropLast()))
        assertThrowsHiddenError(try loadDataset(.mnist, directory: dir.path), containing: ["train-images-idx3-ubyte", "truncated"])
    }

    func testMissingDataSetsExplainThemselves() throws {
        let empty = try TemporaryDirectory()
        assertThrowsHiddenError(try loadDataset(.fashionMNIST, directory: empty.path),
                                containing: ["fashion-mnist", "missing", "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
                                hintContaining: ["apt-get install dataset-fashion-mnist", "--data-dir"])
        let nowhere = empty.file("does-not-exist")
        assertThrowsHiddenError(try loadDataset(.fashionMNIST, directory: nowhere), containing: [nowhere, "does not exist"],
                                hintContaining: ["apt-get install dataset-fashion-mnist"])
        assertThrowsHiddenError(try loadDataset(.mnist, directory: nowhere), containing: ["does not exist"], hintContaining: ["--data-dir"])
        // Half a set: only the test files are missing.
        let half = try TemporaryDirectory()
        _ = try writeIDXSet(half)
        try FileManager.default.removeItem(atPath: half.file("t10k-labels-idx1-ubyte"))
        assertThrowsHiddenError(try loadDataset(.mnist, directory: half.path), containing: ["missing t10k-labels-idx1-ubyte"])
        // MNIST has no Debian package, so no default folder: it needs --data-dir.
        assertThrowsHiddenError(try loadDataset(.mnist, directory: nil), containing: ["mnist needs --data-dir"],
                                hintContaining: ["t10k-images-idx3-ubyte"])
        // CIFAR-10 without a directory or without its files.
        assertThrowsHiddenError(try loadDataset(.cifar10, directory: nil), containing: ["--data-dir"], hintContaining: ["cifar-10-binary"])
        assertThrowsHiddenError(try loadDataset(.cifar10, directory: empty.path),
                                containing: ["missing", "data_batch_1.bin", "data_batch_5.bin", "test_batch.bin"])
    }

    // MARK: CIFAR-10

    static let cifarMean: [Float] = [0.491, 0.482, 0.447], cifarStd: [Float] = [0.247, 0.243, 0.262]

    func cifarRecord(label: UInt8, rng: inout TestRNG) -> [UInt8] {
        [label] + (0..<3072).map { _ in UInt8(rng.int(256)) }
    }

    func testValidCIFARFile() throws {
        let dir = try TemporaryDirectory()
        var rng = TestRNG(51)
        let r0 = cifarRecord(label: 3, rng: &rng), r1 = cifarRecord(label: 9, rng: &rng)
        let path = try dir.write("batch.bin", r0 + r1)
        let split = try loadCIFARFiles([path], mean: Self.cifarMean, std: Self.cifarStd)
        XCTAssertEqual(split.count, 2)
        XCTAssertEqual(split.labels, [3, 9])
        XCTAssertEqual(split.images.count, 2 * 3072)
        // (record, channel, y, x)
        for (r, c, y, x) in [(0, 0, 0, 0), (0, 1, 5, 7), (0, 2, 31, 31), (1, 0, 10, 3), (1, 2, 0, 31)] {
            let raw = (r == 0 ? r0 : r1)[1 + c * 1024 + y * 32 + x]
            let want = (Double(raw) / 255 - Double(Self.cifarMean[c])) / Double(Self.cifarStd[c])
            XCTAssertEqual(Double(split.images[r * 3072 + c * 1024 + y * 32 + x]), want, accuracy: 1e-5, "record \(r) channel \(c) (\(y), \(x))")
        }
        // Several files are concatenated in order.
        let second = try dir.write("batch2.bin", r1)
        XCTAssertEqual(try loadCIFARFiles([path, second], mean: Self.cifarMean, std: Self.cifarStd).labels, [3, 9, 9])
    }

    func testBadCIFARFilesThrow() throws {
        let dir = try TemporaryDirectory()
        var rng = TestRNG(52)
        let record = cifarRecord(label: 1, rng: &rng)
        // (what, bytes, phrases)
        let table: [(String, [UInt8], [String])] = [
            ("empty", [], ["not a whole number", "3073"]),
            ("one byte short", Array(record.dropLast()), ["truncated or malformed", "3072 bytes"]),
            ("a record and a byte", record + record + [0], ["6147 bytes"]),
            ("label 10", record + [10] + Array(record.dropFirst()), ["record 1", "label 10"]),
            ("label 255", [255] + Array(record.dropFirst()), ["record 0", "label 255"]),
        ]
        for (i, (what, bytes, phrases)) in table.enumerated() {
            let path = try dir.write("bad\(i).bin", bytes)
            assertThrowsHiddenError(try loadCIFARFiles([path], mean: Self.cifarMean, std: Self.cifarStd), containing: [path] + phrases, what)
        }
        assertThrowsHiddenError(try loadCIFARFiles([dir.file("absent.bin")], mean: Self.cifarMean, std: Self.cifarStd), containing: ["cannot read"])
    }

    func testLoadCIFARDirectoryChecksBatchSizes() throws {
        // Every file of the binary version holds exactly 10,000 records; the loader checks the sizes
        // before reading (a whole valid set is too big for a unit test; loadCIFARFiles is tested above).
        let root = try TemporaryDirectory()
        let base = root.file("cifar-10-batches-bin")
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        var rng = TestRNG(53)
        for (i, name) in ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"].enumerated() {
            try Data(cifarRecord(label: UInt8(i), rng: &rng)).write(to: URL(fileURLWithPath: (base as NSString).appendingPathComponent(name)))
        }
        // Found both from the parent and from cifar-10-batches-bin itself.
        for dir in [root.path, base] {
            assertThrowsHiddenError(try loadDataset(.cifar10, directory: dir),
                                    containing: [(base as NSString).appendingPathComponent("data_batch_1.bin"), "truncated", "3073 bytes", "10000 records"],
                                    hintContaining: ["cifar-10-binary"], "one record per file, from \(dir)")
        }
    }

    // MARK: CIFAR-100

    /// CIFAR-100's usual statistics, written out here so that a change to them shows.
    static let cifar100Mean: [Double] = [0.5071, 0.4865, 0.4409], cifar100Std: [Double] = [0.2673, 0.2564, 0.2762]

    /// coarse label, fine label, 3072 pixels (R, G, B planes).
    func cifar100Record(coarse: UInt8, fine: UInt8, rng: inout TestRNG) -> [UInt8] {
        [coarse, fine] + (0..<3072).map { _ in UInt8(rng.int(256)) }
    }

    /// Normalised value of pixel (channel, y, x) of a CIFAR-100 record.
    func cifar100Pixel(_ record: [UInt8], _ c: Int, _ y: Int, _ x: Int) -> Double {
        (Double(record[2 + c * 1024 + y * 32 + x]) / 255 - Self.cifar100Mean[c]) / Self.cifar100Std[c]
    }

    /// Writes cifar-100-binary/train.bin and test.bin under a fresh folder.
    func writeCIFAR100(train: [[UInt8]], test: [[UInt8]]) throws -> (root: TemporaryDirectory, base: String) {
        let root = try TemporaryDirectory()
        let base = root.file("cifar-100-binary")
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        try Data(train.flatMap { $0 }).write(to: URL(fileURLWithPath: (base as NSString).appendingPathComponent("train.bin")))
        try Data(test.flatMap { $0 }).write(to: URL(fileURLWithPath: (base as NSString).appendingPathComponent("test.bin")))
        return (root, base)
    }

    /// The production layout with as many records as the test writes (a real train.bin is 154 MB).
    func smallCIFAR100(train: Int, test: Int) -> CIFARLayout {
        var layout = CIFARLayout.cifar100
        layout.records = ["train.bin": train, "test.bin": test]
        return layout
    }

    func testValidCIFAR100FileUsesTheFineLabel() throws {
        let dir = try TemporaryDirectory()
        var rng = TestRNG(54)
        let r0 = cifar100Record(coarse: 19, fine: 99, rng: &rng), r1 = cifar100Record(coarse: 0, fine: 7, rng: &rng)
        let mean = Self.cifar100Mean.map(Float.init), std = Self.cifar100Std.map(Float.init)
        let path = try dir.write("train.bin", r0 + r1)
        let split = try loadCIFARFiles([path], mean: mean, std: std, format: .cifar100)
        XCTAssertEqual(split.count, 2)
        XCTAssertEqual(split.labels, [99, 7], "the fine label (second byte), not the coarse one")
        XCTAssertEqual(split.images.count, 2 * 3072)
        // (record, channel, y, x): the pixels start after the two label bytes.
        for (r, c, y, x) in [(0, 0, 0, 0), (0, 1, 5, 7), (0, 2, 31, 31), (1, 0, 0, 0), (1, 1, 16, 0), (1, 2, 0, 31)] {
            let want = cifar100Pixel(r == 0 ? r0 : r1, c, y, x)
            XCTAssertEqual(Double(split.images[r * 3072 + c * 1024 + y * 32 + x]), want, accuracy: 1e-5, "record \(r) channel \(c) (\(y), \(x))")
        }
        XCTAssertEqual(CIFARRecordFormat.cifar100.recordBytes, 3074)
        XCTAssertEqual(CIFARRecordFormat.cifar10.recordBytes, 3073)
    }

    func testLoadCIFAR100DataSet() throws {
        var rng = TestRNG(55)
        let train = [cifar100Record(coarse: 3, fine: 42, rng: &rng), cifar100Record(coarse: 11, fine: 0, rng: &rng),
                     cifar100Record(coarse: 19, fine: 99, rng: &rng)]
        let test = [cifar100Record(coarse: 7, fine: 13, rng: &rng), cifar100Record(coarse: 1, fine: 58, rng: &rng)]
        let (root, base) = try writeCIFAR100(train: train, test: test)
        // Found both from the parent and from cifar-100-binary itself.
        for dir in [root.path, base] {
            let data = try loadCIFAR(smallCIFAR100(train: 3, test: 2), directory: dir)
            XCTAssertEqual(data.name, "cifar100")
            XCTAssertEqual(data.shape, Shape([3, 32, 32]))
            XCTAssertEqual(data.classes, 100)
            XCTAssertEqual(data.train.labels, [42, 0, 99])
            XCTAssertEqual(data.test.labels, [13, 58])
            XCTAssertEqual(data.train.images.count, 3 * 3072)
            XCTAssertEqual(data.test.images.count, 2 * 3072)
            XCTAssert(data.augment, "trained with crop and flip, as CIFAR-10")
            for c in 0..<3 {
                XCTAssertEqual(Double(data.padValue[c]), -Self.cifar100Mean[c] / Self.cifar100Std[c], accuracy: 1e-6, "pad of channel \(c)")
            }
            // Known answers: sample 2 of train, sample 1 of test.
            for (c, y, x) in [(0, 0, 0), (1, 9, 30), (2, 31, 31)] {
                XCTAssertEqual(Double(data.train.images[2 * 3072 + c * 1024 + y * 32 + x]), cifar100Pixel(train[2], c, y, x), accuracy: 1e-5)
                XCTAssertEqual(Double(data.test.images[3072 + c * 1024 + y * 32 + x]), cifar100Pixel(test[1], c, y, x), accuracy: 1e-5)
            }
        }
        // CIFAR-10's loader goes through the same code with its own layout.
        XCTAssertEqual(CIFARLayout.cifar10.trainFiles.count, 5)
        XCTAssertEqual(CIFARLayout.cifar10.records.values.reduce(0, +), 60_000)
        XCTAssertEqual(CIFARLayout.cifar100.records, ["train.bin": 50_000, "test.bin": 10_000])
    }

    func testBadCIFAR100FilesThrow() throws {
        var rng = TestRNG(56)
        let good = cifar100Record(coarse: 4, fine: 31, rng: &rng)
        // (what, bytes, phrases): readers first, each names the file.
        let table: [(String, [UInt8], [String])] = [
            ("empty", [], ["not a whole number", "3074-byte CIFAR-100 records"]),
            ("one byte short", Array(good.dropLast()), ["truncated or malformed", "3073 bytes"]),
            ("a record and a byte", good + good + [0], ["6149 bytes"]),
            ("a CIFAR-10 record", [3] + Array(good.dropFirst(2)), ["3073 bytes", "not a whole number"]),
            ("fine label 100", good + [4, 100] + Array(good.dropFirst(2)), ["record 1", "fine label 100", "outside 0...99"]),
            ("fine label 255", [0, 255] + Array(good.dropFirst(2)), ["record 0", "fine label 255"]),
        ]
        let dir = try TemporaryDirectory()
        let mean = Self.cifar100Mean.map(Float.init), std = Self.cifar100Std.map(Float.init)
        for (i, (what, bytes, phrases)) in table.enumerated() {
            let path = try dir.write("bad\(i).bin", bytes)
            assertThrowsHiddenError(try loadCIFARFiles([path], mean: mean, std: std, format: .cifar100), containing: [path] + phrases,
                                    hintContaining: ["cifar-100-binary.tar.gz"], what)
        }
        // A coarse label is not the class: 99 there is no error.
        let coarse = try dir.write("coarse.bin", [99, 5] + Array(good.dropFirst(2)))
        XCTAssertEqual(try loadCIFARFiles([coarse], mean: mean, std: std, format: .cifar100).labels, [5])

        // The data set: no folder, files missing, sizes checked before reading, labels while reading.
        assertThrowsHiddenError(try loadDataset(.cifar100, directory: nil), containing: ["cifar100 needs --data-dir"],
                                hintContaining: ["cifar-100-binary.tar.gz", "--data-dir"])
        let empty = try TemporaryDirectory()
        assertThrowsHiddenError(try loadDataset(.cifar100, directory: empty.path), containing: ["cifar100", "missing train.bin, test.bin"],
                                hintContaining: ["cifar-100-binary"])
        assertThrowsHiddenError(try loadDataset(.cifar100, directory: empty.file("nowhere")), containing: ["missing train.bin, test.bin"])
        let (halfRoot, halfBase) = try writeCIFAR100(train: [good], test: [good])
        try FileManager.default.removeItem(atPath: (halfBase as NSString).appendingPathComponent("test.bin"))
        assertThrowsHiddenError(try loadDataset(.cifar100, directory: halfRoot.path), containing: [halfBase, "missing test.bin"])
        // The real sizes: one record is far too few.
        let (oneRoot, oneBase) = try writeCIFAR100(train: [good], test: [good])
        assertThrowsHiddenError(try loadDataset(.cifar100, directory: oneRoot.path),
                                containing: [(oneBase as NSString).appendingPathComponent("train.bin"), "truncated", "3074 bytes",
                                             "CIFAR-100", "50000 records", "(153700000)"],
                                hintContaining: ["cifar-100-binary.tar.gz"])
        let layout = smallCIFAR100(train: 2, test: 1)
        // (what, train records' bytes, test records' bytes, phrases)
        let sets: [(String, [UInt8], [UInt8], [String])] = [
            ("train cut inside a record", good + Array(good.dropLast(10)), good, ["train.bin", "truncated", "not a whole number of 3074-byte records"]),
            ("test a record too long", good + good, good + good, ["test.bin", "malformed", "6148 bytes", "1 records"]),
            ("test not a multiple of 3074", good + good, good + [1], ["test.bin", "malformed", "3075 bytes", "not a whole number"]),
            ("fine label 100 in test", good + good, [4, 100] + Array(good.dropFirst(2)), ["test.bin", "record 0", "fine label 100", "outside 0...99"]),
        ]
        for (what, trainBytes, testBytes, phrases) in sets {
            let (root, _) = try writeCIFAR100(train: [trainBytes], test: [testBytes])
            assertThrowsHiddenError(try loadCIFAR(layout, directory: root.path), containing: phrases,
                                    hintContaining: ["cifar-100-binary.tar.gz"], what)
        }
    }
}
