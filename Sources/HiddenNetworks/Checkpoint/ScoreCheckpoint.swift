// Score checkpoints: each layer's scores and momentum buffers (and each batch norm's running
// statistics, `running.<b>` as [mean; var] of shape [2, C]) in safetensors, with the run's
// configuration, where it stands, and checksums in the metadata. Weights are never stored: they
// are rebuilt from the seed, and the stored weight checksum proves they came out the same.

import CZlib
import Foundation

public enum ScoreCheckpoint {
    public static let format = "hidden-mpi-scores"
    /// Version 1: edge-popup scores (and every file written before the baselines existed).
    /// Version 2: the same layout for `--method dense` or `supermask`, whose `scores.<l>` are not
    /// edge-popup scores: a version-1 reader refuses them instead of taking top-k masks of them.
    public static let version = "1"
    public static let baselineVersion = "2"

    public static func version(for method: TrainingMethod) -> String {
        method == .edgePopup ? version : baselineVersion
    }

    /// The trainer's current scores, momentum and state as a safetensors file.
    public static func capture(_ t: Trainer) -> SafeTensorsFile {
        precondition(t.stateIsWhole, "a checkpoint after sharded steps needs Trainer.gatherState() on every rank first")
        var meta: [String: String] = ["format": format, "format_version": version(for: t.config.model.method)]
        for (k, v) in RunFields.fields(t.config, DataIdentity(t.data)) { meta[k] = v }
        let s = t.state
        meta["epoch"] = "\(s.epoch)"
        meta["step_in_epoch"] = "\(s.stepInEpoch)"
        meta["global_step"] = "\(s.globalStep)"
        meta["epoch_loss_sum"] = hexBits(s.lossSum)
        meta["epoch_correct"] = hexBits(s.correct)
        meta["epoch_seen"] = "\(s.seen)"
        meta["world_size"] = "\(t.comm.size)"
        meta["weight_checksum"] = String(format: "%016llx", t.model.weightChecksum())
        meta["layers"] = "\(t.model.masked.count)"
        meta["batchnorms"] = "\(t.model.batchNorms.count)"
        var tensors: [StoredTensor] = []
        for (l, m) in t.model.masked.enumerated() {
            tensors.append(StoredTensor(name: "scores.\(l)", floats: UnsafeBufferPointer(start: m.scores, count: m.count), shape: m.shape))
        }
        for (name, state) in t.optimizer.namedStateBuffers {
            for (l, m) in t.model.masked.enumerated() {
                let buf = UnsafeBufferPointer(start: state.pointer + t.model.offsets[l], count: m.count)
                tensors.append(StoredTensor(name: "\(name).\(l)", floats: buf, shape: m.shape))
            }
        }
        tensors += runningTensors(t.model)
        meta["data_crc32"] = SafeTensorsFile.dataChecksum(tensors)
        meta["header_crc32"] = headerChecksum(meta, tensors)
        return SafeTensorsFile(metadata: meta, tensors: tensors)
    }

    /// Reads and verifies a checkpoint: format, version, both checksums, a tensor pair per layer.
    public static func load(_ path: String) throws -> SafeTensorsFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HiddenError("cannot read checkpoint \(path)", hint: "check the path (or use --resume auto with --checkpoint-dir)")
        }
        let file = try SafeTensorsFile(bytes: [UInt8](data), name: path)
        try verify(file, path: path, format: format)
        guard let layers = file.metadata["layers"].flatMap(Int.init), layers > 0,
              (0..<layers).allSatisfy({ file.tensor("scores.\($0)") != nil && file.tensor("momentum.\($0)") != nil }) else {
            throw HiddenError("\(path) does not hold a scores and a momentum tensor for each of its layers")
        }
        // Files written before the ResNets have no batch norms and no "batchnorms" field.
        // Adam runs also hold each layer's second moments.
        let adam = file.metadata["optimizer"] == OptimizerKind.adam.rawValue
        guard !adam || (0..<layers).allSatisfy({ file.tensor("second_moment.\($0)") != nil }) else {
            throw HiddenError("\(path) is an Adam run's checkpoint but does not hold a second_moment tensor for each of its layers")
        }
        guard let norms = Int(file.metadata["batchnorms"] ?? "0"), norms >= 0,
              (0..<norms).allSatisfy({ file.tensor("running.\($0)") != nil }),
              file.tensors.count == (adam ? 3 : 2) * layers + norms else {
            throw HiddenError("\(path) does not hold exactly a scores and a momentum tensor per layer\(adam ? " (and Adam's second moments)" : ""), and the running statistics of each batch norm")
        }
        return file
    }

    /// Checks the format name and version and recomputes both checksums.
    static func verify(_ file: SafeTensorsFile, path: String, format expected: String) throws {
        let meta = file.metadata
        guard meta["format"] == expected else {
            throw HiddenError("\(path) is not a hidden-mpi \(expected == format ? "checkpoint" : "subnetwork") (format \"\(meta["format"] ?? "none")\")",
                              hint: expected == format ? "pass a ckpt-*.safetensors written by `hidden-mpi train --checkpoint-dir`" : "pass a file written by `hidden-mpi export`")
        }
        let readable = expected == format ? [version, baselineVersion] : [version]
        guard let v = meta["format_version"], readable.contains(v) else {
            throw HiddenError("\(path) has format version \(meta["format_version"] ?? "none"); this hidden-mpi reads version \(readable.joined(separator: " and "))")
        }
        guard meta["data_crc32"] == SafeTensorsFile.dataChecksum(file.tensors) else {
            throw HiddenError("\(path) is corrupted: its data does not match its checksum", hint: "use an earlier checkpoint")
        }
        guard meta["header_crc32"] == headerChecksum(meta, file.tensors) else {
            throw HiddenError("\(path) is corrupted: its header does not match its checksum", hint: "use an earlier checkpoint")
        }
        if expected == format {
            let method = meta["method"] ?? TrainingMethod.edgePopup.rawValue
            guard v == version(for: TrainingMethod(rawValue: method) ?? .edgePopup) else {
                throw HiddenError("\(path) has format version \(v) but method \(method): version \(version) holds edge-popup runs, \(baselineVersion) the dense and supermask baselines")
            }
        }
    }

    /// Copies the checkpoint's scores into a model built from its configuration (export and eval
    /// need no trainer), after checking the weights rebuilt from the seed are the trained ones.
    public static func restoreScores(_ file: SafeTensorsFile, into model: Model, path: String) throws {
        let m = file.metadata
        guard m["weight_checksum"] == String(format: "%016llx", model.weightChecksum()) else {
            throw HiddenError("\(path): the weights rebuilt from seed \(m["seed"] ?? "?") differ from the ones this checkpoint was trained with (checksum \(m["weight_checksum"] ?? "?"))",
                              hint: "use the hidden-mpi version that wrote the checkpoint")
        }
        guard Int(m["layers"] ?? "") == model.masked.count else {
            throw HiddenError("\(path) has \(m["layers"] ?? "?") layers, the model has \(model.masked.count)")
        }
        for (l, layer) in model.masked.enumerated() {
            guard let s = file.tensor("scores.\(l)"), s.dtype == .f32, s.shape == layer.shape else {
                throw HiddenError("\(path): layer \(l) does not have the shape \(layer.shape) of the model's layer")
            }
            s.copyFloats(into: layer.scores, count: layer.count)
        }
        try restoreRunning(file, into: model, path: path)
    }

    /// Each batch norm's running statistics as a [2, C] tensor (mean, then unbiased variance).
    static func runningTensors(_ model: Model) -> [StoredTensor] {
        zip(model.batchNorms, model.runningOffsets).enumerated().map { b, pair in
            StoredTensor(name: "running.\(b)", floats: UnsafeBufferPointer(start: model.runningStats.pointer + pair.1,
                                                                           count: 2 * pair.0.channels),
                         shape: [2, pair.0.channels])
        }
    }

    /// Copies the stored running statistics into `model` (checkpoints and subnetworks alike).
    static func restoreRunning(_ file: SafeTensorsFile, into model: Model, path: String) throws {
        guard Int(file.metadata["batchnorms"] ?? "0") == model.batchNorms.count else {
            throw HiddenError("\(path) has the running statistics of \(file.metadata["batchnorms"] ?? "0") batch norms, the model has \(model.batchNorms.count)")
        }
        for (b, (bn, offset)) in zip(model.batchNorms, model.runningOffsets).enumerated() {
            guard let r = file.tensor("running.\(b)"), r.dtype == .f32, r.shape == [2, bn.channels] else {
                throw HiddenError("\(path): running statistics \(b) do not have the shape [2, \(bn.channels)] of the model's batch norm")
            }
            r.copyFloats(into: model.runningStats.pointer + offset, count: 2 * bn.channels)
        }
    }

    /// Copies scores, momentum and state into a trainer built from the checkpoint's configuration.
    public static func restore(_ file: SafeTensorsFile, into t: Trainer, path: String) throws {
        let m = file.metadata
        try restoreScores(file, into: t.model, path: path)
        for (name, state) in t.optimizer.namedStateBuffers {
            for (l, layer) in t.model.masked.enumerated() {
                guard let v = file.tensor("\(name).\(l)"), v.dtype == .f32, v.shape == layer.shape else {
                    throw HiddenError("\(path): \(name) \(l) does not have the shape \(layer.shape) of the model's layer")
                }
                v.copyFloats(into: state.pointer + t.model.offsets[l], count: layer.count)
            }
        }
        guard let epoch = m["epoch"].flatMap(Int.init), let step = m["step_in_epoch"].flatMap(Int.init),
              let global = m["global_step"].flatMap(Int.init), let seen = m["epoch_seen"].flatMap(Int.init),
              let loss = m["epoch_loss_sum"].flatMap(fromHexBits), let correct = m["epoch_correct"].flatMap(fromHexBits) else {
            throw HiddenError("\(path) lacks where the run stood (epoch, step, running sums)")
        }
        guard step <= t.stepsPerEpoch else {
            throw HiddenError("\(path) stopped at step \(step) of an epoch of \(t.stepsPerEpoch) steps: the data set or batch differs")
        }
        t.restore(TrainState(epoch: epoch, stepInEpoch: step, globalStep: global, lossSum: loss, correct: correct, seen: seen))
    }

    /// CRC-32 of the metadata (sorted, without itself) and each tensor's name, dtype, shape and
    /// data offsets. `tensors` are in file order (as written, and as SafeTensorsFile reads them),
    /// so the offsets follow from their sizes; two tensors whose offsets were swapped no longer match.
    static func headerChecksum(_ meta: [String: String], _ tensors: [StoredTensor]) -> String {
        var text = ""
        for key in meta.keys.sorted() where key != "header_crc32" { text += "\(key)=\(meta[key]!)\n" }
        var offset = 0
        var lines: [(String, String)] = []
        for t in tensors {
            lines.append((t.name, "\(t.name) \(t.dtype.rawValue) \(t.shape) [\(offset), \(offset + t.bytes.count)]\n"))
            offset += t.bytes.count
        }
        for (_, line) in lines.sorted(by: { $0.0 < $1.0 }) { text += line }
        let bytes = Array(text.utf8)
        let crc = bytes.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) }
        return String(format: "%08x", UInt32(crc))
    }

    static func hexBits(_ x: Double) -> String { String(format: "%016llx", x.bitPattern) }
    static func fromHexBits(_ s: String) -> Double? { UInt64(s, radix: 16).map(Double.init(bitPattern:)) }
}
