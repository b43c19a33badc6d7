// Image folders (ImageFolder.swift) on a tree the test writes: colour, grayscale and CMYK JPEGs of
// different sizes and aspect ratios, a PNG named .JPEG, a truncated JPEG, a stray text file and a
// hidden one; the index, its transfer form, and samples gathered through a Dataset.

import XCTest
@testable import HiddenNetworks

/// Writes ROOT/train/<class>/ and ROOT/val/<class>/ with the given files; returns ROOT.
func makeImageFolder(_ files: [String: [UInt8]]) throws -> String {
    let root = NSTemporaryDirectory() + "hidden-mpi-folder-\(UUID().uuidString)"
    for (path, bytes) in files {
        let full = (root as NSString).appendingPathComponent(path)
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: full, contents: Data(bytes)) else { throw HiddenError("cannot write \(full)") }
    }
    return root
}

/// A test card of w x h: a gradient in R and G, `blue` in B.
func testCard(_ w: Int, _ h: Int, blue: UInt8) -> [UInt8] {
    var p = [UInt8](repeating: blue, count: w * h * 3)
    for y in 0..<h { for x in 0..<w { p[(y * w + x) * 3] = UInt8(x * 255 / w); p[(y * w + x) * 3 + 1] = UInt8(y * 255 / h) } }
    return p
}

final class ImageFolderTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        let colour = try JPEGEncoder.encode(width: 40, height: 30, pixels: testCard(40, 30, blue: 200), format: .rgb)
        let tall = try JPEGEncoder.encode(width: 20, height: 64, pixels: testCard(20, 64, blue: 10), format: .rgb)
        let gray = try JPEGEncoder.encode(width: 25, height: 50, pixels: (0..<(25 * 50)).map { UInt8($0 % 256) }, format: .gray)
        let cmyk = try JPEGEncoder.encode(width: 33, height: 33, pixels: [UInt8](repeating: 180, count: 33 * 33 * 4), format: .cmyk)
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 7, count: 100)
        root = try makeImageFolder([
            "train/dog/b.JPEG": colour, "train/dog/a.jpg": gray, "train/dog/notes.txt": Array("x".utf8),
            "train/cat/c.JPEG": cmyk, "train/cat/d.jpeg": tall, "train/cat/png.JPEG": png,
            "train/cat/cut.JPEG": Array(colour.prefix(colour.count / 2)), "train/cat/.DS_Store": [0],
            "val/cat/v1.JPEG": colour, "val/dog/v2.JPEG": tall,
        ])
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    func testIndexSortsClassesAndFilesAndSkipsStrayFiles() throws {
        let index = try ImageFolderIndex.scan(root: root)
        XCTAssertEqual(index.classes, ["cat", "dog"], "sorted folder names, as torchvision numbers them")
        XCTAssertEqual(index.trainFiles, ["train/cat/c.JPEG", "train/cat/cut.JPEG", "train/cat/d.jpeg", "train/cat/png.JPEG",
                                          "train/dog/a.jpg", "train/dog/b.JPEG"])
        XCTAssertEqual(index.trainLabels, [0, 0, 0, 0, 1, 1])
        XCTAssertEqual(index.valFiles, ["val/cat/v1.JPEG", "val/dog/v2.JPEG"])
        XCTAssertEqual(index.skipped, 1, "notes.txt (hidden files are not counted)")
        XCTAssertEqual(try ImageFolderIndex(serialized: index.serialized()), index)
    }

    func testEmptyClassFolderAndMissingFoldersAreErrorsNamingThem() throws {
        try FileManager.default.createDirectory(atPath: root + "/train/emu", withIntermediateDirectories: true)
        XCTAssertThrowsError(try ImageFolderIndex.scan(root: root)) { error in
            XCTAssertTrue("\(error)".contains("train/emu"), "\(error)")
        }
        try FileManager.default.removeItem(atPath: root + "/train/emu")
        try FileManager.default.createDirectory(atPath: root + "/val/yak", withIntermediateDirectories: true)
        XCTAssertThrowsError(try ImageFolderIndex.scan(root: root)) { XCTAssertTrue("\($0)".contains("yak"), "\($0)") }
        XCTAssertThrowsError(try ImageFolderIndex.scan(root: root + "/nowhere")) { XCTAssertTrue("\($0)".contains("nowhere/train"), "\($0)") }
    }

    /// Every sample gathers to [3, 16, 16]; the PNG and the truncated file become the mean image
    /// (zeros); the same (seed, epoch) gives the same augmentation, another epoch another one.
    func testGatheredSamplesAreDeterministicAndBadFilesBecomeTheMeanImage() throws {
        let data = try loadDataset(.imagefolder, directory: root, imageSize: 16)
        XCTAssertEqual(data.shape, Shape([3, 16, 16]))
        XCTAssertEqual(data.classes, 2)
        XCTAssertEqual(data.train.count, 6); XCTAssertEqual(data.test.count, 2)
        let n = 3 * 16 * 16, all = ArraySlice((0..<6).map(Int32.init))
        func gather(epoch: Int, seed: UInt64) -> [Float] {
            let x = FloatBuffer(count: 6 * n)
            var y = [Int32](repeating: -1, count: 6)
            data.gatherTrain(all, epoch: epoch, seed: seed, x: x.pointer, y: &y)
            XCTAssertEqual(y, [0, 0, 0, 0, 1, 1])
            return x.array
        }
        let a = gather(epoch: 0, seed: 1)
        for bad in [1, 3] { XCTAssertTrue(a[(bad * n)..<((bad + 1) * n)].allSatisfy { $0 == 0 }, "sample \(bad) is the mean image") }
        for good in [0, 2, 4, 5] {
            let s = a[(good * n)..<((good + 1) * n)]
            XCTAssertTrue(s.allSatisfy(\.isFinite) && s.contains { $0 != 0 }, "sample \(good)")
        }
        XCTAssertEqual(gather(epoch: 0, seed: 1), a, "same seed and epoch, same samples")
        XCTAssertNotEqual(gather(epoch: 1, seed: 1), a, "another epoch, other crops")
        // CMYK (all channels 180 stored): R = G = B = 180 - muldiv255(75, 180) = 127, flat whatever the crop.
        let red = (127.0 / 255 - 0.485) / 0.229
        XCTAssertEqual(Double(a[0]), red, accuracy: 0.05)
        // Evaluation: the centre crop, no randomness.
        let x = FloatBuffer(count: 2 * n), y = FloatBuffer(count: 2 * n)
        var labels = [Int32](repeating: 0, count: 2)
        data.gatherTest(start: 0, count: 2, x: x.pointer, y: &labels)
        data.gatherTest(start: 0, count: 2, x: y.pointer, y: &labels)
        XCTAssertEqual(x.array, y.array)
        XCTAssertEqual(labels, [0, 1])
    }

    /// Background decoding gives the samples the training thread would have decoded, bit for bit.
    func testPrefetchedSamplesEqualSynchronousOnes() throws {
        let plain = try loadDataset(.imagefolder, directory: root, imageSize: 16)
        let threaded = try loadDataset(.imagefolder, directory: root, imageSize: 16)
        threaded.startDataThreads(3, capacity: 4)
        let n = 3 * 16 * 16, order: [Int32] = [5, 0, 4, 2, 1, 3]
        for epoch in 0..<3 {
            threaded.prefetchTrain(order[...], epoch: epoch, seed: 2)
            Thread.sleep(forTimeInterval: 0.05)
            let a = FloatBuffer(count: 6 * n), b = FloatBuffer(count: 6 * n)
            var y = [Int32](repeating: 0, count: 6)
            plain.gatherTrain(order[...], epoch: epoch, seed: 2, x: a.pointer, y: &y)
            threaded.gatherTrain(order[...], epoch: epoch, seed: 2, x: b.pointer, y: &y)
            XCTAssertEqual(a.array.map(\.bitPattern), b.array.map(\.bitPattern), "epoch \(epoch)")
        }
    }
}

final class ImageFolderIndexFormatTests: XCTestCase {
    /// The index rank 0 sends to the others: a good one round-trips; counts that are negative,
    /// larger than the lines, or would overflow when added, and labels outside the classes, are
    /// refused (the overflow trapped, a negative count made an invalid range).
    func testBadIndexesAreRefused() throws {
        let good = ImageFolderIndex(classes: ["cat", "dog"], trainFiles: ["a", "b"], trainLabels: [0, 1], valFiles: ["c"], valLabels: [1], skipped: 0)
        let back = try ImageFolderIndex(serialized: good.serialized())
        XCTAssertEqual(back.classes, good.classes)
        XCTAssertEqual(back.trainLabels, good.trainLabels)
        XCTAssertEqual(back.valFiles, good.valFiles)
        let head = "hidden-mpi image-folder index 1\n"
        for bad in ["9223372036854775807 9223372036854775807 2 0\ncat",
                    "-1 1 0 0\n0\tx",
                    "2 1 0 0\ncat\ndog\n2\ta",
                    "2 1 0 0\ncat\ndog\n-1\ta"] {
            XCTAssertThrowsError(try ImageFolderIndex(serialized: Array((head + bad).utf8)), bad)
        }
    }
}

