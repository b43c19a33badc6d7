// The direct convolution's micro-kernels keep their accumulators in registers: in the assembly
// that clang makes of them (with -O2, as the release build) no fused multiply-add takes its addend
// from memory (the 213 form with a memory operand: dst = a x dst + memory) and no vector register
// is spilled to the stack. A memory operand as a factor is fine (a weight vector, a broadcast
// input value). A change that moves the accumulators to
// memory keeps every bit (no other test can see it) and halves the speed: commit 0b9851a sized the
// weight gradient's arrays by a function parameter (variable-length arrays), and the weight gradient ran
// at 42-50 GFLOP/s instead of 90-120 until this session's fix (Docs/performance.md).

import Foundation
import XCTest

final class KernelCodeTests: XCTestCase {
    /// The functions that hold accumulators: every forward/input-gradient tile and both weight
    /// gradients, AVX-512 and AVX2.
    static let kernels: [(file: String, function: (String) -> Bool)] = [
        ("direct_conv.c", { $0.hasPrefix("tile_") && $0 != "tile_portable" && $0 != "tile_shape" }),
        ("direct_conv_weight_grad.c", { $0 == "weight_grad_avx512" }),
        ("direct_conv_avx2.c", { $0.hasPrefix("tile2_") || $0 == "hm_dc_weight_grad_avx2" }),
    ]

    func testAccumulatorsStayInRegisters() throws {
        #if !arch(x86_64)
        throw XCTSkip("the kernels are x86-64 only")
        #else
        let sources = Harness.packageRoot.appendingPathComponent("Sources/CKernels")
        var checked = 0
        for (file, isKernel) in Self.kernels {
            let r = try Harness.run(["/usr/bin/env", "clang", "-O2", "-S", "-o", "-", "-I", sources.appendingPathComponent("include").path,
                                     "-I", sources.path, sources.appendingPathComponent(file).path],
                                    environment: ProcessInfo.processInfo.environment, timeout: 120)
            try XCTSkipIf(r.status == 127, "no clang on PATH")
            XCTAssertEqual(r.status, 0, r.transcript)
            var function = "", fmas = 0
            for line in r.stdout.split(separator: "\n") {
                let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first
                    .map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                if !line.hasPrefix("\t"), !line.hasPrefix("."), code.hasSuffix(":") {  // a function's label
                    function = String(code.dropLast())
                    continue
                }
                guard isKernel(function) else { continue }
                if line.contains("-byte Spill") || line.contains("-byte Reload"),
                   line.contains("32-byte") || line.contains("64-byte") {
                    XCTFail("\(file): \(function) spills a vector register to the stack:\n\(line)")
                }
                guard code.contains("vfmadd") else { continue }
                fmas += 1
                if code.contains("vfmadd213"), code.contains("(") {
                    XCTFail("\(file): \(function) adds to an accumulator in memory:\n\(line)")
                }
            }
            XCTAssertGreaterThan(fmas, 0, "\(file): no fused multiply-add found in its kernels (renamed?)")
            checked += 1
        }
        XCTAssertEqual(checked, Self.kernels.count)
        #endif
    }

    /// scripts/conv-micro.c, the kernels' microbenchmark that Docs/performance.md quotes, still
    /// builds against the kernels and measures every shape (one pass: a speed is not checked).
    func testMicrobenchmarkBuildsAndMeasuresEveryShape() throws {
        let root = Harness.packageRoot, sources = root.appendingPathComponent("Sources/CKernels")
        let binary = FileManager.default.temporaryDirectory.appendingPathComponent("conv-micro-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: binary) }
        let files = ["direct_conv.c", "direct_conv_avx2.c", "direct_conv_weight_grad.c", "fixed_point.c"].map {
            sources.appendingPathComponent($0).path
        }
        let build = try Harness.run(["/usr/bin/env", "clang", "-O2", "-I", sources.appendingPathComponent("include").path,
                                     root.appendingPathComponent("scripts/conv-micro.c").path] + files + ["-o", binary, "-lm"],
                                    environment: ProcessInfo.processInfo.environment, timeout: 120)
        try XCTSkipIf(build.status == 127, "no clang on PATH")
        XCTAssertEqual(build.status, 0, build.transcript)
        let run = try Harness.run([binary, "1", "cifar"], environment: ProcessInfo.processInfo.environment, timeout: 120)
        XCTAssertEqual(run.status, 0, run.transcript)
        let lines = run.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.filter { $0["stride"] as? Int == 1 }.compactMap { $0["channels"] as? Int }, [64, 128, 256, 512], run.stdout)
        XCTAssertEqual(lines.filter { $0["stride"] as? Int == 2 }.compactMap { $0["out_channels"] as? Int }, [128, 256, 512], run.stdout)
        for line in lines {
            for key in ["forward_gflops", "input_gradient_gflops", "weight_gradient_gflops"] {
                XCTAssertGreaterThan(line[key] as? Double ?? 0, 0, "\(key) in \(line)")
            }
        }
    }
}
