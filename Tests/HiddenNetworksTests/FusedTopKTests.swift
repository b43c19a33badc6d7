// The fused selection that MaskedWeights.updateMask runs (applyTopKMask: mask and W_eff in one
// pass) against the plain topKMask and W * mask, on random scores and on heavy ties.

import XCTest
@testable import HiddenNetworks

final class FusedTopKTests: XCTestCase {
    func check(_ s: [Float], kept: Int, _ what: String) {
        var rng = TestRNG(99)
        let n = s.count
        let w = buffer(rng.floats(n))
        let scores = buffer(s)
        let plain = FloatBuffer(count: n), mask = FloatBuffer(count: n), eff = FloatBuffer(count: n)
        for i in 0..<n { mask[i] = 7; eff[i] = 7 }
        let scratch = UnsafeMutablePointer<UInt32>.allocate(capacity: topKScratchCount(n))
        defer { scratch.deallocate() }
        topKMask(scores: scores.pointer, count: n, kept: kept, mask: plain.pointer, scratch: scratch)
        applyTopKMask(scores: scores.pointer, weights: w.pointer, count: n, kept: kept,
                      mask: mask.pointer, effective: eff.pointer, scratch: scratch)
        XCTAssertEqual(mask.array, plain.array, "\(what): fused mask differs from topKMask")
        XCTAssertEqual(eff.array, (0..<n).map { w[$0] * plain[$0] }, "\(what): W_eff is not W * mask")
    }

    func testRandomAndTiedScores() {
        var rng = TestRNG(5)
        for (n, k) in [(1, 1.0), (10, 0.3), (1728, 0.3), (5000, 0.5), (4097, 0.01), (300, 0.99)] {
            check(rng.floats(n), kept: keptCount(n: n, k: k), "uniform n=\(n) k=\(k)")
        }
        let magnitudes: [Float] = [0.25, 0.5, 0.75]
        let tied = (0..<2000).map { i -> Float in magnitudes[rng.int(3)] * (i % 2 == 0 ? 1 : -1) }
        for kept in [1, 333, 667, 1000, 1999, 2000] { check(tied, kept: kept, "three magnitudes kept=\(kept)") }
        check([Float](repeating: -0.5, count: 64), kept: 17, "all equal")
        check((0..<100).map { $0 % 2 == 0 ? 0.0 : -0.0 }, kept: 40, "signed zeros")
    }

    /// updateMask goes through the fused path: it keeps exactly `kept` and W_eff = W * mask.
    func testUpdateMaskUsesTheSameSelection() {
        var rng = TestRNG(11)
        let m = MaskedWeights(count: 1000, fanIn: 10, fanOut: 100, k: 0.37)
        let arena = prepare(m, rng: &rng)
        m.updateMask()
        XCTAssertEqual(Int(m.mask.array.reduce(0, +)), m.kept)
        XCTAssertEqual(m.effective.array, (0..<m.count).map { m.weights[$0] * m.mask[$0] })
        _ = arena
    }
}
