// Helpers of the checkpoint tests: an independent safetensors reader (it does not use the
// library's, so a bug there cannot hide itself), the checkpoint folder as the tests see it, a
// child process that runs in the background (to signal one of its ranks), and comparisons of
// two runs' tensors and metrics.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A safetensors file parsed by the tests themselves: 8-byte little-endian header length, JSON
/// header, data section.
struct SafeTensorsBlob {
    struct Entry { let dtype: String; let shape: [Int]; let begin: Int; let end: Int }

    let path: String
    let bytes: [UInt8]
    let headerLength: Int
    let metadata: [String: String]
    let entries: [String: Entry]

    var dataStart: Int { 8 + headerLength }
    /// Tensor names in file order (by data offset).
    var namesInFileOrder: [String] { entries.sorted { $0.value.begin < $1.value.begin }.map(\.key) }

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("cannot read \(path)") }
        try self.init(bytes: [UInt8](data), path: path)
    }

    init(bytes: [UInt8], path: String) throws {
        self.path = path
        self.bytes = bytes
        guard bytes.count >= 8 else { throw HarnessError("\(path): \(bytes.count) bytes") }
        var n = 0
        for i in 0..<8 { n |= Int(bytes[i]) << (8 * i) }
        guard n > 0, 8 + n <= bytes.count else { throw HarnessError("\(path): header length \(n) of \(bytes.count) bytes") }
        headerLength = n
        guard let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as? [String: Any] else {
            throw HarnessError("\(path): header is not a JSON object")
        }
        metadata = header["__metadata__"] as? [String: String] ?? [:]
        var entries: [String: Entry] = [:]
        for (key, value) in header where key != "__metadata__" {
            guard let d = value as? [String: Any], let dtype = d["dtype"] as? String, let shape = d["shape"] as? [Int],
                  let offs = d["data_offsets"] as? [Int], offs.count == 2 else { throw HarnessError("\(path): bad entry \(key)") }
            entries[key] = Entry(dtype: dtype, shape: shape, begin: offs[0], end: offs[1])
        }
        self.entries = entries
    }

    func tensorBytes(_ name: String) -> ArraySlice<UInt8>? {
        entries[name].map { bytes[(dataStart + $0.begin)..<(dataStart + $0.end)] }
    }

    func floats(_ name: String) -> [Float]? {
        tensorBytes(name).map { slice in
            Array(slice).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
    }

    var layers: Int { Int(metadata["layers"] ?? "") ?? 0 }
}

enum CheckpointFolder {
    /// ckpt-*.safetensors in `dir`, sorted by name (oldest first: the names sort in the order written).
    static func names(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("ckpt-s") && $0.hasSuffix(".safetensors") }.sorted()
    }

    static func paths(_ dir: String) -> [String] { names(dir).map { (dir as NSString).appendingPathComponent($0) } }

    static func newest(_ dir: String) -> String? { paths(dir).last }

    /// The global step in a checkpoint's file name.
    static func step(_ path: String) -> Int? {
        let name = (path as NSString).lastPathComponent
        guard name.hasPrefix("ckpt-s"), name.count >= 15 else { return nil }
        return Int(name.dropFirst(6).prefix(9))
    }

    static func name(step: Int, epoch: Int) -> String { String(format: "ckpt-s%09d-e%04d.safetensors", step, epoch) }

    /// Every file in `dir` (hidden ones too) with its bytes: to show that nothing was touched.
    static func snapshot(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            out[name] = FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent(name))
        }
        return out
    }

    static func copy(_ from: String, to: String) throws {
        try? FileManager.default.removeItem(atPath: to)
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }
}

/// Fails unless the two checkpoints' scores and momentum tensors are byte for byte the same.
func assertSameTensors(_ a: String, _ b: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    do {
        let x = try SafeTensorsBlob(path: a), y = try SafeTensorsBlob(path: b)
        XCTAssertEqual(Set(x.entries.keys), Set(y.entries.keys), "\(what): tensor names differ", file: file, line: line)
        XCTAssertGreaterThan(x.layers, 0, "\(what): no layers in \(a)", file: file, line: line)
        var differing: [String] = []
        for name in x.entries.keys.sorted() {
            guard let p = x.tensorBytes(name), let q = y.tensorBytes(name), p != q else { continue }
            let fx = x.floats(name) ?? [], fy = y.floats(name) ?? []
            let first = zip(fx, fy).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
            differing.append(name + (first.map { " (element \($0.offset): \($0.element.0) vs \($0.element.1))" } ?? " (sizes \(p.count) vs \(q.count))"))
        }
        if !differing.isEmpty {
            XCTFail("\(what): \(differing.count) of \(x.entries.count) tensors differ: \(differing.joined(separator: ", "))\n  \(a)\n  \(b)",
                    file: file, line: line)
        }
    } catch {
        XCTFail("\(what): \(error)", file: file, line: line)
    }
}

/// The keys of an "epoch" object that a resumed run must reproduce exactly (time-dependent ones excluded).
let deterministicEpochKeys = ["epoch", "steps", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]

/// Epoch objects of a metrics file by epoch number (the last one written wins: a run killed after
/// logging an epoch but before its checkpoint logs it again when resumed).
func epochsByNumber(_ path: String) throws -> [Int: [String: Any]] {
    var out: [Int: [String: Any]] = [:]
    for object in try Harness.readJSONLines(path) where object["kind"] as? String == "epoch" {
        if let e = (object["epoch"] as? NSNumber)?.intValue { out[e] = object }
    }
    return out
}

/// Fails unless both metrics files report the same epochs with exactly the same deterministic values.
func assertSameEpochMetrics(_ reference: String, _ resumed: String, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
    do {
        let a = try epochsByNumber(reference), b = try epochsByNumber(resumed)
        XCTAssertFalse(a.isEmpty, "\(what): no epochs in \(reference)", file: file, line: line)
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted(), "\(what): epochs reported", file: file, line: line)
        for e in a.keys.sorted() {
            guard let x = a[e], let y = b[e] else { continue }
            for key in deterministicEpochKeys {
                let u = (x[key] as? NSNumber)?.doubleValue, v = (y[key] as? NSNumber)?.doubleValue
                XCTAssertNotNil(u, "\(what): epoch \(e) lacks \(key)", file: file, line: line)
                XCTAssertEqual(u?.bitPattern, v?.bitPattern,
                               "\(what): epoch \(e) \(key) \(v.map { "\($0)" } ?? "nil") after resume vs \(u.map { "\($0)" } ?? "nil") uninterrupted",
                               file: file, line: line)
            }
        }
    } catch {
        XCTFail("\(what): \(error)", file: file, line: line)
    }
}

/// A child started in its own process group, stdout and stderr into files, not waited for yet:
/// the test can find its ranks, signal one, and then wait (with a hard timeout) for the rest.
final class BackgroundRun {
    let command: [String]
    let pid: pid_t
    let started = Date()
    private let dir: URL
    private var status: Int32?

    init(_ command: [String], environment: [String: String]) throws {
        self.command = command
        dir = try Harness.makeTempDir(prefix: "hidden-mpi-bg")
        pid = try Harness.spawn(command, environment: environment, stdout: dir.appendingPathComponent("stdout").path,
                                stderr: dir.appendingPathComponent("stderr").path)
    }

    /// `hidden-mpi args` under `mpirun -np np` (directly when np is nil), in the background.
    static func hiddenMPI(_ args: [String], np: Int?) throws -> BackgroundRun {
        let bin = try Harness.binary()
        let command = try np.map { [try Harness.mpirun(), "-np", String($0), bin] + args } ?? [bin] + args
        return try BackgroundRun(command, environment: Harness.childEnvironment())
    }

    deinit {
        if status == nil { Harness.killTree(pid); var s: Int32 = 0; waitpid(pid, &s, 0) }
        try? FileManager.default.removeItem(at: dir)
    }

    /// Whether the child has exited (reaps it once).
    var hasExited: Bool {
        if status != nil { return true }
        var s: Int32 = 0
        if waitpid(pid, &s, WNOHANG) == pid { status = s; return true }
        return false
    }

    /// Polls `condition` every 20 ms until it holds (true) or the child exits or `timeout` passes (false).
    func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            if hasExited { return condition() }
            usleep(20_000)
        }
        return false
    }

    /// The hidden-mpi processes mpirun started, by rank (OMPI_COMM_WORLD_RANK in their environment).
    func ranks() -> [Int: pid_t] {
        let binary = (try? Harness.binary()).map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
        var out: [Int: pid_t] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let p = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.range(of: ")", options: .backwards) else { continue }
            let fields = stat[close.upperBound...].split(separator: " ")
            guard fields.count > 1, pid_t(fields[1]) == pid else { continue }
            if let binary, let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(name)/exe"),
               !exe.hasPrefix(binary) { continue }  // "<path> (deleted)" if the binary was rebuilt meanwhile
            guard let environ = FileManager.default.contents(atPath: "/proc/\(name)/environ") else { continue }
            for entry in environ.split(separator: 0) {
                let text = String(decoding: entry, as: UTF8.self)
                if text.hasPrefix("OMPI_COMM_WORLD_RANK="), let r = Int(text.dropFirst("OMPI_COMM_WORLD_RANK=".count)) {
                    out[r] = p
                }
            }
        }
        return out
    }

    /// Waits for the exit (killing the tree after `timeout` seconds) and returns what it left.
    func wait(timeout: Double) -> RunResult {
        var timedOut = false
        while !hasExited {
            if Date().timeIntervalSince(started) > timeout {
                timedOut = true
                Harness.killTree(pid)
                var s: Int32 = 0
                while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
                status = s
                break
            }
            usleep(10_000)
        }
        let s = status ?? 0
        let signal = s & 0x7f
        let code: Int32 = signal == 0 ? (s >> 8) & 0xff : 128 + signal
        let out = (try? String(contentsOfFile: dir.appendingPathComponent("stdout").path, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: dir.appendingPathComponent("stderr").path, encoding: .utf8)) ?? ""
        return RunResult(command: command, status: code, stdout: out, stderr: err,
                         seconds: Date().timeIntervalSince(started), timedOut: timedOut)
    }
}
