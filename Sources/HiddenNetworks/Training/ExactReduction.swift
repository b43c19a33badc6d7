// Exact reduction: the same bits for any number of ranks (Docs/reproducibility.md).
//
// Float sums depend on their order, and the order depends on how many ranks share a batch. So
// the global batch is cut into chunks of `chunk` samples at fixed positions; a rank takes whole
// chunks, and every layer computes each chunk with the same BLAS calls wherever it runs. What is
// summed over samples is then rounded once per chunk to a fixed-point integer and summed as an
// integer, which is associative: on a rank, across ranks (MPI_SUM on int64), in any grouping.
//
// - Score (weight) gradients: int64 with 40 fraction bits, of the gradient of the *mean* loss
//   (chunk sum / global batch). One int64 per parameter: twice the bytes of the float reduction.
//   A chunk's contribution must stay below 2^11 in magnitude (and be finite), else the step is
//   flagged out of range and the run stops.
// - Batch-norm sums and the loss: ExactSum, a double split into five int64 limbs (32 bits each,
//   2^-64 to 2^64, and a count of non-finite values): exact for any value a double sum of
//   activations reaches, a few dozen bytes per channel.

import CKernels
import Foundation

/// How score gradients, batch-norm statistics and metrics are summed over the samples and ranks.
public enum GradientReduction: String, CaseIterable, Sendable {
    /// Chunked fixed-point sums: the same bits for any number of ranks.
    case exact
    /// Float sums in whatever order the ranks produce: results depend on the number of ranks.
    case float
}

/// Fixed-point encoding of gradients: value = integer * 2^-fractionBits.
public enum FixedPoint {
    public static let fractionBits = 40
    /// A chunk's scaled contribution must stay below 2^51 (the rounding trick's range), that is
    /// below 2^11 = 2048 in gradient units.
    public static let chunkLimit = 0x1p51
    public static var largestChunkValue: Double { chunkLimit / 0x1p40 }

    /// acc[i] (+)= round(src[i] * scale * 2^40) for i < count (stores when `first`). Returns false
    /// when some value was out of range or not finite (acc is then meaningless).
    @discardableResult
    public static func accumulate(_ src: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Int64>, count n: Int,
                                  scale: Double, first: Bool) -> Bool {
        // |v| < 2^51: adding 1.5 * 2^52 rounds v to an integer in the low bits (CKernels).
        hm_fixed_accumulate(src, acc, n, factor(scale: scale), first ? 1 : 0) != 0
    }

    /// What a gradient value is multiplied by before rounding to an integer.
    public static func factor(scale: Double) -> Double { scale * 0x1p40 }

    /// dst[i] = acc[i] * 2^-40 rounded to float.
    public static func decode(_ acc: UnsafePointer<Int64>, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        hm_fixed_decode(acc, dst, n, 0x1p-40)
    }
}

/// An exact sum of doubles in int64 limbs that MPI_SUM adds associatively: limbs 0-3 hold the
/// value in 32-bit pieces weighted 2^32, 1, 2^-32 and 2^-64 (each limb may exceed 32 bits
/// while sums accumulate; up to 2^31 terms), limb 4 counts non-finite or out-of-range terms
/// (|v| >= 2^63), which make the sum NaN. Bits below 2^-64 are rounded off, term by term.
public enum ExactSum {
    public static let limbs = 5

    /// Adds `v` to the sum at `p` (limbs consecutive).
    @inline(__always)
    public static func add(_ v: Double, to p: UnsafeMutablePointer<Int64>) {
        guard v.isFinite, abs(v) < 0x1p63 else { p[4] &+= 1; return }
        // Truncation keeps every piece exact: each remainder has v's sign and is no larger.
        let a = (v * 0x1p-32).rounded(.towardZero)
        var r = v - a * 0x1p32
        let b = r.rounded(.towardZero)
        r = (r - b) * 0x1p32
        let c = r.rounded(.towardZero)
        r = (r - c) * 0x1p32
        p[0] &+= Int64(a); p[1] &+= Int64(b); p[2] &+= Int64(c); p[3] &+= Int64(r.rounded())
    }

    /// The sum as a double: the limbs normalised (carries moved up; limbs 1-3 then in
    /// [0, 2^32)), a negative sum negated so that no two terms cancel, then combined from the
    /// lowest limb up in a fixed order, so equal sums give equal bits.
    public static func value(_ p: UnsafePointer<Int64>) -> Double {
        guard p[4] == 0 else { return .nan }
        var l = (p[0], p[1], p[2], p[3])
        func normalise() {
            var carry = l.3 >> 32; l.3 -= carry << 32; l.2 &+= carry
            carry = l.2 >> 32; l.2 -= carry << 32; l.1 &+= carry
            carry = l.1 >> 32; l.1 -= carry << 32; l.0 &+= carry
        }
        normalise()
        let negative = l.0 < 0
        if negative {
            l = (-l.0, -l.1, -l.2, -l.3)
            normalise()
        }
        let magnitude = ((Double(l.3) * 0x1p-32 + Double(l.2)) * 0x1p-32 + Double(l.1)) + Double(l.0) * 0x1p32
        return negative ? -magnitude : magnitude
    }

    public static func clear(_ p: UnsafeMutablePointer<Int64>, sums: Int = 1) { p.update(repeating: 0, count: sums * limbs) }
}

/// What the layers of a model share for an exact reduction: the chunk size (0: no chunks, the
/// float reduction) and the scale of this step's gradients (1 / global batch). A layer that
/// meets a value out of range sets `outOfRange`; the trainer reduces the flag with the step.
public final class ChunkPlan {
    public let chunk: Int
    public var gradientScale = 1.0
    public var outOfRange = false
    public var exact: Bool { chunk > 0 }
    public init(chunk: Int) { self.chunk = chunk }

    /// The chunks of a batch of `batch` samples: (first sample, count), in order. One piece
    /// (the whole batch) when there are no chunks.
    @inline(__always)
    public func forEachChunk(batch: Int, _ body: (Int, Int) -> Void) {
        guard chunk > 0 else { body(0, batch); return }
        var first = 0
        while first < batch { body(first, min(chunk, batch - first)); first += chunk }
    }
}

/// Samples `lo..<hi` of a batch of `count` for `rank` of `size`: whole chunks of `chunk`
/// samples, split like `shard` splits items.
public func chunkShard(count: Int, chunk: Int, rank: Int, size: Int) -> Range<Int> {
    let chunks = (count + chunk - 1) / chunk
    let r = shard(count: chunks, rank: rank, size: size)
    return min(count, r.lowerBound * chunk)..<min(count, r.upperBound * chunk)
}
