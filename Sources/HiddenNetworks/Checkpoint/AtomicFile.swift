// Writing so that nothing is ever visible half-written: a temporary file in the same folder,
// written, flushed and fsynced, renamed into place, then the folder fsynced (DESIGN.md, 2.4).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

public func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    // A device or pipe (/dev/null, /dev/full, a FIFO) is written in place: renaming a temporary
    // file over it would replace the device node.
    var info = stat()
    if stat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG, (info.st_mode & S_IFMT) != S_IFDIR {
        try writeInPlace(bytes, to: path)
        return
    }
    removeStaleTemporaries(in: dir)
    let tmp = (dir as NSString).appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else {
        throw HiddenError("cannot create \(tmp): \(String(cString: strerror(errno)))", hint: "check that \(dir) exists and is writable")
    }
    var ok = true
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n <= 0 { if errno == EINTR { continue }; ok = false; break }
            done += n
        }
    }
    let err = errno
    if !ok || fsync(fd) != 0 {
        let e = ok ? errno : err
        close(fd); unlink(tmp)
        throw HiddenError("cannot write \(path): \(String(cString: strerror(e))) (the previous file, if any, is unchanged)",
                          hint: "free space on \(dir) (or raise its quota) and run again")
    }
    guard close(fd) == 0 else {  // NFS and quotas may report a failed write only here
        let e = errno; unlink(tmp)
        throw HiddenError("cannot write \(path): \(String(cString: strerror(e))) (the previous file, if any, is unchanged)",
                          hint: "free space on \(dir) (or raise its quota) and run again")
    }
    guard rename(tmp, path) == 0 else {
        let e = errno; unlink(tmp)
        throw HiddenError("cannot rename \(tmp) to \(path): \(String(cString: strerror(e)))")
    }
    let dfd = open(dir, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}

/// Writes `bytes` to an existing device or pipe, all of them or an error.
private func writeInPlace(_ bytes: [UInt8], to path: String) throws {
    let fd = open(path, O_WRONLY | O_TRUNC)
    guard fd >= 0 else { throw HiddenError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    try bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw HiddenError("cannot write \(path): \(String(cString: strerror(n < 0 ? errno : ENOSPC)))") }
            done += n
        }
    }
}

/// Removes temporary files of `writeAtomically` (`.NAME.tmp-PID`) in `dir` whose writer is no
/// longer running on this machine (a killed run's leftovers); another live writer's are kept.
public func removeStaleTemporaries(in dir: String) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
    for name in names where name.hasPrefix(".") {
        guard let r = name.range(of: ".tmp-", options: .backwards), let pid = pid_t(name[r.upperBound...]) else { continue }
        if pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
            unlink((dir as NSString).appendingPathComponent(name))
        }
    }
}
