// What the ranks of a job must agree on, checked rather than assumed: that the launcher started
// the ranks the allocation asked for, which checkpoint they resume (rank 0 chooses, every rank
// loads that file and proves it restored the same state), and that their scores and optimiser
// state have not drifted apart. A disagreement stops the job with the ranks and hosts involved.

import Foundation
import HiddenNetworks

enum RankAgreement {
    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        return gethostname(&buffer, buffer.count) == 0 ? String(cString: buffer) : "?"
    }()

    /// Every rank's `text` (its first 255 UTF-8 bytes), in rank order, on every rank. Collective.
    static func gather(_ text: String, _ comm: Communicator) -> [String] {
        let width = 256
        var slots = [Double](repeating: 0, count: width * comm.size)
        for (i, byte) in text.utf8.prefix(width - 1).enumerated() { slots[comm.rank * width + i] = Double(byte) }
        comm.allreduce(&slots, op: .sum)
        return (0..<comm.size).map { r in
            String(decoding: slots[(r * width)..<((r + 1) * width)].prefix { $0 != 0 }.map { UInt8($0) }, as: UTF8.self)
        }
    }

    /// Rank 0's `text` (up to 4095 UTF-8 bytes) on every rank. Collective.
    static func broadcast(_ text: String, _ comm: Communicator) -> String {
        var slots = [Double](repeating: 0, count: 4096)
        if comm.rank == 0 { for (i, byte) in text.utf8.prefix(4095).enumerated() { slots[i] = Double(byte) } }
        comm.allreduce(&slots, op: .sum)
        return String(decoding: slots.prefix { $0 != 0 }.map { UInt8($0) }, as: UTF8.self)
    }

    /// Stops every rank (exit 1) when the ranks' `value`s differ; rank 0 names the ranks that
    /// differ from it and their hosts. Collective.
    static func requireSame(_ value: UInt64, _ what: String, hint: String, _ comm: Communicator) {
        guard comm.size > 1 else { return }
        let all = gatherChecksums(value, comm)
        guard Set(all).count > 1 else { return }
        let hosts = gather(hostName, comm)
        if comm.rank == 0 {
            let differing = all.indices.filter { all[$0] != all[0] }
            let listed = differing.prefix(8).map { "rank \($0) on \(hosts[$0]) (\(hex(all[$0])))" }.joined(separator: ", ")
            Launch.writeError("error: \(what): rank 0 on \(hosts[0]) has \(hex(all[0])), but \(listed)"
                              + (differing.count > 8 ? " and \(differing.count - 8) more" : "") + "\nhint: \(hint)")
        }
        Launch.finish(comm, code: 1)
    }

    /// The number of tasks the batch system started this job step with, where it says so.
    static var launcherTasks: (count: Int, variable: String)? {
        let env = ProcessInfo.processInfo.environment
        for key in ["SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "PBS_NP"] {
            if let v = env[key], let n = Int(v), n > 0 { return (n, key) }
        }
        return nil
    }

    /// A job whose allocation asks for N tasks but whose MPI world holds fewer ranks was most
    /// likely started as N independent one-rank jobs (srun without PMI, or a plain loop), which
    /// would overwrite each other's checkpoints. HIDDEN_MPI_ALLOW_FEWER_RANKS=1 allows it.
    static func launcherProblem(worldSize: Int) -> String? {
        // Torque's PBS_NP counts cores: ranks with several BLAS threads each fill them too.
        guard let (tasks, variable) = launcherTasks, worldSize * (variable == "PBS_NP" ? BLASThreads.current : 1) < tasks,
              ProcessInfo.processInfo.environment["HIDDEN_MPI_ALLOW_FEWER_RANKS"] == nil else { return nil }
        return "\(variable)=\(tasks) but MPI started this process in a world of \(worldSize) rank(s): the job's tasks are not one MPI job (each would train alone and overwrite the others' checkpoints)\n"
            + "hint: launch with `mpirun -np \(tasks) hidden-mpi train ...`, or `srun --mpi=pmix hidden-mpi train ...` where Slurm's PMIx plugin is installed (`srun --mpi=list`); set HIDDEN_MPI_ALLOW_FEWER_RANKS=1 if fewer ranks than tasks is what you want"
    }
}
