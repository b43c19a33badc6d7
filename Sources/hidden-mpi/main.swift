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
        subcommands: [Train.self, Info.self, Export.self, Eval.self, Bench.self])

    /// Argument errors come from rank 0 only; the other ranks exit with the same code quietly.
    static func main() {
        BLASCoreChoice.reexecIfGeneric()
        setvbuf(stdout, nil, _IOLBF, 0)
        // ArgumentParser writes errors a byte at a time: line-buffer so mpirun never tears a message.
        setvbuf(stderr, nil, _IOLBF, 0)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if Launch.isRankZero { exit(withError: error) }
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}

HiddenMPICommand.main()
