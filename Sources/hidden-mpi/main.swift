// hidden-mpi: finds subnetworks hidden in randomly weighted networks (edge-popup,
// Ramanujan et al., CVPR 2020), data-parallel over MPI.

import ArgumentParser
import Foundation
import HiddenNetworks

struct HiddenMPICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hidden-mpi",
        abstract: "Find subnetworks hidden in randomly weighted neural networks (edge-popup), over MPI.",
        discussion: """
        Weights stay at their random init, rebuilt from the seed on every rank; only the scores that \
        choose each layer's top-k weights are trained. Launch with mpirun for several ranks:

          mpirun -np 2 hidden-mpi train --model fc --epochs 10
          hidden-mpi info --model conv4 --dataset cifar10
        """,
        subcommands: [Train.self, Info.self, Export.self, Eval.self, Bench.self, Kernels.self, CheckData.self, Collectives.self])

    /// Argument errors come from rank 0 only; the other ranks exit with the same code quietly.
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        // ArgumentParser writes errors a byte at a time: line-buffer so mpirun never tears a message.
        setvbuf(stderr, nil, _IOLBF, 0)
        do {
            var command = try parseAsRoot()
            // Before MPI starts: the commands that compute run with the fastest correct kernel.
            if let family = gemmFamily(of: command) { KernelChoice.apply(for: family) }
            try command.run()
            // Commands that return (rather than end through Launch.finish): was everything printed?
            let status = Launch.checkStandardOutput(0)
            if status != 0 { Foundation.exit(status) }
        } catch {
            if Launch.isRankZero { exit(withError: error) }
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}

/// The model family a command computes with; nil for commands that do not train or evaluate.
func gemmFamily(of command: ParsableCommand) -> GEMMFamily? {
    switch command {
    case let train as Train: return GEMMFamily(train.modelOptions.model)
    case let bench as Bench: return GEMMFamily(bench.modelOptions.model)
    case let eval as Eval:  // the kernel training ran: the model named in the file's header
        let model = SafeTensorsFile.metadata(atPath: eval.checkpoint ?? eval.subnetwork ?? "")?["model"]
        return GEMMFamily(model.flatMap(Architecture.init(rawValue:)) ?? .conv2)
    default: return nil
    }
}

HiddenMPICommand.main()
