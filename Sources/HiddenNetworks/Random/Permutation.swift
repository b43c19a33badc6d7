// The training set's order for an epoch: a pure function of (seed, epoch), the same on every rank
// (DESIGN.md invariant 2). Fisher-Yates driven by the permutation stream.

public func epochPermutation(count: Int, seed: UInt64, epoch: Int) -> [Int32] {
    var p = [Int32](unsafeUninitializedCapacity: count) { buf, n in
        for i in 0..<count { buf[i] = Int32(i) }
        n = count
    }
    let stream = RandomStream(seed: seed, purpose: .permutation, sub: UInt32(truncatingIfNeeded: epoch))
    if count < 2 { return p }
    for i in stride(from: count - 1, to: 0, by: -1) {
        let j = Int(stream.below(UInt64(i + 1), UInt64(i)))
        p.swapAt(i, j)
    }
    return p
}
