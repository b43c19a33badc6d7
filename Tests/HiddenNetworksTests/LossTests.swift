// Softmax cross-entropy with optional label smoothing: the summed loss against a direct formula,
// the correct count against argmax, and dL/dlogits against central differences.

import XCTest
@testable import HiddenNetworks

final class LossTests: XCTestCase {
    /// -sum_j t_j log softmax(z)_j, t = (1 - eps) one-hot + eps / classes, summed over the batch.
    func directLoss(_ z: [Float], _ labels: [Int32], classes: Int, smoothing: Double) -> Double {
        var total = 0.0
        for b in 0..<labels.count {
            let row = z[(b * classes)..<((b + 1) * classes)].map(Double.init)
            let m = row.max()!
            let logZ = m + log(row.reduce(0.0) { $0 + exp($1 - m) })
            for j in 0..<classes {
                let t = (j == Int(labels[b]) ? 1 - smoothing : 0) + smoothing / Double(classes)
                total -= t * (row[j] - logZ)
            }
        }
        return total
    }

    func evaluate(_ z: FloatBuffer, _ labels: [Int32], classes: Int, smoothing: Double, grad: FloatBuffer? = nil) -> LossResult {
        softmaxCrossEntropy(logits: z.pointer, labels: labels, batch: labels.count, classes: classes,
                            smoothing: smoothing, grad: grad?.pointer)
    }

    func testValueCorrectCountAndGradient() {
        var rng = TestRNG(30)
        // (batch, classes, smoothing, logit scale)
        let table: [(Int, Int, Double, Float)] = [
            (4, 10, 0, 2), (4, 10, 0.1, 2), (3, 2, 0, 1), (5, 3, 0.3, 4), (1, 7, 0.05, 0.5), (2, 10, 0, 30),
        ]
        for (batch, classes, smoothing, scale) in table {
            let what = "batch \(batch) classes \(classes) smoothing \(smoothing)"
            let z = buffer(rng.floats(batch * classes, -scale, scale))
            let labels = (0..<batch).map { _ in Int32(rng.int(classes)) }
            let grad = FloatBuffer(count: batch * classes)
            let result = evaluate(z, labels, classes: classes, smoothing: smoothing, grad: grad)
            assertClose(result.lossSum, directLoss(z.array, labels, classes: classes, smoothing: smoothing), rtol: 1e-6, atol: 1e-6, what)
            let argmaxCorrect = (0..<batch).filter { b in
                let row = z.array[(b * classes)..<((b + 1) * classes)]
                return row.firstIndex(of: row.max()!)! - b * classes == Int(labels[b])
            }.count
            XCTAssertEqual(result.correct, argmaxCorrect, what)
            // Each row of softmax - target sums to zero.
            for b in 0..<batch {
                XCTAssertEqual((0..<classes).reduce(0.0) { $0 + Double(grad[b * classes + $1]) }, 0, accuracy: 1e-5, what)
            }
            for i in 0..<z.count {
                checkDerivative(analytic: Double(grad[i]), at: z.pointer + i, eps: 1e-2, rtol: 1e-2, atol: 2e-4, "\(what) dL/dz[\(i)]") {
                    self.evaluate(z, labels, classes: classes, smoothing: smoothing).lossSum
                }
            }
        }
    }

    func testLargeLogitsStayFinite() {
        let z = buffer([1000, -1000, 0, 999])
        let grad = FloatBuffer(count: 4)
        let r = evaluate(z, [3], classes: 4, smoothing: 0, grad: grad)
        XCTAssertEqual(r.lossSum, 1 + log1p(exp(-1) + exp(-1000) + exp(-2000)), accuracy: 1e-6)
        XCTAssert(grad.array.allSatisfy { $0.isFinite })
        XCTAssertEqual(r.correct, 0)
    }

    func testKnownValues() {
        // Equal logits: the loss is log(classes) per sample whatever the smoothing.
        for smoothing in [0, 0.1, 0.5] {
            let r = evaluate(buffer([Float](repeating: 0.7, count: 8)), [1, 3], classes: 4, smoothing: smoothing)
            XCTAssertEqual(r.lossSum, 2 * log(4.0), accuracy: 1e-9)
        }
        // Smoothing moves the target: gradient of a confident correct row is softmax - target.
        let grad = FloatBuffer(count: 2)
        _ = evaluate(buffer([0, 0]), [0], classes: 2, smoothing: 0.2, grad: grad)
        XCTAssertEqual(grad[0], 0.5 - 0.9, accuracy: 1e-6)
        XCTAssertEqual(grad[1], 0.5 - 0.1, accuracy: 1e-6)
    }
}
