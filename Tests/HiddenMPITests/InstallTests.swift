// The installed binary runs where Swift is not installed (issue 12): scripts/test.sh installs the
// static release build with scripts/install.sh into .build/install-test; here it must link no
// Swift runtime library, carry its manual page, and train under mpirun on 2 ranks with the
// toolchain's runtime folder hidden from the loader (an empty tmpfs mounted over it in a private
// mount namespace, as root; without root, only the library list is checked).

import Foundation
import XCTest

final class InstallTests: XCTestCase {
    var prefix: URL {
        if let p = ProcessInfo.processInfo.environment["HIDDEN_MPI_INSTALLED"], !p.isEmpty { return URL(fileURLWithPath: p) }
        return Harness.packageRoot.appendingPathComponent(".build/install-test")
    }

    /// The folder this test process loaded libswiftCore.so from: the toolchain's runtime.
    func swiftRuntimeFolder() throws -> String {
        // Read to the end: /proc files report a size of 0.
        let maps = String(decoding: FileHandle(forReadingAtPath: "/proc/self/maps")?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
        guard let line = maps.split(separator: "\n").first(where: { $0.hasSuffix("/libswiftCore.so") }),
              let path = line.split(separator: " ").last else {
            throw XCTSkip("this test process has no libswiftCore.so mapped: nothing to hide")
        }
        return (String(path) as NSString).deletingLastPathComponent
    }

    func testInstalledBinaryRunsWithTheSwiftRuntimeHidden() throws {
        let bin = prefix.appendingPathComponent("bin/hidden-mpi").path
        guard FileManager.default.isExecutableFile(atPath: bin) else {
            throw XCTSkip("no installed binary at \(bin): scripts/test.sh installs it (scripts/install.sh --no-build .build/install-test)")
        }
        let env = Harness.childEnvironment()
        let ldd = try Harness.run(["/usr/bin/ldd", bin], environment: env, timeout: 30)
        XCTAssertEqual(ldd.status, 0, ldd.transcript)
        XCTAssertFalse(ldd.stdout.contains("libswift") || ldd.stdout.contains("libFoundation"), "links the Swift runtime:\n\(ldd.stdout)")
        XCTAssertTrue(ldd.stdout.contains("libmpi"), ldd.stdout)

        let manual = prefix.appendingPathComponent("share/man/man1/hidden-mpi.1").path
        let page = try String(contentsOfFile: manual, encoding: .utf8)
        XCTAssertTrue(page.contains(".Dt HIDDEN-MPI 1") && page.contains("mpirun"), "not the manual page: \(page.prefix(300))")

        let runtime = try swiftRuntimeFolder()
        let dir = try Harness.makeTempDir(prefix: "hidden-mpi-install")
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = ["-np", "2", bin, "train", "--model", "fc", "--epochs", "1", "--max-steps", "5", "--progress", "0",
                     "--checkpoint-dir", dir.appendingPathComponent("c").path]
        let mpirun = try Harness.mpirun()
        guard getuid() == 0 else {
            // Without root no mount namespace: the library list above is the check.
            throw XCTSkip("hiding \(runtime) needs root (a private mount namespace); the binary links no Swift library")
        }
        // In a private mount namespace: an empty tmpfs over the runtime folder, then prove it is
        // gone (a dynamically linked Swift program would fail to start), then train.
        let script = """
            set -e
            mount -t tmpfs none '\(runtime)'
            if [ -e '\(runtime)/libswiftCore.so' ]; then echo "runtime still visible"; exit 9; fi
            exec '\(mpirun)' \(train.map { "'\($0)'" }.joined(separator: " "))
            """
        let r = try Harness.run(["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                                environment: env, timeout: 120)
        if r.status != 0, r.stderr.contains("mount") || r.stderr.contains("unshare") {
            throw XCTSkip("a private mount namespace could not be made here:\n\(r.transcript)")
        }
        XCTAssertEqual(r.status, 0, r.transcript)
        XCTAssertTrue(r.stdout.contains("done: test accuracy"), r.transcript)
    }
}
