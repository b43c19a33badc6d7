// Flat float storage. Buffers are sized once per model and batch; the step loop only reads and
// writes through their pointers and never allocates.

import CKernels

/// An owned, zero-initialised block of floats.
public final class FloatBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        guard let raw = hm_alloc(MemoryLayout<Float>.stride * max(count, 1)) else {
            fatalError("out of memory: \(count) floats")
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))  // zeroed by hm_alloc
    }

    deinit { hm_free(pointer) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    public var array: [Float] { Array(buffer) }
    public func zero() { pointer.update(repeating: 0, count: count) }
    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}

/// A per-sample shape: `[C, H, W]` for images, `[F]` for features.
public struct Shape: Equatable, CustomStringConvertible, Sendable {
    public var dims: [Int]
    public init(_ dims: [Int]) { self.dims = dims }
    public var count: Int { dims.reduce(1, *) }
    public var description: String { dims.map(String.init).joined(separator: "x") }

    /// Parses "3x32x32", "1x28x28" or "784".
    public init?(parsing text: String) {
        let parts = text.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        dims = parts.map { $0! }
    }
}

import CBLAS

/// OpenBLAS threads per rank. One rank per core with one BLAS thread is the default.
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
    public static var current: Int { Int(openblas_get_num_threads()) }
}

extension BLASThreads {
    /// The kernel family OpenBLAS chose for this CPU ("Cooperlake", "Haswell", "Prescott", ...).
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// OpenBLAS's build string ("OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64").
    public static var config: String { openblas_get_config().map { String(cString: $0) } ?? "unknown" }

    /// A hint when OpenBLAS fell back to a generic kernel on a CPU it did not recognise (seen with
    /// OpenBLAS 0.3.21 on newer Xeons: "Prescott", SSE3 only, 3-4x slower than the AVX-512 kernel).
    public static var fallbackHint: String? {
        let generic = ["prescott", "core2", "katmai", "coppermine", "northwood", "banias", "atom", "nehalem"]
        guard generic.contains(coreName.lowercased()) else { return nil }
        return "OpenBLAS runs its generic \(coreName) kernel on this CPU: sgemm is several times slower than it could be. If the CPU has AVX-512 set OPENBLAS_CORETYPE=SkylakeX (AVX2 only: Haswell) in the job's environment; a newer OpenBLAS may recognise it by itself."
    }
}
