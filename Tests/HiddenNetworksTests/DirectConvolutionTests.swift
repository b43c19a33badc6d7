// The direct 3x3 convolution (DirectConvolution.swift, CKernels/direct_conv.c): against the
// seven-loop convolution in double, forward and both adjoints, over geometries that exercise its
// tiles (rows and columns left over, images narrower than a tile, several channel blocks); its
// AVX-512 and AVX2 kernels against its portable loops bit for bit; and the choice of path.

import CKernels
import XCTest
@testable import HiddenNetworks

final class DirectConvolutionTests: XCTestCase {
    typealias Geometry = ConvolutionReferenceTests.Geometry

    let table: [Geometry] = [
        Geometry(c: 16, h: 5, w: 5, co: 16, kernel: 3, stride: 1, padding: 1, batch: 3),
        Geometry(c: 32, h: 4, w: 4, co: 16, kernel: 3, stride: 1, padding: 1, batch: 2),
        Geometry(c: 16, h: 1, w: 1, co: 32, kernel: 3, stride: 1, padding: 1, batch: 3),
        Geometry(c: 16, h: 7, w: 33, co: 16, kernel: 3, stride: 1, padding: 1, batch: 2),  // columns in 11s
        Geometry(c: 16, h: 9, w: 14, co: 32, kernel: 3, stride: 1, padding: 1, batch: 2),  // rows in 2s, one left
        Geometry(c: 48, h: 3, w: 17, co: 16, kernel: 3, stride: 1, padding: 1, batch: 2),
        Geometry(c: 16, h: 8, w: 8, co: 48, kernel: 3, stride: 1, padding: 1, batch: 5),   // rows in 3s
        Geometry(c: 16, h: 2, w: 7, co: 16, kernel: 3, stride: 1, padding: 1, batch: 4),
        // More than 64 channels in: the weights in slices of 32 channels, partial sums kept between.
        Geometry(c: 96, h: 4, w: 6, co: 16, kernel: 3, stride: 1, padding: 1, batch: 3),
        Geometry(c: 16, h: 3, w: 5, co: 80, kernel: 3, stride: 1, padding: 1, batch: 2),  // dL/dx: 32 + 32 + 16
        // Stride 2 on even inputs: the input's four parities, dL/dx in four classes of taps.
        Geometry(c: 16, h: 8, w: 8, co: 32, kernel: 3, stride: 2, padding: 1, batch: 3),
        Geometry(c: 32, h: 10, w: 34, co: 16, kernel: 3, stride: 2, padding: 1, batch: 2),  // 5 x 17
        Geometry(c: 16, h: 2, w: 2, co: 16, kernel: 3, stride: 2, padding: 1, batch: 3),    // 1 x 1
        Geometry(c: 96, h: 6, w: 12, co: 16, kernel: 3, stride: 2, padding: 1, batch: 2),   // slices of 32 in
        Geometry(c: 16, h: 4, w: 28, co: 80, kernel: 3, stride: 2, padding: 1, batch: 2),   // slices of 32 in dL/dx
    ]

    var threads = 1, enabled = true

    /// The direct convolution runs with one BLAS thread per rank (scripts/env.sh's default).
    override func setUp() { (threads, enabled) = (BLASThreads.current, DirectConvolution.enabled); BLASThreads.set(1) }

    override func tearDown() { DirectConvolution.enabled = enabled; BLASThreads.set(threads) }

    /// Each geometry by the direct convolution where the CPU has it and by im2col + sgemm, in
    /// groups of one image and of the whole batch, and with a residual block's accumulating dx.
    func testForwardAndAdjointsMatchDirectLoops() throws {
        let saved = MaskedConv2d.columnsPerGEMM
        defer { MaskedConv2d.columnsPerGEMM = saved }
        var rng = TestRNG(31)
        var directRuns = 0
        for g in table {
            for enabled in [true, false] {
                for columns in [1, g.batch * g.oh * g.ow] {
                    DirectConvolution.enabled = enabled
                    MaskedConv2d.columnsPerGEMM = columns
                    let layer = try MaskedConv2d(input: Shape([g.c, g.h, g.w]), outChannels: g.co, kernel: g.kernel,
                                                 stride: g.stride, padding: g.padding, k: 0.5)
                    XCTAssertEqual(layer.direct != nil, enabled && hm_conv3x3_available() != 0, "path of \(g)")
                    if layer.direct != nil { directRuns += 1 }
                    layer.reserve(batch: g.batch)
                    let arena = prepare(layer.weights, rng: &rng)
                    let weff = layer.weights.effective.array
                    let xs = rng.floats(g.batch * g.c * g.h * g.w), dys = rng.floats(g.batch * g.co * g.oh * g.ow)
                    let preset = rng.floats(xs.count)
                    var y = [Double](repeating: 0, count: dys.count), dx = preset.map(Double.init)
                    var dw = [Double](repeating: 0, count: weff.count)
                    g.forEachTap { xi, yi, wi in
                        y[yi] += Double(xs[xi]) * Double(weff[wi])
                        dx[xi] += Double(weff[wi]) * Double(dys[yi])
                        dw[wi] += Double(xs[xi]) * Double(dys[yi])
                    }
                    let what = "\(g), \(layer.direct != nil ? "direct" : "im2col"), groups of \(layer.group)"
                    let x = buffer(xs), out = FloatBuffer(count: dys.count)
                    for i in 0..<out.count { out[i] = .nan }
                    layer.forward(x.pointer, out.pointer, batch: g.batch)
                    assertAllClose(out.array, y.map(Float.init), rtol: 1e-5, atol: 1e-5, "forward \(what)")

                    // A residual block's convolution adds dL/dx to what dx holds.
                    layer.accumulatesInputGradient = true
                    let dy = buffer(dys), gx = buffer(preset)
                    layer.backward(x.pointer, out.pointer, dy.pointer, gx.pointer, batch: g.batch)
                    assertAllClose(gx.array, dx.map(Float.init), rtol: 1e-5, atol: 1e-5, "dL/dx added \(what)")
                    assertAllClose(layer.weights.effectiveGrad.array, dw.map(Float.init), rtol: 1e-5, atol: 1e-5, "dL/dW_eff \(what)")

                    // Overwriting dx, and without dx (the first layer).
                    layer.accumulatesInputGradient = false
                    for i in 0..<gx.count { gx[i] = .nan }
                    layer.backward(x.pointer, out.pointer, dy.pointer, gx.pointer, batch: g.batch)
                    let fresh = zip(dx, preset).map { Float($0 - Double($1)) }
                    assertAllClose(gx.array, fresh, rtol: 1e-4, atol: 1e-5, "dL/dx \(what)")
                    layer.backward(x.pointer, out.pointer, dy.pointer, nil, batch: g.batch)
                    assertAllClose(layer.weights.effectiveGrad.array, dw.map(Float.init), rtol: 1e-5, atol: 1e-5, "dL/dW_eff without dx \(what)")

                    // A sample's output is its own, to the bit, whatever else is in the call.
                    let single = FloatBuffer(count: g.co * g.oh * g.ow)
                    layer.forward(x.pointer + (g.batch - 1) * g.c * g.h * g.w, single.pointer, batch: 1)
                    if layer.direct != nil {
                        XCTAssertEqual(single.array, Array(out.array.suffix(single.count)), "last sample alone, \(what)")
                    }
                    withExtendedLifetime((arena, dy)) {}
                }
            }
        }
        if hm_conv3x3_available() != 0 { XCTAssertEqual(directRuns, 2 * table.count) }
    }

    /// The AVX-512 and AVX2 kernels give the portable loops' bits (the same fused multiply-adds in the same
    /// order), forward, input gradient and weight gradient over two calls.
    func testKernelsMatchPortableLoopsBitForBit() throws {
        let best = hm_conv3x3_available()
        try XCTSkipIf(best == 0, "this CPU has neither AVX-512 nor AVX2: the portable loops are all there is")
        defer { XCTAssertEqual(hm_conv3x3_limit(-1), best) }
        // Each kernel the CPU runs: AVX-512 (where it has it), then AVX2 on the same CPU.
        for level in stride(from: best, through: 1, by: -1) {
            XCTAssertEqual(hm_conv3x3_limit(level), level)
            try kernelsMatchPortableLoops(level: level)
        }
    }

    private func kernelsMatchPortableLoops(level: Int32) throws {
        var rng = TestRNG(32)
        // Widths that leave columns and rows over for both kernels' tiles (AVX-512: 28 positions of
        // one output block, or 14 of two; AVX2: 6), 1- to 4-row tiles, two blocks and a last one
        // alone, and over 64 input channels (slices of 32, partial sums of one or two blocks).
        for (c, co, h, w, n) in [(16, 32, 5, 33, 2), (32, 16, 4, 4, 3), (16, 16, 9, 14, 1), (16, 16, 1, 3, 2),
                                 (112, 32, 4, 4, 2), (32, 96, 3, 5, 2), (16, 48, 3, 4, 2), (16, 32, 5, 2, 2),
                                 (16, 16, 6, 1, 1), (80, 16, 3, 13, 1), (80, 48, 7, 7, 2), (16, 64, 5, 15, 1)] {
            let what = "C\(c) Co\(co) \(h)x\(w) n\(n), kernel level \(level)"
            let x = buffer(rng.floats(n * c * h * w)), dy = buffer(rng.floats(n * co * h * w))
            let weights = buffer(rng.floats(co * c * 9))
            let wf = FloatBuffer(count: weights.count), wx = FloatBuffer(count: weights.count)
            hm_conv3x3_pack_forward(weights.pointer, wf.pointer, Int32(c), Int32(co))
            hm_conv3x3_pack_backward(weights.pointer, wx.pointer, Int32(c), Int32(co))
            let xp = FloatBuffer(count: n * c * (h + 2) * (w + 2)), dyp = FloatBuffer(count: n * co * (h + 2) * (w + 2))
            hm_conv3x3_pad(x.pointer, xp.pointer, Int32(c), Int32(h), Int32(w), Int32(n))
            hm_conv3x3_pad(dy.pointer, dyp.pointer, Int32(co), Int32(h), Int32(w), Int32(n))
            let dyb = FloatBuffer(count: dy.count)
            hm_conv3x3_block(dy.pointer, dyb.pointer, Int32(co), Int32(h), Int32(w), Int32(n))

            let scratch = FloatBuffer(count: n * h * w * 32)
            let y1 = FloatBuffer(count: dy.count), y2 = FloatBuffer(count: dy.count)
            hm_conv3x3(xp.pointer, wf.pointer, y1.pointer, Int32(c), Int32(co), Int32(h), Int32(w), Int32(n), 0, scratch.pointer)
            hm_conv3x3_portable(xp.pointer, wf.pointer, y2.pointer, Int32(c), Int32(co), Int32(h), Int32(w), Int32(n), 0)
            XCTAssertEqual(y1.array.map(\.bitPattern), y2.array.map(\.bitPattern), "forward \(what)")

            let d1 = buffer(Array(repeating: 0.25, count: x.count)), d2 = buffer(Array(repeating: 0.25, count: x.count))
            hm_conv3x3(dyp.pointer, wx.pointer, d1.pointer, Int32(co), Int32(c), Int32(h), Int32(w), Int32(n), 1, scratch.pointer)
            hm_conv3x3_portable(dyp.pointer, wx.pointer, d2.pointer, Int32(co), Int32(c), Int32(h), Int32(w), Int32(n), 1)
            XCTAssertEqual(d1.array.map(\.bitPattern), d2.array.map(\.bitPattern), "input gradient \(what)")

            let g1 = FloatBuffer(count: weights.count), g2 = FloatBuffer(count: weights.count)
            for first in [1, 0] as [Int32] {
                hm_conv3x3_weight_grad(xp.pointer, dyb.pointer, g1.pointer, Int32(c), Int32(co), Int32(h), Int32(w), Int32(n), first)
                hm_conv3x3_weight_grad_portable(xp.pointer, dyb.pointer, g2.pointer, Int32(c), Int32(co), Int32(h), Int32(w), Int32(n), first)
            }
            XCTAssertEqual(g1.array.map(\.bitPattern), g2.array.map(\.bitPattern), "weight gradient \(what)")
            XCTAssert(g1.array.contains { $0 != 0 }, "a weight gradient at all, \(what)")
        }
        try stride2KernelsMatchPortableLoops(level: level)
    }

    /// Stride 2: each kernel (level) against the portable loops (level 0), forward, input gradient
    /// (overwritten and added to) and weight gradient over two calls.
    private func stride2KernelsMatchPortableLoops(level: Int32) throws {
        defer { hm_conv3x3_limit(level) }
        var rng = TestRNG(34)
        // The last: 1.66 MB of split input for 5 images, which the forward takes in groups (of 4 and
        // 1 where L2 is 2 MB, three quarters of it a group; of 3 and 2 where it is 1 MB).
        for (c, co, oh, ow, n) in [(16, 32, 5, 17, 2), (32, 16, 2, 2, 3), (112, 32, 4, 4, 2), (16, 96, 3, 7, 1),
                                   (80, 48, 7, 7, 2), (16, 16, 1, 1, 2), (32, 32, 8, 16, 1), (256, 16, 8, 8, 5)] {
            let what = "stride 2, C\(c) Co\(co) output \(oh)x\(ow) n\(n), kernel level \(level)"
            let (h, w) = (2 * oh, 2 * ow)
            let x = buffer(rng.floats(n * c * h * w)), dy = buffer(rng.floats(n * co * oh * ow))
            let weights = buffer(rng.floats(co * c * 9))
            let wf = FloatBuffer(count: weights.count), wc = FloatBuffer(count: weights.count)
            hm_conv3x3_pack_forward(weights.pointer, wf.pointer, Int32(c), Int32(co))
            hm_conv3x3_pack_s2_backward(weights.pointer, wc.pointer, Int32(c), Int32(co))
            let xq = FloatBuffer(count: n * c * 4 * (oh + 1) * (ow + 1)), dyp = FloatBuffer(count: n * co * (oh + 2) * (ow + 2))
            hm_conv3x3_split2(x.pointer, xq.pointer, Int32(c), Int32(h), Int32(w), Int32(n))
            hm_conv3x3_pad(dy.pointer, dyp.pointer, Int32(co), Int32(oh), Int32(ow), Int32(n))
            let dyb = FloatBuffer(count: dy.count)
            hm_conv3x3_block(dy.pointer, dyb.pointer, Int32(co), Int32(oh), Int32(ow), Int32(n))
            let scratch = FloatBuffer(count: n * oh * ow * 32), parts = FloatBuffer(count: n * c * oh * ow)
            // [y, dx overwritten, dx added to, dW] at this level, then by the portable loops
            var results: [[[UInt32]]] = []
            for l in [level, 0] {
                XCTAssertEqual(hm_conv3x3_limit(l), l)
                let y = FloatBuffer(count: dy.count), dx = FloatBuffer(count: x.count), dw = FloatBuffer(count: weights.count)
                let added = buffer(Array(repeating: 0.25, count: x.count))
                for i in 0..<dx.count { dx[i] = .nan }
                hm_conv3x3_s2(xq.pointer, wf.pointer, y.pointer, Int32(c), Int32(co), Int32(oh), Int32(ow), Int32(n), scratch.pointer)
                hm_conv3x3_s2_input_grad(dyp.pointer, wc.pointer, dx.pointer, Int32(c), Int32(co), Int32(oh), Int32(ow), Int32(n), 0,
                                         scratch.pointer, parts.pointer)
                hm_conv3x3_s2_input_grad(dyp.pointer, wc.pointer, added.pointer, Int32(c), Int32(co), Int32(oh), Int32(ow), Int32(n), 1,
                                         scratch.pointer, parts.pointer)
                for first in [1, 0] as [Int32] {
                    hm_conv3x3_s2_weight_grad(xq.pointer, dyb.pointer, dw.pointer, Int32(c), Int32(co), Int32(oh), Int32(ow), Int32(n), first)
                }
                XCTAssertFalse(dx.array.contains { $0.isNaN }, "every input gradient written, \(what)")
                // Image by image: the same bits as the whole call, however it groups the images.
                let single = FloatBuffer(count: y.count)
                for b in 0..<n {
                    hm_conv3x3_s2(xq.pointer + b * c * 4 * (oh + 1) * (ow + 1), wf.pointer, single.pointer + b * co * oh * ow, Int32(c),
                                  Int32(co), Int32(oh), Int32(ow), 1, scratch.pointer)
                }
                XCTAssertEqual(single.array.map(\.bitPattern), y.array.map(\.bitPattern), "forward image by image, \(what)")
                results.append([y, dx, added, dw].map { $0.array.map(\.bitPattern) })
            }
            for (i, name) in ["forward", "input gradient", "input gradient added", "weight gradient"].enumerated() {
                XCTAssertEqual(results[0][i], results[1][i], "\(name) \(what)")
            }
        }
    }

    /// Under the exact reduction the blocked weight gradients of several chunks go to the
    /// fixed-point sum together, one output block at a time: the same integers and the same range
    /// verdict as unpacking each whole and adding it, chunk after chunk; for three chunks in one
    /// call, and one at a time; with the AVX-512 transposes and with the portable ones.
    func testWeightGradientsReachTheFixedPointSumAsUnpacked() throws {
        let best = hm_conv3x3_available()
        defer { XCTAssertEqual(hm_conv3x3_limit(-1), best) }
        var rng = TestRNG(33)
        let (c, co) = (32, 48), count = 32 * 48 * 9
        let factor = FixedPoint.factor(scale: 1.0 / 128)
        for level in Set([best, 0]) {
            XCTAssertEqual(hm_conv3x3_limit(level), level)
            let chunks = [buffer(rng.floats(count)), buffer(rng.floats(count)), buffer(rng.floats(count, -3, 2))]
            let pointers: [UnsafePointer<Float>?] = chunks.map { UnsafePointer($0.pointer) }
            var e = [Int64](repeating: 0, count: count), f = e, g = e
            let unpacked = FloatBuffer(count: count), block = FloatBuffer(count: 16 * c * 9)
            for (i, chunk) in chunks.enumerated() {
                hm_conv3x3_unpack_weight_grad(chunk.pointer, unpacked.pointer, Int32(c), Int32(co))
                XCTAssertEqual(hm_fixed_accumulate(unpacked.pointer, &e, count, factor, i == 0 ? 1 : 0), 1, "level \(level)")
                XCTAssertEqual(hm_conv3x3_accumulate_weight_grads([pointers[i]], 1, block.pointer, &f, Int32(c), Int32(co), factor,
                                                                  i == 0 ? 1 : 0), 1, "level \(level)")
            }
            XCTAssertEqual(hm_conv3x3_accumulate_weight_grads(pointers, 3, block.pointer, &g, Int32(c), Int32(co), factor, 1), 1)
            XCTAssertEqual(f, e, "level \(level), one at a time")
            XCTAssertEqual(g, e, "level \(level), three in one call")
            XCTAssert(e.contains { $0 != 0 })
            // A value past the range in the last output block of the second chunk: all say so.
            chunks[1].pointer[count - 5] = 1e30
            hm_conv3x3_unpack_weight_grad(chunks[1].pointer, unpacked.pointer, Int32(c), Int32(co))
            XCTAssertEqual(hm_fixed_accumulate(unpacked.pointer, &e, count, factor, 0), 0)
            XCTAssertEqual(hm_conv3x3_accumulate_weight_grads([pointers[1]], 1, block.pointer, &f, Int32(c), Int32(co), factor, 0), 0)
            XCTAssertEqual(hm_conv3x3_accumulate_weight_grads(pointers, 3, block.pointer, &g, Int32(c), Int32(co), factor, 0), 0)
        }
    }

    /// Only 3x3 convolutions with padding 1 and channels in 16s, stride 1 or stride 2 on an even
    /// input, take the direct path.
    func testWhichLayersQualify() throws {
        try XCTSkipIf(hm_conv3x3_available() == 0, "this CPU has neither AVX-512 nor AVX2")
        DirectConvolution.enabled = true  // the default on CPUs with AVX-512, HIDDEN_MPI_CONV=avx2 on those with AVX2
        let cases: [(Shape, Int, Int, Int, Int, Bool)] = [  // input, out channels, kernel, stride, padding, direct
            (Shape([16, 8, 8]), 16, 3, 1, 1, true),
            (Shape([64, 32, 32]), 128, 3, 1, 1, true),
            (Shape([3, 32, 32]), 64, 3, 1, 1, false),   // the RGB stem
            (Shape([16, 8, 8]), 24, 3, 1, 1, false),
            (Shape([16, 8, 8]), 16, 3, 2, 1, true),     // stride 2 on an even input
            (Shape([16, 7, 8]), 16, 3, 2, 1, false),    // an odd height
            (Shape([16, 8, 9]), 16, 3, 2, 1, false),    // an odd width
            (Shape([16, 8, 8]), 16, 1, 1, 0, false),    // 1x1
            (Shape([16, 8, 8]), 16, 5, 1, 2, false),
            (Shape([16, 8, 8]), 16, 3, 1, 0, false),
        ]
        for (input, co, kernel, stride, padding, expected) in cases {
            let layer = try MaskedConv2d(input: input, outChannels: co, kernel: kernel, stride: stride, padding: padding, k: 0.5)
            XCTAssertEqual(layer.direct != nil, expected, "\(input) -> \(co) k\(kernel) s\(stride) p\(padding)")
        }
        BLASThreads.set(2)
        XCTAssertNil(try MaskedConv2d(input: Shape([16, 8, 8]), outChannels: 16, k: 0.5).direct, "two BLAS threads: sgemm's")
        BLASThreads.set(1)
        DirectConvolution.enabled = false
        XCTAssertNil(try MaskedConv2d(input: Shape([16, 8, 8]), outChannels: 16, k: 0.5).direct, "HIDDEN_MPI_CONV=im2col")
    }
}
