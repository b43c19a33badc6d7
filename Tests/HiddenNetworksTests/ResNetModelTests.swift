// The ResNets as whole models: score gradients of a tiny ResNet in training mode against central
// differences of the summed softmax cross-entropy; weight counts against torchvision's (pinned)
// and against per-layer lists written here from the papers' stage tables (independently of
// ResNet.swift); and the structure facts of REFERENCE.md ("ResNets").
//
// The loss is piecewise smooth (ReLU kinks, max-pool winners) and in training mode a perturbed
// weight moves every unit of its channel through the batch statistics. As in ModelGradientTests
// the differences run the model's layers on buffers of ours (blocks: their children one by one),
// recording the activation pattern; a step counts only where neither side changes it, and a
// difference only once two successive steps agree (patternPreservingDerivative).

import XCTest
@testable import HiddenNetworks

final class ResNetModelTests: XCTestCase {
    // MARK: score gradients of a whole ResNet

    /// Runs the model's layers (a block's children one by one) on our own buffers: loss, pattern, logits.
    struct Probe {
        let model: Model
        let labels: [Int32]
        var batch: Int { labels.count }

        /// Forward of `layer` on `x`, appending its ReLU signs (fused ones too) and max-pool winners to `pattern`.
        func run(_ layer: Layer, _ x: [Float], _ pattern: inout [Int32]) -> [Float] {
            if let block = layer as? ResidualBlock {
                var a = x
                for child in block.branch { a = run(child, a, &pattern) }
                var s = x
                for child in block.shortcut { s = run(child, s, &pattern) }
                let sum = zip(a, s).map { $0 + $1 }
                pattern += sum.map { $0 > 0 ? 1 : 0 }
                return sum.map { max($0, 0) }
            }
            if layer is ReLU { pattern += x.map { $0 > 0 ? 1 : 0 } }
            if let pool = layer as? MaxPool2d {
                // Position of the first maximum of every window, padding never winning.
                let (c, h, w) = (pool.inputShape.dims[0], pool.inputShape.dims[1], pool.inputShape.dims[2])
                let (oh, ow) = (pool.outputShape.dims[1], pool.outputShape.dims[2])
                for plane in 0..<(batch * c) {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var best = -Float.infinity, arg: Int32 = -1
                            for ki in 0..<pool.kernel {
                                for kj in 0..<pool.kernel {
                                    let iy = oy * pool.stride - pool.padding + ki, ix = ox * pool.stride - pool.padding + kj
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    let v = x[(plane * h + iy) * w + ix]
                                    if v > best { best = v; arg = Int32(iy * w + ix) }
                                }
                            }
                            pattern.append(arg)
                        }
                    }
                }
            }
            let y = FloatBuffer(count: batch * layer.outputShape.count)
            x.withUnsafeBufferPointer { layer.forward($0.baseAddress!, y.pointer, batch: batch) }
            // Batch norm with its ReLU fused in: r > 0 exactly where the ReLU's input is.
            if let bn = layer as? BatchNorm2d, bn.relu { pattern += y.array.map { $0 > 0 ? 1 : 0 } }
            return y.array
        }

        func run() -> (loss: Double, pattern: [Int32], logits: [Float]) {
            var x = Array(UnsafeBufferPointer(start: model.input.pointer, count: batch * model.config.inputShape.count))
            var pattern: [Int32] = []
            for layer in model.layers { x = run(layer, x, &pattern) }
            let loss = x.withUnsafeBufferPointer { logits in
                labels.withUnsafeBufferPointer {
                    softmaxCrossEntropy(logits: logits.baseAddress!, labels: $0.baseAddress!, batch: batch,
                                        classes: model.config.classes, smoothing: 0, grad: nil).lossSum
                }
            }
            return (loss, pattern, x)
        }
    }

    func checkModel(_ config: ModelConfig, batch: Int, samplesPerLayer: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let pass = try ModelForwardPass(config, batch: batch, seed: config.seed &+ 200, training: true)
        let model = pass.model
        var rng = pass.rng
        var ready = Set<Int>()
        for (l, m) in model.masked.enumerated() { m.onGradientReady = { ready.insert(l) } }
        model.backward(logitGrad: pass.logitGrad.pointer, batch: batch)
        for m in model.masked { m.onGradientReady = nil }
        XCTAssertEqual(ready.count, model.masked.count, "every masked layer, inside blocks too, reports its gradient ready", file: file, line: line)
        let scoreGrads = model.scoreGrads.array

        let probe = Probe(model: model, labels: pass.labels)
        let base = probe.run()
        XCTAssertEqual(base.logits, pass.logits, "the layers run one by one give Model.forward's logits", file: file, line: line)

        let maskedLayers = model.allLayers.filter { $0.masked != nil }
        var totalKinks = 0, totalChecked = 0
        for (l, m) in model.masked.enumerated() {
            let offset = model.offsets[l]
            var checked = 0, kinks = 0, biggest: Float = 0
            for j in sampledEdges(m, perKind: samplesPerLayer / 2, largestOf: { scoreGrads[offset + $0] }, rng: &rng) {
                let s = model.scores[offset + j]
                let factor = straightThroughFactor(score: s, weight: m.weights[j])
                let analytic = Double(scoreGrads[offset + j])
                guard let fd = patternPreservingDerivative(at: m.effective.pointer + j, steps: [3e-3, 1e-3, 3e-4, 1e-4], basePattern: base.pattern,
                                                          { let r = probe.run(); return (r.loss, r.pattern) }) else { kinks += 1; continue }
                checked += 1
                biggest = max(biggest, Float(abs(analytic)))
                XCTAssert(isClose(analytic, factor * fd, rtol: 1e-2, atol: 1e-3),
                          "\(config.architecture) layer \(l) (\(maskedLayers[l].summary)) edge \(j) mask \(m.mask[j]): dL/dS \(analytic), sign(S) W dL/dW_eff by differences \(factor * fd)",
                          file: file, line: line)
            }
            totalKinks += kinks; totalChecked += checked
            XCTAssertGreaterThan(checked, 0, "\(config.architecture) layer \(l): every sampled edge sits on a kink", file: file, line: line)
            XCTAssertGreaterThan(biggest, 5e-3, "\(config.architecture) layer \(l) (\(maskedLayers[l].summary)): checked score gradients all but zero, the check is vacuous",
                                 file: file, line: line)
        }
        XCTAssertLessThanOrEqual(totalKinks, (totalChecked + totalKinks) / 5, "\(totalKinks) of \(totalChecked + totalKinks) sampled edges sit on kinks",
                                 file: file, line: line)
    }

    /// Basic blocks with identity and projection shortcuts end to end. (A whole ResNet-50, even at
    /// width 1/16 on 24x24, is beyond this check in training mode: with a handful of samples per
    /// channel in the late batch norms, a step of 1e-4 on a stem weight moves stage-4 units by
    /// 0.1 and flips ReLUs everywhere. Bottlenecks are checked block by block in
    /// ResNetLayerGradientTests, the ImageNet stem's convolution and max-pool layer by layer.)
    func testCifarResNet18ScoreGradients() throws {
        let config = ModelConfig(architecture: .cifarResNet18, width: 0.125, k: 0.5, weightInit: .signedConstant,
                                 seed: 21, inputShape: Shape([3, 8, 8]), classes: 10)
        try checkModel(config, batch: 3, samplesPerLayer: 4)
    }

    // MARK: weight counts

    /// The masked layers' weight counts in arena order (stem; per block its branch convolutions,
    /// then the projection where there is one; classifier), from the stage tables of He et al. and
    /// REFERENCE.md, written without ResNet.swift.
    func expectedLayerCounts(bottleneck: Bool, blocks: [Int], wide: Bool = false, cifar: Bool, classes: Int) -> [Int] {
        var counts = [cifar ? 3 * 3 * 3 * 64 : 3 * 7 * 7 * 64]
        var channels = 64
        for (stage, n) in blocks.enumerated() {
            let planes = [64, 128, 256, 512][stage]
            for b in 0..<n {
                let strided = stage > 0 && b == 0
                let out = bottleneck ? 4 * planes : planes
                if bottleneck {
                    let inner = wide ? 2 * planes : planes
                    counts += [channels * inner, inner * 9 * inner, inner * out]
                } else {
                    counts += [channels * 9 * planes, planes * 9 * planes]
                }
                if strided || channels != out { counts.append(channels * out) }
                channels = out
            }
        }
        counts.append(channels * classes)
        return counts
    }

    func maskedCounts(_ arch: Architecture, input: Shape, classes: Int, k: Double) throws -> (counts: [Int], kept: [Int]) {
        let layers = try arch.layers(input: input, classes: classes, width: 1, k: k)
        let masked = layers.flatMap { $0.allLayers }.compactMap { $0.masked }
        return (masked.map(\.count), masked.map(\.kept))
    }

    func testImageNetWeightCounts() throws {
        // torchvision's parameter count, its batch norms' channels (two parameters each) and the
        // pinned weight count = total - 2 x BN channels - 1000 (the classifier's bias).
        let table: [(Architecture, Bool, [Int], Bool, Int, Int, Int)] = [
            (.resnet18, false, [2, 2, 2, 2], false, 11_689_512, 4_800, 11_678_912),
            (.resnet34, false, [3, 4, 6, 3], false, 21_797_672, 8_512, 21_779_648),
            (.resnet50, true, [3, 4, 6, 3], false, 25_557_032, 26_560, 25_502_912),
            (.resnet101, true, [3, 4, 23, 3], false, 44_549_160, 52_672, 44_442_816),
            (.resnet152, true, [3, 8, 36, 3], false, 60_192_808, 75_712, 60_040_384),
            (.wideResNet50, true, [3, 4, 6, 3], true, 68_883_240, 34_112, 68_814_016),
            (.wideResNet101, true, [3, 4, 23, 3], true, 126_886_696, 68_928, 126_747_840),
        ]
        for (arch, bottleneck, blocks, wide, torchvision, bnChannels, weights) in table {
            XCTAssertEqual(torchvision - 2 * bnChannels - 1000, weights, "\(arch): the pinned count's own arithmetic")
            let expected = expectedLayerCounts(bottleneck: bottleneck, blocks: blocks, wide: wide, cifar: false, classes: 1000)
            XCTAssertEqual(expected.reduce(0, +), weights, "\(arch): the stage table's count")
            let (counts, kept) = try maskedCounts(arch, input: Shape([3, 224, 224]), classes: 1000, k: 0.3)
            XCTAssertEqual(counts.reduce(0, +), weights, "\(arch): weights")
            XCTAssertEqual(counts, expected, "\(arch): per-layer weight counts in arena order")
            XCTAssertEqual(kept, expected.map { $0 - Int((1 - 0.3) * Double($0)) }, "\(arch): per-layer kept counts at k 0.3")
            if arch == .resnet50 {
                // About 7.65M kept: 0.3 x 25,502,912 plus at most one per layer from truncation.
                let keptTotal = kept.reduce(0, +)
                XCTAssertEqual(counts.count, 54, "resnet50: 1 stem + 16 x 3 + 4 projections + 1 classifier")
                XCTAssertGreaterThanOrEqual(Double(keptTotal), 0.3 * 25_502_912)
                XCTAssertLessThanOrEqual(Double(keptTotal), 0.3 * 25_502_912 + 54)
                XCTAssertEqual(Double(keptTotal) / 1e6, 7.65, accuracy: 0.005)
            }
        }
    }

    func testCifarWeightCounts() throws {
        // 10 classes on 3x32x32. Totals also pinned: cifar ResNet-18's 11,164,352 is the familiar
        // 11,173,962 parameters minus 4,800 BN channels x 2 and the 10 biases.
        let table: [(Architecture, Bool, [Int], Int)] = [
            (.cifarResNet18, false, [2, 2, 2, 2], 11_164_352),
            (.cifarResNet34, false, [3, 4, 6, 3], 21_265_088),
            (.cifarResNet50, true, [3, 4, 6, 3], 23_467_712),
        ]
        for (arch, bottleneck, blocks, total) in table {
            let expected = expectedLayerCounts(bottleneck: bottleneck, blocks: blocks, cifar: true, classes: 10)
            XCTAssertEqual(expected.reduce(0, +), total, "\(arch): the stage table's count")
            let (counts, kept) = try maskedCounts(arch, input: Shape([3, 32, 32]), classes: 10, k: 0.3)
            XCTAssertEqual(counts, expected, "\(arch): per-layer weight counts in arena order")
            XCTAssertEqual(kept, expected.map { $0 - Int((1 - 0.3) * Double($0)) }, "\(arch): per-layer kept counts at k 0.3")
        }
    }

    // MARK: structure

    func testResNet50Structure() throws {
        let layers = try Architecture.resnet50.layers(input: Shape([3, 224, 224]), classes: 1000, width: 1, k: 0.5)
        XCTAssertEqual(layers.map(\.kind), ["conv2d", "batchnorm-relu", "maxpool"] + Array(repeating: "bottleneck", count: 16) + ["avgpool", "linear"])
        let stem = try XCTUnwrap(layers[0] as? MaskedConv2d)
        XCTAssertEqual([stem.kernel, stem.stride, stem.padding, stem.outChannels], [7, 2, 3, 64])
        XCTAssertEqual(stem.outputShape, Shape([64, 112, 112]))
        let pool = try XCTUnwrap(layers[2] as? MaxPool2d)
        XCTAssertEqual([pool.kernel, pool.stride, pool.padding], [3, 2, 1])
        XCTAssertEqual(pool.outputShape, Shape([64, 56, 56]))

        let blocks = layers.compactMap { $0 as? ResidualBlock }
        let stageOf = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3]
        var shape = pool.outputShape
        for (i, block) in blocks.enumerated() {
            let stage = stageOf[i], first = i == 0 || stageOf[i - 1] != stage
            let planes = 64 << stage, side = [56, 28, 14, 7][stage]
            let what = "block \(i) (stage \(stage + 1))"
            XCTAssertEqual(block.inputShape, shape, what)
            XCTAssertEqual(block.outputShape, Shape([4 * planes, side, side]), what)
            let convs = block.branch.compactMap { $0 as? MaskedConv2d }
            XCTAssertEqual(convs.map(\.kernel), [1, 3, 1], what)
            XCTAssertEqual(convs.map(\.outChannels), [planes, planes, 4 * planes], what)
            // v1.5: the stride sits on the 3x3, the 1x1s have stride 1.
            XCTAssertEqual(convs.map(\.stride), [1, first && stage > 0 ? 2 : 1, 1], "\(what): strides")
            // A projection exactly where the shape changes: the first block of every stage.
            XCTAssertEqual(!block.shortcut.isEmpty, block.inputShape != block.outputShape, what)
            XCTAssertEqual(!block.shortcut.isEmpty, first, what)
            if let proj = block.shortcut.first as? MaskedConv2d {
                XCTAssertEqual([proj.kernel, proj.stride, proj.padding], [1, stage > 0 ? 2 : 1, 0], what)
                XCTAssert(block.shortcut.last is BatchNorm2d, "\(what): projection followed by batch norm")
            }
            // Batch norm after every convolution.
            for (conv, next) in zip(block.branch, block.branch.dropFirst()) where conv is MaskedConv2d {
                XCTAssert(next is BatchNorm2d, "\(what): \(conv.summary) not followed by batch norm")
            }
            shape = block.outputShape
        }
        XCTAssertEqual(layers[layers.count - 2].outputShape, Shape([2048]))
        XCTAssertEqual(layers.last?.outputShape, Shape([1000]))
        XCTAssertEqual(layers.last?.masked?.count, 2048 * 1000)

        // The wide one: the 3x3 twice as wide, the output as wide as ResNet-50's (any input size).
        let wide = try Architecture.wideResNet50.layers(input: Shape([3, 64, 64]), classes: 1000, width: 1, k: 0.5)
        let wideBlock = try XCTUnwrap(wide.compactMap { $0 as? ResidualBlock }.first)
        XCTAssertEqual(wideBlock.branch.compactMap { ($0 as? MaskedConv2d)?.outChannels }, [128, 128, 256])
    }

    func testCifarStemAndBasicBlocks() throws {
        for arch in [Architecture.cifarResNet18, .cifarResNet34] {
            let layers = try arch.layers(input: Shape([3, 32, 32]), classes: 10, width: 1, k: 0.5)
            let what = "\(arch)"
            let stem = try XCTUnwrap(layers[0] as? MaskedConv2d)
            XCTAssertEqual([stem.kernel, stem.stride, stem.padding, stem.outChannels], [3, 1, 1, 64], what)
            XCTAssertEqual(layers[1].kind, "batchnorm-relu", what)
            XCTAssert(!layers.contains { $0 is MaxPool2d }, "\(what): no max-pool")
            XCTAssertEqual(layers[2].inputShape, Shape([64, 32, 32]), what)
            let blocks = layers.compactMap { $0 as? ResidualBlock }
            XCTAssertEqual(blocks.count, arch == .cifarResNet18 ? 8 : 16, what)
            XCTAssertEqual(blocks.map { $0.outputShape.dims[1] }.uniqued(), [32, 16, 8, 4], what)
            for block in blocks {
                XCTAssertEqual(block.kind, "basic-block", what)
                XCTAssertEqual(!block.shortcut.isEmpty, block.inputShape != block.outputShape, "\(what): projection where the shape changes")
            }
            XCTAssertEqual(blocks.filter { !$0.shortcut.isEmpty }.count, 3, "\(what): projections at stages 2, 3, 4")
            XCTAssertEqual(layers[layers.count - 2].kind, "avgpool", what)
            XCTAssertEqual(layers[layers.count - 2].outputShape, Shape([512]), what)
            XCTAssertEqual(layers.last?.outputShape, Shape([10]), what)
        }
        // cifar ResNet-50: the first block already projects (64 -> 256 channels), stride 1.
        let layers = try Architecture.cifarResNet50.layers(input: Shape([3, 32, 32]), classes: 10, width: 1, k: 0.5)
        let first = try XCTUnwrap(layers.compactMap { $0 as? ResidualBlock }.first)
        XCTAssertEqual((first.shortcut.first as? MaskedConv2d)?.stride, 1)
        XCTAssertEqual(first.outputShape, Shape([256, 32, 32]))
    }
}

private extension Array where Element: Equatable {
    /// The elements without consecutive repeats.
    func uniqued() -> [Element] { reduce(into: []) { if $0.last != $1 { $0.append($1) } } }
}
