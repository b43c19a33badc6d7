// The safetensors container (huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__":
// {string: string}}), padded with spaces to a multiple of 8, then the raw little-endian data.
// The reader trusts nothing: every length and offset is checked against the file.

import CZlib
import Foundation

public enum TensorDType: String, Sendable {
    case f32 = "F32", u8 = "U8"
    public var size: Int { self == .f32 ? 4 : 1 }
}

public struct StoredTensor: Equatable {
    public var name: String
    public var dtype: TensorDType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(name: String, dtype: TensorDType, shape: [Int], bytes: [UInt8]) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.bytes = bytes
    }

    public init(name: String, floats: UnsafeBufferPointer<Float>, shape: [Int]) {
        self.init(name: name, dtype: .f32, shape: shape, bytes: Array(UnsafeRawBufferPointer(floats)))
    }

    /// The data as floats (little-endian hosts only, which is every host this runs on).
    public func copyFloats(into destination: UnsafeMutablePointer<Float>, count: Int) {
        precondition(dtype == .f32 && bytes.count == 4 * count)
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(destination).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }
}

public struct SafeTensorsFile {
    public var metadata: [String: String]
    public var tensors: [StoredTensor]

    public init(metadata: [String: String], tensors: [StoredTensor]) {
        self.metadata = metadata; self.tensors = tensors
    }

    public func tensor(_ name: String) -> StoredTensor? { tensors.first { $0.name == name } }

    /// CRC-32 (zlib) of the data section: the tensors' bytes in file order.
    public static func dataChecksum(_ tensors: [StoredTensor]) -> String {
        var crc = crc32(0, nil, 0)
        for t in tensors {
            crc = t.bytes.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, UInt32($0.count)) }
        }
        return String(format: "%08x", UInt32(crc))
    }

    /// The whole file as bytes.
    public func serialized() throws -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]]
            offset += t.bytes.count
        }
        var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        for t in tensors { out.append(contentsOf: t.bytes) }
        return out
    }

    static let maxHeaderBytes: UInt64 = 100_000_000

    /// The little-endian header length in a file's first 8 bytes.
    static func headerLength<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> UInt64 {
        bytes.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// A file's `__metadata__`, read from its header alone (no tensor data, nothing checked
    /// beyond the header parsing): a quick look before the file is loaded; nil if unreadable.
    public static func metadata(atPath path: String) -> [String: String]? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let prefix = try? handle.read(upToCount: 8), prefix.count == 8 else { return nil }
        let n = headerLength(prefix)
        guard n >= 2, n <= maxHeaderBytes, let header = try? handle.read(upToCount: Int(n)), header.count == Int(n),
              let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else { return nil }
        return object["__metadata__"] as? [String: String]
    }

    /// Parses and checks a whole file. `name` is used in messages.
    public init(bytes: [UInt8], name: String) throws {
        func bad(_ what: String) -> HiddenError {
            HiddenError("\(name) is not a valid safetensors file: \(what)",
                        hint: "the file may be truncated or corrupted; use an earlier checkpoint")
        }
        guard bytes.count >= 8 else { throw bad("\(bytes.count) bytes, shorter than the 8-byte header length") }
        let n = Self.headerLength(bytes)
        guard n >= 2, n <= UInt64(bytes.count - 8), n <= Self.maxHeaderBytes else {
            throw bad("header length \(n) does not fit the file's \(bytes.count) bytes")
        }
        let headerEnd = 8 + Int(n)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])),
              let header = object as? [String: Any] else { throw bad("the header is not a JSON object") }
        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let m = meta as? [String: String] else { throw bad("__metadata__ is not a map of strings") }
            metadata = m
        }
        let dataSize = bytes.count - headerEnd
        var entries: [(name: String, dtype: TensorDType, shape: [Int], begin: Int, end: Int)] = []
        for (key, value) in header where key != "__metadata__" {
            guard let d = value as? [String: Any], let dt = d["dtype"] as? String, let dtype = TensorDType(rawValue: dt),
                  let shape = d["shape"] as? [Int], let offs = d["data_offsets"] as? [Int], offs.count == 2 else {
                throw bad("tensor \(key) has a malformed entry (or a dtype other than F32/U8)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offs[0] >= 0, offs[0] <= offs[1], offs[1] <= dataSize else {
                throw bad("tensor \(key) lies outside the data section (offsets \(offs), data \(dataSize) bytes)")
            }
            // A shape's product can overflow: such a tensor is refused, not wrapped to a small size.
            guard let count = checkedProduct(shape), let size = checkedProduct([count, dtype.size]), size == offs[1] - offs[0] else {
                throw bad("tensor \(key): shape \(shape) of \(dt) does not match its \(offs[1] - offs[0]) bytes")
            }
            entries.append((key, dtype, shape, offs[0], offs[1]))
        }
        entries.sort { $0.begin < $1.begin || ($0.begin == $1.begin && $0.end < $1.end) }
        var cursor = 0
        for e in entries {
            guard e.begin == cursor else { throw bad("tensor \(e.name) overlaps another or leaves a gap at byte \(cursor)") }
            cursor = e.end
        }
        guard cursor == dataSize else { throw bad("\(dataSize - cursor) bytes after the last tensor") }
        self.metadata = metadata
        tensors = entries.map { StoredTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape,
                                             bytes: Array(bytes[(headerEnd + $0.begin)..<(headerEnd + $0.end)])) }
    }
}
