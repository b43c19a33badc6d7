// The start-up check of DESIGN.md invariant 1: ranks that built different weights stop the job
// with one message. An MPMD launch gives the two ranks different seeds, so their weights differ.

import Foundation
import XCTest

final class WeightChecksumTests: XCTestCase {
    func testRanksWithDifferentWeightsAbortWithOneMessage() throws {
        let bin = try Harness.binary()
        let args = ["train", "--dataset", "synthetic", "--input", "1x12x12", "--classes", "4", "--train-size", "64",
                    "--test-size", "16", "--model", "fc", "--batch-size", "16", "--epochs", "1", "--progress", "0"]
        let command = [try Harness.mpirun(), "-np", "1", bin] + args + ["--seed", "0", ":", "-np", "1", bin] + args + ["--seed", "1"]
        let r = try Harness.run(command, environment: Harness.childEnvironment(), timeout: Harness.defaultTimeout)
        XCTAssertFalse(r.timedOut, "hung\n\(r.transcript)")
        XCTAssertNotEqual(r.status, 0, r.transcript)
        let text = r.combinedWithoutMPINotices
        XCTAssertEqual(Harness.count("the ranks built different weights from the same seed", in: text), 1, r.transcript)
        XCTAssertTrue(text.contains("rank 0: ") && text.contains("rank 1: "), "both checksums named\n\(r.transcript)")
        XCTAssertFalse(r.stdout.contains("epoch  train_loss"), "no training after the mismatch\n\(r.transcript)")

        // The same launch with equal seeds trains: the check is not what failed above by accident.
        let same = [try Harness.mpirun(), "-np", "1", bin] + args + ["--seed", "0", ":", "-np", "1", bin] + args + ["--seed", "0"]
        let ok = try Harness.run(same, environment: Harness.childEnvironment(), timeout: Harness.defaultTimeout)
        XCTAssertEqual(ok.status, 0, ok.transcript)
    }
}
