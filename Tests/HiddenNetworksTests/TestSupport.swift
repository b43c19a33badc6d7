// Shared helpers for the unit tests: a test-only random generator (independent of the library's
// Philox, so test data never depends on the code under test), tolerance checks, finite
// differences, the layer and whole-model gradient checks' common steps, temporary directories and
// HiddenError assertions.

import Foundation
import XCTest
@testable import HiddenNetworks

/// SplitMix64: the tests' own source of random data.
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &+ 0x1234_5678_9ABC_DEF0 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * Float(unit()) }
    mutating func int(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func normal() -> Float {
        let u = max(unit(), 1e-300), v = unit()
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in uniform(lo, hi) }
    }
}

func buffer(_ values: [Float]) -> FloatBuffer {
    let b = FloatBuffer(count: values.count)
    for (i, v) in values.enumerated() { b[i] = v }
    return b
}

/// |a - b| <= atol + rtol * max(|a|, |b|).
func isClose(_ a: Double, _ b: Double, rtol: Double, atol: Double) -> Bool {
    abs(a - b) <= atol + rtol * max(abs(a), abs(b))
}

func assertClose(_ a: Double, _ b: Double, rtol: Double = 1e-5, atol: Double = 1e-6, _ message: @autoclosure () -> String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssert(isClose(a, b, rtol: rtol, atol: atol), "\(a) vs \(b) (rtol \(rtol), atol \(atol)) \(message())", file: file, line: line)
}

func assertAllClose(_ a: [Float], _ b: [Float], rtol: Double = 1e-5, atol: Double = 1e-5, _ message: @autoclosure () -> String = "",
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "counts differ \(message())", file: file, line: line)
    var bad = 0
    for i in 0..<min(a.count, b.count) where !isClose(Double(a[i]), Double(b[i]), rtol: rtol, atol: atol) {
        if bad < 5 { XCTFail("[\(i)] \(a[i]) vs \(b[i]) \(message())", file: file, line: line) }
        bad += 1
    }
    if bad >= 5 { XCTFail("\(bad) of \(a.count) entries differ \(message())", file: file, line: line) }
}

/// Central difference of `loss` in the float at `p`, using the perturbation the float really took.
func centralDifference(at p: UnsafeMutablePointer<Float>, eps: Float, _ loss: () -> Double) -> Double {
    let orig = p.pointee
    p.pointee = orig + eps
    let hi = Double(p.pointee)
    let lPlus = loss()
    p.pointee = orig - eps
    let lo = Double(p.pointee)
    let lMinus = loss()
    p.pointee = orig
    return (lPlus - lMinus) / (hi - lo)
}

/// Checks one analytic derivative against central differences; a mismatch at `eps` is retried at
/// smaller steps (a ReLU kink or a pooling tie crossed by the step), and fails only if every step disagrees.
/// `scale` relates the two: analytic = scale * dL/dp (the straight-through factor sign(S) * W for scores).
/// With `allowKinks`, a point where L itself has a kink (left and right slopes that stay apart as the
/// step shrinks: a ReLU input exactly 0, as where every kept tap of a filter reads padding) is not
/// differentiable, so it is reported as a kink (returns false) instead of failing.
@discardableResult
func checkDerivative(analytic: Double, scale: Double = 1, at p: UnsafeMutablePointer<Float>, eps: Float, rtol: Double, atol: Double,
                     allowKinks: Bool = false, _ what: @autoclosure () -> String, file: StaticString = #filePath, line: UInt = #line,
                     _ loss: () -> Double) -> Bool {
    var tried: [Double] = []
    for step in [eps, eps / 3, eps / 9] {
        let fd = scale * centralDifference(at: p, eps: step, loss)
        if isClose(analytic, fd, rtol: rtol, atol: atol) { return true }
        tried.append(fd)
    }
    if allowKinks {
        let jumps = [eps / 9, eps / 27].map { h -> Double in
            let (left, right) = oneSidedDifferences(at: p, h: h, loss)
            return scale * (right - left)
        }
        // A kink's jump in slope stays as the step shrinks; curvature's shrinks with the step.
        if abs(jumps[1]) > atol && abs(jumps[1]) > 0.5 * abs(jumps[0]) { return false }
    }
    XCTFail("\(what()): analytic \(analytic), finite differences \(tried)", file: file, line: line)
    return true
}

/// (L(p) - L(p - h)) / h and (L(p + h) - L(p)) / h, with the steps the float really took.
func oneSidedDifferences(at p: UnsafeMutablePointer<Float>, h: Float, _ loss: () -> Double) -> (Double, Double) {
    let orig = p.pointee
    let l0 = loss()
    p.pointee = orig - h
    let lo = Double(p.pointee), lMinus = loss()
    p.pointee = orig + h
    let hi = Double(p.pointee), lPlus = loss()
    p.pointee = orig
    return ((l0 - lMinus) / (Double(orig) - lo), (lPlus - l0) / (hi - Double(orig)))
}

/// L = sum(y * r) in double: dL/dy = r.
func dotLoss(_ y: UnsafePointer<Float>, _ r: [Float]) -> Double {
    var s = 0.0
    for i in 0..<r.count { s += Double(y[i]) * Double(r[i]) }
    return s
}

/// dL/dS = sign(S) * W * dL/dW_eff: the straight-through rule of edge-popup (REFERENCE.md), pruned edges included.
func straightThroughFactor(score s: Float, weight w: Float) -> Double {
    Double(s > 0 ? 1 : (s < 0 ? -1 : 0)) * Double(w)
}

/// The edges of `m` a sampled check looks at: `perKind` random kept and as many random pruned ones,
/// then the two of largest |gradient|, so that the check is never about zeros only.
func sampledEdges(_ m: MaskedWeights, perKind: Int, largestOf gradient: (Int) -> Float, rng: inout TestRNG) -> [Int] {
    let kept = (0..<m.count).filter { m.mask[$0] == 1 }.shuffled(using: &rng).prefix(perKind)
    let pruned = (0..<m.count).filter { m.mask[$0] == 0 }.shuffled(using: &rng).prefix(perKind)
    let largest = (0..<m.count).sorted { abs(gradient($0)) > abs(gradient($1)) }.prefix(2)
    return Array(kept) + Array(pruned) + Array(largest)
}

/// A layer's backward pass against central differences of L = sum(y * r) for a fixed random r
/// (so dL/dy = r): the checks LayerGradientTests and ResNetLayerGradientTests share.
struct LayerGradientCheck {
    var eps: Float = 1e-2, rtol = 1e-2, atol = 1e-3

    func forwardOutput(_ layer: Layer, _ x: FloatBuffer, batch: Int) -> [Float] {
        let y = FloatBuffer(count: batch * layer.outputShape.count)
        layer.forward(x.pointer, y.pointer, batch: batch)
        return y.array
    }

    func forwardLoss(_ layer: Layer, _ x: FloatBuffer, batch: Int, _ r: [Float]) -> Double {
        let y = FloatBuffer(count: batch * layer.outputShape.count)
        layer.forward(x.pointer, y.pointer, batch: batch)
        return dotLoss(y.pointer, r)
    }

    /// Runs forward then backward with dy = r; returns dL/dx (every entry must be written), all NaN
    /// without `inputGradient` (backward gets no dx, as a first layer does).
    @discardableResult
    func backward(_ layer: Layer, _ x: FloatBuffer, batch: Int, _ r: [Float], inputGradient: Bool = true) -> [Float] {
        let y = FloatBuffer(count: batch * layer.outputShape.count)
        layer.forward(x.pointer, y.pointer, batch: batch)
        let dy = buffer(r)
        let dx = FloatBuffer(count: x.count)
        for i in 0..<dx.count { dx[i] = .nan }
        layer.backward(x.pointer, y.pointer, dy.pointer, inputGradient ? dx.pointer : nil, batch: batch)
        withExtendedLifetime((y, dy)) {}
        return dx.array
    }

    func checkInputGradient(_ layer: Layer, _ x: FloatBuffer, batch: Int, _ r: [Float], _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        let dx = backward(layer, x, batch: batch, r)
        for i in 0..<x.count {
            checkDerivative(analytic: Double(dx[i]), at: x.pointer + i, eps: eps, rtol: rtol, atol: atol,
                            "\(what) dL/dx[\(i)]", file: file, line: line) { forwardLoss(layer, x, batch: batch, r) }
        }
        XCTAssert(dx.contains { abs($0) > 10 * Float(atol) }, "\(what): dL/dx is all but zero, the check is vacuous", file: file, line: line)
    }

    /// dL/dW_eff by differences on `effective`; dL/dS = sign(S) * W * that, for every edge.
    func checkWeightGradients(_ layer: Layer, _ m: MaskedWeights, _ arena: ScoreArena, _ x: FloatBuffer, batch: Int,
                              _ r: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        backward(layer, x, batch: batch, r)
        let effectiveGrad = m.effectiveGrad.array, scoreGrad = arena.grads.array
        var prunedNonZero = 0
        for j in 0..<m.count {
            let loss = { forwardLoss(layer, x, batch: batch, r) }
            checkDerivative(analytic: Double(effectiveGrad[j]), at: m.effective.pointer + j, eps: eps, rtol: rtol, atol: atol,
                            "\(what) dL/dW_eff[\(j)]", file: file, line: line, loss)
            let factor = straightThroughFactor(score: arena.scores[j], weight: m.weights[j])
            checkDerivative(analytic: Double(scoreGrad[j]), scale: factor, at: m.effective.pointer + j, eps: eps, rtol: rtol, atol: atol,
                            "\(what) dL/dS[\(j)] (mask \(m.mask[j]))", file: file, line: line, loss)
            if m.mask[j] == 0 && abs(scoreGrad[j]) > Float(10 * atol) { prunedNonZero += 1 }
        }
        XCTAssert(effectiveGrad.contains { abs($0) > 10 * Float(atol) }, "\(what): dL/dW_eff is all but zero", file: file, line: line)
        if m.kept < m.count {
            XCTAssertGreaterThan(prunedNonZero, 0, "\(what): pruned edges got no score gradient (straight-through)", file: file, line: line)
        }
        // Backward overwrites the gradients (poisoned here: every entry must be rewritten); it does
        // not add to the last step's. With dx and without (a first layer) alike.
        for inputGradient in [true, false] {
            let again = inputGradient ? "a second backward" : "a second backward (no dx)"
            poison(m, arena)
            backward(layer, x, batch: batch, r, inputGradient: inputGradient)
            XCTAssertEqual(arena.grads.array, scoreGrad, "\(what): \(again) changed dL/dS", file: file, line: line)
            XCTAssertEqual(m.effectiveGrad.array, effectiveGrad, "\(what): \(again) changed dL/dW_eff", file: file, line: line)
        }
    }

    /// Fills a layer's gradients with a value no backward pass computes.
    func poison(_ m: MaskedWeights, _ arena: ScoreArena) {
        m.effectiveGrad.pointer.update(repeating: 12345, count: m.count)
        arena.grads.pointer.update(repeating: 12345, count: m.count)
    }
}

/// A test model after one forward pass on random normal inputs and random labels, with dL/dlogits
/// of the summed softmax cross-entropy in `logitGrad`: where both whole-model gradient checks start.
struct ModelForwardPass {
    let model: Model
    let labels: [Int32]
    /// Model.forward's logits, for comparison with a test's own layer-by-layer run.
    let logits: [Float]
    let logitGrad: FloatBuffer
    /// The generator that drew the data, left to sample edges with (so they too follow the seed).
    var rng: TestRNG

    init(_ config: ModelConfig, batch: Int, seed: UInt64, training: Bool = false, smoothing: Double = 0) throws {
        let model = try Model(config, maxBatch: batch)
        model.training = training
        var rng = TestRNG(seed)
        for i in 0..<(batch * config.inputShape.count) { model.input[i] = rng.normal() }
        let labels = (0..<batch).map { _ in Int32(rng.int(config.classes)) }
        let classes = config.classes

        model.updateMasks()
        let logits = model.forward(batch: batch)
        let logitGrad = FloatBuffer(count: batch * classes)
        _ = softmaxCrossEntropy(logits: logits, labels: labels, batch: batch, classes: classes,
                                smoothing: smoothing, grad: logitGrad.pointer)
        self.logits = Array(UnsafeBufferPointer(start: logits, count: batch * classes))
        (self.model, self.labels, self.logitGrad, self.rng) = (model, labels, logitGrad, rng)
    }
}

/// Scores and score gradients a single test layer binds to (the layer keeps raw pointers, so these
/// must outlive it).
final class ScoreArena {
    let scores: FloatBuffer
    let grads: FloatBuffer
    init(_ values: [Float]) { scores = buffer(values); grads = FloatBuffer(count: values.count) }
}

/// Fills a masked layer's frozen weights and scores with test data, binds and masks it.
@discardableResult
func prepare(_ m: MaskedWeights, rng: inout TestRNG, weightScale: Float = 1) -> ScoreArena {
    for i in 0..<m.count { m.weights[i] = rng.uniform(-weightScale, weightScale) }
    let arena = ScoreArena(rng.floats(m.count))
    m.bind(scores: arena.scores.pointer, scoreGrad: arena.grads.pointer)
    m.updateMask()
    return arena
}

/// A fresh directory under the system's temporary directory, removed when released.
final class TemporaryDirectory {
    let path: String
    init() throws {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("hidden-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }
}

/// Gzips `bytes` with the gzip command line tool.
func gzipped(_ bytes: [UInt8]) throws -> [UInt8] {
    let dir = try TemporaryDirectory()
    let plain = try dir.write("plain", bytes)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["gzip", "-n", "-9", plain]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw HiddenError("gzip failed with status \(process.terminationStatus)") }
    return [UInt8](try Data(contentsOf: URL(fileURLWithPath: plain + ".gz")))
}

/// Asserts that `body` throws a HiddenError whose message (with its hint) contains every phrase.
func assertThrowsHiddenError<T>(_ body: @autoclosure () throws -> T, containing phrases: [String], hintContaining hintPhrases: [String] = [],
                                _ what: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a HiddenError containing \(phrases) \(what())", file: file, line: line)
    } catch let error as HiddenError {
        for phrase in phrases where !error.message.contains(phrase) {
            XCTFail("error message \"\(error.message)\" lacks \"\(phrase)\" \(what())", file: file, line: line)
        }
        for phrase in hintPhrases where !(error.hint ?? "").contains(phrase) {
            XCTFail("error hint \"\(error.hint ?? "nil")\" lacks \"\(phrase)\" \(what())", file: file, line: line)
        }
    } catch {
        XCTFail("expected a HiddenError, got \(type(of: error)): \(error) \(what())", file: file, line: line)
    }
}

/// The HiddenError `body` throws, or nil when it returns (other errors fail the test).
func thrownHiddenError<T>(_ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> HiddenError? {
    do {
        _ = try body()
        return nil
    } catch let error as HiddenError {
        return error
    } catch {
        XCTFail("expected a HiddenError, got \(type(of: error)): \(error)", file: file, line: line)
        return nil
    }
}
