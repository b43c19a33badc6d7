// MaskedConv2d (im2col + sgemm) against a direct seven-loop convolution with no im2col, forward
// and both adjoints (dL/dx and dL/dW_eff), over a table of shapes, strides and paddings.

import XCTest
@testable import HiddenNetworks

final class ConvolutionReferenceTests: XCTestCase {
    struct Geometry: CustomStringConvertible {
        var c, h, w, co, kernel, stride, padding, batch: Int
        var oh: Int { (h + 2 * padding - kernel) / stride + 1 }
        var ow: Int { (w + 2 * padding - kernel) / stride + 1 }
        var description: String { "\(c)x\(h)x\(w) -> \(co) k\(kernel) s\(stride) p\(padding) batch \(batch)" }
        func xIndex(_ b: Int, _ ch: Int, _ y: Int, _ x: Int) -> Int { ((b * c + ch) * h + y) * w + x }
        func yIndex(_ b: Int, _ o: Int, _ y: Int, _ x: Int) -> Int { ((b * co + o) * oh + y) * ow + x }
        func wIndex(_ o: Int, _ ch: Int, _ i: Int, _ j: Int) -> Int { ((o * c + ch) * kernel + i) * kernel + j }

        /// Calls body(x index, y index, w index) for every (b, co, oy, ox, c, ki, kj) inside the image.
        func forEachTap(_ body: (Int, Int, Int) -> Void) {
            for b in 0..<batch {
                for o in 0..<co {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            for ch in 0..<c {
                                for ki in 0..<kernel {
                                    for kj in 0..<kernel {
                                        let iy = oy * stride - padding + ki, ix = ox * stride - padding + kj
                                        if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                                        body(xIndex(b, ch, iy, ix), yIndex(b, o, oy, ox), wIndex(o, ch, ki, kj))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    let table: [Geometry] = [
        Geometry(c: 2, h: 5, w: 5, co: 3, kernel: 3, stride: 1, padding: 1, batch: 2),
        Geometry(c: 3, h: 7, w: 6, co: 4, kernel: 3, stride: 2, padding: 0, batch: 3),
        Geometry(c: 1, h: 6, w: 9, co: 2, kernel: 5, stride: 1, padding: 2, batch: 2),
        Geometry(c: 4, h: 4, w: 5, co: 3, kernel: 1, stride: 1, padding: 0, batch: 2),
        Geometry(c: 2, h: 8, w: 7, co: 3, kernel: 3, stride: 2, padding: 1, batch: 2),
        Geometry(c: 2, h: 9, w: 10, co: 2, kernel: 3, stride: 3, padding: 1, batch: 2),
        Geometry(c: 1, h: 5, w: 4, co: 2, kernel: 2, stride: 2, padding: 0, batch: 3),
        Geometry(c: 3, h: 6, w: 5, co: 2, kernel: 4, stride: 2, padding: 2, batch: 2),
        Geometry(c: 1, h: 1, w: 1, co: 2, kernel: 3, stride: 1, padding: 1, batch: 2),
        Geometry(c: 1, h: 3, w: 3, co: 1, kernel: 3, stride: 2, padding: 2, batch: 2),
        Geometry(c: 2, h: 2, w: 3, co: 2, kernel: 5, stride: 1, padding: 2, batch: 3),
        Geometry(c: 1, h: 4, w: 11, co: 2, kernel: 3, stride: 4, padding: 1, batch: 2),
        // Kernels wider than the image: every tap but a few reads padding only.
        Geometry(c: 2, h: 1, w: 1, co: 2, kernel: 5, stride: 1, padding: 2, batch: 3),
        Geometry(c: 1, h: 1, w: 4, co: 2, kernel: 5, stride: 1, padding: 2, batch: 2),
        Geometry(c: 2, h: 2, w: 2, co: 3, kernel: 7, stride: 1, padding: 3, batch: 2),
        // Larger images and batches (an implementation may batch several images per sgemm).
        Geometry(c: 1, h: 32, w: 33, co: 2, kernel: 3, stride: 1, padding: 1, batch: 5),
        Geometry(c: 2, h: 30, w: 30, co: 2, kernel: 3, stride: 1, padding: 1, batch: 6),
    ]

    /// Every geometry one image per sgemm, all images in one sgemm, and in groups of two (the
    /// last group of an odd batch holding one image).
    func testForwardAndAdjointsMatchDirectLoops() throws {
        let saved = MaskedConv2d.columnsPerGEMM
        defer { MaskedConv2d.columnsPerGEMM = saved }
        var rng = TestRNG(20)
        for g in table {
          for (columns, expectedGroup) in [(1, 1), (g.batch * g.oh * g.ow, g.batch), (2 * g.oh * g.ow, min(2, g.batch))] {
            MaskedConv2d.columnsPerGEMM = columns
            let layer = try MaskedConv2d(input: Shape([g.c, g.h, g.w]), outChannels: g.co, kernel: g.kernel,
                                         stride: g.stride, padding: g.padding, k: 0.5)
            layer.reserve(batch: g.batch)
            XCTAssertEqual(layer.group, expectedGroup, "images per sgemm at \(columns) columns, \(g)")
            XCTAssertEqual(layer.outputShape, Shape([g.co, g.oh, g.ow]), "\(g)")
            let arena = prepare(layer.weights, rng: &rng)
            let weff = layer.weights.effective.array
            let xs = rng.floats(g.batch * g.c * g.h * g.w)
            let dys = rng.floats(g.batch * g.co * g.oh * g.ow)

            // Direct loops in double.
            var y = [Double](repeating: 0, count: dys.count)
            var dx = [Double](repeating: 0, count: xs.count)
            var dw = [Double](repeating: 0, count: weff.count)
            g.forEachTap { xi, yi, wi in
                y[yi] += Double(xs[xi]) * Double(weff[wi])
                dx[xi] += Double(weff[wi]) * Double(dys[yi])
                dw[wi] += Double(xs[xi]) * Double(dys[yi])
            }

            let x = buffer(xs), out = FloatBuffer(count: dys.count)
            for i in 0..<out.count { out[i] = .nan }
            layer.forward(x.pointer, out.pointer, batch: g.batch)
            assertAllClose(out.array, y.map(Float.init), rtol: 1e-5, atol: 1e-5, "forward \(g), groups of \(expectedGroup)")

            let dy = buffer(dys), gx = FloatBuffer(count: xs.count)
            for i in 0..<gx.count { gx[i] = .nan }
            layer.backward(x.pointer, out.pointer, dy.pointer, gx.pointer, batch: g.batch)
            assertAllClose(gx.array, dx.map(Float.init), rtol: 1e-5, atol: 1e-5, "dL/dx \(g), groups of \(expectedGroup)")
            assertAllClose(layer.weights.effectiveGrad.array, dw.map(Float.init), rtol: 1e-5, atol: 1e-5, "dL/dW_eff \(g), groups of \(expectedGroup)")

            // Without dx (the first layer) the weight gradient is the same.
            layer.backward(x.pointer, out.pointer, dy.pointer, nil, batch: g.batch)
            assertAllClose(layer.weights.effectiveGrad.array, dw.map(Float.init), rtol: 1e-5, atol: 1e-5, "dL/dW_eff without dx \(g)")

            // A sample's output does not depend on its neighbours in the batch (up to summation order).
            let single = FloatBuffer(count: g.co * g.oh * g.ow)
            layer.forward(x.pointer + (g.batch - 1) * g.c * g.h * g.w, single.pointer, batch: 1)
            assertAllClose(single.array, Array(out.array.suffix(single.count)), rtol: 1e-5, atol: 1e-6, "last sample alone \(g)")
            withExtendedLifetime((arena, dy)) {}
          }
        }
    }

    func testBatchOfZero() throws {
        let layer = try MaskedConv2d(input: Shape([1, 4, 4]), outChannels: 2, k: 0.5)
        var rng = TestRNG(21)
        let arena = prepare(layer.weights, rng: &rng)
        arena.grads.pointer.update(repeating: 9, count: layer.weights.count)
        for i in 0..<layer.weights.count { layer.weights.effectiveGrad[i] = 9 }
        let x = FloatBuffer(count: 16), y = FloatBuffer(count: 32)
        layer.forward(x.pointer, y.pointer, batch: 0)
        layer.backward(x.pointer, y.pointer, y.pointer, nil, batch: 0)
        XCTAssert(layer.weights.effectiveGrad.array.allSatisfy { $0 == 0 }, "no samples, no gradient")
        XCTAssert(arena.grads.array.allSatisfy { $0 == 0 }, "no samples, no score gradient")
    }

    func testGeometriesThatDoNotFitThrow() {
        // (input, kernel, stride, padding)
        let bad: [(Shape, Int, Int, Int)] = [
            (Shape([1, 2, 2]), 3, 1, 0),
            (Shape([1, 8, 2]), 5, 1, 1),
            (Shape([3, 1, 8]), 2, 1, 0),
        ]
        for (shape, kernel, stride, padding) in bad {
            assertThrowsHiddenError(try MaskedConv2d(input: shape, outChannels: 2, kernel: kernel, stride: stride, padding: padding, k: 0.5),
                                    containing: ["convolution does not fit"], "\(shape) k\(kernel) s\(stride) p\(padding)")
        }
        assertThrowsHiddenError(try MaskedConv2d(input: Shape([16]), outChannels: 2, k: 0.5), containing: ["needs an image input"])
    }
}
