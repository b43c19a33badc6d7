// The fuzz targets keep building and running (issue 13): scripts/fuzz.sh builds Fuzz/ with
// libFuzzer and the address sanitizer and runs every reader's target for 3 seconds from its seeds
// in Tests/FuzzCorpus, in a folder of its own. Each must execute inputs and find nothing; the
// long runs are `scripts/fuzz.sh -t 600` (Docs/fuzzing.md).

import Foundation
import XCTest

final class FuzzSmokeTests: XCTestCase {
    func testEveryFuzzTargetBuildsAndRunsCleanForThreeSeconds() throws {
        let dir = try Harness.makeTempDir(prefix: "hidden-mpi-fuzz")
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = Harness.packageRoot.path
        let r = try Harness.run(["/bin/bash", "\(root)/scripts/fuzz.sh", "-t", "3", "-o", dir.path],
                                environment: Harness.childEnvironment(), timeout: 900)
        XCTAssertEqual(r.status, 0, r.transcript)
        for target in ["idx", "cifar", "checkpoint", "subnetwork", "index", "jpeg"] {
            let pattern = #"(?m)^\#(target): ([0-9]+) runs in 3 s, cov: ([0-9]+), nothing found"#
            guard let m = try NSRegularExpression(pattern: pattern).firstMatch(in: r.stdout, range: NSRange(r.stdout.startIndex..., in: r.stdout)),
                  let runs = Range(m.range(at: 1), in: r.stdout).flatMap({ Int(r.stdout[$0]) }),
                  let cov = Range(m.range(at: 2), in: r.stdout).flatMap({ Int(r.stdout[$0]) }) else {
                XCTFail("\(target): no clean run reported\n\(r.transcript)"); continue
            }
            XCTAssertGreaterThan(runs, 10, "\(target) executed inputs")
            XCTAssertGreaterThan(cov, 10, "\(target) reached instrumented code")
        }
    }
}
