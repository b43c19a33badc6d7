// The C plane loops of batch norm, ReLU and the residual adds (CKernels/plane_loops.c): their
// AVX2 paths and their portable paths give the same bits, and both give what the formulas in
// plane_loops.h define, written out here one value at a time, with -0, NaN, infinities and
// subnormals among the inputs and lengths around the vector widths.

import CKernels
import XCTest

final class PlaneLoopTests: XCTestCase {
    static let lengths = [0, 1, 7, 8, 9, 15, 16, 17, 31, 100, 1027]

    /// Random values with the awkward ones mixed in.
    func values(_ n: Int, _ rng: inout TestRNG) -> [Float] {
        let special: [Float] = [0, -0, .nan, .infinity, -.infinity, 1e-40, -1e-40, 3e38]
        return (0..<n).map { i in i % 13 == 5 ? special[(i / 13) % special.count] : rng.uniform(-3, 3) }
    }

    func assertSameBits(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where !(x.isNaN && y.isNaN) && x.bitPattern != y.bitPattern {
            XCTFail("\(what): element \(i) is \(x), expected \(y)", file: file, line: line)
            return
        }
    }

    func assertSameBits(_ a: (Double, Double), _ b: (Double, Double), _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        for (x, y) in [(a.0, b.0), (a.1, b.1)] where !(x.isNaN && y.isNaN) && x.bitPattern != y.bitPattern {
            XCTFail("\(what): \(a) against \(b)", file: file, line: line)
        }
    }

    /// The sums' definition: eight double lanes over the whole eights, added 0..7 to -0, then the rest.
    func laneSums(_ u: [Float], _ v: [Float]) -> (Double, Double) {
        var s = [Double](repeating: 0, count: 8), q = s
        let whole = u.count / 8 * 8
        for i in 0..<whole { s[i % 8] += Double(u[i]); q[i % 8] += Double(u[i]) * Double(v[i]) }
        var s1 = -0.0, s2 = -0.0
        for j in 0..<8 { s1 += s[j]; s2 += q[j] }
        for i in whole..<u.count { s1 += Double(u[i]); s2 += Double(u[i]) * Double(v[i]) }
        return (s1, s2)
    }

    /// Runs `body` on the default path (AVX2 where the CPU has it), then on the portable one.
    func bothPaths<T>(_ body: () -> T) -> (T, T) {
        let fast = body()
        hm_plane_loops_force_portable(1)
        defer { hm_plane_loops_force_portable(0) }
        return (fast, body())
    }

    func testSumsMatchTheirDefinitionOnBothPaths() {
        var rng = TestRNG(41)
        for n in Self.lengths {
            let a = values(n, &rng), b = values(n, &rng), x = values(n, &rng)
            let r = b.map { $0 < 0 ? 0 : $0 }  // a ReLU's output
            let (mean, scale): (Float, Float) = (0.25, 1.75)
            let g = zip(a, r).map { $0.1 > 0 ? $0.0 : 0 }
            let cases: [(String, () -> (Double, Double), (Double, Double))] = [
                ("plane sums", { var s = (0.0, 0.0); withUnsafeMutableBytes(of: &s) { hm_plane_sums(a, b, n, $0.baseAddress!.assumingMemoryBound(to: Double.self)) }; return s },
                 laneSums(a, b)),
                ("sums behind a ReLU", { var s = (0.0, 0.0); withUnsafeMutableBytes(of: &s) { hm_plane_sums_relu(a, r, n, $0.baseAddress!.assumingMemoryBound(to: Double.self)) }; return s },
                 laneSums(g, r)),
                ("sums behind a ReLU, x-hat from x", { var s = (0.0, 0.0); withUnsafeMutableBytes(of: &s) { hm_plane_sums_relu_x(a, r, x, n, mean, scale, $0.baseAddress!.assumingMemoryBound(to: Double.self)) }; return s },
                 laneSums(g, x.map { ($0 - mean) * scale })),
                ("ReLU backward with the sums of g and x-hat", {
                    var s = (0.0, 0.0), out = [Float](repeating: 7, count: n)
                    withUnsafeMutableBytes(of: &s) { hm_relu_backward_sums(r, a, &out, x, n, mean, scale, $0.baseAddress!.assumingMemoryBound(to: Double.self)) }
                    XCTAssertEqual(out.map(\.bitPattern), g.map(\.bitPattern), "ReLU backward with sums, n \(n): g")
                    return s
                 }, laneSums(g, x.map { ($0 - mean) * scale })),
            ]
            for (what, run, expected) in cases {
                let (fast, portable) = bothPaths(run)
                assertSameBits(fast, expected, "\(what), n \(n), default path")
                assertSameBits(portable, expected, "\(what), n \(n), portable path")
            }
        }
        // The lanes are visible: summed left to right, 2^53 + 1 + 1 - 2^53 + 1 would be 1.
        let u: [Float] = [0x1p53, 1, 1, 0, 0, 0, 0, 0, -0x1p53, 0, 0, 0, 0, 0, 0, 0, 1]
        var s = (0.0, 0.0)
        withUnsafeMutableBytes(of: &s) { hm_plane_sums(u, u, u.count, $0.baseAddress!.assumingMemoryBound(to: Double.self)) }
        XCTAssertEqual(s.0, 3, "lanes: (2^53 - 2^53) + 1 + 1, then the 17th value; left to right it would be 1")
    }

    func testElementwiseLoopsMatchTheirFormulasOnBothPaths() {
        var rng = TestRNG(42)
        let (mean, scale, gamma, mdy, mdyx): (Float, Float, Float, Float, Float) = (0.5, 1.25, 0.75, -0.125, 0.375)
        for n in Self.lengths {
            let a = values(n, &rng), b = values(n, &rng), x = values(n, &rng)
            let r = b.map { $0 < 0 ? 0 : $0 }
            func out(_ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
                var y = [Float](repeating: 7, count: n)
                y.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
                return y
            }
            let cases: [(String, () -> [Float], [Float])] = [
                ("normalize", { out { hm_normalize(a, $0, n, mean, scale, 0) } }, a.map { ($0 - mean) * scale }),
                ("normalize and ReLU", { out { hm_normalize(a, $0, n, mean, scale, 1) } },
                 a.map { let v = ($0 - mean) * scale; return v < 0 ? 0 : v }),
                ("batch-norm backward", { out { hm_norm_backward(a, b, $0, n, gamma, mdy, mdyx, scale) } },
                 zip(a, b).map { scale * (gamma * $0.0 - mdy - $0.1 * mdyx) }),
                ("batch-norm backward behind a ReLU", { out { hm_norm_backward_relu(a, r, x, $0, n, gamma, mean, mdy, mdyx, scale) } },
                 (0..<n).map { i in
                     let g: Float = r[i] > 0 ? a[i] : 0, xhat = (x[i] - mean) * scale
                     return scale * (gamma * g - mdy - xhat * mdyx)
                 }),
                ("batch-norm backward, x-hat from x", { out { hm_norm_backward_x(a, x, $0, n, gamma, mean, mdy, mdyx, scale) } },
                 zip(a, x).map { scale * (gamma * $0.0 - mdy - (($0.1 - mean) * scale) * mdyx) }),
                ("normalize, add and ReLU", { out { hm_normalize_add_relu(a, b, $0, n, mean, scale) } },
                 zip(a, b).map { let v = ($0.0 - mean) * scale + $0.1; return v < 0 ? 0 : v }),
                ("ReLU", { out { hm_relu(a, $0, n) } }, a.map { $0 < 0 ? 0 : $0 }),
                ("add in place", { var d = a; d.withUnsafeMutableBufferPointer { hm_add_inplace($0.baseAddress!, b, n) }; return d },
                 zip(a, b).map { $0.0 + $0.1 }),
                ("add and ReLU", { out { hm_add_relu(a, b, $0, n) } }, zip(a, b).map { let v = $0.0 + $0.1; return v < 0 ? 0 : v }),
                ("ReLU backward", { out { hm_relu_backward(x, a, $0, n) } }, zip(x, a).map { $0.0 > 0 ? $0.1 : 0 }),
            ]
            for (what, run, expected) in cases {
                let (fast, portable) = bothPaths(run)
                assertSameBits(fast, expected, "\(what), n \(n), default path")
                assertSameBits(portable, expected, "\(what), n \(n), portable path")
            }
        }
        // -0 passes the ReLU as -0 (the lanes' max would make it +0).
        var y: [Float] = [1]
        hm_relu([-0.0], &y, 1)
        XCTAssertEqual(y[0].bitPattern, Float(-0.0).bitPattern)
        print("plane loops use AVX2 here: \(hm_plane_loops_use_avx2() != 0)")
    }
}
