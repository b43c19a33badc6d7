// Where checkpoints live on disk: naming, the newest valid one, keeping the last few, and the
// signals that ask a job to checkpoint and leave (Slurm sends SIGTERM or, with --signal, SIGUSR1).

import Foundation
import HiddenNetworks
import Synchronization

/// Exit status of a run stopped by SIGTERM/SIGUSR1 after writing its checkpoint (EX_TEMPFAIL:
/// "try again later"; job scripts requeue on it).
let preemptedExitCode: Int32 = 75

struct CheckpointDirectory {
    let path: String

    /// ckpt-s<global step>-e<epoch in progress>.safetensors: names sort in the order written.
    func fileName(_ s: TrainState) -> String {
        String(format: "ckpt-s%09d-e%04d.safetensors", s.globalStep, s.epoch)
    }

    /// Checkpoint files in the folder, newest first.
    func list() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { $0.hasPrefix("ckpt-s") && $0.hasSuffix(".safetensors") }.sorted(by: >)
            .map { (path as NSString).appendingPathComponent($0) }
    }

    /// Creates the folder if needed and checks it can be written, before any training.
    func prepare() throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw HiddenError("cannot create checkpoint folder \(path): \(error.localizedDescription)")
        }
        guard FileManager.default.isWritableFile(atPath: path) else {
            throw HiddenError("checkpoint folder \(path) is not writable", hint: "pass a --checkpoint-dir you can write to")
        }
    }

    /// Writes the trainer's checkpoint, then keeps the `keep` newest of this run's: only files
    /// older than the one just written are pruned, never it nor any whose name sorts after it.
    func write(_ trainer: Trainer, keep: Int) throws -> String {
        let target = (path as NSString).appendingPathComponent(fileName(trainer.state))
        try writeAtomically(try ScoreCheckpoint.capture(trainer).serialized(), to: target)
        let older = list().filter { $0 < target }
        for old in older.dropFirst(max(keep, 1) - 1) { try? FileManager.default.removeItem(atPath: old) }
        return target
    }

    /// The newest checkpoint that loads and verifies, with a note for each newer one skipped;
    /// nil if the folder holds none; throws if it holds some and none is valid.
    func newestValid() throws -> (path: String, file: SafeTensorsFile, skipped: [String])? {
        var skipped: [String] = []
        for candidate in list() {
            do { return (candidate, try ScoreCheckpoint.load(candidate), skipped) } catch {
                skipped.append("skipping \(candidate): \(error)")
            }
        }
        guard skipped.isEmpty else {
            throw HiddenError("none of the \(skipped.count) checkpoints in \(path) is valid:\n" + skipped.joined(separator: "\n"),
                              hint: "move them out of \(path) to start afresh there, or --resume a specific file")
        }
        return nil
    }

    /// A fresh run must not mix its checkpoints with another run's.
    func requireNoCheckpoints() throws {
        let existing = list()
        guard existing.isEmpty else {
            throw HiddenError("checkpoint folder \(path) already holds \(existing.count) checkpoint(s), the newest \((existing[0] as NSString).lastPathComponent)",
                              hint: "continue that run with --resume auto, or give this run another --checkpoint-dir")
        }
    }
}

/// Set from a signal handler; read at each step boundary.
/// A lock-free atomic: the only thing the handler does, and safe in a signal handler.
let stopSignalFlag = Atomic<Int32>(0)
var stopSignal: Int32 { stopSignalFlag.load(ordering: .relaxed) }

func installStopHandlers() {
    signal(SIGTERM) { sig in stopSignalFlag.store(sig, ordering: .relaxed) }
    signal(SIGUSR1) { sig in stopSignalFlag.store(sig, ordering: .relaxed) }
}
