// Top-k selection against a plain sort: the kept count of REFERENCE.md, and the mask of the
// `kept` largest |s| with ties broken by lower index.

import XCTest
@testable import HiddenNetworks

final class TopKTests: XCTestCase {
    /// The reference: sort indices by |s| descending, ties by lower index, keep the first `kept`.
    func referenceMask(_ s: [Float], kept: Int) -> [Float] {
        let order = s.indices.sorted { a, b in
            let (x, y) = (abs(s[a]), abs(s[b]))
            return x != y ? x > y : a < b
        }
        var mask = [Float](repeating: 0, count: s.count)
        for i in order.prefix(kept) { mask[i] = 1 }
        return mask
    }

    func topK(_ s: [Float], kept: Int) -> [Float] {
        let scores = buffer(s)
        let mask = FloatBuffer(count: s.count)
        for i in 0..<s.count { mask[i] = 7 }  // every entry must be written
        let scratch = UnsafeMutablePointer<UInt32>.allocate(capacity: topKScratchCount(s.count))
        defer { scratch.deallocate() }
        topKMask(scores: scores.pointer, count: s.count, kept: kept, mask: mask.pointer, scratch: scratch)
        withExtendedLifetime(scores) {}
        return mask.array
    }

    func check(_ s: [Float], kept: Int, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let got = topK(s, kept: kept)
        XCTAssert(got.allSatisfy { $0 == 0 || $0 == 1 }, "\(what): mask not 0/1", file: file, line: line)
        XCTAssertEqual(Int(got.reduce(0, +)), kept, "\(what): ones", file: file, line: line)
        let want = referenceMask(s, kept: kept)
        if got != want {
            let diff = s.indices.filter { got[$0] != want[$0] }.prefix(6).map { "[\($0)] s=\(s[$0]) got \(got[$0])" }
            XCTFail("\(what) n=\(s.count) kept=\(kept): mask differs from the sort reference at \(diff)", file: file, line: line)
        }
        // The fused selection MaskedWeights.updateMask runs: the same mask, and W_eff = W * mask.
        let (mask, effective, weights) = fused(s, kept: kept)
        XCTAssertEqual(mask, want, "\(what) n=\(s.count) kept=\(kept): applyTopKMask differs from the sort reference", file: file, line: line)
        XCTAssertEqual(effective, (0..<s.count).map { weights[$0] * want[$0] }, "\(what): W_eff is not W * mask", file: file, line: line)
    }

    func fused(_ s: [Float], kept: Int) -> (mask: [Float], effective: [Float], weights: [Float]) {
        let weights = (0..<s.count).map { Float($0 % 7) - 2.5 }
        let scores = buffer(s), w = buffer(weights)
        let mask = FloatBuffer(count: s.count), effective = FloatBuffer(count: s.count)
        for i in 0..<s.count { mask[i] = 7; effective[i] = 7 }
        let scratch = UnsafeMutablePointer<UInt32>.allocate(capacity: topKScratchCount(s.count))
        defer { scratch.deallocate() }
        applyTopKMask(scores: scores.pointer, weights: w.pointer, count: s.count, kept: kept,
                      mask: mask.pointer, effective: effective.pointer, scratch: scratch)
        withExtendedLifetime((scores, w)) {}
        return (mask.array, effective.array, weights)
    }

    func testKeptCount() {
        XCTAssertEqual(keptCount(n: 1728, k: 0.3), 519)  // REFERENCE.md's example
        for n in [0, 1, 2, 7, 100, 1728, 4096, 65_536, 123_457] {
            XCTAssertEqual(keptCount(n: n, k: 1), n)
            XCTAssertEqual(keptCount(n: n, k: 0), 0)
            for k in [0.01, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 0.99] {
                let want = n - Int((1 - k) * Double(n))
                XCTAssertEqual(keptCount(n: n, k: k), want, "n \(n) k \(k)")
                XCTAssert((0...n).contains(keptCount(n: n, k: k)))
            }
        }
    }

    func testRandomScoresMatchSort() {
        var rng = TestRNG(1)
        for n in [1, 2, 3, 10, 64, 257, 1000, 4099] {
            let s = rng.floats(n)
            for kept in Set([0, 1, n / 3, n / 2, n - 1, n].filter { $0 >= 0 && $0 <= n }).sorted() {
                check(s, kept: kept, "uniform")
            }
        }
    }

    func testWideMagnitudesMatchSort() {
        // Exponents from 1e-30 to 1e30 spread the values over every radix bucket; subnormals too.
        var rng = TestRNG(2)
        let s: [Float] = (0..<2000).map { i in
            let e = rng.uniform(-30, 30)
            let v = powf(10, e) * (rng.unit() < 0.5 ? -1 : 1)
            return i % 97 == 0 ? Float.leastNonzeroMagnitude * Float(i + 1) : v
        }
        for kept in [1, 5, 500, 1000, 1999] { check(s, kept: kept, "wide magnitudes") }
    }

    func testManyTiesMatchSort() {
        var rng = TestRNG(3)
        let magnitudes: [Float] = [0.25, 0.5, 0.75]
        let threeValues: [Float] = (0..<300).map { _ in magnitudes[rng.int(3)] * (rng.unit() < 0.5 ? -1 : 1) }
        for kept in [1, 50, 99, 100, 101, 150, 200, 299] { check(threeValues, kept: kept, "three magnitudes") }
        // +x / -x pairs: equal magnitudes of opposite sign.
        var pairs: [Float] = []
        for _ in 0..<40 { let x = rng.uniform(0, 1); pairs += [x, -x] }
        for kept in [1, 2, 3, 39, 40, 41, 79] { check(pairs, kept: kept, "+x/-x pairs") }
        // Values equal in their top 21 bits but not below: separated only in the radix's later passes.
        let base = Float(1.5).bitPattern
        let close: [Float] = (0..<200).map { _ in Float(bitPattern: base | UInt32(rng.int(1 << 20))) * (rng.unit() < 0.5 ? -1 : 1) }
        for kept in [1, 17, 100, 199] { check(close, kept: kept, "close values") }
    }

    func testAllEqualAndZeros() {
        for n in [1, 5, 64, 1000] {
            for kept in Set([0, 1, n / 2, n]).sorted() {
                check([Float](repeating: 0.5, count: n), kept: kept, "all equal")
                check([Float](repeating: -0.5, count: n), kept: kept, "all equal negative")
                check([Float](repeating: 0, count: n), kept: kept, "all zero")
                check((0..<n).map { $0 % 2 == 0 ? Float(0) : -Float(0) }, kept: kept, "zeros and negative zeros")
            }
        }
        // A negative zero ranks with zero, below every non-zero magnitude.
        let tiny = Float(bitPattern: 0x0001_16C2)  // a subnormal, about 1e-40
        let s: [Float] = [-0.0, tiny, 0.0, -tiny, -0.0, 3]
        for kept in 0...s.count { check(s, kept: kept, "negative zeros and subnormals") }
        XCTAssertEqual(topK([-0.0, 0.0, 0.1], kept: 2), [1, 0, 1])
    }

    func testEdgeCounts() {
        check([0.3], kept: 0, "n = 1")
        check([-0.3], kept: 1, "n = 1")
        var rng = TestRNG(4)
        let s = rng.floats(50)
        check(s, kept: 1, "kept = 1")
        check(s, kept: 50, "kept = n")
        XCTAssertEqual(topK(s, kept: 1).firstIndex(of: 1), s.indices.max { abs(s[$0]) < abs(s[$1]) })
    }

    func testKthLargestMagnitude() {
        var rng = TestRNG(5)
        let s = rng.floats(300, -4, 4)
        let sorted = s.map { abs($0) }.sorted(by: >)
        let scratch = UnsafeMutablePointer<UInt32>.allocate(capacity: topKScratchCount(s.count))
        defer { scratch.deallocate() }
        let scores = buffer(s)
        for rank in [0, 1, 2, 150, 298, 299] {
            let bits = kthLargestMagnitude(scores: scores.pointer, count: s.count, rank: rank, scratch: scratch)
            XCTAssertEqual(Float(bitPattern: bits), sorted[rank], "rank \(rank)")
        }
        withExtendedLifetime(scores) {}
    }

    func testMaskedWeightsUpdateMaskAndEffective() {
        let m = MaskedWeights(count: 10, fanIn: 5, fanOut: 2, k: 0.3)
        XCTAssertEqual(m.kept, 3)
        for i in 0..<10 { m.weights[i] = Float(i + 1) }
        let arena = ScoreArena([0.1, -0.9, 0.2, 0.8, -0.05, 0.3, -0.7, 0.0, 0.6, -0.65])
        m.bind(scores: arena.scores.pointer, scoreGrad: arena.grads.pointer)
        m.updateMask()
        XCTAssertEqual(m.mask.array, [0, 1, 0, 1, 0, 0, 1, 0, 0, 0])
        XCTAssertEqual(m.effective.array, [0, 2, 0, 4, 0, 0, 7, 0, 0, 0])
        // The mask follows the scores at every update.
        arena.scores[0] = -5
        m.updateMask()
        XCTAssertEqual(m.mask.array, [1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(m.effective.array, [1, 2, 0, 4, 0, 0, 0, 0, 0, 0])
        withExtendedLifetime(arena) {}
    }
}
