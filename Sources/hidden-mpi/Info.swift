// `hidden-mpi info`: the model's layers, what each keeps, and what each costs.

import ArgumentParser
import Foundation
import HiddenNetworks

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's layers: shape, weights, kept weights at k, forward FLOPs per sample.",
        discussion: "Reads no data: the input shape comes from --dataset (or --input for synthetic).")

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Data") var dataOptions: DataOptions

    @Flag(help: "One JSON object per layer, then a total, instead of the table.")
    var json = false

    func run() throws {
        guard Launch.isRankZero else { return }  // under mpirun, one table
        let (shape, classes) = dataOptions.shapeAndClasses
        let model: Model
        do { model = try Model(modelOptions.config(input: shape, classes: classes), maxBatch: 1) } catch {
            Launch.writeError("error: \(error)"); throw ExitCode(1)
        }
        var rows: [[String: Any]] = []
        var masked = 0
        // Blocks first as a line of their own, then their layers indented (with "depth" in JSON).
        var walk: [(Layer, Int)] = []
        func visit(_ layer: Layer, _ depth: Int) { walk.append((layer, depth)); for c in layer.children { visit(c, depth + 1) } }
        for layer in model.layers { visit(layer, 0) }
        for (i, (layer, depth)) in walk.enumerated() {
            var row: [String: Any] = ["index": i, "layer": layer.kind,
                                      "depth": depth, "input": layer.inputShape.description,
                                      "output": layer.outputShape.description, "flops": layer.forwardFLOPsPerSample]
            if let m = layer.masked {
                row["masked_index"] = masked; masked += 1
                row["weights"] = m.count
                if modelOptions.method != .supermask { row["kept"] = m.kept }  // supermask: a new sample each pass
            }
            rows.append(row)
        }
        let totalWeights = model.masked.reduce(0) { $0 + $1.count }
        let sampled = modelOptions.method == .supermask
        let totalKept = model.masked.reduce(0) { $0 + $1.kept }
        if json {
            for row in rows { printJSON(row) }
            var total: [String: Any] = ["layer": "total", "weights": totalWeights, "flops": model.forwardFLOPsPerSample,
                                        "method": modelOptions.method.rawValue]
            if !sampled { total["kept"] = totalKept }
            printJSON(total)
            return
        }
        print("\(modelOptions.model.rawValue) x\(modelOptions.width), input \(shape), \(classes) classes, \(modelOptions.method == .edgePopup ? "k = \(modelOptions.k)" : modelOptions.method.rawValue)")
        let widths = [3, -18, -12, -12, 10, 10, 14]  // "  batchnorm-relu" inside a block: 16
        func line(_ cells: [String]) {
            print(zip(cells, widths).map { cell, w in
                let pad = String(repeating: " ", count: max(0, abs(w) - cell.count))
                return w < 0 ? cell + pad : pad + cell
            }.joined(separator: "  "))
        }
        line(["#", "layer", "input", "output", "weights", "kept", "fwd FLOPs"])
        for row in rows {
            line([String(row["index"] as! Int), String(repeating: "  ", count: row["depth"] as! Int) + (row["layer"] as! String), row["input"] as! String, row["output"] as! String,
                  (row["weights"] as? Int).map(String.init) ?? "-",
                  (row["kept"] as? Int).map(String.init) ?? (sampled && row["weights"] != nil ? "sampled" : "-"),
                  String(row["flops"] as! Int)])
        }
        line(["", "total", "", "", String(totalWeights), sampled ? "sampled" : String(totalKept), String(model.forwardFLOPsPerSample)])
        print("a training step costs about 3x the forward FLOPs per sample: \(String(format: "%.1f", 3 * Double(model.forwardFLOPsPerSample) / 1e6)) MFLOP")
    }

    func printJSON(_ object: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(data: data, encoding: .utf8)!)
    }
}
