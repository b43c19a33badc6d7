// Shape: element counts and the command line's "CxHxW" / "F" spelling, one line per input.

import XCTest
@testable import HiddenNetworks

final class ShapeTests: XCTestCase {
    func testParsing() {
        let good: [(String, [Int])] = [("3x32x32", [3, 32, 32]), ("1x28x28", [1, 28, 28]), ("784", [784]), ("2x5", [2, 5]), ("1", [1])]
        for (text, dims) in good {
            XCTAssertEqual(Shape(parsing: text), Shape(dims), text)
            XCTAssertEqual(Shape(parsing: text)?.description, text, "round trip \(text)")
        }
        let bad = ["", "x", "3x", "x3", "3xx3", "0x3x3", "3x-1x3", "1x2x3x4", "3X32X32", "a", "3.5", " 3"]
        for text in bad { XCTAssertNil(Shape(parsing: text), "\"\(text)\" should not parse") }
    }

    func testCount() {
        XCTAssertEqual(Shape([3, 32, 32]).count, 3072)
        XCTAssertEqual(Shape([784]).count, 784)
        XCTAssertEqual(Shape([]).count, 1)
        XCTAssertEqual(FloatBuffer(count: 5).array, [0, 0, 0, 0, 0])
        XCTAssertEqual(FloatBuffer(count: 0).array, [])
    }
}
