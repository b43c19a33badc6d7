// The paper's ResNets (REFERENCE.md, "ResNets"), every convolution and the classifier masked,
// no biases, non-affine batch norm after every convolution. Read top to bottom like the paper's
// figure: stem, four stages of residual blocks, global average pooling, classifier.
//
//   CIFAR style:    conv3x3 64 - bn+relu                         (no max-pool)
//   ImageNet style: conv7x7/2 64 - bn+relu - maxpool3x3/2
//   then stages of 64, 128, 256, 512 planes with strides 1, 2, 2, 2, each a list of basic blocks
//   (18, 34) or bottlenecks (50 and up; expansion 4; wide: the 3x3 twice as wide), the first
//   block of a stage carrying its stride and, where the shape changes, a projection shortcut;
//   then global average pooling and a masked linear classifier (= a 1x1 convolution on 1x1).
// `width` scales every plane count to max(1, Int(n * width)). "bn+relu" is one layer, batch norm
// with its ReLU fused in (BatchNorm2d(relu: true), kind "batchnorm-relu"): the same numbers as
// the two apart, in less memory traffic.

public struct ResNetSpec: Sendable {
    public enum Block: Sendable { case basic, bottleneck }
    public enum Stem: Sendable { case cifar, imagenet }
    public var stem: Stem
    public var block: Block
    public var blocksPerStage: [Int]
    /// The bottleneck's inner width as a multiple of its planes: 1, or 2 for the wide ResNets
    /// (torchvision's base_width 128 / 64).
    public var bottleneckWidth: Int = 1

    public static func cifar(_ block: Block, _ counts: [Int]) -> ResNetSpec {
        ResNetSpec(stem: .cifar, block: block, blocksPerStage: counts)
    }
    public static func imagenet(_ block: Block, _ counts: [Int], wide: Bool = false) -> ResNetSpec {
        ResNetSpec(stem: .imagenet, block: block, blocksPerStage: counts, bottleneckWidth: wide ? 2 : 1)
    }

    /// The whole network for one image shape [C, H, W].
    public func layers(input: Shape, classes: Int, width: Double, k: Double, norm: BatchNormContext) throws -> [Layer] {
        func scaled(_ n: Int) -> Int { max(1, Int(Double(n) * width)) }
        var layers: [Layer] = []
        var shape = input
        func add(_ layer: Layer) { layers.append(layer); shape = layer.outputShape }

        // Stem.
        switch stem {
        case .cifar:
            add(try MaskedConv2d(input: shape, outChannels: scaled(64), kernel: 3, stride: 1, padding: 1, k: k))
        case .imagenet:
            add(try MaskedConv2d(input: shape, outChannels: scaled(64), kernel: 7, stride: 2, padding: 3, k: k))
        }
        add(BatchNorm2d(input: shape, context: norm, relu: true))
        if stem == .imagenet { add(try MaxPool2d(input: shape, kernel: 3, stride: 2, padding: 1)) }

        // Four stages.
        for (stage, count) in blocksPerStage.enumerated() {
            let planes = scaled(64 << stage)
            for b in 0..<count {
                let stride = stage > 0 && b == 0 ? 2 : 1
                switch block {
                case .basic:
                    add(try ResidualBlock.basic(input: shape, planes: planes, stride: stride, k: k, norm: norm))
                case .bottleneck:
                    add(try ResidualBlock.bottleneck(input: shape, planes: planes, width: planes * bottleneckWidth,
                                                     stride: stride, k: k, norm: norm))
                }
            }
        }

        // Pool and classify.
        add(try GlobalAvgPool(input: shape))
        add(MaskedLinear(input: shape, outFeatures: classes, k: k))
        return layers
    }
}
