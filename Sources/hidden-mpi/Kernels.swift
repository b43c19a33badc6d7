// `hidden-mpi kernels`: the OpenBLAS kernel probe's table (KernelChoice.swift runs the probe).

import ArgumentParser
import Foundation
import HiddenNetworks

/// `hidden-mpi kernels`: what the probe found, and which kernel each family of models gets.
struct Kernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show (or redo) the OpenBLAS kernel probe: each kernel's check, sgemm peak and speed on our GEMM shapes.",
        discussion: """
        train, bench and eval run with the fastest correct OpenBLAS kernel for their model, found by \
        this probe the first time they start on a CPU and cached (HIDDEN_MPI_CACHE_DIR, else \
        ~/.cache/hidden-mpi). Each candidate kernel (OpenBLAS's own choice, Haswell, Zen on AMD, \
        SkylakeX and Cooperlake where the CPU has AVX-512) runs in a child process: its sgemm is checked \
        against a double-precision loop on odd shapes and all transposes, then timed. A kernel that \
        crashes, hangs or computes wrong results is never used. OpenBLAS's own pick stays unless \
        another kernel is more than 1% faster on the model family's shapes and faster in every one \
        of the probe's rounds (on a shared machine a single round's win is noise); the "results" \
        column is a digest of the check's output bits: kernels with the same digest do the same \
        arithmetic.

        OPENBLAS_CORETYPE in the environment always wins (the probe is skipped), as does \
        HIDDEN_MPI_KEEP_BLAS_CORE=1 (OpenBLAS's own choice). HIDDEN_MPI_PROBE_CORES=default,Haswell,... \
        replaces the list of candidates.

        Examples:
          hidden-mpi kernels
          hidden-mpi kernels --refresh --model resnet50
        """)

    @Option(help: "Show the choice for this model's family of GEMM shapes.")
    var model: Architecture = .conv2

    @Flag(help: "Probe again even when the cache has results for this CPU and OpenBLAS build.")
    var refresh = false

    @Flag(help: "Print the probe's results as one JSON object.")
    var json = false

    @Flag(help: .hidden) var probeChild = false

    func run() throws {
        if probeChild {
            let data = try JSONEncoder().encode(KernelProbe.measureThisProcess())
            FileHandle.standardOutput.write(data)
            return
        }
        let (result, how) = try KernelProbe.results(refresh: refresh)
        let family = GEMMFamily(model)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
            return
        }
        print("OpenBLAS kernels on \(result.cpu)")
        print("  \(result.openblas); probed \(result.probedAt) in \(String(format: "%.1f", result.probeSeconds)) s; \(how)")
        let families = GEMMFamily.allCases
        print("  " + ["kernel", "check", "error", "results", "peak GF/s"].enumerated().map { pad($0.1, [24, 8, 9, 10, 10][$0.0]) }.joined()
              + families.map { pad($0.rawValue + " ms", 20) }.joined())
        for c in result.candidates {
            var row = pad(c.label, 24) + pad(c.status, 8) + pad(c.maxRelativeError.map { String(format: "%.1e", $0) } ?? "-", 9)
                + pad(c.resultDigest.map { String($0.prefix(8)) } ?? "-", 10)
                + pad(c.peakGFLOPs.map { String(format: "%.1f", $0) } ?? "-", 10)
            row += families.map { pad(c.familySeconds?[$0.rawValue].map { String(format: "%.2f", 1e3 * $0) } ?? "-", 20) }.joined()
            print("  " + row + (c.detail.map { "  " + $0 } ?? ""))
        }
        print("  results: a digest of the check's output bits; kernels with the same digest do the same arithmetic")
        if let best = result.best(for: family) {
            print("\(model.rawValue) (\(family.rawValue) shapes) runs with: \(best.label): \(result.explanation(for: family))")
        } else {
            print("no candidate passed the check: runs keep OpenBLAS's own choice")
        }
        if let set = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            print("but OPENBLAS_CORETYPE=\(set) is set in this environment, and wins")
        }
    }

    private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }
}

/// How a model's convolutions run: by the direct 3x3 kernel (3x3, stride 1 or 2, channels in 16s, on
/// CPUs with AVX-512, or AVX2 with HIDDEN_MPI_CONV=avx2; one BLAS thread per rank) or by im2col + sgemm.
/// The fully connected layers run the same instruction set's kernels of their own (linear.c) where
/// the direct convolution may run, else sgemm.
struct ConvolutionPaths {
    let direct: Int, total: Int
    /// Fully connected layers, and how many of them run the own kernels.
    let linear: Int, ownLinear: Int

    init(_ model: Model) {
        let convolutions = model.allLayers.compactMap { $0 as? MaskedConv2d }
        total = convolutions.count
        direct = convolutions.filter(\.usesDirectConvolution).count
        let linears = model.allLayers.compactMap { $0 as? MaskedLinear }
        linear = linears.count
        ownLinear = linears.filter { $0.kernelLevel != nil }.count
    }

    /// A line for the run's header; nil for a model without convolutions or linear layers.
    var summary: String? {
        guard total + linear > 0 else { return nil }
        let ignored = DirectConvolution.ignoredSetting.map { "; HIDDEN_MPI_CONV=\($0) ignored: it takes im2col or avx2" } ?? ""
        let fc = linear == 0 ? "" : ownLinear == linear
            ? "; fully connected layers by their own kernel (\(DirectConvolution.instructionSet))"
            : "; fully connected layers by sgemm"
        return (total > 0 ? paths : "convolutions: none") + fc + ignored
    }

    private var paths: String {
        guard direct > 0 else {
            return "convolutions: im2col + sgemm (the direct 3x3 kernel needs AVX-512, or AVX2 with HIDDEN_MPI_CONV=avx2, one BLAS thread per rank and HIDDEN_MPI_CONV not im2col)"
        }
        return "convolutions: \(direct) of \(total) by the direct 3x3 kernel (\(DirectConvolution.instructionSet)), the rest by im2col + sgemm"
    }
}
