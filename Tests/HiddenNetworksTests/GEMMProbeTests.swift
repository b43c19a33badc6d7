// The check the kernel probe trusts a BLAS kernel by: this process's sgemm against a
// double-precision loop over all transposes and odd sizes. It passes the kernel in use and
// catches a single wrong output.

import HiddenNetworks
import XCTest

final class GEMMProbeTests: XCTestCase {
    func testTheKernelInUsePassesAndOneWrongOutputFails() {
        let error = GEMMProbe.check()
        XCTAssertLessThan(error, 1e-6, "float sgemm agrees with the double loop to rounding")
        XCTAssertGreaterThan(error, 0, "an exact zero would mean the check compares nothing")
        XCTAssertGreaterThan(GEMMProbe.check(corrupt: true), 1e-5)
    }

    func testEveryModelHasAFamilyOfShapes() {
        XCTAssertEqual(GEMMFamily(.fc), .linear)
        XCTAssertEqual(GEMMFamily(.conv4), .conv)
        XCTAssertEqual(GEMMFamily(.cifarResNet18), .cifarResNet)
        XCTAssertEqual(GEMMFamily(.wideResNet50), .imagenetResNet)
        for family in GEMMFamily.allCases {
            XCTAssertFalse(family.shapes.isEmpty)
            XCTAssertEqual(Set(family.shapes.map(\.name)).count, family.shapes.count, "shape names are keys")
            XCTAssertTrue(family.shapes.allSatisfy { $0.m > 0 && $0.n > 0 && $0.k > 0 && $0.calls > 0 })
        }
    }

    func testShapeSecondsAndPeakAreMeasured() {
        let s = GEMMShape("small", transB: true, m: 32, n: 48, k: 64)
        XCTAssertGreaterThan(GEMMProbe.seconds(s, repeats: 1), 0)
        XCTAssertEqual(s.flops, 2 * 32 * 48 * 64)
    }
}
