// `hidden-mpi train --help` explains every flag; `hidden-mpi info --json` counts what the paper's
// table counts (Ramanujan et al. 2020, Table: Conv2 4.3M, Conv4 2.4M weights; FC 300-100-10 on
// 28x28 inputs 266,200) and keeps keptCount(n, k) of each layer.

import Foundation
import HiddenNetworks
import XCTest

final class HelpAndInfoTests: XCTestCase {
    static let requiredFlags = ["--model", "--dataset", "--data-dir", "--k", "--init", "--scale-fan", "--width",
                                "--epochs", "--batch-size", "--lr", "--momentum", "--weight-decay", "--nesterov",
                                "--schedule", "--lr-milestones", "--lr-gamma", "--optimizer", "--beta1", "--beta2", "--adam-eps", "--warmup", "--label-smoothing", "--seed", "--metrics", "--method"]

    /// Help text of each option in ArgumentParser's layout: "  --flag <value>   text" with the text
    /// on the same line or, for long names, on the next (more indented) lines.
    static func optionHelp(_ help: String) -> [String: String] {
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let option = try! NSRegularExpression(pattern: #"^  (?:-\w, )?(--[a-z0-9-]+)(?: <[^>]+>)?(.*)$"#)
        var result: [String: String] = [:]
        var i = 0
        while i < lines.count {
            let line = lines[i]
            guard let m = option.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)),
                  let nameRange = Range(m.range(at: 1), in: line), let restRange = Range(m.range(at: 2), in: line) else {
                i += 1; continue
            }
            var text = line[restRange].trimmingCharacters(in: .whitespaces)
            i += 1
            // Continuation lines: deeper indentation than the option's two spaces.
            while i < lines.count, lines[i].hasPrefix("    "), !lines[i].trimmingCharacters(in: .whitespaces).hasPrefix("-") {
                text += " " + lines[i].trimmingCharacters(in: .whitespaces)
                i += 1
            }
            result[String(line[nameRange])] = text
        }
        return result
    }

    func testTrainHelpExplainsEveryFlag() throws {
        let r = try Harness.hiddenMPI(["train", "--help"])
        XCTAssertEqual(r.status, 0, r.transcript)
        let help = Self.optionHelp(r.stdout)
        for flag in Self.requiredFlags {
            guard let text = help[flag] else {
                XCTFail("train --help does not list \(flag)\n\(r.stdout)"); continue
            }
            // Words, not just a "(default: ...)" tail.
            let words = text.replacingOccurrences(of: #"\((default|values):[^)]*\)"#, with: "", options: .regularExpression)
                .split(whereSeparator: { !$0.isLetter }).filter { $0.count >= 2 }
            XCTAssertGreaterThanOrEqual(words.count, 3, "train --help: \(flag) has no explanation: '\(text)'")
        }
        // And every option it lists has some text.
        for (flag, text) in help where flag != "--help" {
            XCTAssertFalse(text.isEmpty, "train --help: \(flag) is listed without help text")
        }
        XCTAssertTrue(r.stdout.contains("mpirun -np"), "the help shows how to launch under mpirun")
    }

    func testTopLevelHelpListsSubcommands() throws {
        let r = try Harness.hiddenMPI(["--help"])
        XCTAssertEqual(r.status, 0, r.transcript)
        for sub in ["train", "info"] {
            XCTAssertNotNil(r.stdout.range(of: #"(?m)^\s+\#(sub)\s+\S"#, options: .regularExpression), "\(sub) listed\n\(r.stdout)")
        }
    }

    /// Layers and totals of `info --json` for a model; checks kept counts against keptCount.
    func info(_ args: [String], k: Double, file: StaticString = #filePath, line: UInt = #line) throws -> (weights: Int, kept: Int, layers: Int) {
        let r = try Harness.hiddenMPI(["info", "--json", "--k", String(k)] + args, file: file, line: line)
        XCTAssertEqual(r.status, 0, r.transcript, file: file, line: line)
        let rows = try r.stdout.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
        guard let total = rows.last, total["layer"] as? String == "total" else {
            throw HarnessError("info --json \(args): no total row last\n\(r.stdout)")
        }
        let layers = rows.dropLast().filter { $0["weights"] != nil }
        var sumWeights = 0, sumKept = 0
        for row in layers {
            let n = (row["weights"] as? NSNumber)?.intValue ?? -1, kept = (row["kept"] as? NSNumber)?.intValue ?? -1
            XCTAssertEqual(kept, keptCount(n: n, k: k), "info \(args) k \(k): layer \(row)", file: file, line: line)
            sumWeights += n; sumKept += kept
        }
        let weights = (total["weights"] as? NSNumber)?.intValue ?? -1, kept = (total["kept"] as? NSNumber)?.intValue ?? -1
        XCTAssertEqual(weights, sumWeights, "info \(args): total weights is the sum of the layers", file: file, line: line)
        XCTAssertEqual(kept, sumKept, "info \(args): total kept is the sum of the layers", file: file, line: line)
        XCTAssertGreaterThan((total["flops"] as? NSNumber)?.intValue ?? 0, 0, file: file, line: line)
        return (weights, kept, layers.count)
    }

    func testInfoCountsMatchThePaper() throws {
        for k in [0.5, 0.3] {
            let conv4 = try info(["--model", "conv4", "--dataset", "cifar10"], k: k)
            XCTAssertEqual(conv4.weights, 2_425_024)
            XCTAssertEqual(conv4.layers, 7, "conv4: 4 convolutions and 3 linear layers")
            let conv2 = try info(["--model", "conv2", "--dataset", "cifar10"], k: k)
            XCTAssertEqual(conv2.weights, 4_300_992)
            XCTAssertEqual(conv2.layers, 5)
            let fc = try info(["--model", "fc", "--dataset", "fashion-mnist"], k: k)
            XCTAssertEqual(fc.weights, 266_200)
            XCTAssertEqual(fc.layers, 3)
        }
        // The rounding of the reference (TopK.swift): k 0.3 of conv4's first layer (1728) keeps 519.
        XCTAssertEqual(keptCount(n: 1728, k: 0.3), 519)
    }

    /// The paper's ImageNet ResNet-50 at k 0.3: torchvision's 25,557,032 parameters less 53,120 of
    /// batch norm and the classifier's 1,000 biases; 53 convolutions (16 bottlenecks of 3, the
    /// stem, 4 projections) and the classifier; about 7.65M weights kept.
    func testInfoCountsTheResNet50OfThePaper() throws {
        let r50 = try info(["--model", "resnet50", "--dataset", "synthetic", "--input", "3x224x224", "--classes", "1000"], k: 0.3)
        XCTAssertEqual(r50.weights, 25_502_912)
        XCTAssertEqual(r50.layers, 54)
        XCTAssertEqual(Double(r50.kept) / 1e6, 7.65, accuracy: 0.01)
    }

    func testInfoTableNeedsNoData() throws {
        // cifar10 without --data-dir is fine for info: it reads no files.
        let r = try Harness.hiddenMPI(["info", "--model", "conv4", "--dataset", "cifar10"])
        XCTAssertEqual(r.status, 0, r.transcript)
        XCTAssertTrue(r.stdout.contains("2425024"), r.transcript)
    }
}
