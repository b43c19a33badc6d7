// No silent loss on any write (issue 13): metrics, standard output, checkpoints and exports that
// cannot be written (/dev/full, a full file system) end with one message naming the file and a
// non-zero status; the previous good file stays; no temporary file is left behind; temporary
// files of a killed writer are removed by the next one; a device is never replaced by a file.

import Foundation
import XCTest

final class WriteFailureTests: XCTestCase {
    var dir: URL!
    var mounted: String?

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist"),
                          "needs Debian's dataset-fashion-mnist")
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-writes")
    }

    override func tearDownWithError() throws {
        if let mounted { _ = try? Harness.run(["/bin/umount", "-l", mounted], environment: Harness.childEnvironment(), timeout: 30) }
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// A full device of this test's own (mknod c 1 7, as /dev/full), so that a writer that
    /// wrongly renames over its target replaces this node, not the machine's /dev/full; else
    /// /dev/full itself where it is the device and this test is not root.
    func fullDevice() throws -> String {
        let mine = path("full")
        if mknod(mine, S_IFCHR | 0o666, 0x107) == 0 { return mine }  // makedev(1, 7)
        var info = stat()
        guard stat("/dev/full", &info) == 0, info.st_mode & S_IFMT == S_IFCHR else {
            throw XCTSkip("no full device: mknod needs root and /dev/full is not the device here")
        }
        return "/dev/full"
    }

    let fc = ["train", "--model", "fc", "--epochs", "1", "--progress", "0"]

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func temporaries(in folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.contains(".tmp-") }
    }

    func testMetricsThatCannotBeWrittenEndTheRunWithOneMessage() throws {
        let full = try fullDevice()
        for np in [nil, 2] as [Int?] {
            let r = try Harness.hiddenMPI(fc + ["--max-steps", "3", "--metrics", full, "--checkpoint-dir", path("c\(np ?? 1)")], np: np, timeout: 120)
            XCTAssertNotEqual(r.status, 0, r.transcript)
            XCTAssertEqual(Harness.count("cannot write metrics file \(full): No space left on device", in: r.combinedWithoutMPINotices), 1, r.transcript)
            XCTAssertFalse(r.stdout.contains("done:"), r.transcript)
            XCTAssertTrue(temporaries(in: path("c\(np ?? 1)")).isEmpty)
        }
    }

    func testStandardOutputThatCannotBeWrittenIsAnError() throws {
        let full = try fullDevice()
        let bin = try Harness.binary()
        for args in [["info", "--model", "fc"], fc + ["--max-steps", "2"]] {
            let command = ([bin] + args).map { "'\($0)'" }.joined(separator: " ") + " > '\(full)'"
            let r = try Harness.run(["/bin/sh", "-c", command], environment: Harness.childEnvironment(), timeout: 120)
            XCTAssertEqual(r.status, 1, r.transcript)
            XCTAssertEqual(Harness.count("cannot write standard output: No space left on device", in: r.stderr), 1, r.transcript)
        }
    }

    func testExportToADeviceThatIsFullFailsAndLeavesTheDevice() throws {
        let full = try fullDevice()
        guard full != "/dev/full" else { throw XCTSkip("the export test writes only to a full device of its own (mknod needs root)") }
        let train = try Harness.hiddenMPI(fc + ["--max-steps", "2", "--checkpoint-dir", path("c")], timeout: 120)
        XCTAssertEqual(train.status, 0, train.transcript)
        guard let checkpoint = CheckpointFolder.newest(path("c")) else { return XCTFail("no checkpoint\n\(train.transcript)") }
        let r = try Harness.hiddenMPI(["export", "--checkpoint", checkpoint, "--output", full], timeout: 60)
        XCTAssertEqual(r.status, 1, r.transcript)
        XCTAssertEqual(Harness.count("cannot write \(full): No space left on device", in: r.stderr), 1, r.transcript)
        var info = stat()
        XCTAssertEqual(stat(full, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, "\(full) is still the device")
        let folder = (full as NSString).deletingLastPathComponent
        XCTAssertTrue(temporaries(in: folder).isEmpty, "\(temporaries(in: folder))")
        // /dev/null takes it (written in place too).
        let null = try Harness.hiddenMPI(["export", "--checkpoint", checkpoint, "--output", "/dev/null"], timeout: 60)
        XCTAssertEqual(null.status, 0, null.transcript)
    }

    /// A checkpoint folder on a 3 MiB tmpfs: the first fc checkpoint (2.1 MB) fits, the second
    /// does not. One message naming it, status 1, the first intact (eval reads it), no temporary
    /// file. Then an export over a good one on the same full file system: the good one stays.
    func testAFullFileSystemKeepsThePreviousCheckpointAndExport() throws {
        guard getuid() == 0 else { throw XCTSkip("a size-limited tmpfs needs root") }
        let small = path("small")
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let mount = try Harness.run(["/bin/mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", small], environment: Harness.childEnvironment(), timeout: 30)
        guard mount.status == 0 else { throw XCTSkip("cannot mount a tmpfs here:\n\(mount.transcript)") }
        mounted = small
        let folder = small + "/ckpt"
        let r = try Harness.hiddenMPI(fc + ["--max-steps", "6", "--checkpoint-every", "2", "--checkpoint-dir", folder, "--metrics", path("m.jsonl")],
                                      np: 2, timeout: 120)
        XCTAssertNotEqual(r.status, 0, r.transcript)
        XCTAssertEqual(Harness.count("cannot write \(folder)/ckpt-s000000004-e0000.safetensors: No space left on device", in: r.combinedWithoutMPINotices), 1, r.transcript)
        XCTAssertTrue(temporaries(in: folder).isEmpty, "\(temporaries(in: folder))")
        let files = CheckpointFolder.paths(folder)
        XCTAssertEqual(files.map { ($0 as NSString).lastPathComponent }, ["ckpt-s000000002-e0000.safetensors"])
        if let good = files.first {
            let eval = try Harness.hiddenMPI(["eval", "--checkpoint", good], timeout: 120)
            XCTAssertEqual(eval.status, 0, "the previous checkpoint is intact\n\(eval.transcript)")

            // An export over a good one, with the file system full.
            let export = small + "/sub.hmsub"
            let first = try Harness.hiddenMPI(["export", "--checkpoint", good, "--output", export], timeout: 60)
            XCTAssertEqual(first.status, 0, first.transcript)
            let before = try Data(contentsOf: URL(fileURLWithPath: export))
            let filler = try Harness.run(["/bin/sh", "-c", "cat /dev/zero > '\(small)/filler' 2>/dev/null; true"], environment: Harness.childEnvironment(), timeout: 60)
            XCTAssertEqual(filler.status, 0, filler.transcript)
            let second = try Harness.hiddenMPI(["export", "--checkpoint", good, "--output", export], timeout: 60)
            XCTAssertEqual(second.status, 1, second.transcript)
            XCTAssertEqual(Harness.count("cannot write \(export): No space left on device", in: second.stderr), 1, second.transcript)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: export)), before, "the previous export is intact")
            XCTAssertTrue(temporaries(in: small).isEmpty, "\(temporaries(in: small))")
        }
    }

    /// The Python tools' outputs (plots and CSVs, through scripts/plotting.py's write_atomically):
    /// cost_model.py's CSV to a full device and over a good CSV on a full tmpfs, and a sweep's row
    /// that no longer fits: one message naming the file, status 1, the previous file intact, no
    /// temporary file, the device still the device. A plot too where matplotlib is installed.
    func testScriptOutputsThatCannotBeWrittenKeepThePreviousFile() throws {
        let root = Harness.packageRoot.path, env = Harness.childEnvironment()
        let inputs = ["--probe", "\(root)/Docs/results/collectives-shm-2ranks-2026-12-01-epyc-zen3.json",
                      "--bench", "\(root)/Docs/results/cost-model-bench-2026-12-01-epyc-zen3.jsonl"]
        func costModel(csv: String) throws -> RunResult {
            try Harness.run(["/usr/bin/env", "python3", "\(root)/scripts/cost_model.py"] + inputs + ["--csv", csv], environment: env, timeout: 60)
        }
        let full = try fullDevice()
        let device = try costModel(csv: full)
        XCTAssertEqual(device.status, 1, device.transcript)
        XCTAssertEqual(Harness.count("error: cannot write \(full): No space left on device", in: device.stderr), 1, device.transcript)
        var info = stat()
        XCTAssertEqual(stat(full, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, "\(full) is still the device")

        guard getuid() == 0 else { throw XCTSkip("a size-limited tmpfs needs root") }
        let small = path("small")
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let mount = try Harness.run(["/bin/mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small], environment: env, timeout: 30)
        guard mount.status == 0 else { throw XCTSkip("cannot mount a tmpfs here:\n\(mount.transcript)") }
        mounted = small
        let csv = small + "/predictions.csv"
        let good = try costModel(csv: csv)
        XCTAssertEqual(good.status, 0, good.transcript)
        let before = try Data(contentsOf: URL(fileURLWithPath: csv))
        // A sweep CSV with a header and one row, written before the disk filled up: exactly one
        // 4 KiB page (tmpfs allocates pages, so the next row needs a page of its own).
        let sweepCSV = small + "/sweep.csv"
        let header = "sweep,point,model,width,k,init,scale_fan,method,seed,epochs,ranks,dataset,extra,test_acc,test_top5,train_acc,train_loss,test_loss,best_test_acc,parameters,seconds,finished\n"
        let start = "t,old,fc,1,0.5,signed-constant,true,edge-popup,0,1,1,synthetic,", end = ",0.5,,0.5,1,1,0.5,1,1,x\n"
        let padding = String(repeating: "p", count: 4096 - header.utf8.count - start.utf8.count - end.utf8.count)
        try (header + start + padding + end).write(toFile: sweepCSV, atomically: false, encoding: .utf8)
        let sweepBefore = try Data(contentsOf: URL(fileURLWithPath: sweepCSV))
        let filler = try Harness.run(["/bin/sh", "-c", "cat /dev/zero > '\(small)/filler' 2>/dev/null; true"], environment: env, timeout: 60)
        XCTAssertEqual(filler.status, 0, filler.transcript)

        let again = try costModel(csv: csv)
        XCTAssertEqual(again.status, 1, again.transcript)
        XCTAssertEqual(Harness.count("error: cannot write \(csv): No space left on device", in: again.stderr), 1, again.transcript)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: csv)), before, "the previous CSV is intact")

        let sweep = try Harness.run(["/usr/bin/env", "python3", "\(root)/jobs/sweep.py", "--name", "t", "--models", "fc", "--epochs", "1",
                                     "--dataset", "synthetic", "--runs", path("runs"), "--csv", sweepCSV,
                                     "--", "--input", "1x8x8", "--classes", "4", "--train-size", "64", "--test-size", "16", "--batch-size", "16"],
                                    environment: Harness.childEnvironment(["HIDDEN_MPI_BIN": try Harness.binary()]), timeout: 120)
        XCTAssertEqual(sweep.status, 1, sweep.transcript)
        XCTAssertEqual(Harness.count("cannot record its row in \(sweepCSV): [Errno 28] No space left on device", in: sweep.stderr), 1, sweep.transcript)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: sweepCSV)), sweepBefore, "the sweep's CSV is as it was")

        var plotted = false
        let hasMatplotlib = try Harness.run(["/usr/bin/env", "python3", "-c", "import matplotlib"], environment: env, timeout: 60).status == 0
        if hasMatplotlib {
            // A plot over a good one (written before the filler took the space: none here, so the
            // first write fails too and no file at all is the previous state).
            let plot = try Harness.run(["/usr/bin/env", "python3", "\(root)/scripts/plot_sweep.py", sweepCSV, "-o", small + "/k"], environment: env, timeout: 120)
            XCTAssertEqual(plot.status, 1, plot.transcript)
            XCTAssertEqual(Harness.count("error: cannot write \(small)/k.png: No space left on device", in: plot.stderr), 1, plot.transcript)
            XCTAssertFalse(FileManager.default.fileExists(atPath: small + "/k.png"))
            plotted = true
        }
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: small)) ?? []).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(left, [], "no temporary file left behind")
        if !plotted { print("note: matplotlib is not installed: the plot case did not run") }
    }

    func testTemporaryFilesOfAKilledWriterAreRemovedByTheNextOne() throws {
        let folder = path("c")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // A writer that no longer runs (pid far above pid_max's default) and one that does (this test).
        let stale = folder + "/.ckpt-s000000001-e0000.safetensors.tmp-4194000"
        let live = folder + "/.ckpt-s000000001-e0000.safetensors.tmp-\(getpid())"
        XCTAssertTrue(FileManager.default.createFile(atPath: stale, contents: Data(count: 100)))
        XCTAssertTrue(FileManager.default.createFile(atPath: live, contents: Data(count: 100)))
        let r = try Harness.hiddenMPI(fc + ["--max-steps", "2", "--checkpoint-dir", folder], timeout: 120)
        XCTAssertEqual(r.status, 0, r.transcript)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale), "the dead writer's temporary file is removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: live), "a live writer's temporary file is kept")
    }
}
