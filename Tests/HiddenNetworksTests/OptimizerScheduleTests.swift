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
            let sgd = Optimizer(config: OptimizerConfig(lr: lr, momentum: m, weightDecay: wd, nesterov: nesterov), count: n)
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
        let sgd = Optimizer(config: OptimizerConfig(), count: 4)
        let params = buffer([1, 1, 1, 1])
        sgd.step(params: params.pointer, grads: [1, 1, 1, 1], count: 2, lr: 0.1, gradScale: 1)
        XCTAssertNotEqual(params[0], 1)
        XCTAssertEqual(params[2], 1)
        XCTAssertEqual(params[3], 1)
    }

    /// Two Adam steps on one parameter, every value worked out by hand (PyTorch's formula):
    /// p = 1, lr 0.1, betas (0.9, 0.999), eps 1e-8, no weight decay; gradients 0.5 then -1.
    ///   t = 1: m = 0.05, v = 0.00025; m / (1 - 0.9) = 0.5, v / (1 - 0.999) = 0.25, so
    ///          p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.9 (to 2e-8).
    ///   t = 2: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975;
    ///          m / 0.19 = -0.2894737, v / 0.001999 = 0.6251876, sqrt = 0.7906881, so
    ///          p = 0.9 + 0.1 * 0.2894737 / 0.7906881 = 0.9366103.
    /// With weight decay 0.1 the first gradient becomes 0.5 + 0.1 * 1 = 0.6, and the first Adam
    /// step is lr * sign(g) whatever its size: p = 0.9 again; the second gradient is
    /// -1 + 0.1 * 0.9 = -0.91: m = 0.054 - 0.091 = -0.037, v = 0.00035964 + 0.00082810 = 0.00118774,
    /// m / 0.19 = -0.1947368, v / 0.001999 = 0.5941671, sqrt = 0.7708224, p = 0.9252636.
    func testAdamMatchesHandComputedValues() {
        for (wd, second) in [(0.0, 0.9366103), (0.1, 0.9252636)] {
            let adam = Optimizer(config: .adam(lr: 0.1, weightDecay: wd), count: 1)
            let p = buffer([1])
            adam.step(params: p.pointer, grads: [0.5], count: 1, lr: 0.1, gradScale: 1, t: 1)
            XCTAssertEqual(p[0], 0.9, accuracy: 1e-6, "wd \(wd): first step")
            XCTAssertEqual(adam.momentum[0], wd == 0 ? 0.05 : 0.06, accuracy: 1e-8, "wd \(wd): first moment after step 1")
            XCTAssertEqual(adam.secondMoment![0], wd == 0 ? 0.00025 : 0.00036, accuracy: 1e-9, "wd \(wd): second moment after step 1")
            adam.step(params: p.pointer, grads: [-1], count: 1, lr: 0.1, gradScale: 1, t: 2)
            XCTAssertEqual(p[0], Float(second), accuracy: 2e-6, "wd \(wd): second step")
        }
        // SGD keeps no second moment; a checkpoint holds its momentum alone.
        XCTAssertNil(Optimizer(config: OptimizerConfig(), count: 1).secondMoment)
        XCTAssertEqual(Optimizer(config: .adam(), count: 1).stateBuffers.count, 2)
    }

    /// Adam against the same formula in double over several steps, with weight decay, a gradient
    /// scale and a rate that changes between steps.
    func testAdamMatchesALoopInDouble() {
        var rng = TestRNG(41)
        let n = 29
        for (lr, b1, b2, eps, wd, scale) in [(1e-3, 0.9, 0.999, 1e-8, 0.0, Float(1)), (3e-4, 0.8, 0.99, 1e-6, 1e-4, Float(0.25))] {
            let adam = Optimizer(config: .adam(lr: lr, beta1: b1, beta2: b2, eps: eps, weightDecay: wd), count: n)
            let params = buffer(rng.floats(n))
            var p = params.array.map(Double.init), m = [Double](repeating: 0, count: n), v = m
            for t in 1...6 {
                let g = rng.floats(n, -2, 2)
                let stepLR = lr * (1 - 0.1 * Double(t))
                adam.step(params: params.pointer, grads: g, count: n, lr: stepLR, gradScale: scale, t: t)
                for i in 0..<n {
                    let d = Double(g[i]) * Double(scale) + wd * p[i]
                    m[i] = b1 * m[i] + (1 - b1) * d
                    v[i] = b2 * v[i] + (1 - b2) * d * d
                    let mHat = m[i] / (1 - pow(b1, Double(t))), vHat = v[i] / (1 - pow(b2, Double(t)))
                    p[i] -= stepLR * mHat / (vHat.squareRoot() + eps)
                }
                assertAllClose(params.array, p.map(Float.init), rtol: 1e-5, atol: 1e-6, "lr \(lr) betas \(b1), \(b2) step \(t)")
            }
            assertAllClose(adam.momentum.array, m.map(Float.init), rtol: 1e-5, atol: 1e-7, "first moments")
            assertAllClose(adam.secondMoment!.array, v.map(Float.init), rtol: 1e-5, atol: 1e-9, "second moments")
        }
    }

    func testMultistepSchedule() {
        let s = LearningRateSchedule(kind: .multistep, baseLR: 0.1, epochs: 6, milestones: [2, 4], gamma: 0.1)
        let expected = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
        for e in 0..<6 { XCTAssertEqual(s.lr(epoch: e), expected[e], accuracy: 1e-15, "epoch \(e)") }
        // Warm-up first; milestones count epochs from 0, as torch's MultiStepLR.
        let w = LearningRateSchedule(kind: .multistep, baseLR: 0.2, epochs: 10, warmup: 2, milestones: [5], gamma: 0.5)
        XCTAssertEqual((0..<7).map { w.lr(epoch: $0) }, [0.1, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1])
        // The reference's default: a milestone every 30 epochs (lr_adjust).
        XCTAssertEqual(LearningRateSchedule.everyAdjust(epochs: 100), [30, 60, 90])
        XCTAssertEqual(LearningRateSchedule.everyAdjust(epochs: 30), [])
        XCTAssertEqual(LearningRateSchedule.everyAdjust(epochs: 10), [])
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
        config.optimizer.lr = 0.3; config.epochs = 9; config.warmup = 2; config.schedule = .cosine
        XCTAssertEqual(config.lrSchedule, LearningRateSchedule(kind: .cosine, baseLR: 0.3, epochs: 9, warmup: 2))
    }
}
