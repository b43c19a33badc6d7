// Invariant 4 of DESIGN.md from the reader's side: a damaged or mismatched checkpoint or
// subnetwork file is refused with a clear message, by every command that reads one (train
// --resume, eval --checkpoint, export --checkpoint, eval --subnetwork), with a non-zero exit and
// nothing overwritten: the checkpoint folder and export's existing --output keep their bytes.
// `--resume auto` skips a damaged newest checkpoint, says so, and falls back to the previous one.
// One table row per damage, as in BadInputTests.

import Foundation
import HiddenNetworks
import XCTest

final class CheckpointCorruptionTests: XCTestCase {
    /// fc, 600 samples, global batch 64: 10 steps per epoch, a checkpoint every 4 steps.
    static let fc = ["--dataset", "synthetic", "--input", "1x12x12", "--classes", "4", "--train-size", "600",
                     "--test-size", "100", "--model", "fc", "--batch-size", "64", "--seed", "3", "--progress", "0"]

    static var root: URL?
    static var fixtureError: Error?

    /// The valid files every row damages a copy of.
    static var goodDir: String { root!.appendingPathComponent("good").path }
    static var goodCheckpoint: String { (goodDir as NSString).appendingPathComponent(CheckpointFolder.name(step: 10, epoch: 1)) }
    static var goodSubnetwork: String { root!.appendingPathComponent("good.subnet").path }

    override class func setUp() {
        do {
            let r = try Harness.makeTempDir(prefix: "hidden-mpi-corrupt")
            root = r
            let t = try Harness.hiddenMPI(["train"] + fc + ["--epochs", "1", "--checkpoint-dir", goodDir, "--checkpoint-every", "4",
                                                            "--keep-checkpoints", "10"], timeout: 60)
            guard t.status == 0 else { throw HarnessError("fixture run failed\n\(t.transcript)") }
            let e = try Harness.hiddenMPI(["export", "--checkpoint", goodCheckpoint, "--output", goodSubnetwork], timeout: 60)
            guard e.status == 0 else { throw HarnessError("fixture export failed\n\(e.transcript)") }
        } catch {
            fixtureError = error
        }
    }

    override class func tearDown() {
        if let root { try? FileManager.default.removeItem(at: root) }
        root = nil
    }

    override func setUpWithError() throws {
        if let e = Self.fixtureError { throw e }
        XCTAssertEqual(CheckpointFolder.names(Self.goodDir), ["ckpt-s000000004-e0000", "ckpt-s000000008-e0000",
                                                              "ckpt-s000000010-e0001"].map { $0 + ".safetensors" })
    }

    func path(_ name: String) -> String { Self.root!.appendingPathComponent(name).path }

    // MARK: damage

    struct Damage {
        let name: String
        let apply: ([UInt8]) -> [UInt8]
        /// Each must appear exactly once in the output.
        let phrases: [String]
    }

    static func headerLength(_ b: [UInt8]) -> Int { (0..<8).reduce(0) { $0 | Int(b[$1]) << (8 * $1) } }

    /// The byte offset of `needle` inside the JSON header.
    static func offset(of needle: String, in b: [UInt8]) -> Int {
        let header = Array(b[8..<(8 + headerLength(b))]), n = Array(needle.utf8)
        for i in 0...(header.count - n.count) where Array(header[i..<(i + n.count)]) == n { return 8 + i }
        fatalError("\(needle) not in the header")
    }

    static func flip(_ b: [UInt8], at i: Int, mask: UInt8 = 0xFF) -> [UInt8] { var c = b; c[i] ^= mask; return c }

    /// Damage common to both kinds of file. `valueField` is a metadata key whose value's first
    /// character a bit flip turns into another valid character.
    static func damages(valueField: String) -> [Damage] {
        let invalid = "is not a valid safetensors file"
        return [
            Damage(name: "empty file", apply: { _ in [] }, phrases: [invalid, "0 bytes, shorter than the 8-byte header length"]),
            Damage(name: "cut to 5 bytes", apply: { Array($0.prefix(5)) }, phrases: [invalid, "5 bytes, shorter than the 8-byte header length"]),
            Damage(name: "cut inside the header", apply: { Array($0.prefix(8 + headerLength($0) / 2)) },
                   phrases: [invalid, "does not fit the file's"]),
            Damage(name: "cut inside the data", apply: { Array($0.prefix($0.count - 1001)) },
                   phrases: [invalid, "lies outside the data section"]),
            Damage(name: "last byte missing", apply: { Array($0.dropLast()) }, phrases: [invalid, "lies outside the data section"]),
            Damage(name: "a byte too many", apply: { $0 + [0] }, phrases: [invalid, "1 bytes after the last tensor"]),
            Damage(name: "data byte flipped", apply: { flip($0, at: 8 + headerLength($0) + 123) },
                   phrases: ["is corrupted: its data does not match its checksum"]),
            Damage(name: "last data byte flipped", apply: { flip($0, at: $0.count - 1, mask: 0x01) },
                   phrases: ["is corrupted: its data does not match its checksum"]),
            Damage(name: "header value flipped (still valid JSON)",
                   apply: { flip($0, at: offset(of: "\"\(valueField)\":\"", in: $0) + valueField.count + 4, mask: 0x01) },
                   phrases: ["is corrupted: its header does not match its checksum"]),
            Damage(name: "header JSON broken", apply: { flip($0, at: 8) }, phrases: [invalid, "the header is not a JSON object"]),
            Damage(name: "header length larger than the file",
                   apply: { b in var c = b; let n = UInt64(b.count); for i in 0..<8 { c[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }; return c },
                   phrases: [invalid, "does not fit the file's"]),
            Damage(name: "header length 2^40",
                   apply: { b in var c = b; for i in 0..<8 { c[i] = i == 5 ? 1 : 0 }; return c },
                   phrases: [invalid, "header length 1099511627776 does not fit"]),
        ]
    }

    // MARK: the check of one row

    /// Runs `args`, which read `bad`; checks the refusal and that nothing else changed.
    func assertRefused(_ args: [String], np: Int?, bad: String, phrases: [String], row: String,
                       watch: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let watched = watch.map { ($0, FileManager.default.contents(atPath: $0)) }
        let dirs = [Self.goodDir].map { ($0, CheckpointFolder.snapshot($0)) }
        let badBefore = FileManager.default.contents(atPath: bad)
        let how = np.map { "mpirun -np \($0)" } ?? "direct"
        let r = try Harness.hiddenMPI(args, np: np, timeout: 60, file: file, line: line)
        let text = r.combinedWithoutMPINotices
        let tag = "[\(row), \(args[0]), \(how)]"
        XCTAssertNotEqual(r.status, 0, "\(tag) exit status\n\(r.transcript)", file: file, line: line)
        XCTAssertFalse(r.timedOut, "\(tag) hung", file: file, line: line)
        for phrase in phrases {
            XCTAssertEqual(Harness.count(phrase, in: text), 1, "\(tag) '\(phrase)' must appear exactly once\n\(r.transcript)",
                           file: file, line: line)
        }
        XCTAssertTrue(text.contains(bad), "\(tag) the message names the file\n\(r.transcript)", file: file, line: line)
        let errors = BadInputTests.errorLine.numberOfMatches(in: text, range: NSRange(text.startIndex..., in: text))
        XCTAssertEqual(errors, 1, "\(tag) exactly one error message\n\(r.transcript)", file: file, line: line)
        XCTAssertFalse(r.stdout.contains("epoch  train_loss"), "\(tag) no training starts\n\(r.transcript)", file: file, line: line)
        XCTAssertFalse(r.combined.contains("Fatal error"), "\(tag) a message, not a crash\n\(r.transcript)", file: file, line: line)
        for (p, bytes) in watched {
            XCTAssertEqual(FileManager.default.contents(atPath: p), bytes, "\(tag) \(p) was changed", file: file, line: line)
        }
        for (d, snapshot) in dirs {
            XCTAssertEqual(CheckpointFolder.snapshot(d), snapshot, "\(tag) the folder \(d) was changed", file: file, line: line)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: bad), badBefore, "\(tag) the bad file itself was changed", file: file, line: line)
    }

    /// A file `name` holding `bytes`.
    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// An existing export target that a refused export must leave as it is.
    func existingOutput() throws -> String {
        let p = path("existing-output.subnet")
        try CheckpointFolder.copy(Self.goodSubnetwork, to: p)
        return p
    }

    /// No temporary file left next to `output` (writeAtomically's `.name.tmp-pid`).
    func assertNoTemporaryFiles(_ folder: String, file: StaticString = #filePath, line: UInt = #line) {
        let stray = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.contains(".tmp") }
        XCTAssertEqual(stray, [], "temporary files left in \(folder)", file: file, line: line)
    }

    // MARK: the tables

    /// Controls: the undamaged files load in every command the rows below run.
    func testUndamagedFilesLoad() throws {
        let out = path("control.subnet")
        for args in [["eval", "--checkpoint", Self.goodCheckpoint], ["eval", "--subnetwork", Self.goodSubnetwork],
                     ["export", "--checkpoint", Self.goodCheckpoint, "--output", out],
                     ["train"] + Self.fc + ["--epochs", "2", "--resume", Self.goodCheckpoint]] {
            let r = try Harness.hiddenMPI(args, timeout: 60)
            XCTAssertEqual(r.status, 0, r.transcript)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: out), FileManager.default.contents(atPath: Self.goodSubnetwork),
                       "export is deterministic")
    }

    func testDamagedCheckpointsAreRefused() throws {
        let good = [UInt8](FileManager.default.contents(atPath: Self.goodCheckpoint)!)
        let output = try existingOutput()
        for (i, d) in Self.damages(valueField: "lr").enumerated() {
            let bad = try write(d.apply(good), "bad-\(i).safetensors")
            XCTAssertNotEqual([UInt8](FileManager.default.contents(atPath: bad)!), good, "[\(d.name)] the damage changes the file")
            // train --resume, with the good folder as its checkpoint folder: nothing there may change.
            try assertRefused(["train"] + Self.fc + ["--epochs", "2", "--resume", bad, "--checkpoint-dir", Self.goodDir],
                              np: nil, bad: bad, phrases: d.phrases, row: d.name)
            try assertRefused(["eval", "--checkpoint", bad], np: nil, bad: bad, phrases: d.phrases, row: d.name)
            try assertRefused(["export", "--checkpoint", bad, "--output", output], np: nil, bad: bad, phrases: d.phrases,
                              row: d.name, watch: [output])
        }
        assertNoTemporaryFiles(Self.root!.path)
        // A sample under mpirun: one message although both ranks read the bad file.
        let bad = try write(Self.damages(valueField: "lr")[6].apply(good), "bad-np2.safetensors")
        let phrases = ["is corrupted: its data does not match its checksum"]
        try assertRefused(["train"] + Self.fc + ["--epochs", "2", "--resume", bad, "--checkpoint-dir", Self.goodDir],
                          np: 2, bad: bad, phrases: phrases, row: "data byte flipped")
        try assertRefused(["eval", "--checkpoint", bad], np: 2, bad: bad, phrases: phrases, row: "data byte flipped")
    }

    func testDamagedSubnetworksAreRefused() throws {
        let good = [UInt8](FileManager.default.contents(atPath: Self.goodSubnetwork)!)
        for (i, d) in Self.damages(valueField: "seed").enumerated() {
            let bad = try write(d.apply(good), "bad-\(i).subnet")
            try assertRefused(["eval", "--subnetwork", bad], np: nil, bad: bad, phrases: d.phrases, row: d.name)
        }
        let bad = try write(Self.damages(valueField: "seed")[6].apply(good), "bad-np2.subnet")
        try assertRefused(["eval", "--subnetwork", bad], np: 2, bad: bad,
                          phrases: ["is corrupted: its data does not match its checksum"], row: "data byte flipped")
    }

    /// A subnetwork whose checksums are recomputed after a change (what a buggy or hand-made
    /// writer could produce) is still checked against the model it names.
    func testConsistentButWrongSubnetworksAreRefused() throws {
        let good = try SafeTensorsBlob(path: Self.goodSubnetwork)
        // One more weight kept in layer 2 than k allows.
        var extra = good.bytes
        let mask2 = good.entries["mask.2"]!, kept2 = Int(good.metadata["kept.2"]!)!
        var flipped = false
        for i in (good.dataStart + mask2.begin)..<(good.dataStart + mask2.end) where extra[i] != 0xFF && !flipped {
            for bit in 0..<8 where extra[i] & (0x80 >> bit) == 0 { extra[i] |= 0x80 >> bit; flipped = true; break }
        }
        let wrongCount = try write(Rechecksummed.rewrite(extra, metadata: [:]), "wrong-count.subnet")
        try assertRefused(["eval", "--subnetwork", wrongCount], np: nil, bad: wrongCount,
                          phrases: ["mask 2 keeps \(kept2 + 1) weights, the model keeps \(kept2)"], row: "one bit too many")
        // Another seed: the weights it names are not the ones the mask was found in.
        let otherSeed = try write(Rechecksummed.rewrite(good.bytes, metadata: ["seed": "4"]), "other-seed.subnet")
        try assertRefused(["eval", "--subnetwork", otherSeed], np: nil, bad: otherSeed,
                          phrases: ["the weights rebuilt from its seed differ from the ones it was found in"], row: "other seed")
        // Another format version.
        let version = try write(Rechecksummed.rewrite(good.bytes, metadata: ["format_version": "2"]), "version.subnet")
        try assertRefused(["eval", "--subnetwork", version], np: nil, bad: version,
                          phrases: ["has format version 2; this hidden-mpi reads version 1"], row: "newer format version")
    }

    /// Every single-bit change anywhere in the first 8 + N bytes (the header length and the JSON
    /// header) of a checkpoint and of a subnetwork is refused by the library's readers with a
    /// HiddenError naming the file, never accepted and never a crash. A tiny model (fc at width
    /// 0.1 on 4 features) keeps the files small; one bit per byte, rotating through the 8 bits.
    func testEverySingleBitFlipInTheHeaderIsRefused() throws {
        let small = ["--dataset", "synthetic", "--input", "4", "--classes", "2", "--train-size", "32", "--test-size", "8",
                     "--model", "fc", "--width", "0.1", "--batch-size", "16", "--progress", "0"]
        let ckdir = path("tiny")
        let t = try Harness.hiddenMPI(["train"] + small + ["--epochs", "1", "--checkpoint-dir", ckdir], timeout: 60)
        XCTAssertEqual(t.status, 0, t.transcript)
        let checkpoint = (ckdir as NSString).appendingPathComponent(CheckpointFolder.name(step: 2, epoch: 1))
        let subnetwork = path("tiny.subnet")
        let x = try Harness.hiddenMPI(["export", "--checkpoint", checkpoint, "--output", subnetwork], timeout: 60)
        XCTAssertEqual(x.status, 0, x.transcript)
        XCTAssertNoThrow(try ScoreCheckpoint.load(checkpoint))
        XCTAssertNoThrow(try Subnetwork.load(subnetwork))
        let target = path("flipped.safetensors")
        for (original, load) in [(checkpoint, { (p: String) in _ = try ScoreCheckpoint.load(p) }),
                                 (subnetwork, { (p: String) in _ = try Subnetwork.load(p) })] {
            let good = [UInt8](FileManager.default.contents(atPath: original)!)
            let end = 8 + Self.headerLength(good)
            var accepted: [Int] = [], other: [String] = []
            for i in 0..<end {
                try Data(Self.flip(good, at: i, mask: UInt8(1) << (i % 8))).write(to: URL(fileURLWithPath: target))
                do {
                    try load(target)
                    accepted.append(i)
                } catch let e as HiddenError {
                    if !e.message.contains(target) { other.append("byte \(i): \(e.message)") }
                } catch {
                    other.append("byte \(i): not a HiddenError: \(error)")
                }
            }
            XCTAssertEqual(accepted, [], "\((original as NSString).lastPathComponent): single-bit flips at these header bytes were accepted")
            XCTAssertEqual(other, [], "\((original as NSString).lastPathComponent): refusals that do not name the file")
        }
    }

    /// A checkpoint where a subnetwork is expected and the other way round.
    func testWrongKindOfFileIsRefused() throws {
        let output = try existingOutput()
        let sub = Self.goodSubnetwork, ckpt = Self.goodCheckpoint
        let notCheckpoint = "is not a hidden-mpi checkpoint (format \"hidden-mpi-subnetwork\")"
        try assertRefused(["train"] + Self.fc + ["--epochs", "2", "--resume", sub, "--checkpoint-dir", Self.goodDir], np: nil,
                          bad: sub, phrases: [notCheckpoint], row: "subnetwork as checkpoint")
        try assertRefused(["eval", "--checkpoint", sub], np: nil, bad: sub, phrases: [notCheckpoint], row: "subnetwork as checkpoint")
        try assertRefused(["export", "--checkpoint", sub, "--output", output], np: nil, bad: sub, phrases: [notCheckpoint],
                          row: "subnetwork as checkpoint", watch: [output])
        try assertRefused(["eval", "--subnetwork", ckpt], np: nil, bad: ckpt,
                          phrases: ["is not a hidden-mpi subnetwork (format \"hidden-mpi-scores\")"], row: "checkpoint as subnetwork")
        // Not safetensors at all.
        let text = try write(Array("not a checkpoint at all, just some text\n".utf8), "text.safetensors")
        try assertRefused(["eval", "--checkpoint", text], np: nil, bad: text,
                          phrases: ["is not a valid safetensors file"], row: "a text file")
        let missing = path("missing.safetensors")
        try assertRefused(["train"] + Self.fc + ["--resume", missing], np: 2, bad: missing,
                          phrases: ["cannot read checkpoint \(missing)"], row: "no such file")
    }

    /// A valid checkpoint with a command line that contradicts it: refused, naming the field and both values.
    func testContradictingFlagsAreRefused() throws {
        let c = Self.goodCheckpoint
        let rows: [(String, [String], String, Int?)] = [
            ("other model", ["--model", "conv2"], "--model conv2 contradicts the checkpoint \(c), which has model = fc", nil),
            ("other model", ["--model", "conv2"], "--model conv2 contradicts the checkpoint \(c), which has model = fc", 2),
            ("other lr", ["--lr", "0.05"], "--lr 0.05 contradicts the checkpoint \(c), which has lr = 0.1", nil),
            ("other lr, --lr=", ["--lr=0.05"], "--lr 0.05 contradicts the checkpoint \(c), which has lr = 0.1", 2),
            ("other width", ["--width", "0.5"], "--width 0.5 contradicts the checkpoint \(c), which has width = 1.0", nil),
            ("other seed", ["--seed", "4"], "--seed 4 contradicts the checkpoint \(c), which has seed = 3", nil),
            ("other batch", ["--batch-size", "32"], "--batch-size 32 contradicts the checkpoint \(c), which has global_batch = 64", nil),
            ("other train size", ["--train-size", "640"], "--train-size 640 contradicts the checkpoint \(c), which has train_size = 600", nil),
            ("other momentum", ["--momentum", "0.5"], "--momentum 0.5 contradicts the checkpoint \(c), which has momentum = 0.9", nil),
            ("nesterov", ["--nesterov"], "--nesterov true contradicts the checkpoint \(c), which has nesterov = false", nil),
            ("other schedule", ["--schedule", "constant"], "--schedule constant contradicts the checkpoint \(c), which has schedule = cosine", nil),
            ("other method", ["--method", "dense"], "--method dense contradicts the checkpoint \(c), which has method = edge-popup", nil),
            // Made with the default (scaled fan); --no-scale-fan counts as giving --scale-fan.
            ("no scale fan", ["--no-scale-fan"], "--scale-fan false contradicts the checkpoint \(c), which has scale_fan = true", 2),
        ]
        for (name, flags, phrase, np) in rows {
            // The fc flags first, the contradicting one last (ArgumentParser keeps the last value).
            try assertRefused(["train"] + Self.fc + ["--epochs", "2", "--resume", c, "--checkpoint-dir", Self.goodDir] + flags,
                              np: np, bad: c, phrases: [phrase], row: name)
        }
    }

    /// The newest checkpoint damaged: `--resume auto` says it skips it, falls back to the previous
    /// one, and the run ends exactly as the undamaged one did (its end-of-epoch checkpoint replaces
    /// the damaged file with the same bytes the first run wrote).
    func testResumeAutoFallsBackPastADamagedNewestCheckpoint() throws {
        let dir = path("fallback")
        try CheckpointFolder.copy(Self.goodDir, to: dir)
        let newest = (dir as NSString).appendingPathComponent(CheckpointFolder.name(step: 10, epoch: 1))
        let previous = (dir as NSString).appendingPathComponent(CheckpointFolder.name(step: 8, epoch: 0))
        let good = [UInt8](FileManager.default.contents(atPath: newest)!)
        try Data(Self.flip(good, at: good.count - 77)).write(to: URL(fileURLWithPath: newest))
        let r = try Harness.hiddenMPI(["train"] + Self.fc + ["--epochs", "1", "--checkpoint-dir", dir, "--resume", "auto",
                                                             "--checkpoint-every", "4", "--keep-checkpoints", "10"], np: 2, timeout: 60)
        XCTAssertEqual(r.status, 0, r.transcript)
        XCTAssertEqual(Harness.count("skipping \(newest)", in: r.stderr), 1, r.transcript)
        XCTAssertTrue(r.stderr.contains("data does not match its checksum"), "says why it skips\n\(r.transcript)")
        XCTAssertEqual(Harness.count("falling back to \(previous)", in: r.stderr), 1, r.transcript)
        XCTAssertEqual(Harness.count("resuming from \(previous)", in: r.stderr), 1, r.transcript)
        XCTAssertEqual(Harness.count("epoch  train_loss", in: r.stdout), 1, r.transcript)
        // The np 2 resume of an np 1 checkpoint equals it up to summation order only: compare the
        // tensors loosely here, and exactly in the np 1 repeat below.
        let replaced = try SafeTensorsBlob(path: newest), original = try SafeTensorsBlob(bytes: good, path: "original")
        XCTAssertEqual(replaced.metadata["global_step"], "10")
        for l in 0..<original.layers {
            let a = original.floats("scores.\(l)")!, b = replaced.floats("scores.\(l)")!
            let worst = zip(a, b).map { abs($0 - $1) / max(abs($0), abs($1), 1e-3) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-2, "scores.\(l) after the fallback resume (np 2) vs the original (np 1)")
        }
        // Once more on one rank, as the checkpoints were written: bit for bit.
        try Data(Self.flip(good, at: good.count - 77)).write(to: URL(fileURLWithPath: newest))
        let again = try Harness.hiddenMPI(["train"] + Self.fc + ["--epochs", "1", "--checkpoint-dir", dir, "--resume", "auto",
                                                                 "--checkpoint-every", "4", "--keep-checkpoints", "10"], timeout: 60)
        XCTAssertEqual(again.status, 0, again.transcript)
        XCTAssertTrue(again.stderr.contains("falling back to \(previous)"), again.transcript)
        XCTAssertEqual([UInt8](FileManager.default.contents(atPath: newest) ?? Data()), good,
                       "the resumed run rewrites the damaged checkpoint with exactly the original bytes")
    }

    /// Every checkpoint in the folder damaged: `--resume auto` says none is valid and starts afresh;
    /// the fresh run's own checkpoints must then stay (and be what the next `--resume auto` finds),
    /// or the job would start afresh at every requeue. Refusing to start, naming the folder and
    /// leaving it alone, would be acceptable too.
    func testResumeAutoWithEveryCheckpointDamaged() throws {
        let dir = path("all-bad")
        // A longer run's last three checkpoints (steps 20, 30, 40), all damaged.
        let t = try Harness.hiddenMPI(["train"] + Self.fc + ["--epochs", "4", "--checkpoint-dir", dir], timeout: 60)
        XCTAssertEqual(t.status, 0, t.transcript)
        for p in CheckpointFolder.paths(dir) {
            let b = [UInt8](FileManager.default.contents(atPath: p)!)
            try Data(Self.flip(b, at: b.count - 5)).write(to: URL(fileURLWithPath: p))
        }
        let before = CheckpointFolder.snapshot(dir)
        let r = try Harness.hiddenMPI(["train"] + Self.fc + ["--epochs", "1", "--checkpoint-dir", dir, "--resume", "auto"], timeout: 60)
        if r.status != 0 {
            XCTAssertTrue(r.combined.contains(dir), "a refusal names the folder\n\(r.transcript)")
            XCTAssertEqual(CheckpointFolder.snapshot(dir), before, "a refusal leaves the folder alone")
            return
        }
        XCTAssertTrue(r.stderr.contains("none of the 3 checkpoints in \(dir) is valid: starting a fresh run"), r.transcript)
        let written = (dir as NSString).appendingPathComponent(CheckpointFolder.name(step: 10, epoch: 1))
        XCTAssertTrue(r.stderr.contains("checkpoint \(written)"), r.transcript)
        XCTAssertTrue(FileManager.default.fileExists(atPath: written),
                      "the fresh run reported writing \(written), but the folder holds only \(CheckpointFolder.names(dir)): its own checkpoint was pruned at once in favour of the damaged ones, whose names sort later")
        let next = try Harness.hiddenMPI(["train"] + Self.fc + ["--epochs", "2", "--checkpoint-dir", dir, "--resume", "auto"], timeout: 60)
        XCTAssertTrue(next.stderr.contains("resuming from \(written)"),
                      "the next `--resume auto` must continue the fresh run\n\(next.transcript)")
    }
}

/// Rewrites a safetensors file with changed metadata and both hidden-mpi checksums recomputed as
/// the writer computes them (Docs/checkpoints.md): data_crc32 over the data section, header_crc32
/// over the sorted "key=value" lines (without header_crc32) and one "name dtype [shape]" line per
/// tensor, sorted by name.
enum Rechecksummed {
    static func rewrite(_ bytes: [UInt8], metadata changes: [String: String]) throws -> [UInt8] {
        let blob = try SafeTensorsBlob(bytes: bytes, path: "in memory")
        var header = try JSONSerialization.jsonObject(with: Data(bytes[8..<blob.dataStart])) as! [String: Any]
        var meta = blob.metadata
        for (k, v) in changes { meta[k] = v }
        let data = Array(bytes[blob.dataStart...])
        meta["data_crc32"] = String(format: "%08x", Fixtures.crc32(data))
        meta["header_crc32"] = headerChecksum(meta, blob.entries)
        header["__metadata__"] = meta
        var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while json.count % 8 != 0 { json.append(0x20) }
        return Fixtures.le32(UInt32(json.count)) + [0, 0, 0, 0] + json + data
    }

    static func headerChecksum(_ meta: [String: String], _ entries: [String: SafeTensorsBlob.Entry]) -> String {
        var text = ""
        for key in meta.keys.sorted() where key != "header_crc32" { text += "\(key)=\(meta[key]!)\n" }
        for name in entries.keys.sorted() {
            let e = entries[name]!
            text += "\(name) \(e.dtype) [\(e.shape.map(String.init).joined(separator: ", "))] [\(e.begin), \(e.end)]\n"
        }
        return String(format: "%08x", Fixtures.crc32(Array(text.utf8)))
    }
}
