// `hidden-mpi train`: the edge-popup training run.

import ArgumentParser
import Foundation
import HiddenNetworks

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find a subnetwork of a randomly weighted network (edge-popup: scores trained, weights frozen), or run the paper's dense and supermask baselines.",
        discussion: """
        Defaults follow the reference's small-scale configs: SGD lr 0.1, momentum 0.9, weight decay 1e-4 \
        on the scores, global batch 128, cosine schedule, signed-constant weights with the fan scaled \
        by k, k 0.5. --method dense and --method supermask run the paper's baselines on the same \
        model and seed (learned weights from a Kaiming-normal init; Zhou et al.'s sampled masks), \
        each with its own defaults.

        --batch-size is the global batch: it is split over the ranks, so -np 1 and -np 4 follow the \
        same trajectory, and with the default --reduction exact the same bits: scores, momentum, \
        batch-norm statistics, losses and accuracies are byte-identical on any number of ranks up to \
        the number of chunks (global batch / --chunk), and a checkpoint resumes on any such number \
        (Docs/reproducibility.md). Rank 0 prints one line per epoch and, with --metrics, \
        writes JSON Lines (a "run" object, then one "epoch" object per epoch; "step" objects too with \
        --log-steps).

        On CPUs with AVX-512 the 3x3 convolutions with channels in 16s (stride 1, or 2 on even \
        sizes) run hidden-mpi's own direct kernel instead of im2col + OpenBLAS (the header's \
        "convolutions:" line); it rounds otherwise. On a cluster where some nodes lack AVX-512, \
        set HIDDEN_MPI_CONV=avx2 on those (its AVX2 version, the same bits) or \
        HIDDEN_MPI_CONV=im2col on every rank (train warns when ranks differ). The fully \
        connected layers follow the same setting (kernels of their own, or sgemm).

        Examples:
          mpirun -np 2 hidden-mpi train --model fc --epochs 10
          mpirun -np 4 hidden-mpi train --model conv4 --dataset cifar10 \\
              --data-dir ~/cifar-10-batches-bin --epochs 100 \\
              --checkpoint-dir ckpt --resume auto
          mpirun -np 16 hidden-mpi train --model cifar-resnet18 --dataset cifar10 \\
              --data-dir ~/cifar-10-batches-bin --epochs 100 \\
              --batch-size 256 --weight-decay 5e-4
          hidden-mpi train --dataset synthetic --input 3x32x32 --max-steps 20
        """)

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Data") var dataOptions: DataOptions

    @Option(help: "Epochs to train.")
    var epochs: Int = 10

    @Option(help: "Global batch size, split over all ranks.")
    var batchSize: Int = 128

    @Option(help: ArgumentHelp("The optimiser: sgd (default; momentum, optional Nesterov) or adam (PyTorch's Adam, with --beta1, --beta2 and --adam-eps; the reference's dense baselines use it with --lr 3e-4 --batch-size 60 --schedule constant). Weight decay is coupled in both (g + wd * p).", valueName: "sgd|adam"))
    var optimizer: OptimizerKind = .sgd

    @Option(parsing: .unconditional, help: "Base learning rate (default: SGD 0.1 for edge-popup, 0.01 for dense, 200 for supermask; Adam 3e-4).")
    var lr: Double?

    @Option(parsing: .unconditional, help: "SGD momentum (0 for plain SGD).")
    var momentum: Double = 0.9

    @Option(parsing: .unconditional, help: "Adam's decay rate of the first moment.")
    var beta1: Double = 0.9

    @Option(parsing: .unconditional, help: "Adam's decay rate of the second moment.")
    var beta2: Double = 0.999

    @Option(parsing: .unconditional, help: "Adam's epsilon, added to the square root of the second moment.")
    var adamEps: Double = 1e-8

    @Option(parsing: .unconditional, help: "L2 weight decay on the trained parameters, coupled (g + wd * s) (default: 1e-4; 0 for supermask).")
    var weightDecay: Double?

    @Flag(help: "Use Nesterov momentum.")
    var nesterov = false

    @Option(help: ArgumentHelp("Learning-rate schedule, set once per epoch after any warm-up: cosine (to 0 at the last epoch), constant, or multistep (the rate times --lr-gamma at each of --lr-milestones).", valueName: "cosine|constant|multistep"))
    var schedule: ScheduleKind = .cosine

    @Option(help: ArgumentHelp("Multistep: the epochs (counted from 0) from which the rate is multiplied by --lr-gamma once more, as torch's MultiStepLR (default: every 30 epochs, the reference's lr_adjust).", valueName: "e1,e2,..."))
    var lrMilestones: String?

    @Option(parsing: .unconditional, help: "Multistep: the factor applied at each milestone (default 0.1).")
    var lrGamma: Double?

    @Option(parsing: .unconditional, help: "Linear warm-up epochs before the schedule.")
    var warmup: Int = 0

    @Option(parsing: .unconditional, help: "Label smoothing eps in [0, 1): targets (1 - eps) one-hot + eps / classes.")
    var labelSmoothing: Double = 0

    @Option(help: ArgumentHelp("Batch-norm statistics (ResNets): global (default) allreduces each batch norm's per-channel sums in forward and backward, so every rank normalises with the statistics of the whole global batch and -np 1 and -np N follow the same trajectory; local uses each rank's slice alone (as PyTorch DDP without SyncBatchNorm): two fewer small allreduces per batch norm, but the result then depends on the number of ranks and on how the batch is split, and the running statistics differ between ranks (rank 0's are checkpointed).", valueName: "global|local"))
    var bnSync: BatchNormSync = .global

    @Option(help: ArgumentHelp("How gradients, batch-norm statistics and metrics are summed over samples and ranks. exact (default): each global batch is cut into chunks of --chunk samples at fixed positions, ranks take whole chunks, and each chunk's sums are rounded once to 64-bit fixed point and added as integers, so a run gives the same bits on any number of ranks (up to the number of chunks) and may resume on another number of ranks; it sends twice the bytes of float. float: float sums in the order the ranks produce them, as before: the result then depends on the number of ranks. Docs/reproducibility.md has the contract.", valueName: "exact|float"))
    var reduction: GradientReduction = .exact

    @Option(help: "Samples per chunk of the exact reduction (default: the global batch / 16, rounded up). At most (global batch / chunk) ranks share a batch; a different chunk gives a different (equally valid) run.")
    var chunk: Int?

    @Option(help: ArgumentHelp("Training augmentation: reference (the reference's for the data set: CIFAR random crop with padding 4 and horizontal flip; imagefolder random resized crop and flip; none for the MNIST-likes and synthetic data) or none (imagefolder: the evaluation transform, resize and centre crop).", valueName: "reference|none"))
    var augment: AugmentChoice = .reference

    @Option(help: "Stop after this many optimiser steps in all (quick looks and tests).")
    var maxSteps: Int?

    @Option(help: "Write JSON Lines metrics to FILE (rank 0).")
    var metrics: String?

    @Option(help: "Also record the loss of each of the first N steps (in --metrics and, for N <= 20, on screen).")
    var logSteps: Int = 0

    @Option(help: "Seconds between progress lines inside an epoch, on stderr (0 turns them off).")
    var progress: Double = 10

    @OptionGroup var blas: BLASOptions

    @Option(help: ArgumentHelp("Folder for score checkpoints (rank 0 writes them; written atomically).", valueName: "dir"))
    var checkpointDir: String?

    @Option(help: "Also checkpoint every N optimiser steps (0: only at the end of each epoch and of the run).")
    var checkpointEvery: Int = 0

    @Option(help: "How many of the newest checkpoints to keep.")
    var keepCheckpoints: Int = 3

    @Option(help: ArgumentHelp("Resume from a checkpoint file, or `auto`: the newest valid one in --checkpoint-dir (a fresh start if there is none). The configuration comes from the checkpoint; only --epochs, the number of ranks and output paths may change.", valueName: "path|auto"))
    var resume: String?

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if let lr, !(lr >= 0 && lr.isFinite) { throw ValidationError("--lr must be a non-negative number, got \(lr)") }
        guard momentum >= 0, momentum < 1 else { throw ValidationError("--momentum must be in [0, 1), got \(momentum)") }
        if let weightDecay, !(weightDecay >= 0) { throw ValidationError("--weight-decay must be non-negative, got \(weightDecay)") }
        for (name, beta) in [("--beta1", beta1), ("--beta2", beta2)] {
            guard beta >= 0, beta < 1 else { throw ValidationError("\(name) must be in [0, 1), got \(beta)") }
        }
        guard adamEps > 0, adamEps.isFinite else { throw ValidationError("--adam-eps must be a positive number, got \(adamEps)") }
        if optimizer == .adam && nesterov { throw ValidationError("--nesterov is SGD's; drop it with --optimizer adam") }
        let given = Set(CommandLine.arguments.map { String($0.split(separator: "=")[0]) })
        if optimizer == .sgd, let adamFlag = ["--beta1", "--beta2", "--adam-eps"].first(where: given.contains) {
            throw ValidationError("\(adamFlag) belongs to --optimizer adam; add that, or drop \(adamFlag)")
        }
        if schedule != .multistep, lrMilestones != nil || lrGamma != nil {
            throw ValidationError("--lr-milestones and --lr-gamma belong to --schedule multistep; add that, or drop them")
        }
        if let lrGamma, !(lrGamma > 0 && lrGamma.isFinite) { throw ValidationError("--lr-gamma must be a positive number, got \(lrGamma)") }
        _ = try milestones()
        guard warmup >= 0, warmup < epochs || warmup == 0 else {
            throw ValidationError("--warmup \(warmup) must be smaller than --epochs \(epochs)")
        }
        guard labelSmoothing >= 0, labelSmoothing < 1 else {
            throw ValidationError("--label-smoothing must be in [0, 1), got \(labelSmoothing)")
        }
        if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps must be at least 1") }
        if let chunk, chunk < 1 { throw ValidationError("--chunk must be at least 1, got \(chunk)") }
        if chunk != nil && reduction == .float { throw ValidationError("--chunk belongs to --reduction exact; drop it with --reduction float") }
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be 0 or more steps") }
        guard keepCheckpoints >= 1 else { throw ValidationError("--keep-checkpoints must be at least 1") }
        if checkpointDir == nil && checkpointEvery > 0 {
            throw ValidationError("--checkpoint-every needs --checkpoint-dir")
        }
        if resume == "auto" && checkpointDir == nil {
            throw ValidationError("--resume auto needs --checkpoint-dir: it resumes from the newest checkpoint there")
        }
    }

    /// --lr-milestones as epochs, ascending (the reference's every 30 epochs when not given).
    func milestones() throws -> [Int] {
        guard let lrMilestones else { return LearningRateSchedule.everyAdjust(epochs: epochs) }
        let parts = lrMilestones.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 1 }) else {
            throw ValidationError("--lr-milestones must list epochs of at least 1, separated by commas (such as 30,60,90), got \"\(lrMilestones)\"")
        }
        let list = parts.map { $0! }
        guard list == list.sorted(), Set(list).count == list.count else {
            throw ValidationError("--lr-milestones must be ascending without repeats, got \"\(lrMilestones)\"")
        }
        return list
    }

    func trainConfig(input: Shape, classes: Int) -> TrainConfig {
        var c = TrainConfig(model: modelOptions.config(input: input, classes: classes))
        let method = modelOptions.method
        switch optimizer {
        case .sgd:
            c.optimizer = OptimizerConfig(lr: lr ?? method.defaultLR, momentum: momentum,
                                          weightDecay: weightDecay ?? method.defaultWeightDecay, nesterov: nesterov)
        case .adam:
            c.optimizer = .adam(lr: lr ?? 3e-4, beta1: beta1, beta2: beta2, eps: adamEps,
                                weightDecay: weightDecay ?? method.defaultWeightDecay)
        }
        c.schedule = schedule
        if schedule == .multistep {
            c.milestones = (try? milestones()) ?? []
            c.lrGamma = lrGamma ?? 0.1
        }
        c.warmup = warmup
        c.epochs = epochs
        c.globalBatch = batchSize
        c.labelSmoothing = labelSmoothing
        c.maxSteps = maxSteps
        c.bnSync = bnSync
        c.reduction = reduction
        c.chunk = chunk
        c.augment = augment == .reference
        return c
    }

    func run() throws {
        blas.apply()
        // From the start: a signal during set-up still ends in a checkpoint and exit status 75.
        installStopHandlers()
        let comm: Communicator
        do { comm = try Launch.communicator() } catch {
            Launch.writeError("error: cannot start MPI: \(error)"); throw ExitCode(2)
        }
        let out = Reporter(enabled: comm.rank == 0)
        // Each rank reads its own environment (nodes may differ): they stop together or not at all.
        Launch.agree(comm, RankAgreement.launcherProblem(worldSize: comm.size).map { HiddenError($0) }, exitCode: 2)

        // An image folder is listed once, by rank 0, and the list sent to the others (every rank
        // takes part, before anything else can fail on one of them).
        var folderError: Error?
        var imageFolder: ImageFolderIndex?
        if dataOptions.dataset == .imagefolder {
            do { imageFolder = try Self.shareImageFolder(dataOptions.dataDir, comm) } catch { folderError = error }
        }
        Launch.agree(comm, folderError)

        // Set-up: every rank loads and builds; any failure is reported once and all ranks exit.
        let directory = checkpointDir.map(CheckpointDirectory.init)
        var setup: (trainer: Trainer, metrics: JSONLines?, notes: [String])?
        var setupError: Error?
        do { setup = try setUp(comm, directory: directory, imageFolder: imageFolder) } catch { setupError = error }
        Launch.agree(comm, setupError)
        guard let setup else { Launch.finish(comm, code: 1) }
        let (trainer, metricsFile, notes) = setup
        trainer.startDataThreads(dataOptions.dataThreads)

        let checksums = try verifyWeights(trainer.model, comm)
        let hosts = RankAgreement.gather(RankAgreement.hostName, comm)
        if resume != nil {  // a flag every rank shares: all of them take part in the comparison
            RankAgreement.requireSame(trainer.stateChecksum(), "the ranks resumed different states (scores, momentum, step)",
                                      hint: "every rank must load the same checkpoint: put --checkpoint-dir on a file system all nodes share, or copy the newest checkpoint to every node's folder", comm)
        }
        for note in notes { out.progress("hidden-mpi: \(note)") }
        printHeader(trainer, checksums, hosts: hosts, out)
        recordMetrics(runObject(trainer, checksums, hosts: hosts), metricsFile, comm)
        if trainer.state.epoch >= trainer.config.epochs {
            out.line("nothing to train: the checkpoint has finished all \(trainer.config.epochs) epochs (pass --epochs N to extend the run)")
            closeMetricsFile(metricsFile, comm)
            Launch.finish(comm, code: 0)
        }
        let run = TrainingRun(trainer: trainer, comm: comm, out: out, metricsFile: metricsFile, metricsPath: metrics,
                              directory: directory, keepCheckpoints: keepCheckpoints, checkpointEvery: checkpointEvery,
                              logSteps: logSteps, progressEvery: progress)
        let outcome = trainer.train(stopRequested: { stopSignal != 0 }, onStep: run.step, onEpoch: run.epoch)
        if outcome == .stopped { run.stopped() }
        if outcome == .outOfRange { run.outOfRange() }
        run.finished()
    }

    /// Rank 0 scans the image folder and broadcasts the index (or its error) to every rank.
    static func shareImageFolder(_ dir: String?, _ comm: Communicator) throws -> ImageFolderIndex {
        var bytes: [UInt8] = []
        if comm.rank == 0 {
            do {
                guard let dir else { throw HiddenError("imagefolder needs --data-dir", hint: "pass --data-dir DIR holding train/<class>/ and val/<class>/") }
                bytes = [0] + (try ImageFolderIndex.scan(root: dir).serialized())
            } catch { bytes = [1] + Array("\(error)".utf8) }
        }
        comm.broadcast(&bytes)
        guard bytes.first == 0 else { throw HiddenError(String(decoding: bytes.dropFirst(), as: UTF8.self)) }
        return try ImageFolderIndex(serialized: Array(bytes.dropFirst()))
    }

    /// The checkpoint rank 0 chose, as this rank sees it; the error names this rank and its host.
    func loadChosen(_ path: String, _ comm: Communicator) throws -> SafeTensorsFile {
        do { return try ScoreCheckpoint.load(path) } catch {
            guard comm.size > 1 else { throw error }
            let why = (error as? HiddenError)?.message ?? "\(error)"
            throw HiddenError("rank \(comm.rank) on host \(RankAgreement.hostName) cannot resume from \(path), the checkpoint rank 0 chose: \(why)",
                              hint: "every rank must see the same checkpoint folder: put --checkpoint-dir on a file system all nodes share, or copy the file to the same path on every node")
        }
    }

    /// Everything before the first step, on every rank: the checkpoint to resume (if any), the
    /// data, the trainer, the checkpoint folder and rank 0's metrics file.
    func setUp(_ comm: Communicator, directory: CheckpointDirectory?, imageFolder: ImageFolderIndex?) throws -> (trainer: Trainer, metrics: JSONLines?, notes: [String]) {
        var notes: [String] = []
        var checkpoint: (path: String, file: SafeTensorsFile)?
        if let resume {
            if resume == "auto", let directory {
                // Rank 0 chooses (collective: every rank takes part before anything can throw);
                // every rank then loads that file name from its own view of the folder.
                var found: (path: String, file: SafeTensorsFile, skipped: [String])?
                var failure: Error?
                if comm.rank == 0 { do { found = try directory.newestValid() } catch { failure = error } }
                Launch.agree(comm, failure)
                let name = RankAgreement.broadcast(found.map { ($0.path as NSString).lastPathComponent } ?? "", comm)
                if let found {
                    notes += found.skipped
                    if !found.skipped.isEmpty { notes.append("falling back to \(found.path)") }
                    checkpoint = (found.path, found.file)
                } else if !name.isEmpty {
                    let path = (directory.path as NSString).appendingPathComponent(name)
                    checkpoint = (path, try loadChosen(path, comm))
                } else {
                    notes.append("no checkpoint in \(directory.path): starting a fresh run")
                }
            } else {
                checkpoint = (resume, try loadChosen(resume, comm))
            }
        }
        if checkpoint == nil, resume == nil { try directory?.requireNoCheckpoints() }
        var config: TrainConfig?
        var identity: DataIdentity?
        if let checkpoint {
            (config, identity) = try resumedConfig(checkpoint.file, path: checkpoint.path)
            notes.append("resuming from \(checkpoint.path) (epoch \((Int(checkpoint.file.metadata["epoch"] ?? "") ?? 0) + 1), step \(checkpoint.file.metadata["global_step"] ?? "?"))")
        }
        let source = try identity.map { id -> DataSource in
            guard let s = DataSource(rawValue: id.dataset) else { throw HiddenError("checkpoint names unknown data set \(id.dataset)") }
            return s
        } ?? dataOptions.dataset
        let synthetic = identity.map { SyntheticSpec(shape: $0.input, classes: $0.classes, trainCount: $0.trainSize, testCount: $0.testSize) }
            ?? dataOptions.synthetic
        guard source != .imagefolder || imageFolder != nil else {
            throw HiddenError("the checkpoint trained on an image folder", hint: "pass --dataset imagefolder --data-dir DIR as the run did")
        }
        let data = try loadDataset(source, directory: dataOptions.dataDir, synthetic: synthetic,
                                   seed: config?.model.seed ?? modelOptions.seed,
                                   imageSize: identity?.input.dims.last ?? dataOptions.imageSize, imageFolder: imageFolder,
                                   augment: config?.augment ?? (augment == .reference))
        if let identity, identity != DataIdentity(data) {
            throw HiddenError("the data set differs from the checkpoint's: \(DataIdentity(data)) vs \(identity)",
                              hint: "point --data-dir at the data the run was started with")
        }
        let trainer = try Trainer(config: config ?? trainConfig(input: data.shape, classes: data.classes), data: data, comm: comm)
        if let checkpoint { try ScoreCheckpoint.restore(checkpoint.file, into: trainer, path: checkpoint.path) }
        try directory?.prepare()
        let metricsFile = comm.rank == 0 ? try metrics.map { try JSONLines(path: $0, append: checkpoint != nil) } : nil
        return (trainer, metricsFile, notes)
    }

    /// The checkpoint's configuration, with --epochs applied; a flag given on the command line
    /// that contradicts the checkpoint is refused, naming the field and both values.
    func resumedConfig(_ file: SafeTensorsFile, path: String) throws -> (TrainConfig, DataIdentity) {
        var (config, identity) = try RunFields.parse(file.metadata, source: path)
        // "--no-scale-fan" counts as giving "--scale-fan".
        let given = Set(CommandLine.arguments.filter { $0.hasPrefix("--") }
            .map { String($0.split(separator: "=")[0]) }
            .map { $0.hasPrefix("--no-") ? "--" + $0.dropFirst(5) : $0 })
        let (shape, classes) = dataOptions.shapeAndClasses
        let mine = Dictionary(uniqueKeysWithValues: RunFields.fields(
            trainConfig(input: shape, classes: classes),
            DataIdentity(dataset: dataOptions.dataset.rawValue, input: shape, classes: classes,
                         trainSize: dataOptions.trainSize, testSize: dataOptions.testSize)).map { ($0.key, $0.value) })
        for (key, theirs) in RunFields.fields(config, identity) where !RunFields.changeableOnResume.contains(key) {
            guard let flag = Self.flagForField[key], given.contains(flag), let value = mine[key], value != theirs else { continue }
            // The baselines keep no top-k fraction: a --k given to them changes nothing.
            if key == "k" && config.model.method != .edgePopup { continue }
            throw HiddenError("\(flag) \(value) contradicts the checkpoint \(path), which has \(key) = \(theirs)",
                              hint: "drop \(flag) to continue the checkpoint's run, or start a new run without --resume")
        }
        if given.contains("--epochs") { config.epochs = epochs }
        config.maxSteps = maxSteps
        return (config, identity)
    }

    static let flagForField: [String: String] = [
        "model": "--model", "width": "--width", "k": "--k", "init": "--init", "scale_fan": "--scale-fan", "seed": "--seed",
        "dataset": "--dataset", "input": "--input", "classes": "--classes", "train_size": "--train-size",
        "test_size": "--test-size", "global_batch": "--batch-size", "lr": "--lr", "momentum": "--momentum",
        "weight_decay": "--weight-decay", "nesterov": "--nesterov", "schedule": "--schedule", "warmup": "--warmup",
        "label_smoothing": "--label-smoothing", "epochs": "--epochs", "method": "--method",
        "bn_sync": "--bn-sync", "optimizer": "--optimizer", "beta1": "--beta1", "beta2": "--beta2", "adam_eps": "--adam-eps",
        "lr_milestones": "--lr-milestones", "lr_gamma": "--lr-gamma", "reduction": "--reduction", "chunk": "--chunk", "augment": "--augment", "first_layer_dense": "--first-layer-dense", "last_layer_dense": "--last-layer-dense"]

    /// Each rank's weight checksum, gathered on all ranks; aborts the job if any differs.
    func verifyWeights(_ model: Model, _ comm: Communicator) throws -> [UInt64] {
        let all = gatherChecksums(model.weightChecksum(), comm)
        if Set(all).count != 1 {
            let list = all.enumerated().map { "rank \($0.offset): \(hex($0.element))" }.joined(separator: ", ")
            if comm.rank == 0 {
                Launch.writeError("error: the ranks built different weights from the same seed (\(list))\nhint: run the same hidden-mpi binary and BLAS on every node")
            }
            Launch.finish(comm, code: 1)
        }
        // Different kernels (nodes of different CPUs) compute a chunk's sums with other roundings:
        // the run is still one run (every rank applies the same reduced gradient), but its bits
        // then depend on which rank computed which chunk, so on the rank count.
        // The same holds for the direct convolution, which runs where the CPU has AVX-512 (or AVX2
        // with HIDDEN_MPI_CONV=avx2: both kernels give the same bits).
        let convolutions = ConvolutionPaths(model)
        let path = convolutions.total == 0 ? "" : convolutions.direct > 0 ? " (direct convolutions)" : " (im2col convolutions)"
        let cores = RankAgreement.gather(BLASThreads.coreName + path, comm)
        if Set(cores).count != 1, comm.rank == 0 {
            let others = cores.indices.filter { cores[$0] != cores[0] }.prefix(8).map { "rank \($0) \(cores[$0])" }
            Launch.writeError("warning: \(others.joined(separator: ", ")) run another OpenBLAS kernel or convolution than rank 0's \(cores[0]): the run's bits then depend on which ranks computed which chunks, so another number of ranks (or a resume elsewhere) gives another run, equal only up to rounding\nhint: set the same OPENBLAS_CORETYPE for every rank (see `hidden-mpi kernels` on each kind of node), and, where some nodes lack AVX-512, HIDDEN_MPI_CONV=avx2 on those or HIDDEN_MPI_CONV=im2col on all")
        }
        return all
    }

    func printHeader(_ t: Trainer, _ checksums: [UInt64], hosts: [String], _ out: Reporter) {
        let m = t.model, c = t.config
        let kept = m.masked.reduce(0) { $0 + $1.kept }
        out.line("hidden-mpi train: \(c.model.architecture.rawValue) x\(c.model.width) on \(t.data.name) \(t.data.shape) (\(t.data.train.count) train / \(t.data.test.count) test)")
        let what: String
        switch c.model.method {
        case .edgePopup: what = "\(kept) kept at k = \(c.model.k) (edge-popup)"
        case .dense: what = "all trained (dense baseline)"
        case .supermask: what = "masks sampled from sigmoid(scores) at every pass (supermask baseline)"
        }
        out.line("  \(m.parameterCount) weights, \(what); init \(c.model.weightInit.rawValue)\(c.model.scaleFan ? " (scaled fan)" : ""), seed \(c.model.seed), weight checksum \(hex(checksums[0])) on all \(checksums.count) rank(s)")
        let nodes = Set(hosts).count
        out.line("  \(t.comm.size) rank(s)\(nodes > 1 ? " on \(nodes) nodes" : "") x \(BLASThreads.current) BLAS thread(s) (OpenBLAS \(BLASThreads.coreName)); global batch \(c.globalBatch) (<= \(t.maxLocalBatch) per rank), \(t.stepsPerEpoch) steps/epoch; \(c.optimizer.summary), \(c.schedule.rawValue)\(c.schedule == .multistep ? (c.milestones.isEmpty ? " (no milestone: constant)" : " x\(c.lrGamma) at epochs \(c.milestones.map(String.init).joined(separator: ","))") : "")\(c.warmup > 0 ? " after \(c.warmup) warm-up epochs" : "")")
        if let hint = BLASThreads.fallbackHint { out.progress("hidden-mpi: note: \(hint)") }
        out.line("  OpenBLAS kernel \(BLASThreads.coreName): \(KernelChoice.reason)")
        if let line = ConvolutionPaths(m).summary { out.line("  " + line) }
        if c.chunkSize > 0 {
            out.line("  exact reduction: \(c.chunksPerBatch) chunks of \(c.chunkSize) samples per batch; the same bits on 1 to \(c.chunksPerBatch) ranks"
                     + (t.sharded != nil ? "; each rank updates 1/\(t.comm.size) of the scores" : ""))
        } else {
            out.line("  float reduction: results depend on the number of ranks (--reduction exact makes them bit-identical)")
        }
        out.line("epoch  train_loss  train_acc  test_loss  test_acc"
                 + (EpochMetrics.reportsTop5(classes: c.model.classes) ? "  test_top5" : "") + "        lr   seconds   images/s")
    }

    /// The metrics file's "run" object: the checkpoint's configuration fields (one table,
    /// RunFields, written once), typed for JSON, with what only this run knows.
    func runObject(_ t: Trainer, _ checksums: [UInt64], hosts: [String]) -> [String: Any] {
        var object: [String: Any] = ["kind": "run", "world_size": t.comm.size, "parameters": t.model.parameterCount,
                                     "nodes": Set(hosts).count, "hosts": hosts, "update": t.sharded != nil ? "sharded" : "replicated",
                                     "weight_checksums": checksums.map(hex),
                                     "blas_core": BLASThreads.coreName, "blas_core_reason": KernelChoice.reason,
                                     "direct_convolutions": ConvolutionPaths(t.model).direct,
                                     "direct_convolution_isa": DirectConvolution.instructionSet]
        for (key, value) in RunFields.fields(t.config, DataIdentity(t.data)) { object[key] = jsonValue(value) }
        // A list whatever its length (one milestone would read as a number).
        if t.config.schedule == .multistep { object["lr_milestones"] = t.config.milestones }
        return object
    }
}

/// A metadata string as the JSON value it stands for: true/false, an integer, a number, or itself.
func jsonValue(_ text: String) -> Any {
    if text == "true" || text == "false" { return text == "true" }
    if let i = Int(text) { return i }
    if let u = UInt64(text) { return u }
    if let d = Double(text), d.isFinite { return d }
    return text
}

func hex(_ v: UInt64) -> String { String(format: "%016llx", v) }

/// Every rank's `value`, in rank order, on every rank (two exact 32-bit halves per rank in doubles).
func gatherChecksums(_ value: UInt64, _ comm: Communicator) -> [UInt64] {
    var slots = [Double](repeating: 0, count: 2 * comm.size)
    slots[2 * comm.rank] = Double(value >> 32)
    slots[2 * comm.rank + 1] = Double(value & 0xFFFF_FFFF)
    comm.allreduce(&slots, op: .sum)
    return (0..<comm.size).map { UInt64(slots[2 * $0]) << 32 | UInt64(slots[2 * $0 + 1]) }
}

/// A span of seconds the way a person reads it: "42 s", "3 min 05 s", "2 h 07 min".
func duration(_ seconds: Double) -> String {
    let t = Int(seconds.rounded())
    if t < 90 { return "\(t) s" }
    if t < 90 * 60 { return String(format: "%d min %02d s", t / 60, t % 60) }
    return String(format: "%d h %02d min", t / 3600, (t % 3600) / 60)
}
