// An exported subnetwork: the model description and seed (the weights follow from them) plus
// each layer's mask packed one bit per weight, most significant bit first (numpy.unpackbits'
// default order), in safetensors; a layer trained densely (--first-layer-dense, --last-layer-dense)
// travels as its float weights, `weights.<l>`. About 1/32 of the float weights' size. A model with batch norm
// also needs its running statistics to be evaluated: they travel as `running.<b>`, [2, C] floats.

import Foundation

public enum Subnetwork {
    public static let format = "hidden-mpi-subnetwork"

    /// The masks `model` selects from its current scores, with what rebuilds its weights.
    public static func capture(_ model: Model, dataset: String, source: [String: String] = [:]) -> SafeTensorsFile {
        model.updateMasks()
        var meta: [String: String] = ["format": format, "format_version": ScoreCheckpoint.version]
        for (k, v) in RunFields.modelFields(model.config, dataset: dataset) { meta[k] = v }
        for (k, v) in source { meta[k] = v }
        meta["layers"] = "\(model.masked.count)"
        meta["weight_checksum"] = String(format: "%016llx", model.weightChecksum())
        var tensors: [StoredTensor] = []
        for (l, m) in model.masked.enumerated() {
            meta["shape.\(l)"] = m.shape.map(String.init).joined(separator: "x")
            meta["kept.\(l)"] = "\(m.kept)"
            if m.method == .dense {
                // --first-layer-dense / --last-layer-dense: trained weights, not rebuilt from the seed.
                tensors.append(StoredTensor(name: "weights.\(l)", floats: UnsafeBufferPointer(start: m.scores, count: m.count),
                                            shape: m.shape))
            } else {
                tensors.append(StoredTensor(name: "mask.\(l)", dtype: .u8, shape: [(m.count + 7) / 8],
                                            bytes: pack(m.mask.pointer, count: m.count)))
            }
        }
        meta["batchnorms"] = "\(model.batchNorms.count)"
        tensors += ScoreCheckpoint.runningTensors(model)
        meta["data_crc32"] = SafeTensorsFile.dataChecksum(tensors)
        meta["header_crc32"] = ScoreCheckpoint.headerChecksum(meta, tensors)
        return SafeTensorsFile(metadata: meta, tensors: tensors)
    }

    public static func load(_ path: String) throws -> SafeTensorsFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw HiddenError("cannot read subnetwork \(path)") }
        let file = try SafeTensorsFile(bytes: [UInt8](data), name: path)
        try ScoreCheckpoint.verify(file, path: path, format: format)
        return file
    }

    /// Sets `model`'s scores so that its top-k selection gives exactly the stored masks (1 on kept
    /// weights, 0 elsewhere): evaluation then runs the ordinary masked forward pass.
    public static func apply(_ file: SafeTensorsFile, to model: Model, path: String) throws {
        guard file.metadata["weight_checksum"] == String(format: "%016llx", model.weightChecksum()) else {
            throw HiddenError("\(path): the weights rebuilt from its seed differ from the ones it was found in",
                              hint: "use the hidden-mpi version that exported it")
        }
        let norms = Int(file.metadata["batchnorms"] ?? "0") ?? -1
        guard Int(file.metadata["layers"] ?? "") == model.masked.count, file.tensors.count == model.masked.count + norms else {
            throw HiddenError("\(path) holds \(file.tensors.count - max(norms, 0)) masks, the model has \(model.masked.count) layers")
        }
        for (l, m) in model.masked.enumerated() {
            if m.method == .dense {
                guard let w = file.tensor("weights.\(l)"), w.dtype == .f32, w.shape == m.shape else {
                    throw HiddenError("\(path): the trained weights of layer \(l) do not have the shape \(m.shape) of the model's layer")
                }
                w.copyFloats(into: m.scores, count: m.count)
                continue
            }
            guard let t = file.tensor("mask.\(l)"), t.dtype == .u8, t.shape == [(m.count + 7) / 8] else {
                throw HiddenError("\(path): mask \(l) does not fit the model's layer of \(m.count) weights")
            }
            var ones = 0
            for i in 0..<m.count {
                let bit = (t.bytes[i >> 3] >> (7 - UInt8(i & 7))) & 1
                m.scores[i] = Float(bit)
                ones += Int(bit)
            }
            guard ones == m.kept else {
                throw HiddenError("\(path): mask \(l) keeps \(ones) weights, the model keeps \(m.kept) at k = \(model.config.k)")
            }
        }
        try ScoreCheckpoint.restoreRunning(file, into: model, path: path)
        model.updateMasks()
    }

    static func pack(_ mask: UnsafePointer<Float>, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (count + 7) / 8)
        for i in 0..<count where mask[i] != 0 { out[i >> 3] |= 0x80 >> UInt8(i & 7) }
        return out
    }
}
