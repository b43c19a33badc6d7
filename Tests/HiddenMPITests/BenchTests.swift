// `hidden-mpi bench` reports what the speed issue asks for, under mpirun too, and the step loop
// allocates nothing once warm (counted by the preloaded allocator of scripts/alloc-count.c).
// These check the report's content and invariants, never a speed: timings are measured, not asserted.

import Foundation
import XCTest

final class BenchTests: XCTestCase {
    static let small = ["bench", "--model", "conv2", "--width", "0.25", "--input", "3x16x16", "--steps", "3",
                        "--warmup-steps", "2", "--json"]

    func report(_ r: RunResult) throws -> [String: Any] {
        XCTAssertEqual(r.status, 0, r.transcript)
        let line = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw HarnessError("bench --json printed no JSON object\n\(r.transcript)")
        }
        return object
    }

    func parameters() throws -> Int {
        let r = try Harness.hiddenMPI(["info", "--model", "conv2", "--width", "0.25", "--dataset", "synthetic",
                                       "--input", "3x16x16", "--json"])
        let total = r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.first { $0["layer"] as? String == "total" }
        return try XCTUnwrap((total?["weights"] as? NSNumber)?.intValue)
    }

    func testReportHasEveryFieldOnOneAndTwoRanks() throws {
        let weights = try parameters()
        for np in [1, 2] {
            let d = try report(try Harness.hiddenMPI(Self.small + ["--rank-batch", "8"], np: np))
            for key in ["images_per_s", "step_gflops", "sgemm_peak_gflops", "mask_fraction", "allreduce_hidden_fraction",
                        "allreduce_bytes_per_step", "world_size", "phases_s", "peak_fraction"] {
                XCTAssertNotNil(d[key], "np \(np): missing \(key)")
            }
            XCTAssertEqual((d["world_size"] as? NSNumber)?.intValue, np)
            XCTAssertEqual((d["global_batch"] as? NSNumber)?.intValue, 8 * np, "--rank-batch 8 gives 8 per rank")
            // Score gradients and nothing else: one int64 per weight under the exact reduction (the
            // default), one float under --reduction float.
            XCTAssertEqual(d["reduction"] as? String, "exact")
            XCTAssertEqual((d["allreduce_bytes_per_step"] as? NSNumber)?.intValue, 8 * weights)
            let float = try report(try Harness.hiddenMPI(Self.small + ["--rank-batch", "8", "--reduction", "float"], np: np))
            XCTAssertEqual((float["allreduce_bytes_per_step"] as? NSNumber)?.intValue, 4 * weights)
            let mask = try XCTUnwrap((d["mask_fraction"] as? NSNumber)?.doubleValue)
            XCTAssert(mask > 0 && mask < 1, "mask_fraction \(mask)")
            let gflops = try XCTUnwrap((d["step_gflops"] as? NSNumber)?.doubleValue)
            let peak = try XCTUnwrap((d["sgemm_peak_gflops"] as? NSNumber)?.doubleValue)
            XCTAssert(gflops > 0 && peak > 0, "gflops \(gflops), peak \(peak)")
            let phases = try XCTUnwrap(d["phases_s"] as? [String: Double])
            let step = try XCTUnwrap((d["step_s"] as? NSNumber)?.doubleValue)
            // Each step's phases partition it, so each phase's median is at most the step's median.
            // (Their medians' sum is not bounded by the step's median: on a loaded machine it can
            // exceed it, which once failed this test under a concurrent sweep.)
            for (name, seconds) in phases {
                XCTAssertLessThanOrEqual(seconds, step * (1 + 1e-9), "np \(np): phase \(name) is part of the step")
            }
            // The sgemms by layer shape: conv2 at width 0.25 on 3x16x16 has two 3x3 convolutions
            // (3->16 and 16->16, both at 16x16) and three linear layers; the first convolution
            // has no input gradient. Their time is part of the step.
            let shapes = try XCTUnwrap(d["gemm_by_shape"] as? [[String: Any]])
            XCTAssertEqual(Set(shapes.compactMap { $0["shape"] as? String }),
                           ["conv 3x3/1 3->16 @16x16", "conv 3x3/1 16->16 @16x16", "linear 1024->64", "linear 64->64", "linear 64->10"])
            for row in shapes {
                let shape = row["shape"] as? String ?? "?"
                for direction in ["forward", "weight_gradient"] {
                    XCTAssertGreaterThan((row[direction + "_gflops"] as? NSNumber)?.doubleValue ?? 0, 0, "\(shape) \(direction)")
                }
                let input = (row["input_gradient_s"] as? NSNumber)?.doubleValue ?? -1
                XCTAssert(shape == "conv 3x3/1 3->16 @16x16" ? input == 0 : input > 0, "\(shape): input gradient \(input) s")
            }
            let gemm = try XCTUnwrap((d["gemm_s"] as? NSNumber)?.doubleValue)
            XCTAssert(gemm > 0 && gemm <= step * Double(1 + 1e-9) * 1.5, "sgemm seconds \(gemm) in a step of \(step)")
            // Shares of the mean step, whose parts the sgemm calls and the batch norms, pools and
            // ReLUs are (means over the same steps): together at most the whole.
            let mean = try XCTUnwrap((d["step_s_mean"] as? NSNumber)?.doubleValue)
            let gemmShare = try XCTUnwrap((d["gemm_fraction"] as? NSNumber)?.doubleValue)
            let normShare = try XCTUnwrap((d["norm_pool_add_relu_fraction"] as? NSNumber)?.doubleValue)
            XCTAssertEqual(gemmShare, gemm / mean, accuracy: 1e-9)
            XCTAssert(normShare > 0 && gemmShare + normShare <= 1 + 1e-9, "sgemm \(gemmShare) and the rest \(normShare) of the mean step")
            if np == 1 {
                XCTAssert(d["allreduce_hidden_fraction"] is NSNull, "one rank has no allreduce to hide")
            } else {
                let hidden = try XCTUnwrap((d["allreduce_hidden_fraction"] as? NSNumber)?.doubleValue)
                XCTAssert(hidden >= 0 && hidden <= 1, "hidden fraction \(hidden)")
            }
        }
    }

    func testStepLoopAllocatesNothingAfterWarmUp() throws {
        let dir = try Harness.makeTempDir(prefix: "alloc")
        defer { try? FileManager.default.removeItem(at: dir) }
        let lib = dir.appendingPathComponent("alloc-count.so").path
        let source = Harness.packageRoot.appendingPathComponent("scripts/alloc-count.c").path
        let cc = try Harness.run(["/usr/bin/cc", "-O2", "-shared", "-fPIC", source, "-o", lib, "-ldl"],
                                 environment: Harness.childEnvironment(), timeout: 60)
        XCTAssertEqual(cc.status, 0, cc.transcript)
        // Without the counter there is nothing to report; with it, zero per step outside the BLAS.
        let plain = try report(try Harness.hiddenMPI(Self.small + ["--batch-size", "8"]))
        XCTAssert(plain["allocations_per_step"] is NSNull)
        for model in [["--model", "conv2", "--width", "0.25"], ["--model", "fc", "--input", "1x28x28"],
                      ["--model", "cifar-resnet18", "--width", "0.25"],
                      ["--model", "cifar-resnet18", "--width", "0.125", "--method", "dense"]] {
            var args = Self.small + ["--batch-size", "8"]
            args.replaceSubrange(1...4, with: model)
            let d = try report(try Harness.hiddenMPI(args, env: ["LD_PRELOAD": lib]))
            // OpenBLAS's own, where its kernel makes some (the small-matrix sgemms of SkylakeX and
            // Cooperlake malloc a buffer per call), are not ours to remove: counted apart.
            let all = try XCTUnwrap((d["allocations_per_step"] as? NSNumber)?.doubleValue)
            let blas = try XCTUnwrap((d["allocations_per_step_in_blas"] as? NSNumber)?.doubleValue)
            XCTAssertEqual(all - blas, 0, "\(model): heap allocations in the step loop outside the BLAS (\(all) in all, \(blas) in the BLAS)")
            if blas > 0 { print("\(model): \(blas) allocations per step inside OpenBLAS (\(d["blas_core"] ?? "?"))") }
        }
    }

    /// scripts/bench-ab-concurrent.py runs both builds' `bench` at once, one on each core, the
    /// cores swapped every round, and reports each round's ratio of their median steps; a build
    /// that fails stops it with the build named.
    func testConcurrentABRunsBothBuildsAndSwapsTheirCores() throws {
        try XCTSkipIf(ProcessInfo.processInfo.activeProcessorCount < 2, "needs two cores")
        let bin = try Harness.binary(), root = Harness.packageRoot.path
        let script = ["/usr/bin/env", "python3", "\(root)/scripts/bench-ab-concurrent.py"]
        let bench = ["--model", "fc", "--input", "1x28x28", "--batch-size", "64", "--steps", "2", "--warmup-steps", "1"]
        let r = try Harness.run(script + [bin, bin, "2"] + bench, environment: Harness.childEnvironment(), timeout: 240)
        XCTAssertEqual(r.status, 0, r.transcript)
        let rounds = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(rounds.compactMap { $0["a_core"] as? String }, ["0", "1"], r.transcript)
        for round in rounds {
            let a = round["a_step_s"] as? Double ?? 0, b = round["b_step_s"] as? Double ?? 0, ratio = round["ratio"] as? Double ?? 0
            XCTAssertGreaterThan(a, 0, r.transcript)
            XCTAssertGreaterThan(b, 0, r.transcript)
            XCTAssertEqual(ratio, a / b, accuracy: 0.001, r.transcript)
        }
        XCTAssertTrue(r.stderr.contains("median ratio"), r.transcript)

        let bad = try Harness.run(script + [bin, "/nonexistent/hidden-mpi", "1"] + bench, environment: Harness.childEnvironment(),
                                  timeout: 120)
        XCTAssertNotEqual(bad.status, 0, bad.transcript)
        XCTAssertTrue(bad.stderr.contains("/nonexistent/hidden-mpi"), bad.transcript)
    }
}
