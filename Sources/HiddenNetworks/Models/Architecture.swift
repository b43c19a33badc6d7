// The paper's models (REFERENCE.md): FC 300-100-10 for MNIST-shaped data, Conv2/4/6/8 with 3x3
// convolutions (padding 1), ReLU, 2x2 max-pool and a 256-256-classes head. No biases, no batch norm.
// `width` scales every hidden width to Int(n * width).

public enum Architecture: String, CaseIterable, Sendable {
    case fc, conv2, conv4, conv6, conv8

    /// Channels of each conv pair, a pool after each pair.
    var convBlocks: [Int] {
        switch self {
        case .fc: return []
        case .conv2: return [64]
        case .conv4: return [64, 128]
        case .conv6: return [64, 128, 256]
        case .conv8: return [64, 128, 256, 512]
        }
    }

    var hiddenFeatures: [Int] { self == .fc ? [300, 100] : [256, 256] }

    /// Builds the layer list for a per-sample input shape; throws when the model does not fit it.
    public func layers(input: Shape, classes: Int, width: Double, k: Double) throws -> [Layer] {
        func scaled(_ n: Int) -> Int { max(1, Int(Double(n) * width)) }
        var layers: [Layer] = []
        var shape = input
        if !convBlocks.isEmpty {
            guard input.dims.count == 3 else {
                throw HiddenError("model \(rawValue) needs image input CxHxW, the data set gives \(input)",
                                  hint: "use --model fc for flat inputs, or --input CxHxW for synthetic data")
            }
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
