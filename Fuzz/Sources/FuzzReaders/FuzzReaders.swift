// One libFuzzer entry point for every reader of outside bytes; HIDDEN_MPI_FUZZ_TARGET picks one:
//   idx         IDXFile on the bytes, and readMaybeGzipped + IDXFile on them as a file (plain or gzip)
//   cifar       loadCIFARFiles on them as a CIFAR-10 and as a CIFAR-100 batch file, as they are and
//               cut to whole records (3073 / 3074 bytes), so that mutations reach the labels
//   checkpoint  ScoreCheckpoint.load (safetensors, checksums) and RunFields.parse of its header;
//               past the checksums too: the parsed file's fields, and its scores restored into the
//               model of the seed file (fc on tiny inputs) when its metadata still names it
//   subnetwork  Subnetwork.load and RunFields.parse; past the checksums, Subnetwork.apply of the
//               parsed file to the seed's model (mask bits, kept counts)
//   index       ImageFolderIndex(serialized:), the list rank 0 sends to the others
//   jpeg        sniffImageFormat, JPEGDecoder.header and decode (libjpeg-turbo through our checks)
// A reader may refuse any input with an error; it must never crash, hang or run out of memory.

import Foundation
import HiddenNetworks

enum Fuzz {
    static let target = ProcessInfo.processInfo.environment["HIDDEN_MPI_FUZZ_TARGET"] ?? "idx"
    static let file = NSTemporaryDirectory() + "/hidden-mpi-fuzz-\(getpid())-\(target)"
    nonisolated(unsafe) static let decoder = try? JPEGDecoder()  // libFuzzer calls in one thread

    /// The model the seed file of this target was written for (HIDDEN_MPI_FUZZ_SEEDS, default
    /// Tests/FuzzCorpus from the repository root, where scripts/fuzz.sh runs).
    nonisolated(unsafe) static let seedModel: Model? = {
        let dir = ProcessInfo.processInfo.environment["HIDDEN_MPI_FUZZ_SEEDS"] ?? "Tests/FuzzCorpus"
        let seed = target == "subnetwork" ? "\(dir)/subnetwork/fc-tiny.hmsub" : "\(dir)/checkpoint/fc-tiny.safetensors"
        guard let data = FileManager.default.contents(atPath: seed),
              let file = try? SafeTensorsFile(bytes: [UInt8](data), name: seed),
              let parsed = try? RunFields.parseModel(file.metadata, source: seed) else { return nil }
        return try? Model(parsed.0, maxBatch: 1)
    }()

    /// The bytes as a file, for the readers that take paths.
    static func asFile(_ bytes: [UInt8]) -> String {
        FileManager.default.createFile(atPath: file, contents: Data(bytes))
        return file
    }

    static func run(_ bytes: [UInt8]) {
        switch target {
        case "idx":
            _ = try? IDXFile(bytes: bytes, name: "fuzz")
            if let inflated = try? readMaybeGzipped(asFile(bytes)) { _ = try? IDXFile(bytes: inflated, name: "fuzz") }
        case "cifar":
            let path = asFile(bytes)
            _ = try? loadCIFARFiles([path], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], format: .cifar10)
            _ = try? loadCIFARFiles([path], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], format: .cifar100)
            for (record, format) in [(3073, CIFARRecordFormat.cifar10), (3074, .cifar100)] where bytes.count >= record {
                let whole = asFile(Array(bytes.prefix(bytes.count / record * record)))
                _ = try? loadCIFARFiles([whole], mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], format: format)
            }
        case "checkpoint":
            if let file = try? ScoreCheckpoint.load(asFile(bytes)) { _ = try? RunFields.parse(file.metadata, source: "fuzz") }
            if let file = try? SafeTensorsFile(bytes: bytes, name: "fuzz") {
                _ = try? RunFields.parse(file.metadata, source: "fuzz")
                if let model = seedModel { _ = try? ScoreCheckpoint.restoreScores(file, into: model, path: "fuzz") }
            }
        case "subnetwork":
            if let file = try? Subnetwork.load(asFile(bytes)) { _ = try? RunFields.parse(file.metadata, source: "fuzz") }
            if let file = try? SafeTensorsFile(bytes: bytes, name: "fuzz") {
                _ = try? RunFields.parseModel(file.metadata, source: "fuzz")
                if let model = seedModel { _ = try? Subnetwork.apply(file, to: model, path: "fuzz") }
            }
        case "index":
            _ = try? ImageFolderIndex(serialized: bytes)
        case "jpeg":
            bytes.withUnsafeBytes { raw in
                _ = sniffImageFormat(raw)
                if let decoder, (try? decoder.header(raw)) != nil { _ = try? decoder.decode(raw) }
            }
        default:
            fatalError("HIDDEN_MPI_FUZZ_TARGET=\(target): not one of idx, cifar, checkpoint, subnetwork, index, jpeg")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Fuzz.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
