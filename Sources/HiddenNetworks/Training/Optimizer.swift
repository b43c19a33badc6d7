// The optimisers, with PyTorch's semantics and weight decay coupled on the trained parameters
// (the scores, or the weights of the dense baseline):
//   SGD (torch.optim.SGD, dampening 0), optional Nesterov:
//     g += wd * p;  buf = m * buf + g;  p -= lr * (nesterov ? g + m * buf : buf)
//   Adam (torch.optim.Adam, amsgrad off), step t from 1:
//     g += wd * p;  m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g * g
//     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The reference trains its dense baselines with either (REFERENCE.md: Adam lr 2e-4 to 3e-4,
// batch 60, constant schedule).

import Foundation

public enum OptimizerKind: String, CaseIterable, Sendable {
    case sgd, adam
}

public struct OptimizerConfig: Equatable, Sendable {
    public var kind: OptimizerKind = .sgd
    public var lr: Double = 0.1
    /// SGD's momentum.
    public var momentum: Double = 0.9
    public var weightDecay: Double = 1e-4
    public var nesterov: Bool = false
    /// Adam's moment decay rates and the epsilon added to the denominator (PyTorch's defaults).
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8

    public init(lr: Double = 0.1, momentum: Double = 0.9, weightDecay: Double = 1e-4, nesterov: Bool = false) {
        self.lr = lr; self.momentum = momentum; self.weightDecay = weightDecay; self.nesterov = nesterov
    }

    public static func adam(lr: Double = 3e-4, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                            weightDecay: Double = 0) -> OptimizerConfig {
        var c = OptimizerConfig(lr: lr, momentum: 0, weightDecay: weightDecay, nesterov: false)
        c.kind = .adam; c.beta1 = beta1; c.beta2 = beta2; c.eps = eps
        return c
    }

    /// One line for a run's header: "SGD lr 0.1 momentum 0.9 wd 0.0001" or "Adam lr 0.0003 ...".
    public var summary: String {
        switch kind {
        case .sgd: return "SGD lr \(lr) momentum \(momentum)\(nesterov ? " nesterov" : "") wd \(weightDecay)"
        case .adam: return "Adam lr \(lr) betas (\(beta1), \(beta2)) eps \(eps) wd \(weightDecay)"
        }
    }
}

public final class Optimizer {
    public let config: OptimizerConfig
    /// SGD's momentum buffers, or Adam's first moments: one per parameter, in the arena's order.
    public let momentum: FloatBuffer
    /// Adam's second moments (nil for SGD).
    public let secondMoment: FloatBuffer?

    public init(config: OptimizerConfig, count: Int) {
        self.config = config
        momentum = FloatBuffer(count: count)
        secondMoment = config.kind == .adam ? FloatBuffer(count: count) : nil
    }

    /// The per-parameter state buffers a checkpoint holds and ranks compare: [momentum] for SGD,
    /// [first, second moment] for Adam.
    public var stateBuffers: [FloatBuffer] { namedStateBuffers.map(\.buffer) }

    /// The same with the prefix of their checkpoint tensors ("momentum.<layer>", "second_moment.<layer>").
    public var namedStateBuffers: [(name: String, buffer: FloatBuffer)] {
        [("momentum", momentum)] + (secondMoment.map { [("second_moment", $0)] } ?? [])
    }

    /// One step over the whole arena. `gradScale` turns summed-loss gradients into the mean
    /// (1 / global batch); `t` counts the optimiser's steps from 1 (Adam's bias correction).
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, count: Int,
                     lr: Double, gradScale: Float, t: Int = 1) {
        step(params: params, grads: grads, offset: 0, count: count, lr: lr, gradScale: gradScale, t: t)
    }

    /// The step for parameters `offset..<offset + count` of the arena only (a sharded update:
    /// each rank steps its share). `params` and `grads` point at the arena's start.
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, offset: Int, count: Int,
                     lr: Double, gradScale: Float, t: Int = 1) {
        let wd = Float(config.weightDecay)
        let buf = momentum.pointer + offset, params = params + offset, grads = grads + offset
        if let second = secondMoment {
            precondition(t >= 1, "Adam counts its steps from 1")
            // 1 - beta in double, then rounded, as PyTorch passes it (1 - 0.999 in float is 1.3e-5 off).
            let b1 = Float(config.beta1), b2 = Float(config.beta2), eps = Float(config.eps)
            let c1 = Float(1 - config.beta1), c2 = Float(1 - config.beta2)
            let stepSize = Float(lr / (1 - pow(config.beta1, Double(t))))
            let correction2 = Float((1 - pow(config.beta2, Double(t))).squareRoot())
            let v = second.pointer + offset
            for i in 0..<count {
                let g = grads[i] * gradScale + wd * params[i]
                buf[i] = b1 * buf[i] + c1 * g
                v[i] = b2 * v[i] + c2 * g * g
                params[i] -= stepSize * buf[i] / (v[i].squareRoot() / correction2 + eps)
            }
            return
        }
        let m = Float(config.momentum), rate = Float(lr)
        if config.nesterov {
            for i in 0..<count {
                let g = grads[i] * gradScale + wd * params[i]
                buf[i] = m * buf[i] + g
                params[i] -= rate * (g + m * buf[i])
            }
        } else {
            for i in 0..<count {
                let g = grads[i] * gradScale + wd * params[i]
                buf[i] = m * buf[i] + g
                params[i] -= rate * buf[i]
            }
        }
    }
}
