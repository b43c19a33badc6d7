// Softmax cross-entropy with optional label smoothing: the summed loss against a direct formula,
// the correct count against argmax, the top-5 count against a hand-made table with ties, and
// dL/dlogits against central differences; epochs report top-5 only above 10 classes.

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
            // Top-5 against a direct rank count (random logits have no ties).
            let top5 = (0..<batch).filter { b in
                let row = z.array[(b * classes)..<((b + 1) * classes)]
                return row.sorted(by: >).firstIndex(of: row[b * classes + Int(labels[b])])! < 5
            }.count
            XCTAssertEqual(result.top5Correct, top5, what)
            XCTAssertGreaterThanOrEqual(result.top5Correct, result.correct, what)
            if classes <= 5 { XCTAssertEqual(result.top5Correct, batch, "\(what): 5 or fewer classes, all top-5") }
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

    /// Top-5 counts a sample when fewer than 5 classes have a strictly larger logit than its label:
    /// ties with the label go the sample's way. Top-1 stays the first index of the largest logit.
    func testTopFiveHandMadeTableWithTies() {
        // (logits of 7 classes, label, top-1 correct, top-5 correct, what)
        let table: [([Float], Int32, Bool, Bool, String)] = [
            ([0, 1, 2, 9, 3, 4, 5], 3, true, true, "label is the unique largest"),
            ([6, 5, 4, 3, 2, 1, 0], 4, false, true, "label 5th largest, 4 strictly above"),
            ([6, 5, 4, 3, 2, 1, 0], 5, false, false, "label 6th largest, 5 strictly above"),
            ([6, 5, 4, 3, 1, 1, 0], 5, false, true, "label tied with the 5th largest: 4 above"),
            ([9, 8, 7, 6, 2, 2, 2], 6, false, true, "label tied with ranks 5 to 7: 4 above"),
            ([5, 5, 5, 5, 5, 1, 1], 6, false, false, "5 above, the label tied with one below them"),
            ([5, 5, 5, 5, 5, 5, 1], 6, false, false, "6 above, all tied among themselves"),
            ([5, 5, 5, 5, 5, 5, 5], 3, false, true, "all equal: nothing strictly above; top-1 takes index 0"),
            ([5, 5, 5, 5, 5, 5, 5], 0, true, true, "all equal, label 0: top-1 too"),
            ([2, 7, 7, 0, 0, 0, 0], 2, false, true, "tied at the top, not the first index"),
            ([-1, -2, -3, -4, -5, -6, -7], 4, false, true, "negative logits, 4 above"),
        ]
        for (logits, label, top1, top5, what) in table {
            let r = evaluate(buffer(logits), [label], classes: 7, smoothing: 0)
            XCTAssertEqual(r.correct, top1 ? 1 : 0, "top-1: \(what)")
            XCTAssertEqual(r.top5Correct, top5 ? 1 : 0, "top-5: \(what)")
        }
        // All rows as one batch: the counts add up.
        let batch = evaluate(buffer(table.flatMap(\.0)), table.map(\.1), classes: 7, smoothing: 0.1)
        XCTAssertEqual(batch.correct, table.filter(\.2).count)
        XCTAssertEqual(batch.top5Correct, table.filter(\.3).count)
        // 5 classes or fewer: every sample is top-5 correct, whatever its logits.
        XCTAssertEqual(evaluate(buffer([9, 8, 7, 6, 5, 0, 0, 0, 0, 1]), [4, 0], classes: 5, smoothing: 0).top5Correct, 2)
    }

    /// Epochs carry test_top5 (in EpochMetrics and its JSON) only with more than 10 classes; it is
    /// what evaluateTop5() gives and never below top-1.
    func testEpochsReportTopFiveAboveTenClasses() throws {
        for classes in [10, 12] {
            let spec = SyntheticSpec(shape: Shape([16]), classes: classes, trainCount: 96, testCount: 80)
            let data = try loadDataset(.synthetic, directory: nil, synthetic: spec, seed: 3)
            var c = TrainConfig(model: ModelConfig(architecture: .fc, width: 0.2, k: 0.5, weightInit: .signedConstant,
                                                   seed: 3, inputShape: spec.shape, classes: classes))
            c.globalBatch = 32
            let trainer = try Trainer(config: c, data: data, comm: SingleProcessCommunicator())
            var epochs: [EpochMetrics] = []
            trainer.run(onEpoch: { epochs.append($0) })
            XCTAssertEqual(epochs.count, 1)
            let e = try XCTUnwrap(epochs.first)
            let json = String(decoding: try JSONEncoder().encode(e), as: UTF8.self)
            let direct = trainer.evaluateTop5()
            XCTAssertEqual(direct.accuracy, e.test_acc)
            if classes <= 10 {
                XCTAssertNil(e.test_top5, "\(classes) classes")
                XCTAssertFalse(json.contains("top5"), json)
            } else {
                let top5 = try XCTUnwrap(e.test_top5, "\(classes) classes")
                XCTAssertEqual(top5, direct.top5)
                XCTAssertGreaterThanOrEqual(top5, e.test_acc)
                XCTAssertLessThanOrEqual(top5, 1)
                XCTAssertGreaterThan(top5, 0)
                // Counts of 80 test samples.
                XCTAssertEqual((top5 * 80).rounded(), top5 * 80, accuracy: 1e-9)
                XCTAssert(json.contains("\"test_top5\""), json)
            }
        }
    }
}
