// Several hosts on one machine (issue 12): scripts/fake-hosts.sh makes two network-namespace
// "hosts" with their own addresses and hostnames on a bridge; mpirun on the first launches ranks
// on both over TCP (ssh replaced by `ip netns exec`). A short training run there must give the
// same checkpoint tensors and epoch metrics, bit for bit, as the same ranks on one host. The
// namespaces are removed even when the test fails; without root (or where namespaces cannot be
// made) the test skips and says why.

import Foundation
import XCTest

final class MultiHostTests: XCTestCase {
    var dir: URL!
    let group = "hmt\(getpid())"
    var script: String { Harness.packageRoot.appendingPathComponent("scripts/fake-hosts.sh").path }

    override func setUpWithError() throws {
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-hosts")
    }

    override func tearDownWithError() throws {
        _ = try? Harness.run(["/bin/bash", script, "down", group], environment: Harness.childEnvironment(), timeout: 60)
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// Makes `count` hosts of `slots` slots each, or skips the test with the reason.
    func makeHosts(_ count: Int, slots: Int) throws {
        guard getuid() == 0 else { throw XCTSkip("network namespaces need root (CI runs the suite as root)") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip")
                || FileManager.default.isExecutableFile(atPath: "/usr/bin/ip") else {
            throw XCTSkip("no `ip` command: install iproute2 (scripts/install-deps.sh)")
        }
        let up = try Harness.run(["/bin/bash", script, "up", group, String(count), String(slots)], environment: Harness.childEnvironment(), timeout: 60)
        if up.status != 0 {
            throw XCTSkip("network namespaces could not be made here (a container without CAP_NET_ADMIN?):\n\(up.transcript)")
        }
    }

    func testTrainingAcrossTwoHostsOverTCPIsBitIdenticalToOneHost() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist"),
                          "needs Debian's dataset-fashion-mnist")
        try makeHosts(2, slots: 2)
        let bin = try Harness.binary()
        func args(_ tag: String) -> [String] {
            ["train", "--model", "fc", "--epochs", "1", "--max-steps", "40", "--seed", "5", "--progress", "0",
             "--checkpoint-dir", dir.appendingPathComponent(tag).path, "--metrics", dir.appendingPathComponent("\(tag).jsonl").path]
        }
        // 4 ranks: two on each host, so ranks talk over shared memory within a host and TCP between.
        let started = Date()
        let multi = try Harness.run(["/bin/bash", script, "mpirun", group, "-np", "4", bin] + args("hosts"),
                                    environment: Harness.childEnvironment(), timeout: 300)
        XCTAssertFalse(multi.timedOut, "hung across hosts\n\(multi.transcript)")
        XCTAssertEqual(multi.status, 0, multi.transcript)
        let multiSeconds = Date().timeIntervalSince(started)
        let single = try Harness.hiddenMPI(args("one"), np: 4, timeout: 300)
        XCTAssertEqual(single.status, 0, single.transcript)
        guard multi.status == 0, single.status == 0 else { return }

        // The run really spanned two hosts: four ranks on two hostnames.
        let run = try Harness.readJSONLines(dir.appendingPathComponent("hosts.jsonl").path).first { $0["kind"] as? String == "run" }
        XCTAssertEqual(run?["nodes"] as? Int, 2, "\(run ?? [:])")
        XCTAssertEqual(Set((run?["hosts"] as? [String]) ?? []), ["\(group)-1", "\(group)-2"], "\(run ?? [:])")
        XCTAssertEqual(run?["update"] as? String, "sharded")
        XCTAssertTrue(multi.stdout.contains("4 rank(s) on 2 nodes"), multi.transcript)

        guard let a = CheckpointFolder.newest(dir.appendingPathComponent("one").path),
              let b = CheckpointFolder.newest(dir.appendingPathComponent("hosts").path) else {
            return XCTFail("no checkpoint\n\(multi.transcript)\n\(single.transcript)")
        }
        XCTAssertEqual(CheckpointFolder.step(a), 40)
        assertSameTensors(a, b, "two hosts vs one host")
        assertSameEpochMetrics(dir.appendingPathComponent("one.jsonl").path, dir.appendingPathComponent("hosts.jsonl").path, "two hosts vs one host")
        print("multi-host: 4 ranks on 2 namespace hosts, 40 fc steps, \(String(format: "%.1f", multiSeconds)) s")
    }
}
