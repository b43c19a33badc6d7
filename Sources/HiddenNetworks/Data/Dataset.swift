// A data set held in memory with labels, train and test split: image files as their raw bytes
// (a quarter of the memory of floats; every rank holds the whole set, so a 16-rank node holds 16
// copies), normalised through a per-channel table when a batch is gathered; synthetic data as
// floats. Every rank holds the whole set: the epoch permutation is global, so any rank may need
// any sample.

public struct Split {
    /// Samples [N, C, H, W] (or [N, F]) as bytes with, per channel, the float each byte value
    /// stands for (table[c * 256 + v]); or as floats.
    public enum Pixels {
        case bytes([UInt8], table: [Float], plane: Int)
        case floats([Float])
        /// Image files, decoded and transformed when gathered (ImageFolder.swift).
        case files(ImageFiles)
    }
    public let pixels: Pixels
    public let labels: [Int32]
    public let count: Int

    public init(files: ImageFiles, labels: [Int32]) {
        pixels = .files(files); self.labels = labels; count = labels.count
    }

    public init(images: [Float], labels: [Int32]) {
        pixels = .floats(images); self.labels = labels; count = labels.count
    }

    /// Raw bytes, normalised on the way out: value = table[c * 256 + byte] for a byte of channel
    /// c, where a sample's channels are planes of `plane` bytes.
    public init(bytes: [UInt8], table: [Float], plane: Int, labels: [Int32]) {
        precondition(table.count % 256 == 0 && plane > 0)
        pixels = .bytes(bytes, table: table, plane: plane); self.labels = labels; count = labels.count
    }

    /// Bytes of memory the samples take.
    public var storageBytes: Int {
        switch pixels {
        case .bytes(let b, _, _): return b.count
        case .floats(let f): return 4 * f.count
        case .files: return 0
        }
    }

    /// Every sample as normalised floats (tests and tools; training gathers batches instead).
    public var images: [Float] {
        switch pixels {
        case .floats(let f): return f
        case .bytes(let b, let table, let plane):
            let channels = table.count / 256
            return b.indices.map { i in table[(i / plane) % channels * 256 + Int(b[i])] }
        case .files(let files):
            let n = 3 * files.size * files.size
            var out = [Float](repeating: 0, count: count * n)
            out.withUnsafeMutableBufferPointer { p in for i in 0..<count { files.load(i, seed: 0, epoch: 0, into: p.baseAddress! + i * n) } }
            return out
        }
    }

    /// Writes sample `i` (of `n` values) as floats into `dst`; image files are decoded with the
    /// augmentation of (seed, epoch, i) when their split trains.
    @inline(__always)
    func copy(_ i: Int, n: Int, to dst: UnsafeMutablePointer<Float>, seed: UInt64 = 0, epoch: Int = 0) {
        switch pixels {
        case .files(let files):
            files.load(i, seed: seed, epoch: epoch, into: dst)
        case .floats(let f):
            f.withUnsafeBufferPointer { dst.update(from: $0.baseAddress! + i * n, count: n) }
        case .bytes(let b, let table, let plane):
            b.withUnsafeBufferPointer { src in
                table.withUnsafeBufferPointer { t in
                    let s = src.baseAddress! + i * n
                    var c = 0, o = 0
                    while o < n {
                        let lut = t.baseAddress! + c * 256
                        for k in o..<min(n, o + plane) { dst[k] = lut[Int(s[k])] }
                        o += plane; c += 1
                    }
                }
            }
        }
    }

    /// Value `offset` (channel `channel`) of sample `i` of `n` values.
    @inline(__always)
    func value(_ i: Int, n: Int, channel: Int, offset: Int) -> Float {
        switch pixels {
        case .floats(let f): return f[i * n + offset]
        case .bytes(let b, let table, _): return table[channel * 256 + Int(b[i * n + offset])]
        case .files: preconditionFailure("image files are augmented by their own transform")
        }
    }
}

/// The normalisation table of byte images: value = (byte / 255 - mean[c]) / std[c], computed as
/// `normalise(byte, c)` says, for each channel.
func byteTable(channels: Int, _ normalise: (Float, Int) -> Float) -> [Float] {
    (0..<(channels * 256)).map { normalise(Float($0 % 256), $0 / 256) }
}

public struct Dataset {
    public let name: String
    public let shape: Shape
    public let classes: Int
    public let train: Split
    public let test: Split
    /// Random crop (pad 4) + horizontal flip on training samples, as the reference does for CIFAR-10
    /// (CIFAR-100 the same).
    public let augment: Bool
    /// What a zero raw pixel becomes after normalisation, per channel (the crop's padding).
    public let padValue: [Float]

    public init(name: String, shape: Shape, classes: Int, train: Split, test: Split, augment: Bool, padValue: [Float]) {
        self.name = name; self.shape = shape; self.classes = classes
        self.train = train; self.test = test; self.augment = augment; self.padValue = padValue
    }

    /// Copies samples `indices` of the training split into `x` / `y`, augmented when the set asks
    /// for it. The augmentation of a sample is a pure function of (seed, epoch, sample index).
    public func gatherTrain(_ indices: ArraySlice<Int32>, epoch: Int, seed: UInt64,
                            x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Int32>) {
        let n = shape.count
        for (j, index) in indices.enumerated() {
            let i = Int(index)
            y[j] = train.labels[i]
            if augment {
                let w = RandomStream(seed: seed, purpose: .augmentation, sub: UInt32(truncatingIfNeeded: epoch)).words(UInt64(i))
                cropAndFlip(train, i, x + j * n, dx: Int(w.0 % 9) - 4, dy: Int(w.1 % 9) - 4, flip: w.2 & 1 == 1)
            } else {
                train.copy(i, n: n, to: x + j * n, seed: seed, epoch: epoch)
            }
        }
    }

    /// Whether background decoders want to hear of samples ahead (`prefetchTrain`).
    public var prefetches: Bool {
        if case .files(let files) = train.pixels { return files.prefetching }
        return false
    }

    /// Asks the background decoders (image folders with data threads) for training samples that a
    /// later gather will want; nothing for data sets held in memory.
    public func prefetchTrain(_ indices: ArraySlice<Int32>, epoch: Int, seed: UInt64) {
        if case .files(let files) = train.pixels { files.prefetch(indices, seed: seed, epoch: epoch) }
    }

    /// Starts `threads` decoding threads per split of an image folder, each split keeping at most
    /// `capacity` samples ready; nothing for data sets held in memory.
    public func startDataThreads(_ threads: Int, capacity: Int) {
        if case .files(let files) = train.pixels { files.startPrefetching(threads: threads, capacity: capacity) }
    }

    /// Copies test samples `start..<start+count` into `x` / `y`.
    public func gatherTest(start: Int, count: Int, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Int32>) {
        let n = shape.count
        for j in 0..<count {
            test.copy(start + j, n: n, to: x + j * n)
            y[j] = test.labels[start + j]
        }
    }

    /// out[c, y, x] = in[c, y + dy, x + dx] (mirrored in x when flipping), padding outside.
    func cropAndFlip(_ split: Split, _ i: Int, _ dst: UnsafeMutablePointer<Float>, dx: Int, dy: Int, flip: Bool) {
        let (c, h, w) = (shape.dims[0], shape.dims[1], shape.dims[2])
        let n = shape.count
        for ch in 0..<c {
            let pad = padValue[ch]
            for oy in 0..<h {
                let iy = oy + dy
                for ox in 0..<w {
                    let sx = flip ? w - 1 - ox : ox
                    let ix = sx + dx
                    dst[(ch * h + oy) * w + ox] = (iy >= 0 && iy < h && ix >= 0 && ix < w)
                        ? split.value(i, n: n, channel: ch, offset: (ch * h + iy) * w + ix) : pad
                }
            }
        }
    }
}
