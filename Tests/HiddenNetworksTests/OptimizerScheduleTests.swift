// SGD against a hand-written loop with PyTorch's semantics (torch.optim.SGD, dampening 0):
//   d = g + wd * p;  buf = m * buf + d (buf = d on the first step);  d = nesterov ? d + m * buf : buf;  p -= lr * d
// and the learning-rate schedules of REFERENCE.md.

import Foundation
import XCTest
@testable import HiddenNetworks

final class OptimizerScheduleTests: XCTestCase {
    func testSGDMatchesPyTorchLoop() {
        // (lr, momentum, weight decay, nesterov, grad scale)
        let table: [(Double, Double, Double, Bool, Float)] = [
            (0.1, 0.9, 1e-4, false, 1),
            (0.1, 0.9, 1e-4, true, 1),
            (0.05, 0.0, 0, false, 0.25),
            (0.2, 0.875, 5e-4, true, 1.0 / 3),
            (0.3, 0.5, 0.01, false, 0.5),
        ]
        var rng = TestRNG(40)
        let n = 37, steps = 5
        for (lr, m, wd, nesterov, scale) in table {
            let what = "lr \(lr) momentum \(m) wd \(wd) nesterov \(nesterov)"
            let sgd = SGD(config: SGDConfig(lr: lr, momentum: m, weightDecay: wd, nesterov: nesterov), count: n)
            let params = buffer(rng.floats(n))
            var p = params.array.map(Double.init)
            var buf: [Double]? = nil
            for step in 0..<steps {
                let g = rng.floats(n, -3, 3)
                let stepLR = lr * (1 - 0.1 * Double(step))  // the rate may change between steps
                sgd.step(params: params.pointer, grads: g, count: n, lr: stepLR, gradScale: scale)
                // PyTorch's loop, in double.
                var d = (0..<n).map { Double(g[$0]) * Double(scale) + wd * p[$0] }
                if m != 0 {
                    if let old = buf {
                        buf = (0..<n).map { m * old[$0] + d[$0] }
                    } else {
                        buf = d
                    }
                    d = nesterov ? (0..<n).map { d[$0] + m * buf![$0] } : buf!
                }
                p = (0..<n).map { p[$0] - stepLR * d[$0] }
                assertAllClose(params.array, p.map(Float.init), rtol: 1e-5, atol: 1e-6, "\(what) step \(step)")
            }
            if let buf { assertAllClose(sgd.momentum.array, buf.map(Float.init), rtol: 1e-5, atol: 1e-6, "\(what) momentum buffer") }
        }
    }

    func testSGDTouchesOnlyCount() {
        let sgd = SGD(config: SGDConfig(), count: 4)
        let params = buffer([1, 1, 1, 1])
        sgd.step(params: params.pointer, grads: [1, 1, 1, 1], count: 2, lr: 0.1, gradScale: 1)
        XCTAssertNotEqual(params[0], 1)
        XCTAssertEqual(params[2], 1)
        XCTAssertEqual(params[3], 1)
    }

    func testCosineSchedule() {
        for (lr, epochs) in [(0.1, 100), (0.256, 7), (1.0, 1)] {
            let s = LearningRateSchedule(kind: .cosine, baseLR: lr, epochs: epochs)
            XCTAssertEqual(s.lr(epoch: 0), lr, "e = 0 gives the base rate")
            for e in 0..<epochs {
                XCTAssertEqual(s.lr(epoch: e), 0.5 * (1 + cos(Double.pi * Double(e) / Double(epochs))) * lr, accuracy: 1e-12 * lr, "epoch \(e) of \(epochs)")
                if e > 0 { XCTAssertLessThan(s.lr(epoch: e), s.lr(epoch: e - 1)) }
                XCTAssertGreaterThan(s.lr(epoch: e), 0)
            }
        }
        XCTAssertEqual(LearningRateSchedule(kind: .cosine, baseLR: 0.1, epochs: 100).lr(epoch: 50), 0.05, accuracy: 1e-15)
    }

    func testWarmupThenCosine() {
        let (lr, epochs, warmup) = (0.256, 20, 5)
        let s = LearningRateSchedule(kind: .cosine, baseLR: lr, epochs: epochs, warmup: warmup)
        for e in 0..<warmup {
            XCTAssertEqual(s.lr(epoch: e), lr * Double(e + 1) / Double(warmup), accuracy: 1e-15, "warm-up epoch \(e)")
        }
        for e in warmup..<epochs {
            let t = Double(e - warmup) / Double(epochs - warmup)
            XCTAssertEqual(s.lr(epoch: e), 0.5 * (1 + cos(Double.pi * t)) * lr, accuracy: 1e-15, "epoch \(e)")
        }
        XCTAssertEqual(s.lr(epoch: warmup), lr)
        XCTAssertEqual(s.lr(epoch: warmup - 1), lr)
    }

    func testConstantSchedule() {
        let s = LearningRateSchedule(kind: .constant, baseLR: 0.01, epochs: 10)
        for e in 0..<10 { XCTAssertEqual(s.lr(epoch: e), 0.01) }
        let w = LearningRateSchedule(kind: .constant, baseLR: 0.01, epochs: 10, warmup: 2)
        XCTAssertEqual((0..<4).map { w.lr(epoch: $0) }, [0.005, 0.01, 0.01, 0.01])
    }

    func testTrainConfigBuildsItsSchedule() {
        var config = TrainConfig(model: ModelConfig(architecture: .fc, inputShape: Shape([4])))
        config.sgd.lr = 0.3; config.epochs = 9; config.warmup = 2; config.schedule = .cosine
        XCTAssertEqual(config.lrSchedule, LearningRateSchedule(kind: .cosine, baseLR: 0.3, epochs: 9, warmup: 2))
    }
}
