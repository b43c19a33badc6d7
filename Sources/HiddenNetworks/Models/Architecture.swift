// The paper's models (REFERENCE.md): FC 300-100-10 for MNIST-shaped data, Conv2/4/6/8 with 3x3
// convolutions (padding 1), ReLU, 2x2 max-pool and a 256-256-classes head. No biases, no batch norm.
// `width` scales every hidden width to Int(n * width). The ResNets are in ResNet.swift.

public enum Architecture: String, CaseIterable, Sendable {
    case fc, conv2, conv4, conv6, conv8
    case cifarResNet18 = "cifar-resnet18", cifarResNet34 = "cifar-resnet34", cifarResNet50 = "cifar-resnet50"
    case resnet18, resnet34, resnet50, resnet101, resnet152
    case wideResNet50 = "wide-resnet50-2", wideResNet101 = "wide-resnet101-2"

    /// The ResNet this name stands for; nil for the paper's small models.
    public var resnet: ResNetSpec? {
        switch self {
        case .fc, .conv2, .conv4, .conv6, .conv8: return nil
        case .cifarResNet18: return .cifar(.basic, [2, 2, 2, 2])
        case .cifarResNet34: return .cifar(.basic, [3, 4, 6, 3])
        case .cifarResNet50: return .cifar(.bottleneck, [3, 4, 6, 3])
        case .resnet18: return .imagenet(.basic, [2, 2, 2, 2])
        case .resnet34: return .imagenet(.basic, [3, 4, 6, 3])
        case .resnet50: return .imagenet(.bottleneck, [3, 4, 6, 3])
        case .resnet101: return .imagenet(.bottleneck, [3, 4, 23, 3])
        case .resnet152: return .imagenet(.bottleneck, [3, 8, 36, 3])
        case .wideResNet50: return .imagenet(.bottleneck, [3, 4, 6, 3], wide: true)
        case .wideResNet101: return .imagenet(.bottleneck, [3, 4, 23, 3], wide: true)
        }
    }

    /// Channels of each conv pair, a pool after each pair.
    var convBlocks: [Int] {
        switch self {
        case .fc: return []
        case .conv2: return [64]
        case .conv4: return [64, 128]
        case .conv6: return [64, 128, 256]
        case .conv8: return [64, 128, 256, 512]
        default: return []
        }
    }

    var hiddenFeatures: [Int] { self == .fc ? [300, 100] : [256, 256] }

    /// Builds the layer list for a per-sample input shape; throws when the model does not fit it.
    public func layers(input: Shape, classes: Int, width: Double, k: Double,
                       norm: BatchNormContext = BatchNormContext()) throws -> [Layer] {
        guard self == .fc || input.dims.count == 3 else {
            throw HiddenError("model \(rawValue) needs image input CxHxW, the data set gives \(input)",
                              hint: "use --model fc for flat inputs, or --input CxHxW for synthetic data")
        }
        if let resnet { return try resnet.layers(input: input, classes: classes, width: width, k: k, norm: norm) }
        func scaled(_ n: Int) -> Int { max(1, Int(Double(n) * width)) }
        var layers: [Layer] = []
        var shape = input
        if !convBlocks.isEmpty {
            for channels in convBlocks {
                for _ in 0..<2 {
                    let conv = try MaskedConv2d(input: shape, outChannels: scaled(channels), k: k)
                    layers.append(conv)
                    layers.append(ReLU(input: conv.outputShape))
                    shape = conv.outputShape
                }
                guard shape.dims[1] >= 2, shape.dims[2] >= 2 else {
                    throw HiddenError("model \(rawValue) does not fit input \(input): after \(layers.count) layers the image is \(shape), too small to pool",
                                      hint: "use a shallower model (conv2/conv4) or a larger input")
                }
                let pool = try MaxPool2d(input: shape, size: 2)
                layers.append(pool)
                shape = pool.outputShape
            }
        }
        if shape.dims.count > 1 {
            let flat = Flatten(input: shape)
            layers.append(flat)
            shape = flat.outputShape
        }
        for features in hiddenFeatures {
            let fc = MaskedLinear(input: shape, outFeatures: scaled(features), k: k)
            layers.append(fc)
            layers.append(ReLU(input: fc.outputShape))
            shape = fc.outputShape
        }
        layers.append(MaskedLinear(input: shape, outFeatures: classes, k: k))
        return layers
    }
}
