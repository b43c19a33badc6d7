// Per-layer top-k of |scores| by radix selection: O(n), no sort (the reference sorts every score
// tensor at every step). Ties at the threshold go to the lower index, so the mask is deterministic.

/// Kept count of a layer of `n` weights at fraction `k`: `n - Int((1 - k) * n)` in double precision,
/// truncated, as the reference computes it (k = 0.3, n = 1728 keeps 519).
public func keptCount(n: Int, k: Double) -> Int {
    n - Int((1.0 - k) * Double(n))
}

/// Writes 1 for the `kept` entries of largest |scores| and 0 elsewhere into `mask`, ties broken by
/// lower index. `scratch` must hold `topKScratchCount(count)` UInt32s. Returns the threshold's bit pattern.
@discardableResult
public func topKMask(scores: UnsafePointer<Float>, count n: Int, kept: Int,
                     mask: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<UInt32>) -> UInt32 {
    precondition(kept >= 0 && kept <= n)
    if kept == n { mask.update(repeating: 1, count: n); return 0 }
    if kept == 0 { mask.update(repeating: 0, count: n); return UInt32.max }
    let t = kthLargestMagnitude(scores: scores, count: n, rank: kept - 1, scratch: scratch)
    // |s| as bits is monotone for non-NaN floats; count how many lie strictly above the threshold.
    let bits = UnsafeRawPointer(scores).assumingMemoryBound(to: UInt32.self)
    var greater = 0
    for i in 0..<n where bits[i] & 0x7FFF_FFFF > t { greater += 1 }
    var tiesLeft = kept - greater
    for i in 0..<n {
        let v = bits[i] & 0x7FFF_FFFF
        if v > t {
            mask[i] = 1
        } else if v == t && tiesLeft > 0 {
            mask[i] = 1; tiesLeft -= 1
        } else {
            mask[i] = 0
        }
    }
    return t
}

/// Scratch a selection over `n` scores needs: candidates plus a 2048-bucket histogram.
public func topKScratchCount(_ n: Int) -> Int { n + 2048 }

/// Bit pattern of the element of descending rank `rank` (0 = largest) of |scores|: a three-pass
/// radix select over the 31 magnitude bits (11 + 10 + 10), the later passes over candidates only.
/// `scratch` holds `topKScratchCount(n)` UInt32s; nothing is allocated.
public func kthLargestMagnitude(scores: UnsafePointer<Float>, count n: Int, rank: Int,
                                scratch: UnsafeMutablePointer<UInt32>) -> UInt32 {
    let bits = UnsafeRawPointer(scores).assumingMemoryBound(to: UInt32.self)
    let h = scratch + n
    var q = UInt32(n - 1 - rank)  // ascending rank
    // Pass 1 over all elements: bits 30...20.
    h.update(repeating: 0, count: 2048)
    for i in 0..<n { h[Int((bits[i] & 0x7FFF_FFFF) >> 20)] &+= 1 }
    var bucket = 0
    while q >= h[bucket] { q -= h[bucket]; bucket += 1 }
    var prefix = UInt32(bucket) << 20
    var m = 0
    for i in 0..<n {
        let v = bits[i] & 0x7FFF_FFFF
        if v >> 20 == UInt32(bucket) { scratch[m] = v; m += 1 }
    }
    // Passes 2 and 3 over the candidates: bits 19...10, then 9...0.
    var shift: UInt32 = 10
    while true {
        h.update(repeating: 0, count: 1024)
        for i in 0..<m { h[Int((scratch[i] >> shift) & 0x3FF)] &+= 1 }
        var b = 0
        while q >= h[b] { q -= h[b]; b += 1 }
        prefix |= UInt32(b) << shift
        if shift == 0 { return prefix }
        var m2 = 0
        for i in 0..<m where (scratch[i] >> shift) & 0x3FF == UInt32(b) { scratch[m2] = scratch[i]; m2 += 1 }
        m = m2
        shift = 0
    }
}

/// The same selection as `topKMask`, fused with W_eff = W * mask: one pass writes both once the
/// threshold is known (three passes over the scores in all, instead of five). Ties at the
/// threshold are taken tentatively and the surplus, if any, is given back from the highest index.
public func applyTopKMask(scores: UnsafePointer<Float>, weights: UnsafePointer<Float>, count n: Int, kept: Int,
                          mask: UnsafeMutablePointer<Float>, effective: UnsafeMutablePointer<Float>,
                          scratch: UnsafeMutablePointer<UInt32>) {
    precondition(kept >= 0 && kept <= n)
    if kept == n || kept == 0 {
        let m: Float = kept == n ? 1 : 0
        mask.update(repeating: m, count: n)
        for i in 0..<n { effective[i] = weights[i] * m }
        return
    }
    let t = kthLargestMagnitude(scores: scores, count: n, rank: kept - 1, scratch: scratch)
    let bits = UnsafeRawPointer(scores).assumingMemoryBound(to: UInt32.self)
    var taken = 0
    for i in 0..<n {
        let v = bits[i] & 0x7FFF_FFFF
        let m: Float = v >= t ? 1 : 0
        taken &+= v >= t ? 1 : 0
        mask[i] = m
        effective[i] = weights[i] * m
    }
    var surplus = taken - kept
    var i = n - 1
    while surplus > 0 {
        if bits[i] & 0x7FFF_FFFF == t { mask[i] = 0; effective[i] = 0; surplus -= 1 }
        i -= 1
    }
}
