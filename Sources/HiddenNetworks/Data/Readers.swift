// File formats: IDX (MNIST, Fashion-MNIST; gzipped or not) and the CIFAR-10 and CIFAR-100 binary
// versions.
// Every size is checked against the file before a byte is trusted.

import CZlib
import Foundation

/// Largest file `readMaybeGzipped` inflates (4 GiB): a small gzip can claim far more.
public let maxInflatedBytes = 4 << 30

/// The product of `dims`, or nil when it overflows Int (or a factor is negative).
public func checkedProduct(_ dims: [Int]) -> Int? {
    var p = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (r, overflow) = p.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        p = r
    }
    return p
}

/// Whole file, inflated if it is gzip (zlib's gzread passes plain files through unchanged).
public func readMaybeGzipped(_ path: String) throws -> [UInt8] {
    guard FileManager.default.isReadableFile(atPath: path) else {
        throw HiddenError("cannot read \(path)")
    }
    guard let file = gzopen(path, "rb") else { throw HiddenError("cannot open \(path)") }
    defer { gzclose(file) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
        if n < 0 {
            var code: Int32 = 0
            let msg = gzerror(file, &code).map { String(cString: $0) } ?? "unknown"
            throw HiddenError("\(path) is corrupt: gzip error (\(msg))", hint: "download the file again")
        }
        if n == 0 { break }
        guard out.count + Int(n) <= maxInflatedBytes else {
            throw HiddenError("\(path) inflates to more than \(maxInflatedBytes) bytes: not a data file hidden-mpi reads whole",
                              hint: "check the file (gzip -l \(path)); MNIST-style files are tens of megabytes")
        }
        out.append(contentsOf: chunk[0..<Int(n)])
    }
    // A gzip stream cut short ends reads quietly; zlib then reports Z_BUF_ERROR.
    var code: Int32 = 0
    _ = gzerror(file, &code)
    if code == Z_BUF_ERROR {
        throw HiddenError("\(path) is truncated: the gzip stream ends early", hint: "download the file again")
    }
    return out
}

/// An IDX file: magic (0, 0, type 0x08 = ubyte, dims), big-endian sizes, then the data.
public struct IDXFile {
    public let dims: [Int]
    public let data: ArraySlice<UInt8>

    public init(bytes: [UInt8], name: String) throws {
        guard bytes.count >= 4 else { throw HiddenError("\(name) is truncated: \(bytes.count) bytes, not even an IDX header") }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw HiddenError("\(name) is not an IDX file (magic \(bytes[0..<4].map { String(format: "%02x", $0) }.joined()))")
        }
        guard bytes[2] == 0x08 else { throw HiddenError("\(name): IDX type 0x\(String(bytes[2], radix: 16)) is not unsigned bytes (0x08)") }
        let rank = Int(bytes[3])
        guard rank >= 1 && rank <= 4, bytes.count >= 4 + 4 * rank else {
            throw HiddenError("\(name) is truncated or malformed: header of \(rank) dimensions")
        }
        var dims: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let have = bytes.count - 4 - 4 * rank
        // Four 32-bit sizes can multiply past Int.max: such a header is refused, not wrapped.
        guard let expected = checkedProduct(dims), have == expected else {
            let claimed = checkedProduct(dims).map { "\($0) bytes" } ?? "more than \(Int.max) bytes"
            throw HiddenError("\(name) is \(have < (checkedProduct(dims) ?? Int.max) ? "truncated" : "malformed"): header says \(dims.map(String.init).joined(separator: "x")) = \(claimed) of data, file has \(have)",
                              hint: "download the file again")
        }
        self.dims = dims
        data = bytes[(4 + 4 * rank)...]
    }
}

/// Finds `base` in `dir` as base.gz, base, or with the common '.' spelling (train-images.idx3-ubyte).
func findFile(_ dir: String, _ base: String) -> String? {
    let dotted = base.replacingOccurrences(of: "-idx", with: ".idx")
    for name in [base + ".gz", base, dotted, dotted + ".gz"] {
        let path = (dir as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: path) { return path }
    }
    return nil
}

/// One split of an MNIST-style data set: images [N, 1, H, W] as bytes, normalised with
/// (mean, std) when gathered.
public func loadIDXSplit(dir: String, prefix: String, mean: Float, std: Float) throws -> (Split, Shape, missing: [String]) {
    let imageBase = "\(prefix)-images-idx3-ubyte", labelBase = "\(prefix)-labels-idx1-ubyte"
    let imagePath = findFile(dir, imageBase), labelPath = findFile(dir, labelBase)
    let missing = [imagePath == nil ? imageBase : nil, labelPath == nil ? labelBase : nil].compactMap { $0 }
    guard let imagePath, let labelPath else { return (Split(images: [], labels: []), Shape([0]), missing) }
    let images = try IDXFile(bytes: readMaybeGzipped(imagePath), name: imagePath)
    let labels = try IDXFile(bytes: readMaybeGzipped(labelPath), name: labelPath)
    guard images.dims.count == 3 else { throw HiddenError("\(imagePath): expected 3 dimensions (N, H, W), found \(images.dims)") }
    guard labels.dims.count == 1 else { throw HiddenError("\(labelPath): expected 1 dimension (N), found \(labels.dims)") }
    guard images.dims[0] == labels.dims[0] else {
        throw HiddenError("\(imagePath) has \(images.dims[0]) images but \(labelPath) has \(labels.dims[0]) labels")
    }
    let scale = 1 / (255 * std), shift = mean / std
    let table = byteTable(channels: 1) { v, _ in v * scale - shift }
    let y = labels.data.map { Int32($0) }
    if let bad = y.first(where: { $0 > 9 }) {
        throw HiddenError("\(labelPath) holds label \(bad), outside 0...9")
    }
    return (Split(bytes: Array(images.data), table: table, plane: images.dims[1] * images.dims[2], labels: y),
            Shape([1, images.dims[1], images.dims[2]]), [])
}

/// What a record of a CIFAR binary version holds: `labelBytes` label bytes (the class is byte
/// `labelIndex` of them), then 3072 pixel bytes (R, G, B planes of 32x32).
public struct CIFARRecordFormat: Sendable {
    /// "CIFAR-10", "CIFAR-100", as messages name it.
    public let name: String
    public let labelBytes: Int
    public let labelIndex: Int
    /// What the class byte is called in messages ("label", "fine label").
    public let labelName: String
    public let classes: Int
    /// The archive to fetch again when a file is bad.
    public let archive: String
    /// Said after a label out of range: the likeliest mix-up.
    let mixUp: String

    public var recordBytes: Int { labelBytes + 3 * 32 * 32 }

    /// CIFAR-10: label (0...9), pixels.
    public static let cifar10 = CIFARRecordFormat(name: "CIFAR-10", labelBytes: 1, labelIndex: 0, labelName: "label", classes: 10,
                                                  archive: "cifar-10-binary.tar.gz", mixUp: " (is this CIFAR-100?)")
    /// CIFAR-100: coarse label (0...19), fine label (0...99), pixels; the fine label is the class.
    public static let cifar100 = CIFARRecordFormat(name: "CIFAR-100", labelBytes: 2, labelIndex: 1, labelName: "fine label", classes: 100,
                                                   archive: "cifar-100-binary.tar.gz", mixUp: " (is this a CIFAR-100 binary file? Its records are coarse label, fine label, 3072 pixels)")

    var fixHint: String { "download \(archive) again and unpack it" }
}

/// CIFAR binary records (CIFAR-10 by default), pixels kept as bytes and normalised per channel
/// with (mean, std) when gathered.
public func loadCIFARFiles(_ paths: [String], mean: [Float], std: [Float], format: CIFARRecordFormat = .cifar10) throws -> Split {
    var x: [UInt8] = []
    var y: [Int32] = []
    let record = format.recordBytes
    for path in paths {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HiddenError("cannot read \(path)", hint: format.fixHint)
        }
        guard data.count > 0, data.count % record == 0 else {
            throw HiddenError("\(path) is truncated or malformed: \(data.count) bytes is not a whole number of \(record)-byte \(format.name) records",
                              hint: format.fixHint)
        }
        let bytes = [UInt8](data)
        x.reserveCapacity(x.count + bytes.count)
        for r in 0..<(bytes.count / record) {
            let label = bytes[r * record + format.labelIndex]
            guard Int(label) < format.classes else {
                throw HiddenError("\(path): record \(r) has \(format.labelName) \(label), outside 0...\(format.classes - 1)\(format.mixUp)",
                                  hint: format.fixHint)
            }
            y.append(Int32(label))
            let pixels = r * record + format.labelBytes
            x.append(contentsOf: bytes[pixels..<(pixels + 3 * 1024)])
        }
    }
    return Split(bytes: x, table: byteTable(channels: 3) { v, c in (v / 255 - mean[c]) / std[c] }, plane: 1024, labels: y)
}
