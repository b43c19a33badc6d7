// Batch norm with its ReLU fused in (BatchNorm2d(relu: true), the ResNets' "bn+relu"): bit for
// bit what a batch norm followed by a separate ReLU computes (outputs, input gradients, the affine
// layer's dgamma and dbeta, running statistics; training under the float and the exact sums, and
// evaluation), on planes with and without vector tails; and its input gradient against central
// differences, on inputs kept away from the ReLU's kink. And a residual block's end, its last
// batch norm with the add and the ReLU in one pass: bit for bit the three one by one.

import XCTest
@testable import HiddenNetworks

final class FusedBatchNormReLUTests: XCTestCase {
    let gradients = LayerGradientCheck()

    /// A batch norm (plain or fused) with its own context and, for the affine one, gamma and beta
    /// set from `params` (a copy, so that the two layers compared start equal).
    func makeLayer(_ input: Shape, relu: Bool, affine: Bool, exact: Bool, params: [Float]) -> (BatchNorm2d, ScoreArena?, BatchNormContext) {
        let context = BatchNormContext(affine: affine)
        context.training = true
        if exact {
            context.plan = ChunkPlan(chunk: 2)
            context.communicator = SingleProcessCommunicator()
        }
        let bn = BatchNorm2d(input: input, context: context, relu: relu)
        var arena: ScoreArena?
        if let m = bn.affine {
            m.configure(method: .dense, layer: 0, seed: 0)
            let a = ScoreArena(params)
            m.bind(scores: a.scores.pointer, scoreGrad: a.grads.pointer)
            m.updateMask()
            arena = a
        }
        return (bn, arena, context)
    }

    func testFusedIsBitIdenticalToBatchNormThenReLU() {
        // (shape, batch): planes of 35 (tails of 3 and 11 lanes), 16 (none), 1, and [C] inputs.
        let table: [(Shape, Int)] = [(Shape([3, 5, 7]), 3), (Shape([2, 4, 4]), 2), (Shape([4, 1, 1]), 6), (Shape([5]), 4)]
        var rng = TestRNG(77)
        for (input, batch) in table {
            for affine in [false, true] {
                for exact in affine ? [false] : [false, true] {
                    let what = "\(input) batch \(batch)\(affine ? " affine" : "")\(exact ? " exact" : "")"
                    let C = input.dims[0], n = batch * input.count
                    let params = (0..<C).map { _ in rng.uniform(0.5, 1.5) } + (0..<C).map { _ in rng.uniform(-0.5, 0.5) }
                    let (plain, plainArena, plainContext) = makeLayer(input, relu: false, affine: affine, exact: exact, params: params)
                    let (fused, fusedArena, fusedContext) = makeLayer(input, relu: true, affine: affine, exact: exact, params: params)
                    XCTAssertEqual(fused.kind, "batchnorm-relu")
                    plain.reserve(batch: batch); fused.reserve(batch: batch)
                    let relu = ReLU(input: input)
                    for step in 0..<2 {
                        // Exact zeros and -0 among the inputs and the upstream gradients too.
                        let x = buffer((0..<n).map { i in i % 11 == 0 ? 0 : rng.uniform(-2, 3) })
                        let dyValues = (0..<n).map { i in i % 7 == 0 ? -0.0 : rng.uniform(-1, 1) }
                        let y = FloatBuffer(count: n), r = FloatBuffer(count: n), fusedOut = FloatBuffer(count: n)
                        plain.forward(x.pointer, y.pointer, batch: batch)
                        relu.forward(y.pointer, r.pointer, batch: batch)
                        fused.forward(x.pointer, fusedOut.pointer, batch: batch)
                        XCTAssertEqual(bits(fusedOut), bits(r), "\(what) step \(step): forward")

                        let dy = buffer(dyValues), g = FloatBuffer(count: n), dx = FloatBuffer(count: n), fusedDx = FloatBuffer(count: n)
                        relu.backward(y.pointer, r.pointer, dy.pointer, g.pointer, batch: batch)
                        plain.backward(x.pointer, y.pointer, g.pointer, dx.pointer, batch: batch)
                        fused.backward(x.pointer, fusedOut.pointer, dy.pointer, fusedDx.pointer, batch: batch)
                        XCTAssertEqual(bits(fusedDx), bits(dx), "\(what) step \(step): dL/dx")
                        if let plainArena, let fusedArena {
                            XCTAssertEqual(bits(fused.affine!.effectiveGrad), bits(plain.affine!.effectiveGrad), "\(what): dgamma, dbeta")
                            XCTAssertEqual(bits(fusedArena.grads), bits(plainArena.grads), "\(what): their score gradients")
                        }
                        XCTAssertEqual(Array(UnsafeBufferPointer(start: fused.running, count: 2 * C)),
                                       Array(UnsafeBufferPointer(start: plain.running, count: 2 * C)), "\(what) step \(step): running statistics")
                    }
                    plainContext.training = false; fusedContext.training = false
                    let x = buffer(rng.floats(n, -2, 3))
                    let y = FloatBuffer(count: n), r = FloatBuffer(count: n), fusedOut = FloatBuffer(count: n)
                    plain.forward(x.pointer, y.pointer, batch: batch)
                    relu.forward(y.pointer, r.pointer, batch: batch)
                    fused.forward(x.pointer, fusedOut.pointer, batch: batch)
                    XCTAssertEqual(bits(fusedOut), bits(r), "\(what): evaluation")
                    XCTAssert(r.array.contains(0) && r.array.contains { $0 > 0 }, "\(what): the ReLU cut some values and passed others")
                }
            }
        }
    }

    func testFusedInputGradientAgainstFiniteDifferences() {
        let table: [(Shape, Int)] = [(Shape([3, 4, 5]), 2), (Shape([2, 3, 3]), 2), (Shape([4]), 6)]
        var rng = TestRNG(78)
        for (input, batch) in table {
            let what = "batchnorm-relu \(input) batch \(batch)"
            let context = BatchNormContext()
            context.training = true
            let layer = BatchNorm2d(input: input, context: context, relu: true)
            // Per channel, values offset +- z in pairs, |z| in [0.3, 2]: the mean is the offset and
            // every x-hat is at least 0.3 / 2 from the kink, far beyond what eps moves it.
            let channels = input.dims[0], plane = input.count / channels, count = batch * plane
            var values = [Float](repeating: 0, count: batch * input.count)
            for c in 0..<channels {
                let offset = Float(c) - 1
                var z: [Float] = []
                for _ in 0..<(count / 2) { let v = rng.uniform(0.3, 2); z += [v, -v] }
                z.shuffle(using: &rng)
                for (j, v) in z.enumerated() { values[((j / plane) * channels + c) * plane + j % plane] = offset + v }
            }
            let x = buffer(values)
            let out = gradients.forwardOutput(layer, x, batch: batch)
            XCTAssert(out.contains(0) && out.contains { $0 > 0 }, "\(what): the ReLU cut some values and passed others")
            gradients.checkInputGradient(layer, x, batch: batch, rng.floats(batch * input.count), what)
        }
    }

    /// Basic and bottleneck blocks, with the identity and a projection, under the float and the
    /// exact sums, with and without dx: the fused end gives the bits of the unfused one in every
    /// output, input gradient, weight and score gradient and running statistic, over two steps.
    func testFusedBlockEndIsBitIdenticalToItsLayersOneByOne() throws {
        // (bottleneck, input, planes, stride, batch)
        let table: [(Bool, Shape, Int, Int, Int)] = [
            (false, Shape([4, 5, 5]), 4, 1, 3),  // identity, planes of 25 (a tail of 1 lane)
            (false, Shape([3, 6, 6]), 4, 2, 2),  // projection, stride 2
            (true, Shape([8, 4, 4]), 2, 1, 4),   // identity
            (true, Shape([4, 6, 5]), 2, 2, 2),   // projection, stride 2
        ]
        for (bottleneck, input, planes, stride, batch) in table {
            for exact in [false, true] {
                for withDx in [true, false] {
                    let what = "\(bottleneck ? "bottleneck" : "basic") \(input) stride \(stride)\(exact ? " exact" : "")\(withDx ? "" : " without dx")"
                    var outs: [[[UInt32]]] = []
                    for fused in [true, false] {
                        let context = BatchNormContext()
                        context.training = true
                        if exact {
                            context.plan = ChunkPlan(chunk: 1)
                            context.communicator = SingleProcessCommunicator()
                        }
                        let block = bottleneck
                            ? try ResidualBlock.bottleneck(input: input, planes: planes, width: planes, stride: stride, k: 0.5, norm: context)
                            : try ResidualBlock.basic(input: input, planes: planes, stride: stride, k: 0.5, norm: context)
                        XCTAssertTrue(block.fusesEnd, what)
                        block.fusesEnd = fused
                        block.reserve(batch: batch)
                        var rng = TestRNG(91)  // the same weights, scores and data for both
                        let masked = block.allLayers.compactMap { ($0 as? MaskedConv2d)?.weights }
                        let arenas = masked.map { prepare($0, rng: &rng) }
                        var out: [[UInt32]] = []
                        for _ in 0..<2 {
                            let x = buffer(rng.floats(batch * input.count, -2, 2))
                            let y = FloatBuffer(count: batch * block.outputShape.count)
                            block.forward(x.pointer, y.pointer, batch: batch)
                            let dy = buffer(rng.floats(batch * block.outputShape.count))
                            let dx = FloatBuffer(count: x.count)
                            block.backward(x.pointer, y.pointer, dy.pointer, withDx ? dx.pointer : nil, batch: batch)
                            out += [bits(y), withDx ? bits(dx) : []] + masked.map { bits($0.effectiveGrad) } + arenas.map { bits($0.grads) }
                            out += block.allLayers.compactMap { $0 as? BatchNorm2d }.map { bn in
                                UnsafeBufferPointer(start: bn.running, count: 2 * bn.channels).map(\.bitPattern)
                            }
                        }
                        outs.append(out)
                    }
                    XCTAssertEqual(outs[0].count, outs[1].count, what)
                    for (i, (a, b)) in zip(outs[0], outs[1]).enumerated() {
                        let first = a.indices.first { $0 < b.count && a[$0] != b[$0] }.map { "first at element \($0)" } ?? "lengths \(a.count), \(b.count)"
                        XCTAssert(a == b, "\(what): array \(i) (y, dx, dW_eff, dS, running statistics per step) differs, \(first)")
                    }
                    XCTAssert(outs[0][0].contains(0) && outs[0][0].contains { Float(bitPattern: $0) > 0 }, "\(what): the ReLU cut some and passed some")
                }
            }
        }
    }

    func bits(_ b: FloatBuffer) -> [UInt32] { b.array.map(\.bitPattern) }
}
