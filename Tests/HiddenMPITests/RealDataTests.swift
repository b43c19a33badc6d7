// The end-to-end result with the default settings on Fashion-MNIST, two ranks: fc at k 0.5 for 10
// epochs reaches 87% (about 15 s on 2 cores). conv2's 3-epoch run (5 to 8 minutes, 89-90%) is a
// result, not a test: Docs/results.md has its command and figures. Needs Debian's
// dataset-fashion-mnist; HIDDEN_MPI_SKIP_SLOW=1 skips it.

import Foundation
import XCTest

final class RealDataTests: XCTestCase {
    static let fashionMNIST = "/usr/share/datasets/fashion-mnist"

    func testFullyConnectedReaches87PercentOnFashionMNIST() throws {
        try reaches(0.87, ["--model", "fc", "--k", "0.5", "--epochs", "10"], epochs: 10, timeout: 400)
    }

// The end-to-end result with the default settings on Fashion-MNIST, two ranks: fc at k 0.5 for 10
// epochs reaches 87% (about 15 s on 2 cores). conv2's 3-epoch run (5 to 8 minutes, 89-90%) is a
// result, not a test: Docs/results.md has its command and figures. Needs Debian's
// dataset-fashion-mnist; HIDDEN_MPI_SKIP_SLOW=1 skips it.    /// `mpirun -np 2 hidden-mpi train ARGS` on the real data set ends at `target` test accuracy or more.
    func reaches(_ target: Double, _ args: [String], epochs: Int, timeout: Double) throws {
        if ProcessInfo.processInfo.environment["HIDDEN_MPI_SKIP_SLOW"] == "1" {
            throw XCTSkip("HIDDEN_MPI_SKIP_SLOW=1: skipping the Fashion-MNIST run \(args.joined(separator: " "))")
        }
        guard FileManager.default.fileExists(atPath: Self.fashionMNIST) else {
            throw XCTSkip("\(Self.fashionMNIST) not found: install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) to run the accuracy test")
        }
        let dir = try Harness.makeTempDir(prefix: "hidden-mpi-fashion")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("metrics.jsonl").path
        let r = try Harness.hiddenMPI(["train"] + args + ["--metrics", path], np: 2, timeout: timeout)
        XCTAssertEqual(r.status, 0, r.transcript)
        let metrics = try Metrics(path: path)
        XCTAssertEqual(metrics.epochs.count, epochs, r.transcript)
        XCTAssertEqual(metrics.worldSize, 2)
        let accuracy = metrics.epochValue(metrics.epochs.count - 1, "test_acc") ?? 0
        print("hidden-mpi train \(args.joined(separator: " ")), 2 ranks, on Fashion-MNIST: test accuracy \(String(format: "%.2f", 100 * accuracy))% in \(String(format: "%.1f", r.seconds)) s")
        XCTAssertGreaterThanOrEqual(accuracy, target, "final test accuracy\n\(r.stdout)")
    }
}
