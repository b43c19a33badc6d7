// Every layer's backward pass against central finite differences of L = sum(y * r) for a fixed
// random r (so dL/dy = r). For masked layers, dL/dW_eff is checked by perturbing `effective`
// directly (the mask makes L piecewise constant in S), and dL/dS against the straight-through
// rule of REFERENCE.md: dL/dS = sign(S) * W * dL/dW_eff, pruned edges included.

import CKernels
import XCTest
@testable import HiddenNetworks

final class LayerGradientTests: XCTestCase {
    let gradients = LayerGradientCheck()

    func testMaskedLinear() {
        // (input shape, out features, k, batch)
        let table: [(Shape, Int, Double, Int)] = [
            (Shape([5]), 3, 0.5, 4),
            (Shape([2, 3, 2]), 4, 0.3, 2),  // any input shape, flattened
            (Shape([17]), 1, 1.0, 3),
            (Shape([1]), 6, 0.5, 1),
            (Shape([9]), 7, 0.1, 5),
        ]
        var rng = TestRNG(10)
        for (input, out, k, batch) in table {
            let what = "linear \(input)->\(out) k \(k) batch \(batch)"
            let layer = MaskedLinear(input: input, outFeatures: out, k: k)
            XCTAssertEqual(layer.outputShape, Shape([out]))
            let arena = prepare(layer.weights, rng: &rng)
            if layer.weights.count > 2 { arena.scores[1] = 0; layer.weights.updateMask() }  // sign(0) = 0
            let x = buffer(rng.floats(batch * input.count))
            let r = rng.floats(batch * out)
            gradients.checkInputGradient(layer, x, batch: batch, r, what)
            gradients.checkWeightGradients(layer, layer.weights, arena, x, batch: batch, r, what)
            if layer.weights.count > 2 { XCTAssertEqual(arena.grads[1], 0, "\(what): dL/dS at S = 0") }
        }
    }

    func testMaskedConv2d() throws {
        // (C, H, W, out channels, kernel, stride, padding, batch, k)
        let table: [(Int, Int, Int, Int, Int, Int, Int, Int, Double)] = [
            (2, 5, 5, 3, 3, 1, 1, 2, 0.5),   // k3 s1 p1
            (2, 7, 6, 3, 3, 2, 0, 2, 0.5),   // k3 s2 p0, non-square
            (1, 6, 7, 2, 5, 1, 2, 2, 0.3),   // k5 s1 p2
            (3, 4, 5, 2, 1, 1, 0, 3, 0.5),   // k1 s1 p0
            (2, 6, 9, 2, 3, 2, 1, 2, 0.7),   // k3 s2 p1, non-square
            (1, 3, 2, 2, 5, 1, 2, 2, 0.5),   // kernel wider than the image
        ]
        var rng = TestRNG(11)
        for (c, h, w, co, kernel, stride, padding, batch, k) in table {
            let what = "conv \(c)x\(h)x\(w) -> \(co) k\(kernel) s\(stride) p\(padding) batch \(batch)"
            let layer = try MaskedConv2d(input: Shape([c, h, w]), outChannels: co, kernel: kernel, stride: stride, padding: padding, k: k)
            let arena = prepare(layer.weights, rng: &rng)
            let x = buffer(rng.floats(batch * c * h * w))
            let r = rng.floats(batch * layer.outputShape.count)
            gradients.checkInputGradient(layer, x, batch: batch, r, what)
            gradients.checkWeightGradients(layer, layer.weights, arena, x, batch: batch, r, what)
        }
    }

    func testReLU() {
        var rng = TestRNG(12)
        let layer = ReLU(input: Shape([3, 4, 5]))
        let batch = 2
        // Keep every x at least 0.1 from the kink at 0 (eps is 0.01).
        let x = buffer((0..<(batch * 60)).map { _ in rng.uniform(0.1, 1) * (rng.unit() < 0.5 ? -1 : 1) })
        let r = rng.floats(batch * 60)
        gradients.checkInputGradient(layer, x, batch: batch, r, "relu")
        let y = FloatBuffer(count: x.count)
        layer.forward(x.pointer, y.pointer, batch: batch)
        XCTAssertEqual(y.array, x.array.map { max($0, 0) })
        // At and next to the kink: the gradient passes only where x > 0 (ReLU'(0) = 0, as PyTorch).
        // 2 x 19 values: whole 16-lane blocks and a scalar tail both see every case.
        let pattern: [Float] = [0, -0.0, 1e-30, -1e-30, 2, -2]
        let edge = ReLU(input: Shape([19]))
        let xs = (0..<38).map { pattern[$0 % pattern.count] }
        let dys = (0..<38).map { Float($0 + 1) }
        let dx = gradients.backward(edge, buffer(xs), batch: 2, dys)
        XCTAssertEqual(dx, (0..<38).map { xs[$0] > 0 ? dys[$0] : 0 })
        let edgeX = buffer(xs), edgeY = FloatBuffer(count: 38)
        edge.forward(edgeX.pointer, edgeY.pointer, batch: 2)
        withExtendedLifetime(edgeX) {}
        XCTAssertEqual(edgeY.array, xs.map { $0 > 0 ? $0 : 0 })
    }

    func testMaxPool() throws {
        var rng = TestRNG(13)
        // (C, H, W, size, batch); widths not divisible by the window drop the last columns.
        for (c, h, w, size, batch) in [(2, 4, 4, 2, 2), (1, 6, 7, 2, 3), (3, 5, 6, 3, 1), (1, 2, 2, 2, 1)] {
            let layer = try MaxPool2d(input: Shape([c, h, w]), size: size)
            XCTAssertEqual(layer.outputShape, Shape([c, h / size, w / size]))
            let n = batch * c * h * w
            // Distinct values 0.05 apart: a step of 0.01 never changes a window's maximum.
            let values = (0..<n).map { Float($0) * 0.05 - 2 }.shuffled(using: &rng)
            let x = buffer(values)
            let r = rng.floats(batch * layer.outputShape.count)
            let what = "maxpool \(c)x\(h)x\(w) size \(size)"
            gradients.checkInputGradient(layer, x, batch: batch, r, what)
            // Forward against a direct maximum.
            let y = FloatBuffer(count: batch * layer.outputShape.count)
            layer.forward(x.pointer, y.pointer, batch: batch)
            let (oh, ow) = (h / size, w / size)
            for plane in 0..<(batch * c) {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var best = -Float.infinity
                        for dy in 0..<size { for dx in 0..<size { best = max(best, values[plane * h * w + (oy * size + dy) * w + ox * size + dx]) } }
                        XCTAssertEqual(y[(plane * oh + oy) * ow + ox], best, "\(what) plane \(plane) (\(oy), \(ox))")
                    }
                }
            }
        }
    }

    func testMaxPoolTiesGoToTheFirstMaximum() throws {
        let layer = try MaxPool2d(input: Shape([1, 2, 4]), size: 2)
        let x = buffer([1, 1, -1, 0.5,
                        0, 1, 0.5, 0.5])
        let dx = gradients.backward(layer, x, batch: 1, [3, 5])
        XCTAssertEqual(dx, [3, 0, 0, 5,
                            0, 0, 0, 0])
    }

    /// The 2x2 pool's vectorised kernels (CKernels/pooling.c) against their portable loops and
    /// against the general window loop, bit for bit: ties, NaN, -0 and +0, odd sides, gradients of -0.
    func testMaxPool2x2KernelsMatchTheGeneralLoop() {
        var rng = TestRNG(17)
        for (planes, h, w) in [(3, 4, 4), (2, 7, 9), (5, 2, 34), (1, 9, 2), (4, 16, 50)] {
            let (oh, ow) = (h / 2, w / 2)
            let x = poolValues(planes * h * w, &rng)
            let dy = (0..<(planes * oh * ow)).map { _ in rng.int(4) == 0 ? -0.0 : rng.uniform(-1, 1) }
            let (y, arg) = poolForward(hm_maxpool2_forward, hm_maxpool2_forward_portable, x, planes: planes, h: h, w: w,
                                       outputs: planes * oh * ow)
            var dx = [Float](repeating: 9, count: x.count), dxp = dx
            hm_maxpool2_backward(dy, arg, &dx, planes, h, w)
            hm_maxpool2_backward_portable(dy, arg, &dxp, planes, h, w)
            XCTAssertEqual(dx.map(\.bitPattern), dxp.map(\.bitPattern), "backward \(planes)x\(h)x\(w)")
            // The general loop: -infinity, then each value greater than the best so far in row-major
            // order; backward zeroes dx and adds each gradient at its maximum.
            var dxg = [Float](repeating: 0, count: x.count)
            for p in 0..<planes {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var best = -Float.infinity, at = 2 * oy * w + 2 * ox
                        for iy in 2 * oy..<2 * oy + 2 {
                            for ix in 2 * ox..<2 * ox + 2 where x[p * h * w + iy * w + ix] > best {
                                best = x[p * h * w + iy * w + ix]; at = iy * w + ix
                            }
                        }
                        let o = (p * oh + oy) * ow + ox
                        XCTAssertEqual(y[o].bitPattern, best.bitPattern, "max \(p) (\(oy), \(ox))")
                        XCTAssertEqual(Int(arg[o]), at)
                        dxg[p * h * w + at] += dy[o]
                    }
                }
            }
            XCTAssertEqual(dx.map(\.bitPattern), dxg.map(\.bitPattern), "backward against the general loop")
        }
    }

    /// The 3x3/2 pool with padding 1 (the ImageNet ResNets'): CKernels' forward against its
    /// portable loop and against the general window loop, bit for bit, odd and even sides, sides
    /// of 1 to 3, ties and NaN.
    func testMaxPool3x3Stride2KernelMatchesTheGeneralLoop() throws {
        var rng = TestRNG(19)
        for (planes, h, w) in [(3, 8, 8), (2, 7, 9), (2, 1, 1), (3, 2, 3), (1, 3, 2), (4, 12, 35), (2, 16, 64)] {
            let (oh, ow) = ((h + 1) / 2, (w + 1) / 2)
            let x = poolValues(planes * h * w, &rng)
            let (y, arg) = poolForward(hm_maxpool3s2_forward, hm_maxpool3s2_forward_portable, x, planes: planes, h: h, w: w,
                                       outputs: planes * oh * ow)
            for p in 0..<planes {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let (y0, y1) = (max(0, 2 * oy - 1), min(h, 2 * oy + 2)), (x0, x1) = (max(0, 2 * ox - 1), min(w, 2 * ox + 2))
                        var best = -Float.infinity, at = y0 * w + x0
                        for iy in y0..<y1 {
                            for ix in x0..<x1 where x[p * h * w + iy * w + ix] > best { best = x[p * h * w + iy * w + ix]; at = iy * w + ix }
                        }
                        let o = (p * oh + oy) * ow + ox
                        XCTAssertEqual(y[o].bitPattern, best.bitPattern, "\(planes)x\(h)x\(w) plane \(p) (\(oy), \(ox))")
                        XCTAssertEqual(Int(arg[o]), at, "\(planes)x\(h)x\(w) plane \(p) (\(oy), \(ox))")
                    }
                }
            }
            // Through the layer, whose backward adds the gradients at these positions.
            let layer = try MaxPool2d(input: Shape([planes, h, w]), kernel: 3, stride: 2, padding: 1)
            XCTAssertEqual(layer.outputShape, Shape([planes, oh, ow]))
            let input = buffer(x), out = FloatBuffer(count: y.count)
            withExtendedLifetime(input) { layer.forward(input.pointer, out.pointer, batch: 1) }
            XCTAssertEqual(out.array.map(\.bitPattern), y.map(\.bitPattern))
        }
    }

    /// Inputs for the pools' kernels: a third uniform in [-1, 1), the rest ties, zeros of both
    /// signs, NaN and -infinity.
    private func poolValues(_ n: Int, _ rng: inout TestRNG) -> [Float] {
        let palette: [Float] = [0, -0.0, 1, 1, -1, .nan, -.infinity, 2.5, 0.5]
        return (0..<n).map { _ in rng.int(3) == 0 ? rng.uniform(-1, 1) : palette[rng.int(palette.count)] }
    }

    typealias PoolKernel = @convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Int32>?,
                                           Int, Int, Int) -> Void

    /// A pool's forward kernel against its portable loop, bit for bit; the kernel's maxima and positions.
    private func poolForward(_ kernel: PoolKernel, _ portable: PoolKernel, _ x: [Float], planes: Int, h: Int, w: Int,
                             outputs: Int, file: StaticString = #filePath, line: UInt = #line) -> ([Float], [Int32]) {
        var y = [Float](repeating: 9, count: outputs), yp = y
        var arg = [Int32](repeating: -1, count: outputs), argp = arg
        kernel(x, &y, &arg, planes, h, w)
        portable(x, &yp, &argp, planes, h, w)
        XCTAssertEqual(y.map(\.bitPattern), yp.map(\.bitPattern), "forward \(planes)x\(h)x\(w)", file: file, line: line)
        XCTAssertEqual(arg, argp, "positions \(planes)x\(h)x\(w)", file: file, line: line)
        return (y, arg)
    }

    func testMaxPoolRejectsTooSmallInput() {
        assertThrowsHiddenError(try MaxPool2d(input: Shape([1, 1, 4]), size: 2), containing: ["max-pool does not fit"])
        assertThrowsHiddenError(try MaxPool2d(input: Shape([8]), size: 2), containing: ["max-pool does not fit"])
    }

    func testFlatten() {
        var rng = TestRNG(14)
        let layer = Flatten(input: Shape([2, 3, 4]))
        XCTAssertEqual(layer.outputShape, Shape([24]))
        let x = buffer(rng.floats(2 * 24))
        let r = rng.floats(2 * 24)
        gradients.checkInputGradient(layer, x, batch: 2, r, "flatten")
        let y = FloatBuffer(count: 48)
        layer.forward(x.pointer, y.pointer, batch: 2)
        XCTAssertEqual(y.array, x.array)
    }
}
