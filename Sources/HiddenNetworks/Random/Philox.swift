// Philox4x32-10: the counter-based generator of Salmon et al., "Parallel Random Numbers: As Easy
// as 1, 2, 3" (SC 2011). A block of four 32-bit words is a pure function of a 128-bit counter and
// a 64-bit key, so any weight can be made on any rank, in any order, with no state to carry.
// Checked against Random123's kat_vectors in the tests.

import Foundation

public enum Philox4x32 {
    @usableFromInline static let m0: UInt32 = 0xD251_1F53
    @usableFromInline static let m1: UInt32 = 0xCD9E_8D57
    @usableFromInline static let w0: UInt32 = 0x9E37_79B9
    @usableFromInline static let w1: UInt32 = 0xBB67_AE85

    /// The ten-round block function: counter (c0, c1, c2, c3), key (k0, k1).
    @inlinable
    public static func block(_ counter: (UInt32, UInt32, UInt32, UInt32),
                             key: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 { k0 &+= w0; k1 &+= w1 }
            let p0 = UInt64(m0) &* UInt64(c0)
            let p1 = UInt64(m1) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        }
        return (c0, c1, c2, c3)
    }
}

/// What a random stream is for. Each purpose has its own counter space, so weights, scores,
/// permutations and augmentations never share a random number.
public enum StreamPurpose: UInt32, Sendable {
    case weights = 1, scores = 2, permutation = 3, augmentation = 4, syntheticData = 5, syntheticTeacher = 6, sampling = 7, evaluationSampling = 8
    case imageAugmentation = 9
}

/// A stream of random blocks addressed by (seed, purpose, sub, index): the counter is
/// (index low, index high, sub, purpose) and the key is the 64-bit seed.
public struct RandomStream: Sendable {
    public let seed: UInt64
    public let purpose: StreamPurpose
    public let sub: UInt32

    public init(seed: UInt64, purpose: StreamPurpose, sub: UInt32 = 0) {
        self.seed = seed; self.purpose = purpose; self.sub = sub
    }

    @inlinable
    public func words(_ index: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        Philox4x32.block((UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32), sub, purpose.rawValue),
                         key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    /// Uniform in the open interval (0, 1) from one word.
    @inlinable
    public static func unit(_ w: UInt32) -> Double { (Double(w) + 0.5) * (1.0 / 4_294_967_296.0) }

    /// U(0, 1) for element `index`.
    @inlinable
    public func uniform(_ index: UInt64) -> Double { Self.unit(words(index).0) }

    /// N(0, 1) for element `index` (Box-Muller over the block's first two words).
    @inlinable
    public func normal(_ index: UInt64) -> Double {
        let w = words(index)
        let r = (-2.0 * log(Self.unit(w.0))).squareRoot()
        return r * cos(2.0 * Double.pi * Self.unit(w.1))
    }

    /// A uniformly random integer in 0..<bound for element `index` (Lemire's multiply-shift over 64 bits).
    @inlinable
    public func below(_ bound: UInt64, _ index: UInt64) -> UInt64 {
        let w = words(index)
        let x = (UInt64(w.0) << 32) | UInt64(w.1)
        return x.multipliedFullWidth(by: bound).high
    }
}

