// SGD with momentum (PyTorch semantics, dampening 0), optional Nesterov, weight decay coupled on
// the scores: g += wd * s; buf = m * buf + g; s -= lr * (nesterov ? g + m * buf : buf).

public struct SGDConfig: Equatable, Sendable {
    public var lr: Double = 0.1
    public var momentum: Double = 0.9
    public var weightDecay: Double = 1e-4
    public var nesterov: Bool = false
    public init(lr: Double = 0.1, momentum: Double = 0.9, weightDecay: Double = 1e-4, nesterov: Bool = false) {
        self.lr = lr; self.momentum = momentum; self.weightDecay = weightDecay; self.nesterov = nesterov
    }
}

public final class SGD {
    public let config: SGDConfig
    /// Momentum buffers, one per score, in the score arena's order.
    public let momentum: FloatBuffer

    public init(config: SGDConfig, count: Int) {
        self.config = config
        momentum = FloatBuffer(count: count)
    }

    /// One step over the whole arena. `gradScale` turns summed-loss gradients into the mean
    /// (1 / global batch).
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, count: Int,
                     lr: Double, gradScale: Float) {
        step(params: params, grads: grads, offset: 0, count: count, lr: lr, gradScale: gradScale)
    }

    /// The step for parameters `offset..<offset + count` of the arena only (a sharded update:
    /// each rank steps its share). `params` and `grads` point at the arena's start.
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, offset: Int, count: Int,
                     lr: Double, gradScale: Float) {
        let m = Float(config.momentum), wd = Float(config.weightDecay), rate = Float(lr)
        let buf = momentum.pointer + offset, params = params + offset, grads = grads + offset
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
