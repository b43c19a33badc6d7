// The ResNet layers' backward passes against central finite differences of L = sum(y * r) for a
// fixed random r (dL/dy = r), and their forward passes against naive double-precision references:
// non-affine batch norm (training and evaluation), strided and 1x1 convolutions (the pointwise
// sgemm path and the strided projection), the 3x3/2 pad 1 max-pool, global average pooling, and
// whole residual blocks (basic and bottleneck, identity and projection shortcuts).
//
// Batch norm itself is smooth; inside a residual block the ReLUs make L piecewise smooth, and in
// training mode one perturbed input moves every unit of its channel through the batch statistics.
// So the block checks record the block's activation pattern (the sign of every ReLU input, the
// block's final sum included) and accept a central difference only over steps that keep it, and
// only once two successive steps agree (patternPreservingDerivative, at the end of this file); a
// point where no steps do sits on or next to a kink and is skipped, counted: at most a tenth may.

import XCTest
@testable import HiddenNetworks

final class ResNetLayerGradientTests: XCTestCase {
    let gradients = LayerGradientCheck()

    // MARK: batch norm

    /// Naive per-channel batch statistics in double: mean and biased variance over batch and positions.
    func channelStats(_ x: [Float], batch: Int, channels: Int, plane: Int) -> [(mean: Double, variance: Double)] {
        (0..<channels).map { c in
            var values: [Double] = []
            for b in 0..<batch { for i in 0..<plane { values.append(Double(x[(b * channels + c) * plane + i])) } }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            return (mean, variance)
        }
    }

    func testBatchNormTrainingGradients() {
        // (input shape, batch): images, batch 1 with several positions, [C] inputs (plane 1).
        let table: [(Shape, Int)] = [
            (Shape([3, 4, 5]), 2),
            (Shape([2, 3, 3]), 1),
            (Shape([4, 2, 1]), 3),
            (Shape([5]), 4),
            (Shape([1, 1, 1]), 6),
        ]
        var rng = TestRNG(40)
        for (input, batch) in table {
            let what = "batchnorm \(input) batch \(batch)"
            let context = BatchNormContext()
            context.training = true
            let layer = BatchNorm2d(input: input, context: context)
            XCTAssertEqual(layer.outputShape, input)
            // Channels with their own offset and spread (mean far from 0 tests the cancellation).
            let channels = input.dims[0], plane = input.count / channels
            var values = [Float](repeating: 0, count: batch * input.count)
            for c in 0..<channels {
                let offset = Float(c) * 1.5 - 1, spread = 0.5 + Float(c)
                for b in 0..<batch { for i in 0..<plane { values[(b * channels + c) * plane + i] = offset + spread * rng.uniform(-1, 1) } }
            }
            let x = buffer(values)
            let r = rng.floats(batch * input.count)
            gradients.checkInputGradient(layer, x, batch: batch, r, what)
        }
    }

    func testBatchNormForwardAndRunningStatistics() {
        // (input shape, batch)
        let table: [(Shape, Int)] = [
            (Shape([3, 4, 5]), 2),
            (Shape([2, 3, 3]), 1),
            (Shape([6]), 5),
            (Shape([2, 1, 1]), 2),  // two values a channel: unbiased = 2 x biased
        ]
        var rng = TestRNG(41)
        for (input, batch) in table {
            let what = "batchnorm \(input) batch \(batch)"
            let context = BatchNormContext()
            let layer = BatchNorm2d(input: input, context: context)
            let channels = input.dims[0], plane = input.count / channels, n = Double(batch * plane)
            XCTAssertEqual(layer.channels, channels, what)
            XCTAssertEqual(layer.running.pointee, 0, "\(what): initial running mean")
            XCTAssertEqual(layer.running[channels], 1, "\(what): initial running variance")

            // Two training steps on different data: running = 0.9 running + 0.1 (mean, unbiased var).
            context.training = true
            var expectedMean = [Double](repeating: 0, count: channels), expectedVar = [Double](repeating: 1, count: channels)
            for step in 0..<2 {
                let values = (0..<(batch * input.count)).map { i in 2 + Float(i % channels) + 3 * rng.uniform(-1, 1) }
                let y = gradients.forwardOutput(layer, buffer(values), batch: batch)
                let stats = channelStats(values, batch: batch, channels: channels, plane: plane)
                let out = channelStats(y, batch: batch, channels: channels, plane: plane)
                for c in 0..<channels {
                    let (mean, variance) = stats[c]
                    assertClose(out[c].mean, 0, atol: 1e-5, "\(what) step \(step) channel \(c): output mean")
                    assertClose(out[c].variance, variance / (variance + 1e-5), rtol: 1e-5, "\(what) step \(step) channel \(c): output variance")
                    assertClose(out[c].variance, 1, rtol: 1e-3, "\(what) step \(step) channel \(c): output variance")
                    // Each output against the naive formula.
                    for b in 0..<batch {
                        for i in 0..<plane {
                            let k = (b * channels + c) * plane + i
                            assertClose(Double(y[k]), (Double(values[k]) - mean) / (variance + 1e-5).squareRoot(), rtol: 1e-4, atol: 1e-5,
                                        "\(what) step \(step) y[\(k)]")
                        }
                    }
                    expectedMean[c] = 0.9 * expectedMean[c] + 0.1 * mean
                    expectedVar[c] = 0.9 * expectedVar[c] + 0.1 * variance * n / (n - 1)
                    assertClose(Double(layer.running[c]), expectedMean[c], rtol: 1e-5, atol: 1e-6, "\(what) step \(step) channel \(c): running mean")
                    assertClose(Double(layer.running[channels + c]), expectedVar[c], rtol: 1e-5, atol: 1e-6,
                                "\(what) step \(step) channel \(c): running variance (unbiased)")
                }
            }
            // (n / (n - 1) is at least 1.025 here: a biased update would miss the 1e-5 tolerance.)

            // Evaluation: the running statistics, not the batch's; and they stay as they are.
            context.training = false
            let running = (0..<(2 * channels)).map { layer.running[$0] }
            let values = rng.floats(batch * input.count, -3, 3)
            let y = gradients.forwardOutput(layer, buffer(values), batch: batch)
            for b in 0..<batch {
                for c in 0..<channels {
                    for i in 0..<plane {
                        let k = (b * channels + c) * plane + i
                        let expected = (Double(values[k]) - Double(running[c])) / (Double(running[channels + c]) + 1e-5).squareRoot()
                        assertClose(Double(y[k]), expected, rtol: 1e-5, atol: 1e-6, "\(what) evaluation y[\(k)]")
                    }
                }
            }
            XCTAssertEqual((0..<(2 * channels)).map { layer.running[$0] }, running, "\(what): evaluation changed the running statistics")
        }
    }

    // MARK: convolutions

    /// y[b, o, oy, ox] = sum over c, ki, kj of W[o, c, ki, kj] x[b, c, oy s - p + ki, ox s - p + kj], zero outside, in double.
    func naiveConvolution(_ layer: MaskedConv2d, _ x: [Float], batch: Int) -> [Float] {
        let (c, h, w, co, kk, s, p) = (layer.inChannels, layer.height, layer.width, layer.outChannels, layer.kernel, layer.stride, layer.padding)
        let (oh, ow) = ((h + 2 * p - kk) / s + 1, (w + 2 * p - kk) / s + 1)
        var y = [Float](repeating: 0, count: batch * co * oh * ow)
        for b in 0..<batch {
            for o in 0..<co {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var sum = 0.0
                        for ci in 0..<c {
                            for ki in 0..<kk {
                                for kj in 0..<kk {
                                    let iy = oy * s - p + ki, ix = ox * s - p + kj
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    sum += Double(layer.weights.effective[((o * c + ci) * kk + ki) * kk + kj]) * Double(x[((b * c + ci) * h + iy) * w + ix])
                                }
                            }
                        }
                        y[((b * co + o) * oh + oy) * ow + ox] = Float(sum)
                    }
                }
            }
        }
        return y
    }

    func testStridedAndPointwiseConvolutions() throws {
        // (C, H, W, out channels, kernel, stride, padding, batch, k)
        let table: [(Int, Int, Int, Int, Int, Int, Int, Int, Double)] = [
            (3, 7, 7, 4, 3, 2, 1, 2, 0.5),   // the ResNets' strided 3x3, odd size
            (2, 8, 9, 3, 3, 2, 1, 1, 0.3),   // even height
            (2, 9, 9, 2, 7, 2, 3, 2, 0.5),   // the ImageNet stem 7x7/2 pad 3
            (1, 6, 5, 2, 7, 2, 3, 1, 0.5),   // the stem on an image smaller than its window
            (4, 5, 6, 3, 1, 1, 0, 3, 0.5),   // 1x1 stride 1: the pointwise sgemm path
            (5, 3, 4, 6, 1, 1, 0, 2, 0.3),   // pointwise, widening
            (4, 7, 6, 5, 1, 2, 0, 2, 0.5),   // 1x1 stride 2: the projection shortcut, odd height
            (3, 6, 6, 4, 1, 2, 0, 2, 0.5),   // projection, even size
        ]
        var rng = TestRNG(42)
        for (c, h, w, co, kernel, stride, padding, batch, k) in table {
            let what = "conv \(c)x\(h)x\(w) -> \(co) k\(kernel) s\(stride) p\(padding) batch \(batch)"
            let layer = try MaskedConv2d(input: Shape([c, h, w]), outChannels: co, kernel: kernel, stride: stride, padding: padding, k: k)
            XCTAssertEqual(layer.outputShape, Shape([co, (h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1]), what)
            let arena = prepare(layer.weights, rng: &rng)
            let values = rng.floats(batch * c * h * w)
            let x = buffer(values)
            let r = rng.floats(batch * layer.outputShape.count)
            // One image per sgemm (nothing reserved), then the whole batch side by side in one
            // (reserved: these images are far below columnsPerGEMM positions).
            for grouped in batch > 1 ? [false, true] : [false] {
                if grouped { layer.reserve(batch: batch) }
                let mode = "\(what) \(grouped ? "grouped" : "per image")"
                // Forward against the loop convolution (with a garbage-filled output: every entry written).
                let y = FloatBuffer(count: batch * layer.outputShape.count)
                for i in 0..<y.count { y[i] = .nan }
                layer.forward(x.pointer, y.pointer, batch: batch)
                XCTAssertEqual(layer.group, grouped ? batch : 1, "\(mode): images per sgemm")
                assertAllClose(y.array, naiveConvolution(layer, values, batch: batch), rtol: 1e-5, atol: 1e-5, "\(mode) forward")
                gradients.checkInputGradient(layer, x, batch: batch, r, mode)
                gradients.checkWeightGradients(layer, layer.weights, arena, x, batch: batch, r, mode)
            }
        }
    }

    // MARK: pooling

    func testMaxPool3x3Stride2Padding1() throws {
        // (C, H, W, batch): odd, even, non-square, and images barely larger than the window.
        let table: [(Int, Int, Int, Int)] = [(2, 7, 7, 2), (1, 8, 8, 2), (2, 6, 9, 1), (1, 3, 3, 3), (1, 2, 2, 1), (3, 5, 4, 1)]
        var rng = TestRNG(43)
        for (c, h, w, batch) in table {
            let what = "maxpool3/2/1 \(c)x\(h)x\(w) batch \(batch)"
            let layer = try MaxPool2d(input: Shape([c, h, w]), kernel: 3, stride: 2, padding: 1)
            let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1)
            XCTAssertEqual(layer.outputShape, Shape([c, oh, ow]), what)
            let n = batch * c * h * w
            // Distinct values 0.05 apart: no ties, and a step of 0.01 never changes a window's maximum.
            let values = (0..<n).map { Float($0) * 0.05 - 2 }.shuffled(using: &rng)
            let x = buffer(values)
            // Forward against the maximum over the window, padding as -infinity; all negative too,
            // where padding taken as 0 would win the border windows.
            for input in [values, values.map { $0 - 10 }] {
                let y = gradients.forwardOutput(layer, buffer(input), batch: batch)
                for plane in 0..<(batch * c) {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var best = -Float.infinity
                            for ki in 0..<3 {
                                for kj in 0..<3 {
                                    let iy = oy * 2 - 1 + ki, ix = ox * 2 - 1 + kj
                                    let v = (0..<h).contains(iy) && (0..<w).contains(ix) ? input[(plane * h + iy) * w + ix] : -Float.infinity
                                    best = max(best, v)
                                }
                            }
                            XCTAssertEqual(y[(plane * oh + oy) * ow + ox], best, "\(what) plane \(plane) (\(oy), \(ox))")
                        }
                    }
                }
            }
            let r = rng.floats(batch * layer.outputShape.count)
            gradients.checkInputGradient(layer, x, batch: batch, r, what)
        }
    }

    func testGlobalAvgPool() throws {
        // (C, H, W, batch)
        let table: [(Int, Int, Int, Int)] = [(3, 4, 5, 2), (2, 1, 1, 3), (1, 7, 3, 1), (4, 2, 2, 2)]
        var rng = TestRNG(44)
        for (c, h, w, batch) in table {
            let what = "avgpool \(c)x\(h)x\(w) batch \(batch)"
            let layer = try GlobalAvgPool(input: Shape([c, h, w]))
            XCTAssertEqual(layer.outputShape, Shape([c]), what)
            let values = rng.floats(batch * c * h * w, -2, 3)
            let x = buffer(values)
            let y = gradients.forwardOutput(layer, x, batch: batch)
            for p in 0..<(batch * c) {
                let mean = values[(p * h * w)..<((p + 1) * h * w)].reduce(0.0) { $0 + Double($1) } / Double(h * w)
                assertClose(Double(y[p]), mean, rtol: 1e-5, atol: 1e-6, "\(what) y[\(p)]")
            }
            // Backward: each position gets its channel's dy / (H W), exactly as the formula says.
            let r = rng.floats(batch * c, 0.5, 2).map { rng.unit() < 0.5 ? -$0 : $0 }
            let dx = gradients.backward(layer, x, batch: batch, r)
            for i in 0..<dx.count { XCTAssertEqual(dx[i], r[i / (h * w)] * (1 / Float(h * w)), "\(what) dx[\(i)]") }
            gradients.checkInputGradient(layer, x, batch: batch, r, what)
        }
        assertThrowsHiddenError(try GlobalAvgPool(input: Shape([8])), containing: ["global average pooling needs an image input"])
    }

    // MARK: residual blocks

    /// The block's children run one by one on buffers of ours: its output relu(branch(x) + shortcut(x))
    /// and its activation pattern (the sign of every ReLU input and of the final sum).
    func runBlock(_ block: ResidualBlock, _ x: FloatBuffer, batch: Int) -> (y: [Float], pattern: [Bool]) {
        var pattern: [Bool] = []
        func run(_ layers: [Layer]) -> [Float] {
            var input = x.array
            for layer in layers {
                if layer is ReLU { pattern += input.map { $0 > 0 } }
                let out = FloatBuffer(count: batch * layer.outputShape.count)
                input.withUnsafeBufferPointer { layer.forward($0.baseAddress!, out.pointer, batch: batch) }
                input = out.array
                // Batch norm with its ReLU fused in: r > 0 exactly where the ReLU's input is.
                if let bn = layer as? BatchNorm2d, bn.relu { pattern += input.map { $0 > 0 } }
            }
            return input
        }
        let a = run(block.branch)
        let s = block.shortcut.isEmpty ? x.array : run(block.shortcut)
        let sum = zip(a, s).map { $0 + $1 }
        pattern += sum.map { $0 > 0 }
        return (sum.map { max($0, 0) }, pattern)
    }

    /// dL/dx of every input and dL/dW_eff, dL/dS of sampled edges of every convolution of the block
    /// (branch and projection), in training mode.
    func checkBlock(_ block: ResidualBlock, context: BatchNormContext, batch: Int, rng: inout TestRNG, _ what: String,
                    file: StaticString = #filePath, line: UInt = #line) {
        context.training = true
        block.reserve(batch: batch)
        let convs = block.allLayers.compactMap { $0 as? MaskedConv2d }
        let masked = convs.map(\.weights)
        let arenas = masked.map { prepare($0, rng: &rng) }
        let x = buffer(rng.floats(batch * block.inputShape.count))
        let r = rng.floats(batch * block.outputShape.count)

        // The block computes relu(branch + shortcut) of its own children, bit for bit.
        let base = runBlock(block, x, batch: batch)
        XCTAssertEqual(gradients.forwardOutput(block, x, batch: batch), base.y, "\(what): forward is not relu(branch(x) + shortcut(x))", file: file, line: line)
        let run = { () -> (loss: Double, pattern: [Bool]) in
            let out = self.runBlock(block, x, batch: batch)
            return (out.y.withUnsafeBufferPointer { dotLoss($0.baseAddress!, r) }, out.pattern)
        }

        let dx = gradients.backward(block, x, batch: batch, r)
        let effectiveGrads = masked.map { $0.effectiveGrad.array }, scoreGrads = arenas.map { $0.grads.array }
        var checked = 0, kinks = 0
        for i in 0..<x.count {
            guard let fd = patternPreservingDerivative(at: x.pointer + i, steps: [1e-2, 3e-3, 1e-3, 3e-4], basePattern: base.pattern, run) else { kinks += 1; continue }
            checked += 1
            XCTAssert(isClose(Double(dx[i]), fd, rtol: gradients.rtol, atol: gradients.atol), "\(what) dL/dx[\(i)]: analytic \(dx[i]), differences \(fd)",
                      file: file, line: line)
        }
        XCTAssert(dx.contains { abs($0) > 10 * Float(gradients.atol) }, "\(what): dL/dx is all but zero, the check is vacuous", file: file, line: line)

        XCTAssertEqual(convs.count, block.branch.filter { $0 is MaskedConv2d }.count + block.shortcut.filter { $0 is MaskedConv2d }.count, what,
                       file: file, line: line)
        for (l, m) in masked.enumerated() {
            let layerWhat = "\(what) \(block.branch.contains { $0 === convs[l] } ? "branch" : "shortcut") \(convs[l].summary)"
            let g = effectiveGrads[l]
            var biggest: Float = 0
            for j in sampledEdges(m, perKind: 4, largestOf: { g[$0] }, rng: &rng) {
                guard let fd = patternPreservingDerivative(at: m.effective.pointer + j, steps: [1e-2, 3e-3, 1e-3, 3e-4], basePattern: base.pattern, run) else { kinks += 1; continue }
                checked += 1
                biggest = max(biggest, abs(g[j]))
                XCTAssert(isClose(Double(g[j]), fd, rtol: gradients.rtol, atol: gradients.atol),
                          "\(layerWhat) dL/dW_eff[\(j)]: analytic \(g[j]), differences \(fd)", file: file, line: line)
                let factor = straightThroughFactor(score: arenas[l].scores[j], weight: m.weights[j])
                XCTAssert(isClose(Double(scoreGrads[l][j]), factor * fd, rtol: gradients.rtol, atol: gradients.atol),
                          "\(layerWhat) dL/dS[\(j)] (mask \(m.mask[j])): analytic \(scoreGrads[l][j]), sign(S) W differences \(factor * fd)",
                          file: file, line: line)
            }
            XCTAssertGreaterThan(biggest, 10 * Float(gradients.atol), "\(layerWhat): checked dL/dW_eff all but zero, the check is vacuous", file: file, line: line)
        }
        XCTAssertLessThanOrEqual(kinks, (checked + kinks) / 10, "\(what): \(kinks) of \(checked + kinks) points sit on kinks", file: file, line: line)

        // Without dx (a first layer): the same weight and score gradients, every entry rewritten
        // (poisoned first), the shortcut's too.
        for (m, arena) in zip(masked, arenas) { gradients.poison(m, arena) }
        gradients.backward(block, x, batch: batch, r, inputGradient: false)
        XCTAssertEqual(masked.map { $0.effectiveGrad.array }, effectiveGrads, "\(what): backward without dx changed dL/dW_eff", file: file, line: line)
        XCTAssertEqual(arenas.map { $0.grads.array }, scoreGrads, "\(what): backward without dx changed dL/dS", file: file, line: line)
        withExtendedLifetime(arenas) {}
    }

    func testResidualBlockGradients() throws {
        enum Kind { case basic, bottleneck(widthFactor: Int) }
        // (kind, input shape, planes, stride, batch, expect a projection)
        let table: [(Kind, Shape, Int, Int, Int, Bool)] = [
            (.basic, Shape([3, 6, 6]), 4, 2, 2, true),                       // stride 2, wider: projection
            (.basic, Shape([4, 5, 5]), 4, 1, 2, false),                      // identity
            (.basic, Shape([2, 4, 5]), 3, 1, 2, true),                       // stride 1, wider: projection
            (.bottleneck(widthFactor: 1), Shape([4, 4, 4]), 2, 1, 2, true),  // width = planes, 4 -> 8 channels
            (.bottleneck(widthFactor: 2), Shape([6, 6, 5]), 2, 2, 2, true),  // width = 2 planes (wide), stride 2
            (.bottleneck(widthFactor: 1), Shape([8, 3, 3]), 2, 1, 3, false), // identity
        ]
        var rng = TestRNG(45)
        // Twice: images grouped into one sgemm (the default for these small images), then one
        // image per sgemm, where the pointwise convolution's input gradient is added by the
        // sgemm itself (beta 1) and the 3x3's by col2im image by image.
        let grouped = MaskedConv2d.columnsPerGEMM
        defer { MaskedConv2d.columnsPerGEMM = grouped }
        for columns in [grouped, 1] {
            MaskedConv2d.columnsPerGEMM = columns
            for (kind, input, planes, stride, batch, projection) in table {
                let context = BatchNormContext()
                let block: ResidualBlock
                let what: String
                switch kind {
                case .basic:
                    block = try ResidualBlock.basic(input: input, planes: planes, stride: stride, k: 0.5, norm: context)
                    what = "basic \(input) planes \(planes) stride \(stride)"
                    XCTAssertEqual(block.branch.map(\.kind), ["conv2d", "batchnorm-relu", "conv2d", "batchnorm"], what)
                    XCTAssertEqual(block.outputShape.dims[0], planes, what)
                case .bottleneck(let factor):
                    block = try ResidualBlock.bottleneck(input: input, planes: planes, width: factor * planes, stride: stride, k: 0.5, norm: context)
                    what = "bottleneck \(input) planes \(planes) width \(factor * planes) stride \(stride)"
                    XCTAssertEqual(block.branch.map(\.kind), ["conv2d", "batchnorm-relu", "conv2d", "batchnorm-relu", "conv2d", "batchnorm"], what)
                    XCTAssertEqual(block.outputShape.dims[0], 4 * planes, what)
                    XCTAssertEqual((block.branch[2] as? MaskedConv2d)?.outChannels, factor * planes, "\(what): inner width")
                }
                let side = { (n: Int) in (n - 1) / stride + 1 }
                XCTAssertEqual(Array(block.outputShape.dims[1...]), [side(input.dims[1]), side(input.dims[2])], what)
                XCTAssertEqual(block.shortcut.map(\.kind), projection ? ["conv2d", "batchnorm"] : [], "\(what): shortcut")
                if let proj = block.shortcut.first as? MaskedConv2d {
                    XCTAssertEqual([proj.kernel, proj.stride, proj.padding], [1, stride, 0], "\(what): projection geometry")
                }
                checkBlock(block, context: context, batch: batch, rng: &rng, "\(what), columnsPerGEMM \(columns)")
            }
        }
    }
}

/// dL/dp by central differences over steps that keep the activation pattern (where L is smooth),
/// accepted once two successive such steps agree within half the tests' tolerance (rtol 1e-2,
/// atol 1e-3), so that curvature no longer matters: the smaller step's estimate, whose truncation
/// error is then about an eighth of their difference. Nil where no two successive steps keep the
/// pattern and agree: a kink (a ReLU input at 0, a max-pool tie), or a point too close to one for
/// the steps tried. Shared by the residual block and whole-model checks.
func patternPreservingDerivative<Pattern: Equatable>(at p: UnsafeMutablePointer<Float>, steps: [Float], basePattern: Pattern,
                                                     _ run: () -> (loss: Double, pattern: Pattern)) -> Double? {
    let orig = p.pointee
    defer { p.pointee = orig }
    var previous: Double?
    for step in steps {
        p.pointee = orig + step
        let plus = run(), hi = Double(p.pointee)
        p.pointee = orig - step
        let minus = run(), lo = Double(p.pointee)
        guard plus.pattern == basePattern && minus.pattern == basePattern else { previous = nil; continue }
        let d = (plus.loss - minus.loss) / (hi - lo)
        if let previous, isClose(previous, d, rtol: 5e-3, atol: 5e-4) { return d }
        previous = d
    }
    return nil
}
