// The data sets the trainer knows by name, where their files are looked for, and how they are
// normalised (REFERENCE.md: CIFAR-10 and MNIST as the reference, Fashion-MNIST and CIFAR-100 their
// own statistics).

import Foundation

public enum DataSource: String, CaseIterable, Sendable {
    case fashionMNIST = "fashion-mnist"
    case mnist
    case cifar10
    case cifar100
    case synthetic
    /// ImageNet-style folders: train/<class>/*.JPEG and val/<class>/*.JPEG (ImageFolder.swift).
    case imagefolder

    public var defaultDirectory: String? {
        switch self {
        case .fashionMNIST: return "/usr/share/datasets/fashion-mnist"
        case .mnist, .cifar10, .cifar100, .synthetic, .imagefolder: return nil  // Debian ships no MNIST or CIFAR package
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
        case .cifar100:
            return "unpack the CIFAR-100 binary version (cifar-100-binary.tar.gz) and pass --data-dir pointing at cifar-100-binary (it holds train.bin and test.bin)"
        case .synthetic:
            return ""
        case .imagefolder:
            return "pass --data-dir DIR holding train/<class>/*.JPEG and val/<class>/*.JPEG (the layout torchvision's ImageFolder reads)"
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

/// Loads a data set. With `testOnly` (evaluation) the training split is not read and stays empty.
public func loadDataset(_ source: DataSource, directory: String?, synthetic: SyntheticSpec = SyntheticSpec(),
                        seed: UInt64 = 0, testOnly: Bool = false, imageSize: Int = 224,
                        imageFolder: ImageFolderIndex? = nil, augment: Bool = true) throws -> Dataset {
    switch source {
    case .imagefolder:
        guard let dir = directory else { throw HiddenError("imagefolder needs --data-dir", hint: source.installHint) }
        let index = try imageFolder ?? ImageFolderIndex.scan(root: dir)
        let train = testOnly ? Split(images: [], labels: [])
            : Split(files: ImageFiles(root: dir, paths: index.trainFiles, size: imageSize, training: augment), labels: index.trainLabels)
        let test = Split(files: ImageFiles(root: dir, paths: index.valFiles, size: imageSize, training: false), labels: index.valLabels)
        return Dataset(name: source.rawValue, shape: Shape([3, imageSize, imageSize]), classes: index.classes.count,
                       train: train, test: test, augment: false, padValue: [0, 0, 0])
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
        let (test, testShape, missTest) = try loadIDXSplit(dir: dir, prefix: "t10k", mean: mean, std: std)
        let (train, shape, missTrain) = testOnly ? (Split(images: [], labels: []), testShape, [])
            : try loadIDXSplit(dir: dir, prefix: "train", mean: mean, std: std)
        let missing = missTrain + missTest
        guard missing.isEmpty else {
            throw HiddenError("data set \(source.rawValue) incomplete in \(dir): missing \(missing.joined(separator: ", "))", hint: source.installHint)
        }
        guard shape == testShape else { throw HiddenError("\(dir): training images are \(shape) but test images are \(testShape)") }
        return Dataset(name: source.rawValue, shape: shape, classes: 10, train: train, test: test,
                       augment: false, padValue: [-mean / std])
    case .cifar10:
        return try loadCIFAR(.cifar10, directory: directory, testOnly: testOnly, augment: augment)
    case .cifar100:
        return try loadCIFAR(.cifar100, directory: directory, testOnly: testOnly, augment: augment)
    }
}

/// Where a CIFAR binary version's files are, how many records each holds, and how its pixels are
/// normalised. Both are read, augmented (random crop with padding 4, horizontal flip) and padded
/// the same way; only the record format, the files and the statistics differ.
struct CIFARLayout {
    var source: DataSource
    var format: CIFARRecordFormat
    /// The folder the archive unpacks to; --data-dir may name it or the folder holding it.
    var folder: String
    var trainFiles: [String]
    var testFiles: [String]
    /// Records in each file; the sizes are checked before a byte is read.
    var records: [String: Int]
    var mean: [Float], std: [Float]

    static let cifar10 = CIFARLayout(
        source: .cifar10, format: .cifar10, folder: "cifar-10-batches-bin",
        trainFiles: (1...5).map { "data_batch_\($0).bin" }, testFiles: ["test_batch.bin"],
        records: Dictionary(uniqueKeysWithValues: ((1...5).map { "data_batch_\($0).bin" } + ["test_batch.bin"]).map { ($0, 10_000) }),
        mean: [0.491, 0.482, 0.447], std: [0.247, 0.243, 0.262])

    /// The 100 fine labels; the usual CIFAR-100 statistics.
    static let cifar100 = CIFARLayout(
        source: .cifar100, format: .cifar100, folder: "cifar-100-binary",
        trainFiles: ["train.bin"], testFiles: ["test.bin"], records: ["train.bin": 50_000, "test.bin": 10_000],
        mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762])
}

/// A CIFAR binary version: finds the folder, checks that every file is there and has its exact
/// size, reads and normalises it; training samples are augmented.
func loadCIFAR(_ layout: CIFARLayout, directory: String?, testOnly: Bool = false, augment: Bool = true) throws -> Dataset {
    var layout = layout
    if testOnly { layout.trainFiles = [] }
    let source = layout.source
    guard let dir = directory else {
        throw HiddenError("\(source.rawValue) needs --data-dir", hint: source.installHint)
    }
    let nested = (dir as NSString).appendingPathComponent(layout.folder)
    let base = FileManager.default.fileExists(atPath: nested) ? nested : dir
    let names = layout.trainFiles + layout.testFiles
    let missing = names.filter { !FileManager.default.fileExists(atPath: (base as NSString).appendingPathComponent($0)) }
    guard missing.isEmpty else {
        throw HiddenError("data set \(source.rawValue) not found in \(base): missing \(missing.joined(separator: ", "))", hint: source.installHint)
    }
    let record = layout.format.recordBytes
    for name in names {
        let path = (base as NSString).appendingPathComponent(name)
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
        let count = layout.records[name] ?? 0
        let expected = count * record
        guard size == expected else {
            let partial = size >= 0 && size % record != 0 ? ", not a whole number of \(record)-byte records" : ""
            throw HiddenError("\(path) is \(size < expected ? "truncated" : "malformed"): \(size) bytes\(partial); \(name) of the \(layout.format.name) binary version has \(count) records of \(record) bytes (\(expected))",
                              hint: layout.format.fixHint)
        }
    }
    let paths = { (names: [String]) in names.map { (base as NSString).appendingPathComponent($0) } }
    let train = try loadCIFARFiles(paths(layout.trainFiles), mean: layout.mean, std: layout.std, format: layout.format)
    let test = try loadCIFARFiles(paths(layout.testFiles), mean: layout.mean, std: layout.std, format: layout.format)
    return Dataset(name: source.rawValue, shape: Shape([3, 32, 32]), classes: layout.format.classes, train: train, test: test,
                   augment: augment, padValue: (0..<3).map { -layout.mean[$0] / layout.std[$0] })
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
