// The exact reduction's arithmetic (ExactReduction.swift): fixed-point accumulation against a
// scalar reference, its range checks, ExactSum's independence of order and grouping, chunk
// shards, and a model run chunk by chunk against the same model run as one batch.

import XCTest
@testable import HiddenNetworks
import CKernels

final class ExactReductionArithmeticTests: XCTestCase {
    /// Every value is round-half-even(x * scale * 2^40), including the scalar tail (count 37).
    func testFixedPointMatchesScalarRounding() {
        var rng = TestRNG(1)
        let n = 37
        let a = (0..<n).map { i in Float(rng.uniform(-1, 1)) * Float(pow(10.0, Double(i % 9) - 6)) }
        let b = rng.floats(n, -3, 3)
        let scale = 1.0 / 96
        var acc = [Int64](repeating: 99, count: n)
        XCTAssertTrue(FixedPoint.accumulate(a, into: &acc, count: n, scale: scale, first: true))
        XCTAssertTrue(FixedPoint.accumulate(b, into: &acc, count: n, scale: scale, first: false))
        for i in 0..<n {
            let expected = Int64((Double(a[i]) * scale * 0x1p40).rounded(.toNearestOrEven))
                + Int64((Double(b[i]) * scale * 0x1p40).rounded(.toNearestOrEven))
            XCTAssertEqual(acc[i], expected, "element \(i)")
        }
        var back = [Float](repeating: 0, count: n)
        FixedPoint.decode(acc, into: &back, count: n)
        for i in 0..<n {
            let exact = (Double(a[i]) + Double(b[i])) * scale
            XCTAssertEqual(Double(back[i]), exact, accuracy: abs(exact) * 1e-7 + 0x1p-40, "element \(i) decoded")
        }
    }

    /// Values at or past 2^11 per chunk, infinities and NaN are flagged, in the vector body and in the tail.
    func testFixedPointFlagsValuesOutOfRange() {
        for bad in [Float(2048), -2049, .infinity, .nan] {
            for position in [3, 17] {  // inside the first 8-lane block, and in the 2-element tail of 18
                var x = [Float](repeating: 0.5, count: 18)
                x[position] = bad
                var acc = [Int64](repeating: 0, count: 18)
                XCTAssertFalse(FixedPoint.accumulate(x, into: &acc, count: 18, scale: 1, first: true), "\(bad) at \(position)")
            }
        }
        var x = [Float](repeating: 2047.9, count: 18), acc = [Int64](repeating: 0, count: 18)
        XCTAssertTrue(FixedPoint.accumulate(x, into: &acc, count: 18, scale: 1, first: true))
        x[0] = 1
        XCTAssertTrue(FixedPoint.accumulate(x, into: &acc, count: 18, scale: 1, first: false), "in range again")
    }

    /// Doubles over 20 orders of magnitude, both signs, summed in three groupings and orders (as
    /// one rank, as 3 ranks, shuffled as 7): the same limbs once normalised, so the same value.
    func testExactSumDoesNotDependOnOrderOrGrouping() {
        var rng = TestRNG(2)
        let values = (0..<500).map { _ in (rng.unit() - 0.5) * pow(10, Double(rng.int(21)) - 10) }
        func sum(_ groups: [[Double]]) -> (Double, [Int64]) {
            var total = [Int64](repeating: 0, count: ExactSum.limbs)
            for g in groups {
                var part = [Int64](repeating: 0, count: ExactSum.limbs)
                for v in g { ExactSum.add(v, to: &part) }
                for i in 0..<ExactSum.limbs { total[i] &+= part[i] }  // what MPI_SUM does
            }
            return (ExactSum.value(total), total)
        }
        let one = sum([values])
        let three = sum([Array(values[0..<100]), Array(values[100..<333]), Array(values[333...])])
        var shuffled = values
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) { shuffled.swapAt(i, rng.int(i + 1)) }
        let seven = sum((0..<7).map { r in Array(shuffled[(shuffled.count * r / 7)..<(shuffled.count * (r + 1) / 7)]) })
        XCTAssertEqual(one.0.bitPattern, three.0.bitPattern)
        XCTAssertEqual(one.0.bitPattern, seven.0.bitPattern)
        // And it is the sum: against a float sum in sorted order, which is good to ~1e-15 relative.
        let reference = values.sorted { abs($0) < abs($1) }.reduce(0, +)
        XCTAssertEqual(one.0, reference, accuracy: abs(reference) * 1e-12)
        // Known answer: the doubles nearest 0.1, 0.2 and -0.3 sum to exactly 2^-55, where float
        // arithmetic gives (0.1 + 0.2) - 0.3 = 2^-54.
        var p = [Int64](repeating: 0, count: ExactSum.limbs)
        ExactSum.add(0.1, to: &p); ExactSum.add(0.2, to: &p); ExactSum.add(-0.3, to: &p)
        XCTAssertEqual(ExactSum.value(p), 0x1p-55)
        XCTAssertEqual((0.1 + 0.2) - 0.3, 0x1p-54)
        p = [Int64](repeating: 0, count: ExactSum.limbs)
        ExactSum.add(-1e-30, to: &p)
        XCTAssertEqual(ExactSum.value(p), 0, "bits below 2^-64 are rounded off")
        ExactSum.add(-3.25e12, to: &p); ExactSum.add(1.5, to: &p)
        XCTAssertEqual(ExactSum.value(p), -3.25e12 + 1.5)
    }

    /// Negative sums are as accurate as positive ones (the limbs are negated before they are
    /// combined): to 1e-15 relative, or the 2^-64 per term that the limbs resolve.
    func testNegativeSumsAreAccurate() {
        for v in [-1e-3, -1e-7, -1e-10, -3.75, -123456.789, -0x1p-60] {
            var p = [Int64](repeating: 0, count: ExactSum.limbs)
            ExactSum.add(v, to: &p)
            XCTAssertEqual(ExactSum.value(p), v, accuracy: max(abs(v) * 1e-15, 0x1p-64), "\(v)")
            ExactSum.add(-2 * v, to: &p)
            XCTAssertEqual(ExactSum.value(p), -v, accuracy: max(abs(v) * 1e-15, 2 * 0x1p-64), "\(v) - 2 (\(v))")
        }
    }

    func testExactSumOfNonFiniteIsNaN() {
        var p = [Int64](repeating: 0, count: ExactSum.limbs)
        ExactSum.add(1, to: &p); ExactSum.add(.infinity, to: &p)
        XCTAssertTrue(ExactSum.value(p).isNaN)
        p = [Int64](repeating: 0, count: ExactSum.limbs)
        ExactSum.add(0x1p64, to: &p)
        XCTAssertTrue(ExactSum.value(p).isNaN, "out of range")
    }

    /// Ranks take whole chunks, in order, and together every sample once.
    func testChunkShardsCoverTheBatchInWholeChunks() {
        for (count, chunk) in [(128, 8), (40, 3), (96, 8), (5, 8), (13, 1)] {
            for size in 1...6 {
                var next = 0
                for rank in 0..<size {
                    let r = chunkShard(count: count, chunk: chunk, rank: rank, size: size)
                    XCTAssertEqual(r.lowerBound, next, "count \(count) chunk \(chunk) rank \(rank) of \(size)")
                    XCTAssertTrue(r.isEmpty || r.lowerBound % chunk == 0)
                    next = r.upperBound
                }
                XCTAssertEqual(next, count)
            }
        }
    }
}

final class ChunkedModelTests: XCTestCase {
    /// One training step's forward and backward of `model` (10 classes) on the batch x, with the
    /// mean loss's scale and the exact gradients finished: its logits and score gradients.
    static func step(_ model: Model, _ x: [Float], labels: [Int32], batch: Int) -> (logits: [Float], grads: [Float]) {
        model.input.pointer.update(from: x, count: x.count)
        model.updateMasks()
        model.training = true
        model.plan.gradientScale = 1 / Double(batch)
        let logits = model.forward(batch: batch)
        let grad = FloatBuffer(count: batch * 10)
        _ = softmaxCrossEntropy(logits: logits, labels: labels, batch: batch, classes: 10, smoothing: 0, grad: grad.pointer)
        model.backward(logitGrad: grad.pointer, batch: batch)
        for m in model.masked { m.finishExactGradient() }
        return (Array(UnsafeBufferPointer(start: logits, count: batch * 10)), model.scoreGrads.array)
    }

    /// cifar-resnet18 (width 0.125, batch norm with batch statistics) on a batch of 7, as one batch
    /// (the float path) and in chunks of 3 (3 + 3 + 1, the exact path): the same logits, running
    /// statistics and mean-loss score gradients up to float rounding.
    func testChunkedResNetMatchesUnchunked() throws {
        let config = ModelConfig(architecture: .cifarResNet18, width: 0.125, k: 0.5, weightInit: .signedConstant,
                                 seed: 21, inputShape: Shape([3, 8, 8]), classes: 10)
        let batch = 7
        let plain = try Model(config, maxBatch: batch)
        let chunked = try Model(config, maxBatch: 9, chunk: 3)
        XCTAssertTrue(chunked.plan.exact)
        var rng = TestRNG(3)
        let x = rng.floats(batch * config.inputShape.count)
        let labels: [Int32] = (0..<batch).map { Int32($0 % 10) }
        var results: [(logits: [Float], grads: [Float], running: [Float])] = []
        for model in [plain, chunked] {
            model.norm.communicator = SingleProcessCommunicator()
            let (logits, grads) = Self.step(model, x, labels: labels, batch: batch)
            results.append((logits, grads, model.runningStats.array))
        }
        assertAllClose(results[1].logits, results[0].logits, rtol: 1e-4, atol: 1e-5, "logits")
        assertAllClose(results[1].running, results[0].running, rtol: 1e-5, atol: 1e-6, "running statistics")
        // The float path leaves summed-loss gradients (the optimiser divides by the batch).
        assertAllClose(results[1].grads, results[0].grads.map { $0 / Float(batch) }, rtol: 1e-3, atol: 1e-6, "score gradients")
        XCTAssertFalse(chunked.plan.outOfRange)
        XCTAssertGreaterThan(results[1].grads.map(abs).max() ?? 0, 0)
    }
}

final class FixedPointKernelTests: XCTestCase {
    /// Several sources added in one call (tile by tile) give the integers of one call per source,
    /// across tile edges (2048) and vector tails, starting or adding; and the range verdict of any.
    func testManySourcesAddAsOneAfterAnother() {
        var rng = TestRNG(10)
        for n in [0, 5, 2048, 5000] {
            let sources = (0..<4).map { _ in buffer(rng.floats(n, -2, 2)) }
            let pointers: [UnsafePointer<Float>?] = sources.map { UnsafePointer($0.pointer) }
            for first in [1, 0] as [Int32] {
                var a = [Int64](repeating: 7, count: n), b = a
                for (k, x) in sources.enumerated() { XCTAssertEqual(hm_fixed_accumulate(x.pointer, &a, n, 0x1p40 / 3, k == 0 ? first : 0), 1) }
                XCTAssertEqual(hm_fixed_accumulate_many(pointers, 4, &b, n, 0x1p40 / 3, first), 1, "n \(n)")
                XCTAssertEqual(b, a, "n \(n), first \(first)")
            }
            withExtendedLifetime(sources) {}
        }
        var bad = [Float](repeating: 1, count: 3000)
        bad[2999] = .infinity
        let fine = [Float](repeating: 1, count: 3000)
        var acc = [Int64](repeating: 0, count: 3000)
        fine.withUnsafeBufferPointer { f in
            bad.withUnsafeBufferPointer { b in
                XCTAssertEqual(hm_fixed_accumulate_many([f.baseAddress, f.baseAddress], 2, &acc, 3000, 0x1p40, 1), 1)
                XCTAssertEqual(acc[2999], 2 << 40)
                XCTAssertEqual(hm_fixed_accumulate_many([f.baseAddress, b.baseAddress], 2, &acc, 3000, 0x1p40, 1), 0,
                               "the second source's last value is infinite")
            }
        }
    }

    /// The AVX2 loop (where the CPU has one) and the portable loop give the same integers and
    /// the same range verdict: ranks on machines with and without AVX2 still agree.
    func testVectorAndPortableLoopsAgree() {
        var rng = TestRNG(9)
        for n in [0, 1, 7, 8, 9, 64, 1000] {
            let x = (0..<n).map { i in rng.uniform(-1, 1) * Float(pow(2.0, Double(i % 30) - 20)) }
            var a = [Int64](repeating: 5, count: n), b = a
            let okA = hm_fixed_accumulate(x, &a, n, 0x1p40 / 3, 0)
            let okB = hm_fixed_accumulate_portable(x, &b, n, 0x1p40 / 3, 0)
            XCTAssertEqual(a, b, "n \(n)")
            XCTAssertEqual(okA, okB)
        }
        var y: [Float] = [1, 2, .nan, 4, 5, 6, 7, 8, 9]
        var a = [Int64](repeating: 0, count: 9), b = a
        XCTAssertEqual(hm_fixed_accumulate(y, &a, 9, 1, 1), 0)
        XCTAssertEqual(hm_fixed_accumulate_portable(y, &b, 9, 1, 1), 0)
        y[2] = 3
        XCTAssertEqual(hm_fixed_accumulate(y, &a, 9, 0x1p40, 1), 1)
        XCTAssertEqual(hm_fixed_accumulate(y, &a, 9, 0x1p48, 1), 0, "9 * 2^48 is past 2^51")
        // Decoding too, with sums past 2^51 (the vector loop's range) among them.
        var sums: [Int64] = (0..<67).map { i in Int64(bitPattern: rng.next()) >> (i % 3 == 0 ? 1 : 14) }
        sums[5] = Int64.min; sums[6] = Int64.max; sums[7] = 1 << 51; sums[8] = -(1 << 51)
        var u = [Float](repeating: 0, count: 67), w = u
        hm_fixed_decode(sums, &u, 67, 0x1p-40)
        hm_fixed_decode_portable(sums, &w, 67, 0x1p-40)
        XCTAssertEqual(u.map(\.bitPattern), w.map(\.bitPattern))
        XCTAssertEqual(w[7], 2048)
        print("hm_fixed_accumulate uses AVX2 here: \(hm_fixed_uses_avx2() != 0)")
    }
}
