// Option groups shared by the subcommands.

import ArgumentParser
import HiddenNetworks

extension Architecture: ExpressibleByArgument {}
extension WeightInit: ExpressibleByArgument {}
extension DataSource: ExpressibleByArgument {}
extension ScheduleKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension TrainingMethod: ExpressibleByArgument {}
extension BatchNormSync: ExpressibleByArgument {}
extension GradientReduction: ExpressibleByArgument {}

/// train --augment.
enum AugmentChoice: String, ExpressibleByArgument, CaseIterable { case reference, none }
extension Shape: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

struct ModelOptions: ParsableArguments {
    @Option(help: "Architecture (values below). fc is 300-100-10; convN has N 3x3 convolutions (64, 64, pool, 128, 128, pool, ...) and a 256-256 head. The ResNets have non-affine batch norm after every convolution and a masked classifier after global average pooling: cifar-resnetN have a 3x3 stem and no max-pool (for 32x32 images), resnetN and wide-resnetN-2 the ImageNet 7x7/2 stem and 3x3/2 max-pool; bottlenecks (50 and up) stride on the 3x3.")
    var model: Architecture = .conv2

    @Option(parsing: .unconditional, help: "Width multiplier: every hidden width n becomes max(1, Int(n * width)).")
    var width: Double = 1

    @Option(parsing: .unconditional, help: "Fraction of each layer's weights kept (top-k of |scores|), in (0, 1].")
    var k: Double = 0.5

    @Option(name: .customLong("init"), help: "Frozen weight init (default: signed-constant; kaiming-normal for --method dense, as the reference's dense baselines).")
    var weightInit: WeightInit?

    @Flag(inversion: .prefixedNo,
          help: "Scale the init's fan by k (the paper's scaled variants: std grows by sqrt(1/k)). On by default, as in the reference's small-scale `sc` and `kn` configs; --no-scale-fan gives their unscaled `usc`/`ukn` variants (and is the default for the dense and supermask baselines, which keep no top-k fraction).")
    var scaleFan: Bool?

    @Option(help: "Seed of weights, scores, data order and augmentation. Same seed, same run.")
    var seed: UInt64 = 0

    @Option(help: "What is trained: edge-popup (scores of frozen random weights, top-k mask), dense (the paper's learned-weights baseline, from an unscaled Kaiming-normal init unless --init says otherwise; default lr 0.01) or supermask (Zhou et al.: masks sampled from sigmoid(scores) at every pass; default lr 200, no weight decay).")
    var method: TrainingMethod = .edgePopup

    @Flag(help: "Train the first layer's weights (from the same init) instead of choosing its edges, as the reference's --first-layer-dense; the other layers keep --method.")
    var firstLayerDense = false

    @Flag(help: "Train the last layer's (the classifier's) weights instead of choosing its edges, as the reference's --last-layer-dense.")
    var lastLayerDense = false

    func validate() throws {
        guard k > 0 && k <= 1 else { throw ValidationError("--k must be in (0, 1], got \(k): it is the fraction of weights kept") }
        guard width > 0 && width.isFinite else { throw ValidationError("--width must be positive, got \(width)") }
    }

    func config(input: Shape, classes: Int) -> ModelConfig {
        ModelConfig(architecture: model, width: width, k: k,
                    weightInit: weightInit ?? method.defaultInit, scaleFan: scaleFan ?? method.defaultScaleFan,
                    seed: seed, inputShape: input, classes: classes, method: method,
                    firstLayerDense: firstLayerDense, lastLayerDense: lastLayerDense)
    }
}

struct DataOptions: ParsableArguments {
    @Option(help: "Data set: fashion-mnist (default, Debian's dataset-fashion-mnist), mnist, cifar10 (binary version), cifar100 (binary version, the 100 fine labels; epoch lines add top-5 accuracy), synthetic, imagefolder (ImageNet-style: --data-dir holds train/<class>/*.JPEG and val/<class>/*.JPEG; classes are the sorted folder names, as torchvision's ImageFolder numbers them; rank 0 lists the files once and sends the list to the others; JPEGs are decoded with libjpeg-turbo at the smallest DCT scale that suffices, grayscale and CMYK files as RGB; training takes the reference's random resized crop (8-100% of the area, aspect 3/4-4/3) and horizontal flip, evaluation resizes the shorter side to 256/224 of --image-size and takes the centre crop; a file that is not a JPEG or cannot be decoded becomes the mean image and is named once on stderr; other files than images are skipped, an empty class folder is an error).")
    var dataset: DataSource = .fashionMNIST

    @Option(help: "Folder with the data set's files (default for fashion-mnist: /usr/share/datasets/fashion-mnist).")
    var dataDir: String?

    @Option(help: "Synthetic data: per-sample shape CxHxW (or F for flat features).")
    var input: Shape = Shape([3, 32, 32])

    @Option(help: "Synthetic data: number of classes.")
    var classes: Int = 10

    @Option(help: "imagefolder: the side of the square images the model sees.")
    var imageSize: Int = 224

    @Option(help: "imagefolder: background threads per rank that decode and augment the samples of the next two steps while the current one trains (0: decode in the training thread). One is enough for ResNets at 224 (decoding an ImageNet photograph takes a few ms, a ResNet-50 step a fraction of a second per image); the results do not depend on it.")
    var dataThreads: Int = 1

    @Option(help: "Synthetic data: training samples.")
    var trainSize: Int = 1024

    @Option(help: "Synthetic data: test samples.")
    var testSize: Int = 256

    func validate() throws {
        guard classes >= 2 else { throw ValidationError("--classes must be at least 2, got \(classes)") }
        guard trainSize >= 1, testSize >= 1 else { throw ValidationError("--train-size and --test-size must be at least 1") }
        guard dataThreads >= 0 else { throw ValidationError("--data-threads must be 0 or more") }
        guard imageSize >= 8 else { throw ValidationError("--image-size must be at least 8, got \(imageSize)") }
    }

    var synthetic: SyntheticSpec { SyntheticSpec(shape: input, classes: classes, trainCount: trainSize, testCount: testSize) }

    /// Per-sample shape and class count without reading the files.
    var shapeAndClasses: (Shape, Int) {
        switch dataset {
        case .fashionMNIST, .mnist: return (Shape([1, 28, 28]), 10)
        case .cifar10: return (Shape([3, 32, 32]), 10)
        case .cifar100: return (Shape([3, 32, 32]), 100)
        case .synthetic: return (input, classes)
        case .imagefolder: return (Shape([3, imageSize, imageSize]), classes)
        }
    }
}
