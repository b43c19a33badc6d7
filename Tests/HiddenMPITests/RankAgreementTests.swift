// What the ranks of a job must agree on, with real mpirun: the checkpoint they resume (rank 0
// chooses; a rank that cannot read it, or that restores something else, stops the job with its
// rank and host), that their scores and optimiser state never drift apart silently, and that the
// launcher started the ranks the batch system's task count asks for. Every failure is one clear
// message and a non-zero exit within seconds; no rank hangs.

import Foundation
import XCTest

final class RankAgreementTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-agree")
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// fc on synthetic data: 640 samples, global batch 64, 10 steps per epoch.
    static let fc = ["train", "--dataset", "synthetic", "--input", "1x12x12", "--classes", "4", "--train-size", "640",
                     "--test-size", "64", "--model", "fc", "--batch-size", "64", "--seed", "3", "--progress", "0"]

    /// Rank 0 with `first` arguments, rank 1 with `second` (MPMD: the way two nodes with
    /// node-local folders see different files under the same path).
    /// With `plain`, `second` is rank 1's whole command line (its own executable first).
    func twoRanks(_ first: [String], _ second: [String], plain: Bool = false) throws -> RunResult {
        let bin = try Harness.binary()
        let command = [try Harness.mpirun(), "-np", "1", bin] + first + [":", "-np", "1"] + (plain ? [] : [bin]) + second
        let r = try Harness.run(command, environment: Harness.childEnvironment(), timeout: 60)
        XCTAssertFalse(r.timedOut, "hung\n\(r.transcript)")
        return r
    }

    /// Where rank 0 runs the direct 3x3 convolution and rank 1 im2col + sgemm (here
    /// HIDDEN_MPI_CONV=im2col), the run goes on, with a warning that names rank 1:
    /// its bits would depend on which rank computed which chunk. The header says how the
    /// convolutions and the fully connected layers run (conv2 at width 0.25: a 3->16 stem by
    /// im2col, then 16->16; its head's three linear layers follow the same setting).
    func testRanksThatConvolveDifferentlyAreWarnedAbout() throws {
        let conv = ["train", "--dataset", "synthetic", "--input", "3x8x8", "--classes", "4", "--train-size", "64",
                    "--test-size", "16", "--model", "conv2", "--width", "0.25", "--batch-size", "16", "--max-steps", "1",
                    "--progress", "0"]
        let alone = try Harness.hiddenMPI(conv, timeout: 60)
        XCTAssertEqual(alone.status, 0, alone.transcript)
        try XCTSkipIf(alone.stdout.contains("convolutions: im2col + sgemm"), "this CPU has neither AVX-512 nor AVX2: no direct convolution")
        XCTAssertTrue(alone.stdout.contains("convolutions: 1 of 2 by the direct 3x3 kernel"), alone.transcript)
        let off = try Harness.hiddenMPI(conv, timeout: 60, env: ["HIDDEN_MPI_CONV": "im2col"])
        XCTAssertTrue(off.stdout.contains("convolutions: im2col + sgemm") && off.stdout.contains("; fully connected layers by sgemm"), off.transcript)
        let typo = try Harness.hiddenMPI(conv, timeout: 60, env: ["HIDDEN_MPI_CONV": "avx512"])
        XCTAssertTrue(typo.stdout.contains("convolutions: 1 of 2 by the direct 3x3 kernel (AVX-512), the rest by im2col + sgemm; fully connected layers by their own kernel (AVX-512); HIDDEN_MPI_CONV=avx512 ignored: it takes im2col or avx2"),
                      typo.transcript)
        XCTAssertFalse(alone.stdout.contains("ignored"), alone.transcript)

        let mixed = try twoRanks(conv, ["/usr/bin/env", "HIDDEN_MPI_CONV=im2col", try Harness.binary()] + conv, plain: true)
        XCTAssertEqual(mixed.status, 0, mixed.transcript)
        XCTAssertEqual(Harness.count("another OpenBLAS kernel or convolution", in: mixed.stderr), 1, mixed.transcript)
        XCTAssertTrue(mixed.stderr.contains("rank 1 ") && mixed.stderr.contains("HIDDEN_MPI_CONV=im2col"), mixed.transcript)
        XCTAssertEqual(Harness.count("another OpenBLAS kernel", in: alone.stderr), 0, alone.transcript)

        // A node with AVX2 but no AVX-512 (here HIDDEN_MPI_CONV=avx2 on rank 1) runs the AVX2
        // kernels, which give the same bits: no warning, and the same epoch figures to the last bit.
        let avx2 = try Harness.hiddenMPI(conv, timeout: 60, env: ["HIDDEN_MPI_CONV": "avx2"])
        XCTAssertTrue(avx2.stdout.contains("convolutions: 1 of 2 by the direct 3x3 kernel (AVX2), the rest by im2col + sgemm; fully connected layers by their own kernel (AVX2)"),
                      avx2.transcript)
        let uniform = try twoRanks(conv + ["--metrics", path("uniform.jsonl")], conv + ["--metrics", path("uniform.jsonl")])
        XCTAssertEqual(uniform.status, 0, uniform.transcript)
        let withAVX2 = try twoRanks(conv + ["--metrics", path("avx2.jsonl")],
                                    ["/usr/bin/env", "HIDDEN_MPI_CONV=avx2", try Harness.binary()] + conv + ["--metrics", path("avx2.jsonl")],
                                    plain: true)
        XCTAssertEqual(withAVX2.status, 0, withAVX2.transcript)
        XCTAssertEqual(Harness.count("another OpenBLAS kernel or convolution", in: withAVX2.stderr), 0, withAVX2.transcript)
        assertSameEpochMetrics(path("uniform.jsonl"), path("avx2.jsonl"), "rank 1 on the AVX2 kernels")
    }

    func checkpointed(_ folder: String, np: Int, extra: [String] = []) throws {
        let r = try Harness.hiddenMPI(Self.fc + ["--max-steps", "4", "--checkpoint-dir", path(folder), "--checkpoint-every", "2"] + extra,
                                      np: np, timeout: 60)
        XCTAssertEqual(r.status, 0, r.transcript)
    }

    func testARankThatCannotReadTheChosenCheckpointStopsTheJob() throws {
        try checkpointed("shared", np: 2)
        try FileManager.default.createDirectory(atPath: path("local"), withIntermediateDirectories: true)
        let resume = Self.fc + ["--max-steps", "6", "--resume", "auto"]
        let r = try twoRanks(resume + ["--checkpoint-dir", path("shared")], resume + ["--checkpoint-dir", path("local")])
        XCTAssertNotEqual(r.status, 0, r.transcript)
        XCTAssertEqual(Harness.count("hidden-mpi: error", in: r.stderr), 1, "one message\n\(r.transcript)")
        XCTAssertTrue(r.stderr.contains("rank 1 on host "), r.transcript)
        XCTAssertTrue(r.stderr.contains(path("local") + "/ckpt-s000000004-e0000.safetensors"), "names the path rank 1 looked at\n\(r.transcript)")
        XCTAssertTrue(r.stderr.contains("file system all nodes share"), r.transcript)
        XCTAssertLessThan(r.seconds, 30)
    }

    func testRanksThatRestoreDifferentStatesStopTheJob() throws {
        try checkpointed("shared", np: 2)
        // The same step's file name, from a run with another learning rate: same weights, other scores.
        try checkpointed("local", np: 1, extra: ["--lr", "0.05"])
        let resume = Self.fc + ["--max-steps", "6", "--resume", "auto"]
        let r = try twoRanks(resume + ["--checkpoint-dir", path("shared")], resume + ["--checkpoint-dir", path("local")])
        XCTAssertEqual(r.status, 1, r.transcript)
        XCTAssertTrue(r.stderr.contains("the ranks resumed different states"), r.transcript)
        XCTAssertTrue(r.stderr.contains("rank 1 on"), r.transcript)
        XCTAssertFalse(r.stdout.contains("done:"), "no training after the mismatch\n\(r.transcript)")
    }

    func testDriftBetweenRanksIsCaughtAtTheNextCheck() throws {
        let r = try Harness.hiddenMPI(Self.fc + ["--max-steps", "3"], np: 2, timeout: 60,
                                      env: ["HIDDEN_MPI_FAULT_DRIFT_RANK": "1"])
        XCTAssertEqual(r.status, 1, r.transcript)
        XCTAssertTrue(r.stderr.contains("drifted apart by step 3"), r.transcript)
        XCTAssertTrue(r.stderr.contains("rank 1 on"), r.transcript)
        XCTAssertFalse(r.stdout.contains("done:") || r.stdout.split(separator: "\n").contains { $0.hasPrefix("    1  ") }, "no epoch line from ranks that disagree\n\(r.transcript)")
        // Without the fault the same run passes every check.
        let clean = try Harness.hiddenMPI(Self.fc + ["--max-steps", "3"], np: 2, timeout: 60)
        XCTAssertEqual(clean.status, 0, clean.transcript)
    }

    func testALauncherThatStartedIndependentOneRankJobsIsRefused() throws {
        let table: [(env: [String: String], np: Int?, status: Int32)] = [
            (["SLURM_NTASKS": "4"], nil, 2),
            (["SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "4"], 2, 2),
            (["PBS_NP": "3"], 2, 2),
            (["SLURM_NTASKS": "2"], 2, 0),
            (["SLURM_NTASKS": "4", "HIDDEN_MPI_ALLOW_FEWER_RANKS": "1"], nil, 0),
        ]
        for row in table {
            let r = try Harness.hiddenMPI(Self.fc + ["--max-steps", "1"], np: row.np, timeout: 60, env: row.env)
            XCTAssertEqual(r.status, row.status, "\(row.env), np \(row.np ?? 1)\n\(r.transcript)")
            if row.status != 0 {
                XCTAssertTrue(r.stderr.contains("not one MPI job") && r.stderr.contains("mpirun -np"), r.transcript)
                XCTAssertFalse(r.stdout.contains("epoch"), "nothing trained\n\(r.transcript)")
            }
        }
    }
}
