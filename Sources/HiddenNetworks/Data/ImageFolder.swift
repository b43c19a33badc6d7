// ImageNet-style image folders, the layout torchvision's ImageFolder reads: ROOT/train/<class>/*
// and ROOT/val/<class>/*, classes numbered in the sorted order of their folder names (so class
// indices match torchvision's), files sorted within a class. Image files are those with
// torchvision's extensions (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp, any case); other
// files are skipped and counted. A class folder with no image file in train is an error (as
// torchvision's), naming it.
//
// The index is built once per run by rank 0 and sent to the other ranks as bytes
// (`serialized()`), so 64 ranks do not each walk 1.28 million files on a parallel file system.
//
// Samples are decoded when a batch is gathered (ImageFiles): the training transform is the
// reference's random resized crop and flip, the evaluation transform the resize and centre crop
// (ImageTransforms.swift). A file that is not a JPEG or cannot be decoded becomes the mean image
// (zeros after normalisation) and is reported once, naming the file; `hidden-mpi check-data`
// (to come) lists such files beforehand.

import Foundation

public struct ImageFolderIndex: Equatable, Sendable {
    public var classes: [String]
    /// Paths relative to the root ("train/n01440764/n01440764_10026.JPEG") and labels.
    public var trainFiles: [String], trainLabels: [Int32]
    public var valFiles: [String], valLabels: [Int32]
    /// Files skipped for their extension, for the run's header.
    public var skipped: Int

    static let extensions: Set<String> = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"]

    /// Walks ROOT/train and ROOT/val. Throws naming what is missing or empty.
    public static func scan(root: String) throws -> ImageFolderIndex {
        let fm = FileManager.default
        func subfolders(_ path: String) throws -> [String] {
            guard let names = try? fm.contentsOfDirectory(atPath: path) else {
                throw HiddenError("image folder \(path) does not exist or cannot be read",
                                  hint: "--data-dir must hold train/<class>/*.JPEG and val/<class>/*.JPEG, the layout torchvision's ImageFolder reads")
            }
            return names.filter { name in
                var isDir: ObjCBool = false
                return !name.hasPrefix(".") && fm.fileExists(atPath: (path as NSString).appendingPathComponent(name), isDirectory: &isDir) && isDir.boolValue
            }.sorted()
        }
        let trainRoot = (root as NSString).appendingPathComponent("train"), valRoot = (root as NSString).appendingPathComponent("val")
        let classes = try subfolders(trainRoot)
        guard !classes.isEmpty else {
            throw HiddenError("\(trainRoot) holds no class folders", hint: "put each class's images in train/<class>/")
        }
        var skipped = 0
        func files(_ split: String, _ splitRoot: String, classes known: [String]) throws -> ([String], [Int32], empty: [String]) {
            var paths: [String] = [], labels: [Int32] = [], empty: [String] = []
            let present = Set(try subfolders(splitRoot))
            for (label, name) in known.enumerated() where present.contains(name) {
                let dir = (splitRoot as NSString).appendingPathComponent(name)
                let all = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
                let images = all.filter { extensions.contains(($0 as NSString).pathExtension.lowercased()) }
                skipped += all.count - images.count
                if images.isEmpty { empty.append(name) }
                for f in images { paths.append("\(split)/\(name)/\(f)"); labels.append(Int32(label)) }
            }
            let unknown = present.subtracting(known)
            if !unknown.isEmpty {
                throw HiddenError("\(splitRoot) has class folders that train/ lacks: \(unknown.sorted().prefix(5).joined(separator: ", "))",
                                  hint: "val/ must use the class folder names of train/")
            }
            return (paths, labels, empty)
        }
        let (trainFiles, trainLabels, emptyTrain) = try files("train", trainRoot, classes: classes)
        guard emptyTrain.isEmpty else {
            throw HiddenError("class folder\(emptyTrain.count > 1 ? "s" : "") \(emptyTrain.prefix(5).map { "train/\($0)" }.joined(separator: ", ")) in \(root) hold\(emptyTrain.count > 1 ? "" : "s") no image file",
                              hint: "remove the empty class folder (its class index would have no sample) or put its images there")
        }
        let (valFiles, valLabels, _) = try files("val", valRoot, classes: classes)
        guard !valFiles.isEmpty else {
            throw HiddenError("\(valRoot) holds no images", hint: "put the validation images in val/<class>/ (test accuracy is measured there)")
        }
        return ImageFolderIndex(classes: classes, trainFiles: trainFiles, trainLabels: trainLabels,
                                valFiles: valFiles, valLabels: valLabels, skipped: skipped)
    }

    /// One line per entry, for sending to the other ranks: a header, the classes, then
    /// "label<TAB>path" for train and for val.
    public func serialized() -> [UInt8] {
        var lines = ["hidden-mpi image-folder index 1", "\(classes.count) \(trainFiles.count) \(valFiles.count) \(skipped)"]
        lines += classes
        lines += zip(trainLabels, trainFiles).map { "\($0)\t\($1)" }
        lines += zip(valLabels, valFiles).map { "\($0)\t\($1)" }
        return Array(lines.joined(separator: "\n").utf8)
    }

    public init(serialized bytes: [UInt8]) throws {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 2, lines[0] == "hidden-mpi image-folder index 1" else { throw HiddenError("bad image-folder index") }
        let counts = lines[1].split(separator: " ").compactMap { Int($0) }
        // Each count at most the lines there are (so their sum cannot overflow), none negative.
        guard counts.count == 4, counts.allSatisfy({ $0 >= 0 && $0 <= lines.count }),
              lines.count == 2 + counts[0] + counts[1] + counts[2] else { throw HiddenError("bad image-folder index sizes") }
        classes = lines[2..<(2 + counts[0])].map(String.init)
        func entries(_ range: Range<Int>) throws -> ([String], [Int32]) {
            var paths: [String] = [], labels: [Int32] = []
            for line in lines[range] {
                guard let tab = line.firstIndex(of: "\t"), let label = Int32(line[..<tab]), label >= 0, Int(label) < counts[0] else {
                    throw HiddenError("bad image-folder index line")
                }
                labels.append(label); paths.append(String(line[line.index(after: tab)...]))
            }
            return (paths, labels)
        }
        let t = 2 + counts[0]
        (trainFiles, trainLabels) = try entries(t..<(t + counts[1]))
        (valFiles, valLabels) = try entries((t + counts[1])..<(t + counts[1] + counts[2]))
        skipped = counts[3]
    }

    public init(classes: [String], trainFiles: [String], trainLabels: [Int32], valFiles: [String], valLabels: [Int32], skipped: Int) {
        self.classes = classes; self.trainFiles = trainFiles; self.trainLabels = trainLabels
        self.valFiles = valFiles; self.valLabels = valLabels; self.skipped = skipped
    }
}

/// The images of one split of an image folder, decoded and transformed when gathered, or ahead
/// of time by `threads` background threads (`prefetch`), at most `capacity` samples ahead, so
/// that memory stays bounded whatever the size of the data set.
public final class ImageFiles: @unchecked Sendable {
    public let root: String
    public let paths: [String]
    public let size: Int
    /// Random resized crop and flip (training) or resize and centre crop (evaluation).
    public let training: Bool
    private let decoder: JPEGDecoder?
    private var reported = Set<String>()
    private let lock = NSLock()
    private var prefetcher: Prefetcher?

    public init(root: String, paths: [String], size: Int, training: Bool) {
        self.root = root; self.paths = paths; self.size = size; self.training = training
        decoder = try? JPEGDecoder()
    }

    deinit { prefetcher?.stop() }

    /// Starts `threads` decoding threads that keep up to `capacity` samples ready (0 threads:
    /// everything is decoded when gathered).
    public func startPrefetching(threads: Int, capacity: Int) {
        guard threads > 0, capacity > 0, prefetcher == nil else { return }
        prefetcher = Prefetcher(files: self, threads: threads, capacity: capacity)
    }

    public var prefetching: Bool { prefetcher != nil }

    /// Asks for samples `indices` of `epoch` ahead of their gather (no-op without threads).
    public func prefetch(_ indices: ArraySlice<Int32>, seed: UInt64, epoch: Int) {
        prefetcher?.request(indices, seed: seed, epoch: epoch)
    }

    /// The k-th uniform number of sample `index`'s augmentation in `epoch`: a pure function of
    /// (seed, epoch, index), so the same on any rank and after a resume.
    static func uniform(seed: UInt64, epoch: Int, index: Int, k: Int) -> Double {
        let w = RandomStream(seed: seed, purpose: .imageAugmentation, sub: UInt32(truncatingIfNeeded: epoch)).words(UInt64(index) << 4 | UInt64(k / 4))
        switch k % 4 {
        case 0: return RandomStream.unit(w.0)
        case 1: return RandomStream.unit(w.1)
        case 2: return RandomStream.unit(w.2)
        default: return RandomStream.unit(w.3)
        }
    }

    /// Writes sample `i` as [3, size, size] floats into `dst`: from the prefetched samples when it
    /// was asked for, else decoded here. Training samples use the augmentation of (seed, epoch, i).
    public func load(_ i: Int, seed: UInt64, epoch: Int, into dst: UnsafeMutablePointer<Float>) {
        if let prefetcher, prefetcher.take(i, seed: seed, epoch: epoch, into: dst) { return }
        lock.lock(); defer { lock.unlock() }
        decode(i, seed: seed, epoch: epoch, decoder: decoder, into: dst)
    }

    /// Decodes and transforms sample `i` with `decoder`. A file that cannot be used becomes zeros
    /// (the mean image) and is reported once on stderr.
    func decode(_ i: Int, seed: UInt64, epoch: Int, decoder: JPEGDecoder?, into dst: UnsafeMutablePointer<Float>) {
        let path = (root as NSString).appendingPathComponent(paths[i])
        do {
            try decodeOrThrow(i, seed: seed, epoch: epoch, decoder: decoder, into: dst)
        } catch {
            dst.update(repeating: 0, count: 3 * size * size)
            reportedLock.lock(); let first = reported.insert(path).inserted; reportedLock.unlock()
            if first {
                FileHandle.standardError.write("hidden-mpi: warning: \(path) \(error); training uses the mean image for it (hidden-mpi check-data lists such files)\n".data(using: .utf8)!)
            }
        }
    }

    /// Decodes and transforms sample `i` with `decoder`, or throws why the file cannot be used
    /// (`hidden-mpi check-data`).
    public func decodeOrThrow(_ i: Int, seed: UInt64, epoch: Int, decoder: JPEGDecoder?, into dst: UnsafeMutablePointer<Float>) throws {
        let path = (root as NSString).appendingPathComponent(paths[i])
        guard let decoder else { throw HiddenError("libjpeg-turbo: cannot create a decompressor") }
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError(kind: .unreadable, detail: "no such file or no permission") }
        try data.withUnsafeBytes { bytes in
            let (w, h, _) = try decoder.header(bytes)
            let box: ImageBox
            var flip = false
            if training {
                let crop = ImageTransforms.randomResizedCrop(width: w, height: h) { k in Self.uniform(seed: seed, epoch: epoch, index: i, k: k) }
                box = ImageBox(x0: Double(crop.x), y0: Double(crop.y), x1: Double(crop.x + crop.w), y1: Double(crop.y + crop.h))
                flip = Self.uniform(seed: seed, epoch: epoch, index: i, k: 40) < 0.5
            } else {
                box = ImageTransforms.centerCropBox(width: w, height: h, resize: size * 256 / 224, size: size)
            }
            let f = JPEGDecoder.scale(need: (box.width, box.height), target: size)
            let image = try decoder.decode(bytes, scale: f)
            ImageTransforms.resample(image, box: box.scaled(Double(image.width) / Double(w), Double(image.height) / Double(h)),
                                     size: size, flip: flip, cropped: training, into: dst)
        }
    }
    private let reportedLock = NSLock()
}

/// Background decoding of the samples a rank will gather next: a queue of requested samples,
/// `threads` workers with a decoder each, and at most `capacity` decoded samples held (a worker
/// waits for room). A sample that was never requested, or whose request was dropped, is decoded
/// by the gathering thread itself, so the result never depends on the threads.
final class Prefetcher: @unchecked Sendable {
    struct Key: Hashable { let index: Int; let epoch: Int; let seed: UInt64 }
    /// Weak: the files own the prefetcher; a worker holds them only while it decodes.
    private weak var files: ImageFiles?
    private let sampleCount: Int
    private let condition = NSCondition()
    private var queue: [Key] = []
    private var queued = Set<Key>()
    private var ready: [Key: [Float]] = [:]
    private var working = Set<Key>()
    private let capacity: Int
    private var stopped = false

    init(files: ImageFiles, threads: Int, capacity: Int) {
        self.files = files; self.capacity = capacity
        sampleCount = 3 * files.size * files.size
        for _ in 0..<threads {
            let thread = Thread { [weak self] in self?.work() }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Ends the workers (they hold the prefetcher until then).
    func stop() { condition.lock(); stopped = true; condition.broadcast(); condition.unlock() }

    func request(_ indices: ArraySlice<Int32>, seed: UInt64, epoch: Int) {
        condition.lock(); defer { condition.unlock() }
        // Samples of epochs before the one in progress (requests reach one epoch ahead) that were
        // never gathered (a run stopped mid-epoch, then resumed) would hold room forever.
        if ready.keys.contains(where: { $0.epoch < epoch - 1 }) { ready = ready.filter { $0.key.epoch >= epoch - 1 } }
        if queue.contains(where: { $0.epoch < epoch - 1 }) {
            queue.removeAll { $0.epoch < epoch - 1 }
            queued = Set(queue)
        }
        for i in indices {
            let key = Key(index: Int(i), epoch: epoch, seed: seed)
            if ready[key] == nil, !working.contains(key), queued.insert(key).inserted { queue.append(key) }
        }
        condition.broadcast()
    }

    /// Copies the prefetched sample into `dst` and returns true, waiting for it if a worker has
    /// it; false when nobody will decode it (the caller does).
    func take(_ index: Int, seed: UInt64, epoch: Int, into dst: UnsafeMutablePointer<Float>) -> Bool {
        let key = Key(index: index, epoch: epoch, seed: seed)
        condition.lock(); defer { condition.unlock() }
        if queued.contains(key) {  // not started: drop it from the queue, the caller decodes
            queued.remove(key)
            if let at = queue.firstIndex(of: key) { queue.remove(at: at) }
            return false
        }
        while working.contains(key) { condition.wait() }
        guard let sample = ready.removeValue(forKey: key) else { return false }
        condition.broadcast()  // room for another
        sample.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: $0.count) }
        return true
    }

    private func work() {
        let decoder = try? JPEGDecoder()
        let n = sampleCount
        while true {
            condition.lock()
            while !stopped && (queue.isEmpty || ready.count + working.count >= capacity) { condition.wait() }
            if stopped { condition.unlock(); return }
            let key = queue.removeFirst()
            queued.remove(key)
            working.insert(key)
            condition.unlock()
            var sample = [Float](repeating: 0, count: n)
            guard let files else { return }
            sample.withUnsafeMutableBufferPointer { files.decode(key.index, seed: key.seed, epoch: key.epoch, decoder: decoder, into: $0.baseAddress!) }
            condition.lock()
            working.remove(key)
            ready[key] = sample
            condition.broadcast()
            condition.unlock()
        }
    }
}
