// The data sets the trainer knows by name, where their files are looked for, and how they are
// normalised (REFERENCE.md: CIFAR-10 and MNIST as the reference, Fashion-MNIST its own statistics).

import Foundation

public enum DataSource: String, CaseIterable, Sendable {
    case fashionMNIST = "fashion-mnist"
    case mnist
    case cifar10
    case synthetic

    public var defaultDirectory: String? {
        switch self {
        case .fashionMNIST: return "/usr/share/datasets/fashion-mnist"
        case .mnist, .cifar10, .synthetic: return nil  // Debian ships no MNIST or CIFAR-10 package
        }
    }

    var installHint: String {
        switch self {
        case .fashionMNIST:
            return "install it with `apt-get install dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist), or pass --data-dir DIR holding train-images-idx3-ubyte.gz and friends"
        case .mnist:
            return "pass --data-dir DIR holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)"
        case .cifar10:
            return "unpack the CIFAR-10 binary version (cifar-10-binary.tar.gz) and pass --data-dir pointing at cifar-10-batches-bin"
        case .synthetic:
            return ""
        }
    }
}

/// How to make the synthetic set: random normal images, labels from a fixed random linear teacher
/// (so a model can learn it), all a pure function of the seed.
public struct SyntheticSpec: Equatable, Sendable {
    public var shape: Shape = Shape([3, 32, 32])
    public var classes: Int = 10
    public var trainCount: Int = 1024
    public var testCount: Int = 256
    public init(shape: Shape = Shape([3, 32, 32]), classes: Int = 10, trainCount: Int = 1024, testCount: Int = 256) {
        self.shape = shape; self.classes = classes; self.trainCount = trainCount; self.testCount = testCount
    }
}

public func loadDataset(_ source: DataSource, directory: String?, synthetic: SyntheticSpec = SyntheticSpec(),
                        seed: UInt64 = 0) throws -> Dataset {
    switch source {
    case .synthetic:
        return makeSynthetic(synthetic, seed: seed)
    case .fashionMNIST, .mnist:
        guard let dir = directory ?? source.defaultDirectory else {
            throw HiddenError("\(source.rawValue) needs --data-dir", hint: source.installHint)
        }
        let (mean, std): (Float, Float) = source == .mnist ? (0.1307, 0.3081) : (0.2860, 0.3530)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw HiddenError("data set \(source.rawValue) not found: \(dir) does not exist", hint: source.installHint)
        }
        let (train, shape, missTrain) = try loadIDXSplit(dir: dir, prefix: "train", mean: mean, std: std)
        let (test, testShape, missTest) = try loadIDXSplit(dir: dir, prefix: "t10k", mean: mean, std: std)
        let missing = missTrain + missTest
        guard missing.isEmpty else {
            throw HiddenError("data set \(source.rawValue) incomplete in \(dir): missing \(missing.joined(separator: ", "))", hint: source.installHint)
        }
        guard shape == testShape else { throw HiddenError("\(dir): training images are \(shape) but test images are \(testShape)") }
        return Dataset(name: source.rawValue, shape: shape, classes: 10, train: train, test: test,
                       augment: false, padValue: [-mean / std])
    case .cifar10:
        guard let dir = directory else {
            throw HiddenError("cifar10 needs --data-dir", hint: source.installHint)
        }
        let base = FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("cifar-10-batches-bin"))
            ? (dir as NSString).appendingPathComponent("cifar-10-batches-bin") : dir
        let trainNames = (1...5).map { "data_batch_\($0).bin" }
        let names = trainNames + ["test_batch.bin"]
        let missing = names.filter { !FileManager.default.fileExists(atPath: (base as NSString).appendingPathComponent($0)) }
        guard missing.isEmpty else {
            throw HiddenError("data set cifar10 not found in \(base): missing \(missing.joined(separator: ", "))", hint: source.installHint)
        }
        // Each file of the binary version holds exactly 10,000 records of 1 + 3072 bytes.
        let batchBytes = 10_000 * 3073
        for name in names {
            let path = (base as NSString).appendingPathComponent(name)
            let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
            guard size == batchBytes else {
                throw HiddenError("\(path) is \(size < batchBytes ? "truncated" : "malformed"): \(size) bytes, a CIFAR-10 batch has 10000 records of 3073 bytes (\(batchBytes))",
                                  hint: source.installHint)
            }
        }
        let mean: [Float] = [0.491, 0.482, 0.447], std: [Float] = [0.247, 0.243, 0.262]
        let train = try loadCIFARFiles(trainNames.map { (base as NSString).appendingPathComponent($0) }, mean: mean, std: std)
        let test = try loadCIFARFiles([(base as NSString).appendingPathComponent("test_batch.bin")], mean: mean, std: std)
        return Dataset(name: "cifar10", shape: Shape([3, 32, 32]), classes: 10, train: train, test: test,
                       augment: true, padValue: (0..<3).map { -mean[$0] / std[$0] })
    }
}

func makeSynthetic(_ spec: SyntheticSpec, seed: UInt64) -> Dataset {
    let n = spec.shape.count
    let teacherStream = RandomStream(seed: seed, purpose: .syntheticTeacher)
    let teacher = (0..<(n * spec.classes)).map { Float(teacherStream.normal(UInt64($0))) }
    func split(_ count: Int, sub: UInt32) -> Split {
        let stream = RandomStream(seed: seed, purpose: .syntheticData, sub: sub)
        var x = [Float](repeating: 0, count: count * n)
        var y = [Int32](repeating: 0, count: count)
        for i in 0..<count {
            for j in 0..<n { x[i * n + j] = Float(stream.normal(UInt64(i * n + j))) }
            var best = -Float.infinity
            for c in 0..<spec.classes {
                var dot: Float = 0
                for j in 0..<n { dot += teacher[c * n + j] * x[i * n + j] }
                if dot > best { best = dot; y[i] = Int32(c) }
            }
        }
        return Split(images: x, labels: y)
    }
    return Dataset(name: "synthetic", shape: spec.shape, classes: spec.classes,
                   train: split(spec.trainCount, sub: 0), test: split(spec.testCount, sub: 1),
                   augment: false, padValue: [Float](repeating: 0, count: spec.shape.dims[0]))
}
