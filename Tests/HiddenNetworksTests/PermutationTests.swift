// The epoch permutation (DESIGN.md invariant 2): a permutation, a pure function of (seed, epoch),
// different across epochs and seeds, and uniform.

import XCTest
@testable import HiddenNetworks

final class PermutationTests: XCTestCase {
    func testIsAPermutation() {
        for count in [0, 1, 2, 3, 10, 1000, 60_000] {
            let p = epochPermutation(count: count, seed: 7, epoch: 3)
            XCTAssertEqual(p.count, count)
            XCTAssertEqual(p.sorted(), (0..<count).map(Int32.init), "count \(count)")
        }
    }

    func testPureFunctionOfSeedAndEpoch() {
        let n = 500
        let a = epochPermutation(count: n, seed: 1, epoch: 0)
        XCTAssertEqual(a, epochPermutation(count: n, seed: 1, epoch: 0))
        XCTAssertNotEqual(a, epochPermutation(count: n, seed: 1, epoch: 1))
        XCTAssertNotEqual(a, epochPermutation(count: n, seed: 2, epoch: 0))
        XCTAssertNotEqual(a, (0..<n).map(Int32.init), "not the identity")
        let epochs = (0..<20).map { epochPermutation(count: n, seed: 1, epoch: $0) }
        XCTAssertEqual(Set(epochs.map { $0.description }).count, 20, "twenty epochs, twenty orders")
    }

    func testUniformOverAllOrders() {
        // Every one of the 3! orders about equally often over many epochs (Fisher-Yates, not Sattolo).
        var counts: [[Int32]: Int] = [:]
        let epochs = 3000
        for e in 0..<epochs { counts[epochPermutation(count: 3, seed: 5, epoch: e), default: 0] += 1 }
        XCTAssertEqual(counts.count, 6, "\(counts)")
        for (order, c) in counts {
            XCTAssertEqual(Double(c), Double(epochs) / 6, accuracy: Double(epochs) / 6 * 0.15, "order \(order): \(c)")
        }
        // Each element lands in each position about equally often.
        let n = 8
        var position = [[Int]](repeating: [Int](repeating: 0, count: n), count: n)
        for e in 0..<2000 {
            for (pos, v) in epochPermutation(count: n, seed: 6, epoch: e).enumerated() { position[Int(v)][pos] += 1 }
        }
        for row in position { for c in row { XCTAssertEqual(Double(c), 2000.0 / 8, accuracy: 2000.0 / 8 * 0.25, "\(position)") } }
    }
}
