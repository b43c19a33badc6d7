// A data set held in memory as normalised floats [N, C, H, W] with labels, train and test split.
// Every rank holds the whole set: the epoch permutation is global, so any rank may need any sample.

public struct Split {
    public let images: [Float]
    public let labels: [Int32]
    public let count: Int
    public init(images: [Float], labels: [Int32]) {
        self.images = images; self.labels = labels; count = labels.count
    }
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
        train.images.withUnsafeBufferPointer { src in
            for (j, index) in indices.enumerated() {
                let i = Int(index)
                y[j] = train.labels[i]
                if augment {
                    let w = RandomStream(seed: seed, purpose: .augmentation, sub: UInt32(truncatingIfNeeded: epoch)).words(UInt64(i))
                    cropAndFlip(src.baseAddress! + i * n, x + j * n, dx: Int(w.0 % 9) - 4, dy: Int(w.1 % 9) - 4, flip: w.2 & 1 == 1)
                } else {
                    (x + j * n).update(from: src.baseAddress! + i * n, count: n)
                }
            }
        }
    }

    /// Copies test samples `start..<start+count` into `x` / `y`.
    public func gatherTest(start: Int, count: Int, x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Int32>) {
        let n = shape.count
        test.images.withUnsafeBufferPointer { src in
            x.update(from: src.baseAddress! + start * n, count: count * n)
        }
        for j in 0..<count { y[j] = test.labels[start + j] }
    }

    /// out[c, y, x] = in[c, y + dy, x + dx] (mirrored in x when flipping), padding outside.
    func cropAndFlip(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, dx: Int, dy: Int, flip: Bool) {
        let (c, h, w) = (shape.dims[0], shape.dims[1], shape.dims[2])
        for ch in 0..<c {
            let pad = padValue[ch]
            for oy in 0..<h {
                let iy = oy + dy
                for ox in 0..<w {
                    let sx = flip ? w - 1 - ox : ox
                    let ix = sx + dx
                    dst[(ch * h + oy) * w + ox] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? src[(ch * h + iy) * w + ix] : pad
                }
            }
        }
    }
}
