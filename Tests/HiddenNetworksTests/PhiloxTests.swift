// Philox4x32-10 against Random123's published known-answer vectors (kat_vectors,
// "philox4x32 10 ..."), and the addressing promises of RandomStream (DESIGN.md invariant 1).

import XCTest
@testable import HiddenNetworks

final class PhiloxTests: XCTestCase {
    typealias Words = (UInt32, UInt32, UInt32, UInt32)

    func testKnownAnswerVectors() {
        // (counter, key, expected) from Random123 kat_vectors.
        let table: [(counter: [UInt32], key: [UInt32], expected: [UInt32])] = [
            ([0, 0, 0, 0], [0, 0],
             [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]),
            ([0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff], [0xffff_ffff, 0xffff_ffff],
             [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]),
            ([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], [0xa409_3822, 0x299f_31d0],
             [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]),
        ]
        for row in table {
            let c = row.counter, k = row.key
            let out = Philox4x32.block((c[0], c[1], c[2], c[3]), key: (k[0], k[1]))
            XCTAssertEqual([out.0, out.1, out.2, out.3], row.expected,
                           "counter \(c.map { String($0, radix: 16) }) key \(k.map { String($0, radix: 16) })")
        }
    }

    func testStreamWordsAreTheBlockOfTheirAddress() {
        // counter (index low, index high, sub, purpose), key = the 64-bit seed, low word first.
        let stream = RandomStream(seed: 0x0123_4567_89AB_CDEF, purpose: .scores, sub: 7)
        let index: UInt64 = 0x0000_0005_0000_0009
        let w = stream.words(index)
        let b = Philox4x32.block((9, 5, 7, StreamPurpose.scores.rawValue), key: (0x89AB_CDEF, 0x0123_4567))
        XCTAssertEqual([w.0, w.1, w.2, w.3], [b.0, b.1, b.2, b.3])
    }

    func testSameIndexSameValue() {
        let a = RandomStream(seed: 42, purpose: .weights, sub: 3)
        let b = RandomStream(seed: 42, purpose: .weights, sub: 3)
        for i: UInt64 in [0, 1, 2, 1000, 1 << 33, UInt64.max] {
            let (x, y) = (a.words(i), b.words(i))
            XCTAssertEqual([x.0, x.1, x.2, x.3], [y.0, y.1, y.2, y.3], "index \(i)")
            XCTAssertEqual(a.uniform(i), a.uniform(i))
            XCTAssertEqual(a.normal(i), b.normal(i))
            XCTAssertEqual(a.below(17, i), b.below(17, i))
        }
    }

    func testOrderOfGenerationDoesNotMatter() {
        let stream = RandomStream(seed: 9, purpose: .weights, sub: 1)
        let n = 257
        let forward = (0..<n).map { stream.normal(UInt64($0)) }
        var backward = [Double](repeating: 0, count: n)
        for i in (0..<n).reversed() { backward[i] = stream.normal(UInt64(i)) }
        var rng = TestRNG(1)
        var shuffled = [Double](repeating: 0, count: n)
        for i in (0..<n).shuffled(using: &rng) { shuffled[i] = stream.normal(UInt64(i)) }
        XCTAssertEqual(forward, backward)
        XCTAssertEqual(forward, shuffled)
    }

    func testSeedsPurposesAndSubStreamsAreDistinct() {
        let streams = [
            RandomStream(seed: 1, purpose: .weights, sub: 0),
            RandomStream(seed: 2, purpose: .weights, sub: 0),
            RandomStream(seed: 1, purpose: .scores, sub: 0),
            RandomStream(seed: 1, purpose: .weights, sub: 1),
            RandomStream(seed: 1 << 32, purpose: .weights, sub: 0),
        ]
        let firstWords = streams.map { s in (0..<8).map { s.words(UInt64($0)).0 } }
        for i in 0..<streams.count {
            for j in (i + 1)..<streams.count {
                XCTAssertNotEqual(firstWords[i], firstWords[j], "streams \(i) and \(j) coincide")
            }
        }
    }

    func testUniformNormalAndBelowDistributions() {
        let stream = RandomStream(seed: 5, purpose: .sampling)
        let n = 50_000
        var sum = 0.0, sumSq = 0.0, nsum = 0.0, nsumSq = 0.0
        var counts = [Int](repeating: 0, count: 7)
        for i in 0..<n {
            let u = stream.uniform(UInt64(i))
            XCTAssert(u > 0 && u < 1)
            sum += u; sumSq += u * u
            let z = stream.normal(UInt64(i))
            XCTAssert(z.isFinite)
            nsum += z; nsumSq += z * z
            let b = stream.below(7, UInt64(i))
            XCTAssert(b < 7)
            counts[Int(b)] += 1
        }
        let mean = sum / Double(n), variance = sumSq / Double(n) - mean * mean
        XCTAssertEqual(mean, 0.5, accuracy: 0.01)
        XCTAssertEqual(variance, 1.0 / 12, accuracy: 0.003)
        let nmean = nsum / Double(n), nvar = nsumSq / Double(n) - nmean * nmean
        XCTAssertEqual(nmean, 0, accuracy: 0.02)
        XCTAssertEqual(nvar, 1, accuracy: 0.03)
        for c in counts { XCTAssertEqual(Double(c) / Double(n), 1.0 / 7, accuracy: 0.01, "below(7) histogram \(counts)") }
        // The extremes of one word stay inside the open interval.
        XCTAssert(RandomStream.unit(0) > 0)
        XCTAssert(RandomStream.unit(.max) < 1)
    }
}

extension TestRNG: RandomNumberGenerator {}
