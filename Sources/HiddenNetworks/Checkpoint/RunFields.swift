// A run's configuration as the string fields a checkpoint's metadata holds, and back. One table
// serves writing, reading and the resume check, so the three cannot drift apart.

import Foundation

/// What identifies the data a run trains on.
public struct DataIdentity: Equatable, Sendable {
    public var dataset: String
    public var input: Shape
    public var classes: Int
    public var trainSize: Int
    public var testSize: Int

    public init(dataset: String, input: Shape, classes: Int, trainSize: Int, testSize: Int) {
        self.dataset = dataset; self.input = input; self.classes = classes
        self.trainSize = trainSize; self.testSize = testSize
    }

    public init(_ data: Dataset) {
        self.init(dataset: data.name, input: data.shape, classes: data.classes,
                  trainSize: data.train.count, testSize: data.test.count)
    }
}

public enum RunFields {
    /// Every configuration field, in a stable order, as metadata strings.
    public static func fields(_ c: TrainConfig, _ d: DataIdentity) -> [(key: String, value: String)] {
        modelFields(c.model, dataset: d.dataset) + [
         ("train_size", "\(d.trainSize)"), ("test_size", "\(d.testSize)"),
         ("global_batch", "\(c.globalBatch)"), ("lr", "\(c.optimizer.lr)"), ("momentum", "\(c.optimizer.momentum)"),
         ("weight_decay", "\(c.optimizer.weightDecay)"), ("nesterov", "\(c.optimizer.nesterov)"),
         ("optimizer", c.optimizer.kind.rawValue)]
        + (c.optimizer.kind == .adam ? [("beta1", "\(c.optimizer.beta1)"), ("beta2", "\(c.optimizer.beta2)"), ("adam_eps", "\(c.optimizer.eps)")] : [])
        + [("schedule", c.schedule.rawValue)]
        + (c.schedule == .multistep ? [("lr_milestones", c.milestones.map(String.init).joined(separator: ",")), ("lr_gamma", "\(c.lrGamma)")] : [])
        + [("warmup", "\(c.warmup)"), ("epochs", "\(c.epochs)"),
         ("label_smoothing", "\(c.labelSmoothing)"), ("bn_sync", c.bnSync.rawValue),
         ("reduction", c.reduction.rawValue), ("chunk", "\(c.chunkSize)"), ("augment", c.augment ? "reference" : "none")]
    }

    /// Fields that may change when a run is resumed: the others must match the checkpoint.
    public static let changeableOnResume: Set<String> = ["epochs"]

    /// The model fields alone (what a subnetwork file needs to rebuild its weights).
    public static func modelFields(_ m: ModelConfig, dataset: String) -> [(key: String, value: String)] {
        [("model", m.architecture.rawValue), ("width", "\(m.width)"), ("k", "\(m.k)"),
         ("init", m.weightInit.rawValue), ("scale_fan", "\(m.scaleFan)"), ("seed", "\(m.seed)"),
         ("dataset", dataset), ("input", m.inputShape.description), ("classes", "\(m.classes)"),
         ("method", m.method.rawValue), ("first_layer_dense", "\(m.firstLayerDense)"),
         ("last_layer_dense", "\(m.lastLayerDense)")]
    }

    /// The configuration and data identity stored in `meta`; throws naming the first bad field.
    public static func parse(_ meta: [String: String], source: String) throws -> (TrainConfig, DataIdentity) {
        let (model, _) = try parseModel(meta, source: source)
        return try parse(meta, model: model, source: source)
    }

    /// The model configuration and data set name stored in `meta`.
    public static func parseModel(_ meta: [String: String], source: String) throws -> (ModelConfig, dataset: String) {
        let p = Parser(meta: meta, source: source)
        guard let input = Shape(parsing: try p.field("input")) else { throw HiddenError("\(source): bad input shape \(try p.field("input"))") }
        let model = ModelConfig(architecture: try p.choice("model", Architecture.self), width: try p.number("width", Double.self),
                                k: try p.number("k", Double.self), weightInit: try p.choice("init", WeightInit.self),
                                scaleFan: try p.flag("scale_fan"), seed: try p.number("seed", UInt64.self),
                                inputShape: input, classes: try p.number("classes", Int.self),
                                // Files written before the baselines existed are edge-popup runs.
                                method: meta["method"] == nil ? .edgePopup : try p.choice("method", TrainingMethod.self),
                                // Files written before these flags existed have neither.
                                firstLayerDense: meta["first_layer_dense"] == nil ? false : try p.flag("first_layer_dense"),
                                lastLayerDense: meta["last_layer_dense"] == nil ? false : try p.flag("last_layer_dense"))
        guard model.k > 0, model.k <= 1, model.width > 0, model.classes >= 2 else {
            throw HiddenError("\(source): metadata holds an impossible model (k \(model.k), width \(model.width), classes \(model.classes))")
        }
        return (model, try p.field("dataset"))
    }

    private static func parse(_ meta: [String: String], model: ModelConfig, source: String) throws -> (TrainConfig, DataIdentity) {
        let p = Parser(meta: meta, source: source)
        let identity = DataIdentity(dataset: try p.field("dataset"), input: model.inputShape, classes: model.classes,
                                    trainSize: try p.number("train_size", Int.self), testSize: try p.number("test_size", Int.self))
        var c = TrainConfig(model: model)
        c.globalBatch = try p.number("global_batch", Int.self)
        c.optimizer = OptimizerConfig(lr: try p.number("lr", Double.self), momentum: try p.number("momentum", Double.self),
                          weightDecay: try p.number("weight_decay", Double.self), nesterov: try p.flag("nesterov"))
        // Files written before Adam existed trained with SGD.
        c.optimizer.kind = meta["optimizer"] == nil ? .sgd : try p.choice("optimizer", OptimizerKind.self)
        if c.optimizer.kind == .adam {
            c.optimizer.beta1 = try p.number("beta1", Double.self)
            c.optimizer.beta2 = try p.number("beta2", Double.self)
            c.optimizer.eps = try p.number("adam_eps", Double.self)
        }
        c.schedule = try p.choice("schedule", ScheduleKind.self)
        if c.schedule == .multistep {
            let text = try p.field("lr_milestones")
            let list = text.isEmpty ? [] : text.split(separator: ",").map { Int($0) }
            guard list.allSatisfy({ $0 != nil && $0! >= 0 }) else {
                throw HiddenError("\(source): metadata field lr_milestones = \"\(text)\" is not a list of epochs")
            }
            c.milestones = list.map { $0! }
            c.lrGamma = try p.number("lr_gamma", Double.self)
        }
        c.warmup = try p.number("warmup", Int.self)
        c.epochs = try p.number("epochs", Int.self)
        c.labelSmoothing = try p.number("label_smoothing", Double.self)
        // Files written before the ResNets have no batch norm and no "bn_sync".
        c.bnSync = meta["bn_sync"] == nil ? .global : try p.choice("bn_sync", BatchNormSync.self)
        // Files written before --augment augmented as the reference does.
        switch meta["augment"] ?? "reference" {
        case "reference": c.augment = true
        case "none": c.augment = false
        case let v: throw HiddenError("\(source): metadata field augment = \"\(v)\" is not known to this version")
        }
        // Files written before the exact reduction were float runs.
        c.reduction = meta["reduction"] == nil ? .float : try p.choice("reduction", GradientReduction.self)
        if c.reduction == .exact {
            let chunk = try p.number("chunk", Int.self)
            guard chunk >= 1 else { throw HiddenError("\(source): metadata field chunk = \(chunk) must be at least 1") }
            c.chunk = chunk
        }
        return (c, identity)
    }
}

/// Typed reads of metadata strings, each failure naming the field.
struct Parser {
    let meta: [String: String]
    let source: String
    func field(_ key: String) throws -> String {
        guard let v = meta[key] else { throw HiddenError("\(source) lacks the metadata field \(key)") }
        return v
    }
    func number<T: LosslessStringConvertible>(_ key: String, _ type: T.Type) throws -> T {
        let v = try field(key)
        guard let x = T(v) else { throw HiddenError("\(source): metadata field \(key) = \"\(v)\" is not a number") }
        return x
    }
    func choice<T: RawRepresentable>(_ key: String, _ type: T.Type) throws -> T where T.RawValue == String {
        let v = try field(key)
        guard let x = T(rawValue: v) else { throw HiddenError("\(source): metadata field \(key) = \"\(v)\" is not known to this version") }
        return x
    }
    func flag(_ key: String) throws -> Bool {
        switch try field(key) {
        case "true": return true
        case "false": return false
        case let v: throw HiddenError("\(source): metadata field \(key) = \"\(v)\" is not true/false")
        }
    }
}
