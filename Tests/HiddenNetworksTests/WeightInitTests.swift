// The initialisations of REFERENCE.md (values, scales, statistics) and invariant 1: weight i of
// layer l is a pure function of (seed, l, i).

import XCTest
@testable import HiddenNetworks

final class WeightInitTests: XCTestCase {
    func fill(_ kind: WeightInit, count: Int, layer: Int = 0, seed: UInt64 = 1, fanIn: Int, fanOut: Int = 10,
              scaleFan: Bool = false, k: Double = 0.5) -> [Float] {
        let b = FloatBuffer(count: count)
        kind.fill(b.pointer, count: count, layer: layer, seed: seed, fanIn: fanIn, fanOut: fanOut, scaleFan: scaleFan, k: k)
        return b.array
    }

    func moments(_ v: [Float]) -> (mean: Double, std: Double) {
        let n = Double(v.count)
        let mean = v.reduce(0.0) { $0 + Double($1) } / n
        let variance = v.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        return (mean, variance.squareRoot())
    }

    func testConstantInitsAreExactlyPlusMinusSigma() {
        // (init, fan_in, fan_out, scaleFan, k, expected magnitude, signed)
        let table: [(WeightInit, Int, Int, Bool, Double, Double, Bool)] = [
            (.signedConstant, 27, 64, false, 0.5, 2.0.squareRoot() / 27.0.squareRoot(), true),
            (.signedConstant, 576, 64, false, 0.3, 2.0.squareRoot() / 576.0.squareRoot(), true),
            (.signedConstant, 576, 64, true, 0.3, 2.0.squareRoot() / (576.0 * 0.3).squareRoot(), true),
            (.signedConstant, 784, 300, true, 0.5, 2.0.squareRoot() / (784.0 * 0.5).squareRoot(), true),
            (.unsignedConstant, 100, 10, false, 0.5, 2.0.squareRoot() / 100.0.squareRoot(), false),
            (.unsignedConstant, 100, 10, true, 0.7, 2.0.squareRoot() / (100.0 * 0.7).squareRoot(), false),
            (.xavierConstant, 300, 100, false, 0.5, (2.0 / 400.0).squareRoot(), true),
            (.xavierConstant, 300, 100, true, 0.25, (2.0 / (400.0 * 0.25)).squareRoot(), true),
        ]
        for (kind, fanIn, fanOut, scaleFan, k, sigma, signed) in table {
            let label = "\(kind) fan \(fanIn)/\(fanOut) scaleFan \(scaleFan) k \(k)"
            let w = fill(kind, count: 4000, fanIn: fanIn, fanOut: fanOut, scaleFan: scaleFan, k: k)
            let s = Float(sigma)
            XCTAssert(w.allSatisfy { $0 == s || $0 == -s }, "\(label): values \(Set(w).prefix(4)), expected +-\(s)")
            let positive = w.filter { $0 > 0 }.count
            if signed {
                XCTAssertEqual(Double(positive) / Double(w.count), 0.5, accuracy: 0.04, "\(label): \(positive) positive")
            } else {
                XCTAssertEqual(positive, w.count, label)
            }
            XCTAssertEqual(kind.scale(fanIn: fanIn, fanOut: fanOut, scaleFan: scaleFan, k: k), sigma, accuracy: 1e-12 * sigma, label)
        }
    }

    func testKaimingNormalStatistics() {
        for (fanIn, scaleFan, k) in [(64, false, 0.5), (9, false, 0.5), (128, true, 0.3)] {
            let w = fill(.kaimingNormal, count: 100_000, fanIn: fanIn, scaleFan: scaleFan, k: k)
            let expected = (2.0 / (Double(fanIn) * (scaleFan ? k : 1))).squareRoot()
            let (mean, std) = moments(w)
            XCTAssertEqual(mean, 0, accuracy: 0.02 * expected, "fan \(fanIn)")
            XCTAssertEqual(std, expected, accuracy: 0.015 * expected, "fan \(fanIn) scaleFan \(scaleFan)")
            // A normal, not a constant or a uniform: about 68% within one std, some beyond three.
            let within = Double(w.filter { abs(Double($0)) < expected }.count) / Double(w.count)
            XCTAssertEqual(within, 0.6827, accuracy: 0.01)
            XCTAssert(w.contains { abs(Double($0)) > 3 * expected })
        }
    }

    func testKaimingUniformBoundAndVariance() {
        for (fanIn, scaleFan, k) in [(64, false, 0.5), (27, true, 0.5)] {
            let w = fill(.kaimingUniform, count: 100_000, fanIn: fanIn, scaleFan: scaleFan, k: k)
            let bound = 2.0.squareRoot() * (3.0 / (Double(fanIn) * (scaleFan ? k : 1))).squareRoot()
            XCTAssert(w.allSatisfy { abs(Double($0)) <= bound * (1 + 1e-6) }, "fan \(fanIn): outside +-\(bound)")
            let (mean, std) = moments(w)
            XCTAssertEqual(mean, 0, accuracy: 0.01 * bound)
            XCTAssertEqual(std, bound / 3.0.squareRoot(), accuracy: 0.01 * bound)
            XCTAssert(w.contains { abs(Double($0)) > 0.99 * bound }, "the bound is reached")
        }
    }

    func testXavierNormalStatistics() {
        let (fanIn, fanOut) = (300, 100)
        let w = fill(.xavierNormal, count: 100_000, fanIn: fanIn, fanOut: fanOut)
        let expected = (2.0 / Double(fanIn + fanOut)).squareRoot()
        let (mean, std) = moments(w)
        XCTAssertEqual(mean, 0, accuracy: 0.02 * expected)
        XCTAssertEqual(std, expected, accuracy: 0.015 * expected)
    }

    func testScoresWithinBoundAndUniform() {
        let fanIn = 75, n = 100_000
        let b = FloatBuffer(count: n)
        initScores(b.pointer, count: n, layer: 2, seed: 3, fanIn: fanIn)
        let bound = 1 / Double(fanIn).squareRoot()
        let s = b.array
        XCTAssert(s.allSatisfy { abs(Double($0)) <= bound }, "scores outside +-1/sqrt(fan_in)")
        var bins = [Int](repeating: 0, count: 10)
        for v in s { bins[min(9, Int((Double(v) + bound) / (2 * bound) * 10))] += 1 }
        for c in bins { XCTAssertEqual(Double(c), Double(n) / 10, accuracy: Double(n) / 10 * 0.05, "histogram \(bins)") }
        // Scores come from their own stream: not a rescaled copy of any weight init.
        let w = fill(.kaimingUniform, count: 1000, layer: 2, seed: 3, fanIn: fanIn)
        let ratio = (0..<1000).map { Double(s[$0]) / Double(w[$0]) }
        XCTAssertGreaterThan(Set(ratio.map { ($0 * 1e4).rounded() }).count, 10)
    }

    func testWeightDependsOnlyOnSeedLayerAndIndex() {
        for kind in WeightInit.allCases {
            let short = fill(kind, count: 10, layer: 3, seed: 11, fanIn: 50)
            let long = fill(kind, count: 1000, layer: 3, seed: 11, fanIn: 50)
            XCTAssertEqual(short, Array(long.prefix(10)), "\(kind): prefix of 10 vs 1000")
            XCTAssertEqual(long, fill(kind, count: 1000, layer: 3, seed: 11, fanIn: 50), "\(kind): refill")
            if kind == .unsignedConstant { continue }
            XCTAssertNotEqual(long, fill(kind, count: 1000, layer: 4, seed: 11, fanIn: 50), "\(kind): layers 3 and 4 agree")
            XCTAssertNotEqual(long, fill(kind, count: 1000, layer: 3, seed: 12, fanIn: 50), "\(kind): seeds 11 and 12 agree")
        }
        // No two of the first layers share a stream.
        for kind in [WeightInit.kaimingNormal, .signedConstant, .kaimingUniform] {
            let layers = (0..<8).map { fill(kind, count: 64, layer: $0, seed: 11, fanIn: 50) }
            for a in 0..<8 { for b in (a + 1)..<8 { XCTAssertNotEqual(layers[a], layers[b], "\(kind): layers \(a) and \(b) agree") } }
        }
        let s10 = FloatBuffer(count: 10), s1000 = FloatBuffer(count: 1000), other = FloatBuffer(count: 1000)
        initScores(s10.pointer, count: 10, layer: 1, seed: 5, fanIn: 20)
        initScores(s1000.pointer, count: 1000, layer: 1, seed: 5, fanIn: 20)
        XCTAssertEqual(s10.array, Array(s1000.array.prefix(10)))
        initScores(other.pointer, count: 1000, layer: 2, seed: 5, fanIn: 20)
        XCTAssertNotEqual(s1000.array, other.array)
        initScores(other.pointer, count: 1000, layer: 1, seed: 6, fanIn: 20)
        XCTAssertNotEqual(s1000.array, other.array)
    }

    func testModelLayersGetTheirOwnStreams() throws {
        // Two identical layers in a model must not share weights; the model's weights equal a
        // direct fill with the masked-layer index.
        let config = ModelConfig(architecture: .fc, width: 0.1, k: 0.5, weightInit: .kaimingNormal, seed: 21, inputShape: Shape([30]))
        let model = try Model(config, maxBatch: 1)
        for (l, m) in model.masked.enumerated() {
            let direct = fill(.kaimingNormal, count: m.count, layer: l, seed: 21, fanIn: m.fanIn, fanOut: m.fanOut)
            XCTAssertEqual(m.weights.array, direct, "layer \(l)")
            let scores = FloatBuffer(count: m.count)
            initScores(scores.pointer, count: m.count, layer: l, seed: 21, fanIn: m.fanIn)
            XCTAssertEqual(Array(model.scores.array[model.offsets[l]..<(model.offsets[l] + m.count)]), scores.array, "scores of layer \(l)")
        }
        for a in 0..<model.masked.count {
            for b in (a + 1)..<model.masked.count {
                XCTAssertNotEqual(Array(model.masked[a].weights.array.prefix(8)), Array(model.masked[b].weights.array.prefix(8)), "layers \(a) and \(b) share weights")
            }
        }
        let again = try Model(config, maxBatch: 4)
        XCTAssertEqual(model.weightChecksum(), again.weightChecksum())
        var other = config
        other.seed = 22
        XCTAssertNotEqual(model.weightChecksum(), try Model(other, maxBatch: 1).weightChecksum())
    }
}
