// What `hidden-mpi train` does around the trainer's steps, one named step each: a line per epoch
// and progress lines (rank 0), the metrics file, checkpoints (rank 0; a failure to write ends the
// job, so no rank waits on a dead one), and the ending, stopped by a signal or finished.

import Foundation
import HiddenNetworks

final class TrainingRun {
    let trainer: Trainer
    let comm: Communicator
    let out: Reporter
    let metricsFile: JSONLines?
    let metricsPath: String?
    let directory: CheckpointDirectory?
    let keepCheckpoints, checkpointEvery, logSteps: Int
    let progressEvery: Double

    private var lastWritten: TrainState?
    private var lastVerified: TrainState?
    /// Test hook: HIDDEN_MPI_FAULT_DRIFT_RANK=r changes one score on rank r after the first step.
    private let driftRank = Int(ProcessInfo.processInfo.environment["HIDDEN_MPI_FAULT_DRIFT_RANK"] ?? "")
    private var lastCheckpoint: String?
    private var lastProgress = Date()
    private var lastEpoch: EpochMetrics?
    private let runStart = Date()
    private let firstStep: Int
    private let lastStep: Int

    init(trainer: Trainer, comm: Communicator, out: Reporter, metricsFile: JSONLines?, metricsPath: String?,
         directory: CheckpointDirectory?, keepCheckpoints: Int, checkpointEvery: Int, logSteps: Int, progressEvery: Double) {
        self.trainer = trainer; self.comm = comm; self.out = out; self.metricsFile = metricsFile; self.metricsPath = metricsPath
        self.directory = directory; self.keepCheckpoints = keepCheckpoints; self.checkpointEvery = checkpointEvery
        self.logSteps = logSteps; self.progressEvery = progressEvery
        firstStep = trainer.state.globalStep
        lastStep = min(trainer.config.epochs * trainer.stepsPerEpoch, trainer.config.maxSteps ?? Int.max)
    }

    /// Rank 0: one line of the metrics file; a write that fails ends the job with one message
    /// (the lines before stay, the checkpoints too).
    func record(_ object: [String: Any]) { recordMetrics(object, metricsFile, comm) }
    func closeMetrics() { closeMetricsFile(metricsFile, comm) }

    /// Every rank: stops the job if the ranks' scores, momentum or position differ (collective).
    func requireNoDrift() {
        guard lastVerified != trainer.state else { return }
        lastVerified = trainer.state
        trainer.gatherState()
        RankAgreement.requireSame(trainer.stateChecksum(), "the ranks' scores and optimiser state drifted apart by step \(trainer.state.globalStep)",
                                  hint: "every rank must run the same hidden-mpi binary and OpenBLAS kernel on healthy hardware; resume from the last checkpoint, and run `hidden-mpi kernels` on each kind of node", comm)
    }

    /// Every rank checks for drift; rank 0 writes a checkpoint of the current state, unless it
    /// wrote this one already.
    func checkpoint(_ why: String) {
        requireNoDrift()
        guard comm.rank == 0, let directory, lastWritten != trainer.state else { return }
        do {
            let path = try directory.write(trainer, keep: keepCheckpoints)
            lastWritten = trainer.state
            lastCheckpoint = path
            if why != "step" { out.progress("hidden-mpi: checkpoint \(path) (\(why))") }
        } catch {
            Launch.writeError("error: \(error)")
            comm.abort(code: 1)
        }
    }

    /// After every step: the logged first steps, a progress line now and then, step checkpoints.
    func step(_ s: StepMetrics, _ state: TrainState) {
        if s.step == firstStep + 1, driftRank == comm.rank { trainer.perturbStateForTesting() }
        if s.step <= logSteps {
            record(["kind": "step", "epoch": s.epoch + 1, "step": s.step, "loss": s.loss,
                                "train_acc": s.accuracy, "lr": s.lr, "step_s": s.timing.total, "data_s": s.timing.data])
            if logSteps <= 20 { out.line(String(format: "  step %4d  loss %.6f", s.step, s.loss)) }
        }
        if progressEvery > 0, Date().timeIntervalSince(lastProgress) >= progressEvery, s.stepInEpoch < s.stepsPerEpoch {
            lastProgress = Date()
            // Time left at this process's mean pace so far (its evaluations included).
            let perStep = Date().timeIntervalSince(runStart) / Double(max(1, s.step - firstStep))
            let epochLeft = Double(s.stepsPerEpoch - s.stepInEpoch) * perStep
            let runLeft = Double(max(0, lastStep - s.step)) * perStep
            out.progress(String(format: "  epoch %d/%d  step %d/%d  loss %.4f  acc %.2f%%", s.epoch + 1, trainer.config.epochs,
                                s.stepInEpoch, s.stepsPerEpoch, s.loss, 100 * s.accuracy)
                         + "  about \(duration(epochLeft)) left in the epoch, \(duration(runLeft)) in the run")
        }
        if checkpointEvery > 0, state.globalStep % checkpointEvery == 0 { checkpoint("step") }
    }

    /// After every epoch (on every rank): its line, its metrics object, its checkpoint.
    func epoch(_ e: EpochMetrics, _ state: TrainState) {
        requireNoDrift()  // before the line: no result is reported from ranks that disagree
        lastProgress = Date()
        lastEpoch = e
        // More than 10 classes: a test_top5 column after test_acc (10 or fewer: the line as it was).
        out.line(String(format: "%5d  %10.4f  %8.2f%%  %9.4f  %7.2f%%", e.epoch, e.train_loss, 100 * e.train_acc,
                        e.test_loss, 100 * e.test_acc)
                 + (e.test_top5.map { String(format: "  %8.2f%%", 100 * $0) } ?? "")
                 + String(format: "  %8.5f  %8.1f  %9.0f", e.lr, e.seconds, e.images_per_s))
        var object = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(e))) as? [String: Any] ?? [:]
        object["kind"] = "epoch"
        if !trainer.model.batchNorms.isEmpty {
            // Every rank's running statistics, as checksums: the same on all of them under --bn-sync global.
            object["running_checksums"] = gatherChecksums(trainer.model.runningChecksum(), comm).map(hex)
        }
        record(object)
        checkpoint("end of epoch \(e.epoch)")
    }

    /// Stopped by a signal: checkpoint, say how to continue, exit with the preemption status.
    func stopped() -> Never {
        checkpoint("stopped by signal")
        record(["kind": "stopped", "step": trainer.state.globalStep, "epoch": trainer.state.epoch + 1])
        closeMetrics()
        out.progress("hidden-mpi: stopped by a signal at step \(trainer.state.globalStep)\(directory == nil ? " (no --checkpoint-dir: nothing saved)" : "; continue with --resume auto"); exit status \(preemptedExitCode)")
        comm.barrier()
        Launch.finish(comm, code: preemptedExitCode)
    }

    /// A step's gradients left the exact reduction's range: nothing of that step is kept, the
    /// last checkpoint stays as it was, and every rank exits with status 1.
    func outOfRange() -> Never {
        let step = trainer.state.globalStep + 1
        record(["kind": "error", "step": step, "error": "gradients out of the exact reduction's range"])
        closeMetrics()
        if comm.rank == 0 { Launch.writeError("error: at step \(step) a gradient was not finite or beyond the exact reduction's range (|mean-loss gradient| < \(Int(FixedPoint.largestChunkValue)) per chunk): the run diverged; the step was not applied and no checkpoint was written for it\nhint: lower --lr and resume from the last checkpoint; --reduction float keeps going with float sums, at the cost of bit-identical results across rank counts") }
        comm.barrier()
        Launch.finish(comm, code: 1)
    }

    /// The end: a last checkpoint and one line a person (or grep) can take the result from.
    func finished() -> Never {
        checkpoint("end of run")
        closeMetrics()
        if let e = lastEpoch {
            let partial = e.steps < trainer.stepsPerEpoch ? " (--max-steps: \(e.steps) of its \(trainer.stepsPerEpoch) steps)" : ""
            var places = [String]()
            if let metricsPath { places.append("metrics in \(metricsPath)") }
            if let lastCheckpoint { places.append("checkpoint \(lastCheckpoint)") }
            out.line(String(format: "done: test accuracy %.2f%% after epoch %d", 100 * e.test_acc, e.epoch)
                     + (e.test_top5.map { String(format: " (top-5 %.2f%%)", 100 * $0) } ?? "")
                     + partial + ", \(duration(Date().timeIntervalSince(runStart))) in all"
                     + (places.isEmpty ? "" : "; " + places.joined(separator: ", ")))
        }
        Launch.finish(comm, code: 0)
    }
}

/// Rank 0's metrics line, or the end of the job with one message when it cannot be written.
func recordMetrics(_ object: [String: Any], _ file: JSONLines?, _ comm: Communicator) {
    do { try file?.write(object) } catch {
        Launch.writeError("error: \(error)")
        comm.abort(code: 1)
    }
}

func closeMetricsFile(_ file: JSONLines?, _ comm: Communicator) {
    do { try file?.close() } catch {
        Launch.writeError("error: \(error)")
        comm.abort(code: 1)
    }
}
