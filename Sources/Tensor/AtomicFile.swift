import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct AtomicFileError: LocalizedError, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var errorDescription: String? { message }
    public var description: String { message }
}

/// Crash-safe file replacement: the content goes to `<name>.tmp-<pid>` in the same directory (same file system,
/// so rename is atomic), is fsync'ed, then renamed over the target. A reader sees either the old file or the
/// complete new one; on any error the temp file is removed and the old file is untouched.
public enum AtomicFile {
    /// Incremental writer handed to `write(to:_:)`, for files too large to assemble in memory first.
    public final class Writer {
        fileprivate let fd: Int32
        fileprivate let path: String
        public private(set) var bytesWritten = 0

        fileprivate init(fd: Int32, path: String) { self.fd = fd; self.path = path }

        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard var p = bytes.baseAddress else { return }
            var left = bytes.count
            while left > 0 {
                let n = Glibc.write(fd, p, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AtomicFileError("writing \(path): \(String(cString: strerror(errno)))")
                }
                p += n
                left -= n
                bytesWritten += n
            }
        }

        public func write(_ data: Data) throws {
            try data.withUnsafeBytes { try write($0) }
        }

        public func write(_ floats: [Float]) throws {
            try floats.withUnsafeBytes { try write($0) }
        }
    }

    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { try $0.write(data) }
    }

    /// Streams the new content through `body`; the target is replaced only if `body` returns normally.
    public static func write(to url: URL, _ body: (Writer) throws -> Void) throws {
        let target = url.path
        let dir = url.deletingLastPathComponent().path
        let tmp = target + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw AtomicFileError("cannot create \(tmp) (for \(target)): \(String(cString: strerror(errno)))")
        }
        var closed = false
        do {
            try body(Writer(fd: fd, path: tmp))
            guard fsync(fd) == 0 else { throw AtomicFileError("fsync \(tmp): \(String(cString: strerror(errno)))") }
            closed = true
            guard close(fd) == 0 else { throw AtomicFileError("close \(tmp): \(String(cString: strerror(errno)))") }
            guard rename(tmp, target) == 0 else {
                throw AtomicFileError("rename \(tmp) -> \(target): \(String(cString: strerror(errno)))")
            }
        } catch {
            if !closed { close(fd) }
            unlink(tmp)
            throw error
        }
        // Make the rename itself durable; failure here does not undo a completed replacement.
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}
