// The fully connected layers' own kernels (CKernels/linear.c, MaskedLinear): against sums in
// double, AVX-512 and AVX2 against the portable loops bit for bit, a sample's results independent
// of the other samples of a call (what lets a rank run its whole batch in one call), the weight
// gradient's fixed-point sum equal to one call per chunk, its range verdict, and the fc model
// chunked (the exact path) against one batch (the float path).

import CKernels
import XCTest
@testable import HiddenNetworks

final class LinearKernelTests: XCTestCase {
    /// (samples, inputs, outputs): tiles with samples and outputs left over, inputs across the
    /// forward's k-blocks (1024) with a vector tail, a single value, and shapes of fc and conv4.
    let shapes: [(n: Int, inputs: Int, outputs: Int)] = [
        (13, 1100, 11), (7, 20, 7), (9, 2100, 13), (1, 5, 1), (6, 64, 6), (5, 300, 100), (4, 16, 3), (3, 1024, 25),
    ]

    var levels: [Int32] { Array(0...hm_conv3x3_available()) }

    struct Results: Equatable {
        var y: [Float], dx: [Float], sums: [Int64]
    }

    func run(_ x: [Float], _ w: [Float], _ dy: [Float], n: Int, inputs: Int, outputs: Int, chunk: Int, level: Int32,
             factor: Double = 0x1p30) -> (Results, Bool) {
        var y = [Float](repeating: .nan, count: n * outputs), dx = [Float](repeating: .nan, count: n * inputs)
        var sums = [Int64](repeating: 7, count: outputs * inputs)
        hm_linear_forward(x, w, &y, n, inputs, outputs, level)
        hm_linear_input_grad(dy, w, &dx, n, inputs, outputs, level)
        let ok = hm_linear_weight_grad_fixed(dy, x, n, chunk, inputs, outputs, &sums, factor, 1, level)
        return (Results(y: y, dx: dx, sums: sums), ok != 0)
    }

    /// `got` against the sum of the products in double, to 1e-6 of the sum of their magnitudes
    /// (plus `slack`: the fixed point's rounding of each chunk).
    func assertSum(_ got: Double, of pairs: [(Float, Float)], slack: Double = 1e-30, _ what: String,
                   file: StaticString = #filePath, line: UInt = #line) {
        let products = pairs.map { Double($0.0) * Double($0.1) }
        XCTAssertEqual(got, products.reduce(0, +), accuracy: 1e-6 * products.map(abs).reduce(0, +) + slack, what, file: file, line: line)
    }

    func testKernelsMatchPortableLoopsBitForBitAndDoubleSums() {
        var rng = TestRNG(41)
        for s in shapes {
            let x = rng.floats(s.n * s.inputs), w = rng.floats(s.outputs * s.inputs), dy = rng.floats(s.n * s.outputs)
            let (portable, ok) = run(x, w, dy, n: s.n, inputs: s.inputs, outputs: s.outputs, chunk: 4, level: 0)
            XCTAssertTrue(ok)
            for level in levels.dropFirst() {
                let (r, ok) = run(x, w, dy, n: s.n, inputs: s.inputs, outputs: s.outputs, chunk: 4, level: level)
                XCTAssertTrue(ok)
                XCTAssertEqual(r.y.map(\.bitPattern), portable.y.map(\.bitPattern), "forward, level \(level), \(s)")
                XCTAssertEqual(r.dx.map(\.bitPattern), portable.dx.map(\.bitPattern), "input gradient, level \(level), \(s)")
                XCTAssertEqual(r.sums, portable.sums, "weight gradient, level \(level), \(s)")
            }
            // Against the sums in double.
            for b in 0..<s.n {
                for o in 0..<s.outputs {
                    assertSum(Double(portable.y[b * s.outputs + o]), of: (0..<s.inputs).map { (x[b * s.inputs + $0], w[o * s.inputs + $0]) }, "y \(s)")
                }
                for i in 0..<s.inputs {
                    assertSum(Double(portable.dx[b * s.inputs + i]), of: (0..<s.outputs).map { (dy[b * s.outputs + $0], w[$0 * s.inputs + i]) }, "dx \(s)")
                }
            }
            let chunks = Double((s.n + 3) / 4)
            for o in 0..<s.outputs {
                for i in stride(from: 0, to: s.inputs, by: max(1, s.inputs / 37)) {
                    assertSum(Double(portable.sums[o * s.inputs + i]) * 0x1p-30, of: (0..<s.n).map { (dy[$0 * s.outputs + o], x[$0 * s.inputs + i]) },
                              slack: chunks * 0x1p-31, "dW \(s)")
                }
            }
        }
    }

    /// Each sample alone gives the bits it gets in the whole batch; the weight gradient of the
    /// whole batch in chunks of 3 gives the integers of one call per chunk, adding, and of
    /// hm_fixed_accumulate of each chunk's float sums.
    func testSamplesDoNotDependOnTheRestOfTheCall() {
        var rng = TestRNG(42)
        for level in levels {
            for s in shapes {
                let x = rng.floats(s.n * s.inputs), w = rng.floats(s.outputs * s.inputs), dy = rng.floats(s.n * s.outputs)
                let (whole, _) = run(x, w, dy, n: s.n, inputs: s.inputs, outputs: s.outputs, chunk: 3, level: level)
                var sums = [Int64](repeating: 0, count: s.outputs * s.inputs)
                for b in 0..<s.n {
                    let xb = Array(x[b * s.inputs..<(b + 1) * s.inputs]), dyb = Array(dy[b * s.outputs..<(b + 1) * s.outputs])
                    let (one, _) = run(xb, w, dyb, n: 1, inputs: s.inputs, outputs: s.outputs, chunk: 3, level: level)
                    XCTAssertEqual(one.y.map(\.bitPattern), whole.y[b * s.outputs..<(b + 1) * s.outputs].map(\.bitPattern),
                                   "forward of sample \(b), level \(level), \(s)")
                    XCTAssertEqual(one.dx.map(\.bitPattern), whole.dx[b * s.inputs..<(b + 1) * s.inputs].map(\.bitPattern),
                                   "input gradient of sample \(b), level \(level), \(s)")
                }
                var floatChunk = [Float](repeating: 0, count: s.outputs * s.inputs)
                var viaFloats = [Int64](repeating: 0, count: s.outputs * s.inputs)
                for c0 in stride(from: 0, to: s.n, by: 3) {
                    let c1 = min(c0 + 3, s.n)
                    XCTAssertEqual(hm_linear_weight_grad_fixed(Array(dy[c0 * s.outputs..<c1 * s.outputs]),
                                                               Array(x[c0 * s.inputs..<c1 * s.inputs]), c1 - c0, 3,
                                                               s.inputs, s.outputs, &sums, 0x1p30, c0 == 0 ? 1 : 0, level), 1)
                    // The chunk's float sums (fused multiply-adds over its samples in order), then fixed point.
                    for o in 0..<s.outputs {
                        for i in 0..<s.inputs {
                            var g: Float = 0
                            for b in c0..<c1 { g = g.addingProduct(dy[b * s.outputs + o], x[b * s.inputs + i]) }
                            floatChunk[o * s.inputs + i] = g
                        }
                    }
                    XCTAssertEqual(hm_fixed_accumulate(floatChunk, &viaFloats, floatChunk.count, 0x1p30, c0 == 0 ? 1 : 0), 1)
                }
                XCTAssertEqual(sums, whole.sums, "weight gradient chunk by chunk, level \(level), \(s)")
                XCTAssertEqual(viaFloats, whole.sums, "weight gradient through hm_fixed_accumulate, level \(level), \(s)")
            }
        }
    }

    /// A value whose fixed-point form would not fit (or NaN) makes the call say so, on every level.
    func testOutOfRangeIsReported() {
        for level in levels {
            for bad: Float in [1e20, .nan] {
                var x = [Float](repeating: 1, count: 3 * 40), dy = [Float](repeating: 1, count: 3 * 5)
                x[2 * 40 + 37] = bad
                dy[0] = 1
                var sums = [Int64](repeating: 0, count: 5 * 40)
                XCTAssertEqual(hm_linear_weight_grad_fixed(dy, x, 3, 2, 40, 5, &sums, 0x1p40, 1, level), 0, "\(bad), level \(level)")
                x[2 * 40 + 37] = 1
                XCTAssertEqual(hm_linear_weight_grad_fixed(dy, x, 3, 2, 40, 5, &sums, 0x1p40, 1, level), 1, "level \(level)")
            }
        }
    }

    /// The fc model on a batch of 7: as one batch (the float path) and in chunks of 3 (the exact
    /// path, the kernels' fixed-point weight gradient): the same logits and mean-loss score
    /// gradients up to float rounding; the layers run the own kernels where the CPU allows.
    func testChunkedFCMatchesUnchunked() throws {
        let (threads, enabled) = (BLASThreads.current, DirectConvolution.enabled)
        defer { BLASThreads.set(threads); DirectConvolution.enabled = enabled }
        BLASThreads.set(1)
        for own in [true, false] {
            DirectConvolution.enabled = own
            let config = ModelConfig(architecture: .fc, width: 0.5, k: 0.5, weightInit: .signedConstant, seed: 5,
                                     inputShape: Shape([1, 28, 28]), classes: 10)
            let batch = 7
            let plain = try Model(config, maxBatch: batch)
            let chunked = try Model(config, maxBatch: 9, chunk: 3)
            let linears = chunked.allLayers.compactMap { $0 as? MaskedLinear }
            XCTAssertEqual(linears.count, 3)
            XCTAssertTrue(linears.allSatisfy { ($0.kernelLevel != nil) == (own && hm_conv3x3_available() != 0) })
            var rng = TestRNG(3)
            let x = rng.floats(batch * config.inputShape.count)
            let labels: [Int32] = (0..<batch).map { Int32($0 % 10) }
            let results = [plain, chunked].map { ChunkedModelTests.step($0, x, labels: labels, batch: batch) }
            assertAllClose(results[1].logits, results[0].logits, rtol: 1e-5, atol: 1e-6, "logits, own kernels \(own)")
            assertAllClose(results[1].grads, results[0].grads.map { $0 / Float(batch) }, rtol: 1e-3, atol: 1e-6,
                           "score gradients, own kernels \(own)")
            XCTAssertFalse(chunked.plan.outOfRange)
            XCTAssertGreaterThan(results[1].grads.map(abs).max() ?? 0, 0)
        }
    }
}
