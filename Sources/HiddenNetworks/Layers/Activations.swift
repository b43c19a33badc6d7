// The parameter-free layers: ReLU and flatten (pooling is in Pooling.swift).

import CKernels

public final class ReLU: Layer {
    public let kind = "relu"
    public let inputShape: Shape
    public var outputShape: Shape { inputShape }
    public init(input: Shape) { inputShape = input }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        relu(x, y, count: batch * inputShape.count)
    }

    // 16 lanes at a time: the pointers may alias as far as the compiler knows, so it would not
    // vectorise the plain loop by itself.
    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        guard let dx else { return }
        reluBackward(x, dy, dx, count: batch * inputShape.count)
    }
}

/// [C, H, W] -> [C*H*W]: the memory is already in that order, so this copies.
public final class Flatten: Layer {
    public let kind = "flatten"
    public let inputShape: Shape
    public let outputShape: Shape
    public init(input: Shape) { inputShape = input; outputShape = Shape([input.count]) }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        y.update(from: x, count: batch * inputShape.count)
    }

    public func backward(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>?, batch: Int) {
        dx?.update(from: dy, count: batch * inputShape.count)
    }
}

// The loops are in C (CKernels/plane_loops.c): AVX2 where the CPU has it, the same bits everywhere.

/// y[i] = max(x[i], 0); x and y may be the same buffer (in place). -0 stays -0.
@inline(__always)
func relu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) { hm_relu(x, y, n) }

/// y[i] = max(a[i] + b[i], 0): a residual block's sum and its ReLU in one pass.
@inline(__always)
func addRelu(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
    hm_add_relu(a, b, y, n)
}

/// dx[i] = dy[i] where x[i] > 0, else 0 (x: the ReLU's input, or its output: same sign test).
@inline(__always)
func reluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count n: Int) {
    hm_relu_backward(x, dy, dx, n)
}
