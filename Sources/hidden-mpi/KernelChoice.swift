// Which OpenBLAS kernel a run uses, chosen by measurement. OpenBLAS 0.3 picks one kernel family
// ("core type") per process when it is loaded, and its own pick is not always the fastest (on a
// Zen 5 the AVX-512 SkylakeX kernel is 1.8x its AVX2 pick; on a Zen 4 the opposite held) nor always
// safe (older builds crash or compute wrong results on some CPUs). So before MPI starts, unless
// OPENBLAS_CORETYPE is set, hidden-mpi runs each candidate kernel in a child process of its own
// (GEMMProbe: a check against a double-precision loop, then the GEMM shapes of our models), keeps
// the fastest correct one for the run's family of models, and re-executes itself with it. The
// results are cached per CPU and OpenBLAS build, under a lock, so the ranks of a node probe once
// and later runs start at once.

import Foundation
import HiddenNetworks

/// What the probe found out about one candidate kernel.
struct KernelCandidate: Codable {
    /// The OPENBLAS_CORETYPE asked for; "default" is OpenBLAS's own choice (the variable unset).
    var requested: String
    /// The kernel OpenBLAS actually ran (it ignores names it does not know or the CPU lacks).
    var core: String?
    /// ok, wrong (failed the check), crashed, timeout.
    var status: String
    var detail: String?
    var maxRelativeError: Double?
    var peakGFLOPs: Double?
    /// Per model family: seconds of one step's GEMMs (its shapes times their calls).
    var familySeconds: [String: Double]?
    /// Seconds of one call of each shape ("family/shape"), the best over the probe's rounds.
    var shapeSeconds: [String: Double]?
    /// familySeconds of each round apart, for the paired comparison of `winsEveryRound`.
    var roundFamilySeconds: [[String: Double]]?
    /// A digest of the check's output bits: equal digests, the same arithmetic (see GEMMProbe).
    var resultDigest: String?

    /// Folds in another round of the same candidate: the fastest time of each shape, and any failure.
    mutating func merge(_ other: KernelCandidate) {
        guard isUsable else { return }
        guard other.isUsable, let mine = shapeSeconds, let theirs = other.shapeSeconds else { self = other; return }
        shapeSeconds = mine.merging(theirs, uniquingKeysWith: min)
        peakGFLOPs = max(peakGFLOPs ?? 0, other.peakGFLOPs ?? 0)
        maxRelativeError = max(maxRelativeError ?? 0, other.maxRelativeError ?? 0)
        familySeconds = Self.familySeconds(shapeSeconds!)
        roundFamilySeconds = (roundFamilySeconds ?? []) + (other.roundFamilySeconds ?? [])
    }

    static func familySeconds(_ shapes: [String: Double]) -> [String: Double] {
        var out: [String: Double] = [:]
        for family in GEMMFamily.allCases {
            out[family.rawValue] = family.shapes.reduce(0) { $0 + Double($1.calls) * (shapes[family.rawValue + "/" + $1.name] ?? .nan) }
        }
        return out
    }

    var isUsable: Bool { status == "ok" }
}

struct KernelProbeResult: Codable {
    static let format = 2
    var format: Int
    var cpu: String
    var openblas: String
    var probedAt: String
    var probeSeconds: Double
    var candidates: [KernelCandidate]

    /// The correct candidates timed on a family's shapes, fastest first, with their seconds.
    func ranked(for family: GEMMFamily) -> [(candidate: KernelCandidate, seconds: Double)] {
        candidates.compactMap { c in c.isUsable ? c.familySeconds?[family.rawValue].map { (c, $0) } : nil }
            .sorted { $0.seconds < $1.seconds }
    }

    /// Whether `other` was faster than `own` on a family's shapes in every round of the probe.
    /// Each round runs every candidate back to back, so a slow spell of a shared machine slows
    /// both of a round's timings, not the comparison; a kernel that is really faster wins every
    /// round, while of two equally fast ones either wins a round by chance (both win all three
    /// one time in four). True without per-round times (a one-round probe).
    func winsEveryRound(_ other: KernelCandidate, over own: KernelCandidate, family: GEMMFamily) -> Bool {
        let mine = own.roundFamilySeconds ?? [], theirs = other.roundFamilySeconds ?? []
        guard mine.count == theirs.count, mine.count > 1 else { return true }
        return zip(theirs, mine).allSatisfy { ($0[family.rawValue] ?? .infinity) < ($1[family.rawValue] ?? .infinity) }
    }

    /// The fastest correct candidate for a family. OpenBLAS's own choice stays unless another is
    /// more than 1% faster on the best times of the shapes and faster in every round: a tie or a
    /// noisy win needs no re-execution.
    func best(for family: GEMMFamily) -> KernelCandidate? {
        let ranking = ranked(for: family)
        guard let fastest = ranking.first else { return nil }
        guard let own = ranking.first(where: { $0.candidate.requested == "default" }) else { return fastest.candidate }
        return ranking.first { $0.seconds * 1.01 < own.seconds && winsEveryRound($0.candidate, over: own.candidate, family: family) }?
            .candidate ?? own.candidate
    }

    /// Why `best(for:)` chose what it chose, in words for the run's header.
    func explanation(for family: GEMMFamily) -> String {
        let ranking = ranked(for: family)
        let times = ranking.map { String(format: "%@ %.2f ms", $0.candidate.label, 1e3 * $0.seconds) }.joined(separator: ", ")
        guard let chosen = best(for: family), let fastest = ranking.first?.candidate else { return times }
        if ranking.count == 1 { return "the only correct kernel of the probe (\(times))" }
        let ownEntry = ranking.first { $0.candidate.requested == "default" }, own = ownEntry?.candidate
        let rounds = own?.roundFamilySeconds?.count ?? 1
        let roundsText = rounds > 1 ? " and in each of the probe's \(rounds) rounds" : ""
        if chosen.requested == fastest.requested {
            return "fastest correct kernel on the \(family.rawValue) GEMM shapes (\(times))"
                + (own == nil || chosen.requested == "default" ? "" : "; faster than OpenBLAS's choice by more than 1%\(roundsText)")
        }
        let same = own?.resultDigest != nil && own?.resultDigest == fastest.resultDigest ? " (the two compute bit-identical results)" : ""
        let why = (ownEntry?.seconds ?? 0) <= 1.01 * ranking[0].seconds ? "by less than 1%" : "but not in every one of the probe's \(rounds) rounds, which a noisy machine explains"
        return "OpenBLAS's choice: \(fastest.label)\(same) was faster on the \(family.rawValue) GEMM shapes' best times (\(times)) \(why)"
    }

    /// The best sgemm peak among the correct kernels.
    var bestPeak: (core: String, gflops: Double)? {
        candidates.filter(\.isUsable).compactMap { c in c.peakGFLOPs.map { (c.core ?? c.requested, $0) } }.max { $0.1 < $1.1 }
    }
}

enum KernelChoice {
    /// Set (to the reason) in the re-executed process, and seen by its children under mpirun.
    static let chosenVariable = "HIDDEN_MPI_BLAS_CORE_CHOSEN"
    /// Why this process runs the kernel it runs, for the run's header and `bench`.
    nonisolated(unsafe) static var reason = "OpenBLAS's own choice"

    /// Before MPI starts: runs with the fastest correct kernel for `family`, re-executing this
    /// program if that takes another OPENBLAS_CORETYPE. Never fails: a probe that cannot run
    /// leaves OpenBLAS's own choice, and says so.
    static func apply(for family: GEMMFamily) {
        let env = ProcessInfo.processInfo.environment
        if let chosen = env[chosenVariable] { reason = chosen; return }
        if let set = env["OPENBLAS_CORETYPE"] {
            reason = "set in the environment (OPENBLAS_CORETYPE=\(set))"
            return
        }
        if env["HIDDEN_MPI_KEEP_BLAS_CORE"] != nil {
            reason = "OpenBLAS's own choice (HIDDEN_MPI_KEEP_BLAS_CORE is set)"
            return
        }
        let result: KernelProbeResult, how: String
        do {
            (result, how) = try KernelProbe.results(refresh: false)
        } catch {
            reason = "OpenBLAS's own choice (the kernel probe did not run: \(error))"
            return
        }
        guard let best = result.best(for: family) else {
            reason = "OpenBLAS's own choice (no candidate passed the probe's check; see `hidden-mpi kernels`)"
            return
        }
        let text = result.explanation(for: family) + ", " + how
        guard best.requested != "default" else { reason = text; return }
        setenv("OPENBLAS_CORETYPE", best.requested, 1)
        setenv(chosenVariable, text, 1)
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", argv)
        // execv returned: it failed; carry on with OpenBLAS's own choice.
        unsetenv("OPENBLAS_CORETYPE"); unsetenv(chosenVariable)
        reason = "OpenBLAS's own choice (could not re-execute with \(best.requested): errno \(errno))"
    }
}

extension KernelCandidate {
    /// "Zen (OpenBLAS's choice)", "Haswell", or "Cooperlake->Haswell" where OpenBLAS ran another.
    var label: String {
        guard let core else { return requested }
        if requested == "default" { return core + " (OpenBLAS's choice)" }
        return core == requested ? core : "\(requested)->\(core)"
    }
}

/// Runs the candidates, one child process each, and caches what they found.
enum KernelProbe {
    /// The folder of the cache: HIDDEN_MPI_CACHE_DIR, else $XDG_CACHE_HOME/hidden-mpi, else
    /// ~/.cache/hidden-mpi.
    static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["HIDDEN_MPI_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/hidden-mpi" }
        return (env["HOME"] ?? NSTemporaryDirectory()) + "/.cache/hidden-mpi"
    }

    /// This CPU and this OpenBLAS build: the cache key (read once per process).
    static let machine: (cpu: String, openblas: String, flags: Set<String>) = {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ name: String) -> String {
            info.split(separator: "\n").first { $0.hasPrefix(name) }.flatMap { $0.split(separator: ":", maxSplits: 1).last }
                .map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        let flags = Set(field("flags").split(separator: " ").map(String.init))
        let cpu = "\(field("vendor_id")) \(field("model name")) family \(field("cpu family")) model \(field("model")) stepping \(field("stepping"))"
        // The build string names the kernel in use; drop it so every kernel maps to one key.
        let core = BLASThreads.coreName
        let openblas = BLASThreads.config.split(separator: " ").filter { $0.lowercased() != core.lowercased() }.joined(separator: " ")
        return (cpu, openblas, flags)
    }()

    static var cachePath: String {
        let m = machine
        // A probe restricted by HIDDEN_MPI_PROBE_CORES is cached apart from the full one.
        let restricted = ProcessInfo.processInfo.environment["HIDDEN_MPI_PROBE_CORES"] ?? ""
        let key = "\(m.cpu)|\(m.flags.sorted().joined(separator: ","))|\(m.openblas)|\(KernelProbeResult.format)|\(restricted)"
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return cacheDirectory + "/blas-kernels-" + String(hash, radix: 16) + ".json"
    }

    /// The candidates worth running on this CPU; HIDDEN_MPI_PROBE_CORES (comma-separated, with
    /// "default" for OpenBLAS's own choice) replaces the list.
    static var candidates: [String] {
        if let list = ProcessInfo.processInfo.environment["HIDDEN_MPI_PROBE_CORES"], !list.isEmpty {
            return list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let m = machine
        var cores = ["Haswell"]
        if m.cpu.hasPrefix("AuthenticAMD") { cores.append("Zen") }
        if m.flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]) {
            cores.append("SkylakeX")
            if m.flags.contains("avx512_bf16") { cores.append("Cooperlake") }
        }
        if !m.flags.isSuperset(of: ["avx2", "fma"]) { cores.removeAll { $0 == "Haswell" || $0 == "Zen" } }
        // Forcing the kernel OpenBLAS picks by itself would time the same code twice.
        let own = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil ? BLASThreads.coreName.lowercased() : nil
        return ["default"] + cores.filter { $0.lowercased() != own }
    }

    /// The cached results, or a new probe when there are none (or `refresh`). Ranks that start
    /// together wait on one lock while the first of them probes. Returns how the results came.
    static func results(refresh: Bool) throws -> (KernelProbeResult, String) {
        let path = cachePath, dir = cacheDirectory
        if !refresh, let cached = read(path) { return (cached, "cached in \(path)") }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw HiddenError("cannot create the cache folder \(dir)", hint: "set HIDDEN_MPI_CACHE_DIR to a writable folder")
        }
        let lock = open(path + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw HiddenError("cannot open \(path).lock", hint: "set HIDDEN_MPI_CACHE_DIR to a writable folder") }
        defer { close(lock) }
        let deadline = monotonicSeconds() + 600
        var locked = true
        while flock(lock, LOCK_EX | LOCK_NB) != 0 {
            // A file system without locks (Lustre without -o flock, some NFS): probe unlocked;
            // the atomic rename still leaves one whole cache file.
            guard errno == EWOULDBLOCK || errno == EINTR else { locked = false; break }
            guard monotonicSeconds() < deadline else { throw HiddenError("waited 10 minutes for \(path).lock", hint: "another process holds it; delete the lock file if none runs") }
            usleep(50_000)
        }
        defer { if locked { flock(lock, LOCK_UN) } }
        // Another process may have probed while this one waited.
        if !refresh, let cached = read(path) { return (cached, "cached in \(path)") }
        let start = monotonicSeconds()
        // Rounds of every candidate in turn, each shape's best time kept: a noisy neighbour slows
        // one round of one kernel, not the comparison.
        let cores = candidates
        var found = cores.map(run)
        let rounds = Int(ProcessInfo.processInfo.environment["HIDDEN_MPI_PROBE_ROUNDS"] ?? "") ?? 3
        for _ in 1..<max(1, rounds) {
            for i in found.indices where found[i].isUsable { found[i].merge(run(cores[i])) }
        }
        let result = KernelProbeResult(format: KernelProbeResult.format, cpu: machine.cpu, openblas: machine.openblas,
                                       probedAt: ISO8601DateFormatter().string(from: Date()),
                                       probeSeconds: monotonicSeconds() - start, candidates: found)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try writeAtomically(Array(try encoder.encode(result)), to: path) } catch {
            return (result, String(format: "probed now in %.1f s (not cached: %@)", result.probeSeconds, "\(error)"))
        }
        return (result, String(format: "probed now in %.1f s (cached in %@)", result.probeSeconds, path))
    }

    static func read(_ path: String) -> KernelProbeResult? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let result = try? JSONDecoder().decode(KernelProbeResult.self, from: data),
              result.format == KernelProbeResult.format, result.cpu == machine.cpu, result.openblas == machine.openblas,
              !result.candidates.isEmpty else {
            Launch.writeError("note: ignoring the unreadable or foreign kernel cache \(path); probing again")
            return nil
        }
        return result
    }

    /// One candidate in a child process of its own: a kernel that crashes, hangs or computes
    /// wrong results takes only the child with it.
    static func run(_ core: String) -> KernelCandidate {
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = core == "default" ? nil : core
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["HIDDEN_MPI_PROBE_REQUESTED"] = core
        env = env.filter { !$0.key.hasPrefix("OMPI_") && !$0.key.hasPrefix("PMIX_") && !$0.key.hasPrefix("OPAL_") }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        child.arguments = ["kernels", "--probe-child"]
        child.environment = env
        let output = Pipe()
        child.standardOutput = output
        child.standardError = FileHandle.nullDevice
        var candidate = KernelCandidate(requested: core, status: "crashed")
        do { try child.run() } catch {
            candidate.detail = "could not start: \(error)"
            return candidate
        }
        let timeout = Double(ProcessInfo.processInfo.environment["HIDDEN_MPI_PROBE_TIMEOUT"] ?? "") ?? 120
        let deadline = monotonicSeconds() + timeout
        // The result is a few hundred bytes: the pipe holds it until the child has exited.
        while child.isRunning && monotonicSeconds() < deadline { usleep(5_000) }
        if child.isRunning {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            candidate.status = "timeout"
            candidate.detail = String(format: "no result within %.0f s", timeout)
            return candidate
        }
        child.waitUntilExit()
        if child.terminationReason == .uncaughtSignal {
            candidate.detail = "killed by signal \(child.terminationStatus)\(child.terminationStatus == SIGILL ? " (illegal instruction: the CPU lacks this kernel's instructions)" : "")"
            return candidate
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        guard child.terminationStatus == 0, let found = try? JSONDecoder().decode(KernelCandidate.self, from: data) else {
            candidate.detail = "exit status \(child.terminationStatus) without a result"
            return candidate
        }
        return found
    }

    /// The child's side: check, then time, the kernel this process loaded. Test hook:
    /// HIDDEN_MPI_PROBE_FAULT=CORE:wrong|crash|hang[,...] makes those candidates misbehave.
    static func measureThisProcess() -> KernelCandidate {
        let env = ProcessInfo.processInfo.environment
        let requested = env["HIDDEN_MPI_PROBE_REQUESTED"] ?? "default"
        let fault = (env["HIDDEN_MPI_PROBE_FAULT"] ?? "").split(separator: ",").compactMap { f -> String? in
            let parts = f.split(separator: ":").map(String.init)
            return parts.count == 2 && parts[0] == requested ? parts[1] : nil
        }.first
        if fault == "crash" { signal(SIGILL, SIG_DFL); raise(SIGILL) }
        if fault == "hang" { while true { sleep(1) } }
        BLASThreads.set(1)
        var c = KernelCandidate(requested: requested, core: BLASThreads.coreName, status: "ok")
        let (error, digest) = GEMMProbe.checkWithDigest(corrupt: fault == "wrong")
        c.maxRelativeError = error
        c.resultDigest = digest
        guard error <= 1e-5 else {
            c.status = "wrong"
            c.detail = String(format: "sgemm differs from a double-precision loop by %.1e (relative to sum |a||b|)", error)
            return c
        }
        c.peakGFLOPs = GEMMProbe.peakGFLOPs()
        var seconds: [String: Double] = [:]
        for family in GEMMFamily.allCases {
            for shape in family.shapes { seconds[family.rawValue + "/" + shape.name] = GEMMProbe.seconds(shape, repeats: 2) }
        }
        c.shapeSeconds = seconds
        c.familySeconds = KernelCandidate.familySeconds(seconds)
        c.roundFamilySeconds = [c.familySeconds!]
        return c
    }
}
