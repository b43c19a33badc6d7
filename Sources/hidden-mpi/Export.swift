// `hidden-mpi export` and `hidden-mpi eval`: take a found subnetwork out of a checkpoint, and
// measure a checkpoint's or subnetwork's test accuracy with weights rebuilt from the seed.

import ArgumentParser
import Foundation
import HiddenNetworks

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the subnetwork a checkpoint has found: seed, model and one bit per weight.",
        discussion: """
        The output is safetensors: a U8 tensor mask.<layer> per layer (bits packed most significant \
        first, as numpy.unpackbits reads them) and the model description in the metadata. The weights \
        are not stored: `hidden-mpi eval --subnetwork F` rebuilds them from the seed.
        """)

    @Option(help: "Score checkpoint to export (a ckpt-*.safetensors).")
    var checkpoint: String

    @Option(help: "Subnetwork file to write (written atomically; nothing is written if the checkpoint is bad).")
    var output: String

    func run() throws {
        guard Launch.isRankZero else { return }  // under mpirun, one writer
        do {
            let file = try ScoreCheckpoint.load(checkpoint)
            let (config, identity) = try RunFields.parse(file.metadata, source: checkpoint)
            switch config.model.method {
            case .edgePopup: break
            case .dense:
                throw HiddenError("\(checkpoint) is a dense-baseline run: it has no mask to export, its checkpoint holds the learned weights (tensors scores.<layer>)",
                                  hint: "read the weights from the checkpoint itself; `hidden-mpi eval --checkpoint` measures them")
            case .supermask:
                throw HiddenError("\(checkpoint) is a supermask-baseline run: its mask is a new random sample at every pass, not one subnetwork",
                                  hint: "`hidden-mpi eval --checkpoint` measures it with the evaluation sample")
            }
            let model = try Model(config.model, maxBatch: 1)
            try ScoreCheckpoint.restoreScores(file, into: model, path: checkpoint)
            var source = ["global_batch": "\(config.globalBatch)", "train_size": "\(identity.trainSize)",
                          "test_size": "\(identity.testSize)", "reduction": config.reduction.rawValue,
                          "chunk": "\(config.chunkSize)"]
            for key in ["epoch", "step_in_epoch", "global_step"] { source["source_\(key)"] = file.metadata[key] }
            let sub = Subnetwork.capture(model, dataset: identity.dataset, source: source)
            let bytes = try sub.serialized()
            try writeAtomically(bytes, to: output)
            let kept = model.masked.reduce(0) { $0 + $1.kept }
            print("wrote \(output): \(model.masked.count) layers, \(kept) of \(model.parameterCount) weights kept, \(bytes.count) bytes (the float weights would take \(4 * model.parameterCount))")
        } catch let error as HiddenError {
            Launch.writeError("error: \(error)"); throw ExitCode(1)
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Test accuracy of a checkpoint or an exported subnetwork, weights rebuilt from the seed.",
        discussion: "Runs under mpirun too (the test set is sharded over the ranks). Give exactly one of --checkpoint and --subnetwork.")

    @Option(help: "Score checkpoint: masks are the top-k of its scores, as in training.")
    var checkpoint: String?

    @Option(help: "Subnetwork file written by `hidden-mpi export`.")
    var subnetwork: String?

    @Option(help: "Folder with the data set's files, where it is not the default one.")
    var dataDir: String?

    @Flag(help: "Print one JSON object instead of a sentence.")
    var json = false

    func validate() throws {
        guard (checkpoint == nil) != (subnetwork == nil) else {
            throw ValidationError("give exactly one of --checkpoint and --subnetwork")
        }
    }

    func run() throws {
        setBLASThreads(nil)
        let comm = try Launch.communicator()
        var evaluator: Evaluator?
        var failure: Error?
        do {
            let path = checkpoint ?? subnetwork!
            let file = checkpoint != nil ? try ScoreCheckpoint.load(path) : try Subnetwork.load(path)
            let (config, dataset) = try RunFields.parseModel(file.metadata, source: path)
            guard let source = DataSource(rawValue: dataset) else { throw HiddenError("\(path) names unknown data set \(dataset)") }
            let trainSize = Int(file.metadata["train_size"] ?? "") ?? 1024, testSize = Int(file.metadata["test_size"] ?? "") ?? 256
            // The test split alone; synthetic data is rebuilt whole, as training made it.
            let data = try loadDataset(source, directory: dataDir,
                                       synthetic: SyntheticSpec(shape: config.inputShape, classes: config.classes,
                                                                trainCount: trainSize, testCount: testSize),
                                       seed: config.seed, testOnly: true, imageSize: config.inputShape.dims.last ?? 224)
            guard data.shape.count == config.inputShape.count, data.classes <= config.classes else {
                throw HiddenError("\(path) was trained on input \(config.inputShape) with \(config.classes) classes; this \(data.name) gives \(data.shape) with \(data.classes)",
                                  hint: "point --data-dir at the data the run was trained on")
            }
            // Batches as training evaluated them: up to the largest per-rank slice of its global
            // batch; under the exact reduction whole chunks of its size, so that the figures are
            // those training reported, on any number of ranks.
            let globalBatch = max(comm.size, Int(file.metadata["global_batch"] ?? "") ?? 128)
            let chunk = file.metadata["reduction"] == "exact" ? max(0, Int(file.metadata["chunk"] ?? "") ?? 0) : 0
            let model = chunk > 0
                ? try Model(config, maxBatch: largestShard(count: (globalBatch + chunk - 1) / chunk, size: comm.size) * chunk, chunk: chunk)
                : try Model(config, maxBatch: largestShard(count: globalBatch, size: comm.size))
            if checkpoint != nil { try ScoreCheckpoint.restoreScores(file, into: model, path: path) } else { try Subnetwork.apply(file, to: model, path: path) }
            evaluator = Evaluator(model: model, data: data, comm: comm)
        } catch { failure = error }
        Launch.agree(comm, failure)
        guard let evaluator else { Launch.finish(comm, code: 1) }
        let result = evaluator.run()
        let (loss, accuracy) = (result.loss, result.accuracy)
        let testCount = evaluator.data.test.count
        let topFive = EpochMetrics.reportsTop5(classes: evaluator.model.config.classes)
        if comm.rank == 0 {
            let correct = Int((accuracy * Double(testCount)).rounded())
            if json {
                var object: [String: Any] = ["test_acc": accuracy, "test_loss": loss, "correct": correct,
                                             "test_size": testCount, "world_size": comm.size]
                if topFive { object["test_top5"] = result.top5 }
                print(String(data: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), encoding: .utf8)!)
            } else {
                print(String(format: "test accuracy %.2f%% (%d of %d), test loss %.4f", 100 * accuracy, correct,
                             testCount, loss)
                      + (topFive ? String(format: ", top-5 %.2f%%", 100 * result.top5) : ""))
            }
        }
        Launch.finish(comm, code: 0)
    }
}
