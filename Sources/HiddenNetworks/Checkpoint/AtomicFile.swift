// Writing so that nothing is ever visible half-written: a temporary file in the same folder,
// written, flushed and fsynced, renamed into place, then the folder fsynced (DESIGN.md, 2.4).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

public func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
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
        close(fd); unlink(tmp)
        throw HiddenError("cannot write \(tmp): \(String(cString: strerror(ok ? errno : err)))", hint: "is the disk full?")
    }
    close(fd)
    guard rename(tmp, path) == 0 else {
        let e = errno; unlink(tmp)
        throw HiddenError("cannot rename \(tmp) to \(path): \(String(cString: strerror(e)))")
    }
    let dfd = open(dir, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}
