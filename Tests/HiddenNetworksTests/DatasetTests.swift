// The in-memory data set: the synthetic set is a pure function of its seed; the training
// augmentation (random crop with padding 4, horizontal flip) is a pure function of
// (seed, epoch, sample index) (DESIGN.md invariant 2); test batches are copied as they are.
// CIFAR-100 goes through the same augmentation as CIFAR-10, padded with its own statistics.

import XCTest
@testable import HiddenNetworks

final class DatasetTests: XCTestCase {
    func testSyntheticIsDeterministicPerSeed() throws {
        let spec = SyntheticSpec(shape: Shape([2, 3, 3]), classes: 4, trainCount: 64, testCount: 16)
        let a = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)
        let b = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 1)
        let c = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 2)
        XCTAssertEqual(a.train.images, b.train.images)
        XCTAssertEqual(a.train.labels, b.train.labels)
        XCTAssertEqual(a.test.images, b.test.images)
        XCTAssertNotEqual(a.train.images, c.train.images)
        XCTAssertNotEqual(a.train.images.prefix(18), a.test.images.prefix(18), "train and test splits differ")
        XCTAssertEqual(a.shape, spec.shape)
        XCTAssertEqual(a.classes, 4)
        XCTAssertEqual(a.train.count, 64)
        XCTAssertEqual(a.test.count, 16)
        XCTAssertEqual(a.train.images.count, 64 * 18)
        XCTAssert(a.train.labels.allSatisfy { (0..<4).contains($0) })
        XCTAssertGreaterThan(Set(a.train.labels).count, 1, "labels are not all one class")
        XCTAssertFalse(a.augment)
    }

    /// A small augmented set with distinct pixels, so any move of a pixel shows.
    func augmentedSet(c: Int = 3, h: Int = 8, w: Int = 8, count: Int = 12) -> Dataset {
        var rng = TestRNG(60)
        let images = rng.floats(count * c * h * w, 0.1, 1)
        let labels = (0..<count).map { Int32($0 % 10) }
        let split = Split(images: images, labels: labels)
        return Dataset(name: "toy", shape: Shape([c, h, w]), classes: 10, train: split, test: split, augment: true,
                       padValue: (0..<c).map { -Float($0 + 1) })
    }

    func gather(_ data: Dataset, _ indices: [Int32], epoch: Int, seed: UInt64) -> (x: [Float], y: [Int32]) {
        let n = data.shape.count
        let x = FloatBuffer(count: indices.count * n)
        var y = [Int32](repeating: -1, count: indices.count)
        y.withUnsafeMutableBufferPointer { yb in
            data.gatherTrain(indices[...], epoch: epoch, seed: seed, x: x.pointer, y: yb.baseAddress!)
        }
        return (x.array, y)
    }

    /// Direct crop-then-flip: out[c, y, x] = padded[c, y + 4 + dy, x' + 4 + dx] with x' = mirrored x.
    func reference(_ src: ArraySlice<Float>, c: Int, h: Int, w: Int, dx: Int, dy: Int, flip: Bool, pad: [Float]) -> [Float] {
        let base = src.startIndex
        var out: [Float] = []
        for ch in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    let sx = (flip ? w - 1 - x : x) + dx, sy = y + dy
                    out.append(sx >= 0 && sx < w && sy >= 0 && sy < h ? src[base + (ch * h + sy) * w + sx] : pad[ch])
                }
            }
        }
        return out
    }

    func testCropAndFlipAgainstDirectIndexing() {
        let data = augmentedSet()
        let n = data.shape.count
        let image = Array(data.train.images[0..<n])
        let out = FloatBuffer(count: n)
        // Zero shift and no flip reproduce the image.
        data.cropAndFlip(data.train, 0, out.pointer, dx: 0, dy: 0, flip: false)
        XCTAssertEqual(out.array, image)
        for (dx, dy, flip) in [(0, 0, true), (4, -4, false), (-3, 2, true), (-4, 4, true), (1, 0, false)] {
            data.cropAndFlip(data.train, 0, out.pointer, dx: dx, dy: dy, flip: flip)
            XCTAssertEqual(out.array, reference(image[...], c: 3, h: 8, w: 8, dx: dx, dy: dy, flip: flip, pad: data.padValue),
                           "dx \(dx) dy \(dy) flip \(flip)")
        }
    }

    func testAugmentationIsAFunctionOfSeedEpochAndIndex() {
        let data = augmentedSet()
        let n = data.shape.count
        let all = Array(0..<Int32(12))
        let first = gather(data, all, epoch: 3, seed: 9)
        XCTAssertEqual(first.y, all.map { $0 % 10 })
        XCTAssertEqual(first.x, gather(data, all, epoch: 3, seed: 9).x, "same (seed, epoch), same batch")
        // A sample's augmentation does not depend on its position in the batch or its neighbours.
        let picked: [Int32] = [7, 2, 11]
        let alone = gather(data, picked, epoch: 3, seed: 9)
        for (j, i) in picked.enumerated() {
            XCTAssertEqual(Array(alone.x[(j * n)..<((j + 1) * n)]), Array(first.x[(Int(i) * n)..<((Int(i) + 1) * n)]), "sample \(i)")
        }
        XCTAssertNotEqual(first.x, gather(data, all, epoch: 4, seed: 9).x, "another epoch, another augmentation")
        XCTAssertNotEqual(first.x, gather(data, all, epoch: 3, seed: 10).x, "another seed, another augmentation")
        // Every output is some crop/flip of its own image: check against all 162 candidates.
        for i in 0..<12 {
            let src = data.train.images[(i * n)..<((i + 1) * n)]
            let got = Array(first.x[(i * n)..<((i + 1) * n)])
            var matched = false
            for dx in -4...4 { for dy in -4...4 { for flip in [false, true] where !matched {
                matched = got == reference(src, c: 3, h: 8, w: 8, dx: dx, dy: dy, flip: flip, pad: data.padValue)
            } } }
            XCTAssert(matched, "sample \(i) is not a crop/flip of its image")
        }
        // Over many epochs the shifts and flips vary (the padding value shows up, the image moves).
        var unchanged = 0
        for epoch in 0..<20 where gather(data, [0], epoch: epoch, seed: 9).x == Array(data.train.images[0..<n]) { unchanged += 1 }
        XCTAssertLessThan(unchanged, 5)
    }

    func testNoAugmentationCopiesAndTestGather() throws {
        let spec = SyntheticSpec(shape: Shape([1, 2, 3]), classes: 3, trainCount: 10, testCount: 7)
        let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 4)
        let n = 6
        let got = gather(data, [4, 0, 9], epoch: 1, seed: 4)
        XCTAssertEqual(got.x, Array(data.train.images[24..<30] + data.train.images[0..<6] + data.train.images[54..<60]))
        XCTAssertEqual(got.y, [data.train.labels[4], data.train.labels[0], data.train.labels[9]])
        let x = FloatBuffer(count: 3 * n)
        var y = [Int32](repeating: -1, count: 3)
        y.withUnsafeMutableBufferPointer { data.gatherTest(start: 4, count: 3, x: x.pointer, y: $0.baseAddress!) }
        XCTAssertEqual(x.array, Array(data.test.images[24..<42]))
        XCTAssertEqual(y, Array(data.test.labels[4..<7]))
    }

    /// A small CIFAR-100 set read from files: its training samples get the same crop-and-flip as
    /// CIFAR-10 (the shared Dataset code), padded with CIFAR-100's normalised zero; test samples
    /// are copied as they are.
    func testCIFAR100IsAugmentedLikeCIFAR10() throws {
        let dir = try TemporaryDirectory()
        var rng = TestRNG(61)
        let count = 6
        let records = (0..<count).map { i in [UInt8(i % 20), UInt8(90 + i)] + (0..<3072).map { _ in UInt8(rng.int(256)) } }
        try dir.write("train.bin", records.flatMap { $0 })
        try dir.write("test.bin", records[0] + records[1])
        var layout = CIFARLayout.cifar100
        layout.records = ["train.bin": count, "test.bin": 2]
        let data = try loadCIFAR(layout, directory: dir.path)
        XCTAssert(data.augment)
        let mean: [Float] = [0.5071, 0.4865, 0.4409], std: [Float] = [0.2673, 0.2564, 0.2762]
        for c in 0..<3 { XCTAssertEqual(data.padValue[c], -mean[c] / std[c], accuracy: 1e-6) }
        let n = data.shape.count
        let all = Array(0..<Int32(count))
        let got = gather(data, all, epoch: 2, seed: 5)
        XCTAssertEqual(got.y, (0..<count).map { Int32(90 + $0) })
        XCTAssertEqual(got.x, gather(data, all, epoch: 2, seed: 5).x, "same (seed, epoch), same batch")
        var moved = 0
        for i in 0..<count {
            let src = data.train.images[(i * n)..<((i + 1) * n)]
            let out = Array(got.x[(i * n)..<((i + 1) * n)])
            if out != Array(src) { moved += 1 }
            var matched = false
            for dx in -4...4 { for dy in -4...4 { for flip in [false, true] where !matched {
                matched = out == reference(src, c: 3, h: 32, w: 32, dx: dx, dy: dy, flip: flip, pad: data.padValue)
            } } }
            XCTAssert(matched, "sample \(i) is not a crop/flip of its image")
        }
        XCTAssertGreaterThan(moved, 0, "some sample was shifted or flipped")
        // Exactly what gatherTrain does for any augmented set: the crop and flip of (seed, epoch, index).
        for i in 0..<count {
            let w = RandomStream(seed: 5, purpose: .augmentation, sub: 2).words(UInt64(i))
            let src = data.train.images[(i * n)..<((i + 1) * n)]
            XCTAssertEqual(Array(got.x[(i * n)..<((i + 1) * n)]),
                           reference(src, c: 3, h: 32, w: 32, dx: Int(w.0 % 9) - 4, dy: Int(w.1 % 9) - 4, flip: w.2 & 1 == 1, pad: data.padValue),
                           "sample \(i)")
        }
        let x = FloatBuffer(count: 2 * n)
        var y = [Int32](repeating: -1, count: 2)
        y.withUnsafeMutableBufferPointer { data.gatherTest(start: 0, count: 2, x: x.pointer, y: $0.baseAddress!) }
        XCTAssertEqual(x.array, Array(data.test.images))
        XCTAssertEqual(y, [90, 91])
    }

    /// Byte images (IDX, CIFAR) stay bytes, a quarter of the floats' memory, and come out of a
    /// gather with exactly the bits the readers' formula gave when they stored floats.
    func testByteSplitsGatherTheNormalisedFloatsBitForBit() {
        let mean: [Float] = [0.491, 0.482, 0.447], std: [Float] = [0.247, 0.243, 0.262]
        var rng = TestRNG(4)
        let count = 5, plane = 6, n = 3 * plane
        let bytes = (0..<(count * n)).map { _ in UInt8(rng.int(256)) }
        let split = Split(bytes: bytes, table: byteTable(channels: 3) { v, c in (v / 255 - mean[c]) / std[c] }, plane: plane,
                          labels: [Int32](repeating: 0, count: count))
        XCTAssertEqual(split.storageBytes, count * n)
        let expected = bytes.indices.map { i in (Float(bytes[i]) / 255 - mean[(i / plane) % 3]) / std[(i / plane) % 3] }
        XCTAssertEqual(split.images.map(\.bitPattern), expected.map(\.bitPattern))
        let out = FloatBuffer(count: n)
        for i in 0..<count {
            split.copy(i, n: n, to: out.pointer)
            XCTAssertEqual(out.array.map(\.bitPattern), expected[(i * n)..<((i + 1) * n)].map(\.bitPattern), "sample \(i)")
        }
    }
}
