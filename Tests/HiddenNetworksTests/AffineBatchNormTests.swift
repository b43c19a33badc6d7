// The dense baseline's affine batch norm (learned scale gamma and shift beta per channel, PyTorch's
// BatchNorm2d) and the layers a run trains densely inside an edge-popup model
// (--first-layer-dense / --last-layer-dense): central finite differences of L = sum(y * r) for
// dL/dx, dL/dgamma and dL/dbeta in training mode, and the forward pass in both modes against a
// naive double-precision computation.

import XCTest
@testable import HiddenNetworks

final class AffineBatchNormTests: XCTestCase {
    /// (C, H, W, batch)
    let shapes: [(Int, Int, Int, Int)] = [(3, 2, 2, 4), (2, 3, 1, 1), (4, 1, 1, 6)]

    func makeLayer(_ c: Int, _ h: Int, _ w: Int, rng: inout TestRNG) -> (BatchNorm2d, ScoreArena, BatchNormContext) {
        let context = BatchNormContext(affine: true)
        context.training = true
        let bn = BatchNorm2d(input: Shape([c, h, w]), context: context)
        let m = bn.affine!
        XCTAssertEqual(m.shape, [2, c])
        XCTAssertEqual(m.role, .normAffine)
        m.configure(method: .dense, layer: 0, seed: 0)
        // gamma around 1, beta around 0, neither trivial.
        let arena = ScoreArena((0..<c).map { _ in rng.uniform(0.5, 1.5) } + (0..<c).map { _ in rng.uniform(-0.5, 0.5) })
        m.bind(scores: arena.scores.pointer, scoreGrad: arena.grads.pointer)
        m.updateMask()
        return (bn, arena, context)
    }

    func testForwardMatchesNaiveInTrainingAndEvaluation() {
        var rng = TestRNG(21)
        for (c, h, w, batch) in shapes where batch * h * w > 1 {
            let (bn, arena, context) = makeLayer(c, h, w, rng: &rng)
            bn.reserve(batch: batch)
            let x = buffer(rng.floats(batch * c * h * w, -2, 3))
            let y = FloatBuffer(count: x.count)
            bn.forward(x.pointer, y.pointer, batch: batch)
            let plane = h * w, n = Double(batch * plane)
            for ch in 0..<c {
                var values: [Double] = []
                for b in 0..<batch { for i in 0..<plane { values.append(Double(x[(b * c + ch) * plane + i])) } }
                let mean = values.reduce(0, +) / n
                let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n
                let gamma = Double(arena.scores[ch]), beta = Double(arena.scores[c + ch])
                for b in 0..<batch {
                    for i in 0..<plane {
                        let at = (b * c + ch) * plane + i
                        let expected = gamma * (Double(x[at]) - mean) / (variance + 1e-5).squareRoot() + beta
                        assertClose(Double(y[at]), expected, rtol: 1e-4, atol: 1e-5, "training y[\(at)] C\(c) \(h)x\(w) batch \(batch)")
                    }
                }
                // The running statistics moved 10% of the way from (0, 1) to (mean, unbiased var).
                assertClose(Double(bn.running[ch]), 0.1 * mean, rtol: 1e-5, atol: 1e-6, "running mean")
                assertClose(Double(bn.running[c + ch]), 0.9 + 0.1 * variance * n / (n - 1), rtol: 1e-5, atol: 1e-6, "running var")
            }
            context.training = false
            bn.forward(x.pointer, y.pointer, batch: batch)
            for at in 0..<x.count {
                let ch = (at / plane) % c
                let gamma = Double(arena.scores[ch]), beta = Double(arena.scores[c + ch])
                let expected = gamma * (Double(x[at]) - Double(bn.running[ch])) / (Double(bn.running[c + ch]) + 1e-5).squareRoot() + beta
                assertClose(Double(y[at]), expected, rtol: 1e-4, atol: 1e-5, "evaluation y[\(at)]")
            }
        }
    }

    func testGradientsAgainstFiniteDifferences() {
        var rng = TestRNG(22)
        for (c, h, w, batch) in shapes where batch * h * w > 1 {
            let what = "affine bn C\(c) \(h)x\(w) batch \(batch)"
            let (bn, arena, _) = makeLayer(c, h, w, rng: &rng)
            bn.reserve(batch: batch)
            let x = buffer(rng.floats(batch * c * h * w, -2, 3))
            let r = rng.floats(x.count)
            let y = FloatBuffer(count: x.count), dy = buffer(r), dx = FloatBuffer(count: x.count)
            func loss() -> Double { bn.forward(x.pointer, y.pointer, batch: batch); return dotLoss(y.pointer, r) }
            _ = loss()
            bn.backward(x.pointer, y.pointer, dy.pointer, dx.pointer, batch: batch)
            let dxs = dx.array, dparams = arena.grads.array
            XCTAssertEqual(bn.affine!.effectiveGrad.array, dparams, "\(what): dense layers train dL/dW_eff itself")
            for i in 0..<x.count {
                checkDerivative(analytic: Double(dxs[i]), at: x.pointer + i, eps: 1e-2, rtol: 1e-2, atol: 1e-3,
                                "\(what) dL/dx[\(i)]", loss)
            }
            for j in 0..<(2 * c) {
                checkDerivative(analytic: Double(dparams[j]), at: bn.affine!.effective.pointer + j, eps: 1e-2, rtol: 1e-2, atol: 1e-3,
                                "\(what) dL/d\(j < c ? "gamma" : "beta")[\(j % c)]", loss)
            }
            XCTAssert(dparams.contains { abs($0) > 1e-2 }, "\(what): parameter gradients all but zero")
        }
    }

    /// A dense model's batch norms are affine and start at gamma 1, beta 0; an edge-popup model's
    /// are not; --first-layer-dense / --last-layer-dense train exactly those two layers densely.
    func testModelsPickTheirBatchNormAndLayerMethods() throws {
        let input = Shape([3, 8, 8])
        let dense = try Model(ModelConfig(architecture: .cifarResNet18, width: 0.125, inputShape: input, method: .dense), maxBatch: 2)
        let affine = dense.masked.filter { $0.role == .normAffine }
        XCTAssertEqual(affine.count, dense.batchNorms.count)
        for m in affine {
            XCTAssertEqual(m.method, .dense)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: m.scores, count: m.count / 2)), [Float](repeating: 1, count: m.count / 2))
            XCTAssertEqual(Array(UnsafeBufferPointer(start: m.scores + m.count / 2, count: m.count / 2)), [Float](repeating: 0, count: m.count / 2))
        }
        let popup = try Model(ModelConfig(architecture: .cifarResNet18, width: 0.125, inputShape: input), maxBatch: 2)
        XCTAssertTrue(popup.masked.allSatisfy { $0.role == .weights && $0.method == .edgePopup })
        XCTAssertEqual(popup.parameterCount + affine.reduce(0) { $0 + $1.count }, dense.parameterCount)
        let ends = try Model(ModelConfig(architecture: .cifarResNet18, width: 0.125, inputShape: input,
                                         firstLayerDense: true, lastLayerDense: true), maxBatch: 2)
        XCTAssertEqual(ends.masked.map(\.method), [.dense] + [TrainingMethod](repeating: .edgePopup, count: ends.masked.count - 2) + [.dense])
        XCTAssertEqual(ends.masked.first!.kept, ends.masked.first!.count)
        XCTAssertLessThan(ends.masked[1].kept, ends.masked[1].count)
        // The dense first layer starts from the same init its edge-popup twin chooses edges of.
        XCTAssertEqual(Array(UnsafeBufferPointer(start: ends.masked[0].scores, count: ends.masked[0].count)), ends.masked[0].weights.array)
        XCTAssertEqual(ends.weightChecksum(), popup.weightChecksum())
    }
}
