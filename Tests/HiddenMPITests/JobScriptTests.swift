// The cluster job scripts of jobs/ (Slurm with mpirun and with srun --mpi=pmix, PBS), run end to
// end by scripts/check-jobs.sh with the batch system faked: a checkpoint and an epoch line each,
// SIGUSR1 -> checkpoint -> `scontrol requeue` -> resume, PBS's walltime stop and resubmission, and
// bad settings refused with exit status 2 before anything is launched. Docs/jobs.md.

import Foundation
import XCTest

final class JobScriptTests: XCTestCase {
    func testJobScriptsRunEndToEndWithTheSchedulerFaked() throws {
        _ = try Harness.binary()
        let script = Harness.packageRoot.appendingPathComponent("scripts/check-jobs.sh").path
        // check-jobs.sh takes under a minute on 2 cores; it must stay under 3.
        let result = try Harness.run(["/bin/bash", script], environment: Harness.childEnvironment(), timeout: 240)
        XCTAssertFalse(result.timedOut, "scripts/check-jobs.sh hung\n\(result.transcript)")
        XCTAssertEqual(result.status, 0, "scripts/check-jobs.sh reported failures\n\(result.transcript)")
        XCTAssertFalse(result.stdout.contains("FAIL"), result.transcript)
        XCTAssertTrue(result.stdout.contains("check-jobs: 0 failure(s)"), result.transcript)
    }
}
