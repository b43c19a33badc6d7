// `hidden-mpi check-data`: every file of an image folder decoded and transformed as training
// would, split over the ranks of an mpirun, before a night of cluster time is spent on it.

import ArgumentParser
import Foundation
import HiddenNetworks

struct CheckData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-data",
        abstract: "Decode every image of an image folder and list the files training could not use.",
        discussion: """
        Rank 0 lists --data-dir (train/<class>/ and val/<class>/) as `train` does; the ranks split \
        the files, read and decode each (training files with the random resized crop of epoch 0, \
        validation files with the centre crop, at --image-size), and rank 0 prints one line per \
        file that is not a JPEG or cannot be decoded (training would use the mean image for it), \
        then a summary with the images per second per rank. Exit status 1 when any file is bad, \
        so a job script can stop early.

        Examples:
          hidden-mpi check-data --data-dir /datasets/imagenet
          mpirun -np 16 hidden-mpi check-data --data-dir /datasets/imagenet --json
        """)

    @Option(help: "Image folder: train/<class>/* and val/<class>/*.")
    var dataDir: String

    @Option(help: "The side of the square images, as train's --image-size.")
    var imageSize: Int = 224

    @Flag(help: "Print one JSON object (bad files, counts, rates) instead of the text.")
    var json = false

    func validate() throws {
        guard imageSize >= 8 else { throw ValidationError("--image-size must be at least 8, got \(imageSize)") }
    }

    func run() throws {
        setBLASThreads(nil)
        let comm = try Launch.communicator()
        var index: ImageFolderIndex?
        var failure: Error?
        do { index = try Train.shareImageFolder(dataDir, comm) } catch { failure = error }
        Launch.agree(comm, failure)
        guard let index else { Launch.finish(comm, code: 1) }

        // One list of every file: training files first, then validation files.
        let train = ImageFiles(root: dataDir, paths: index.trainFiles, size: imageSize, training: true)
        let val = ImageFiles(root: dataDir, paths: index.valFiles, size: imageSize, training: false)
        let total = index.trainFiles.count + index.valFiles.count
        let mine = shard(count: total, rank: comm.rank, size: comm.size)
        let decoder = try? JPEGDecoder()
        let buffer = FloatBuffer(count: 3 * imageSize * imageSize)
        var bad: [String] = []
        let start = Date()
        for k in mine {
            let (files, i) = k < index.trainFiles.count ? (train, k) : (val, k - index.trainFiles.count)
            do { try files.decodeOrThrow(i, seed: 0, epoch: 0, decoder: decoder, into: buffer.pointer) } catch {
                bad.append("\(files.paths[i])\t\(error)")
            }
        }
        let seconds = Date().timeIntervalSince(start)
        // Every rank's list to rank 0, one rank after another.
        var all: [String] = []
        for r in 0..<comm.size {
            var bytes = comm.rank == r ? Array(bad.joined(separator: "\n").utf8) : []
            comm.broadcast(&bytes, root: r)
            if comm.rank == 0, !bytes.isEmpty { all += String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init) }
        }
        var rates = [Double(mine.count) / max(seconds, 1e-9), seconds]
        comm.allreduce(&rates, op: .min)
        var slowest = [seconds]
        comm.allreduce(&slowest, op: .max)
        if comm.rank == 0 {
            all.sort()
            if json {
                let object: [String: Any] = [
                    "files": total, "train": index.trainFiles.count, "val": index.valFiles.count, "classes": index.classes.count,
                    "skipped_non_images": index.skipped, "bad": all.map { line -> [String: String] in
                        let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
                        return ["path": parts[0], "reason": parts.count > 1 ? parts[1] : ""]
                    },
                    "world_size": comm.size, "image_size": imageSize, "seconds": slowest[0],
                    "images_per_s_per_rank_min": rates[0]]
                print(String(data: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), encoding: .utf8)!)
            } else {
                for line in all {
                    let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
                    print("bad: \((dataDir as NSString).appendingPathComponent(parts[0])): \(parts.count > 1 ? parts[1] : "")")
                }
                print(String(format: "checked %d files (%d train, %d val, %d classes; %d non-image files skipped) on %d rank(s) in %.1f s, %.0f images/s on the slowest rank: %@",
                             total, index.trainFiles.count, index.valFiles.count, index.classes.count, index.skipped, comm.size,
                             slowest[0], rates[0], all.isEmpty ? "all good" : "\(all.count) bad (training would use the mean image for each)"))
            }
        }
        var anyBad = [all.isEmpty ? 0.0 : 1.0]
        comm.allreduce(&anyBad, op: .max)
        Launch.finish(comm, code: anyBad[0] > 0 ? 1 : 0)
    }
}
