import Foundation
import XCTest

/// What a finished child process left behind.
struct ProcessResult {
    let stdout: String
    let stderr: String
    let exitCode: Int32
    /// True when the process was killed because it exceeded its timeout.
    let timedOut: Bool
    let seconds: Double

    var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    /// The JSON objects among stdout's lines (e.g. `comm-check`'s one line per check).
    var jsonLines: [[String: Any]] {
        stdoutLines.compactMap { line in
            guard line.hasPrefix("{"), let d = line.data(using: .utf8) else { return nil }
            return (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
        }
    }

    /// For assertion messages.
    var summary: String { "exit \(exitCode)\(timedOut ? " (timed out)" : "") after \(String(format: "%.1f", seconds)) s\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

/// A child process with stdout/stderr captured. Start it, optionally act on it (its pid, output so far, kill -9 one of
/// its ranks), then `wait(timeout:)`.
final class SpawnedProcess {
    let process = Process()
    private let outPipe = Pipe(), errPipe = Pipe()
    private let lock = NSLock()
    private var out = Data(), err = Data()
    private let readersDone = DispatchGroup()
    private let exited = DispatchSemaphore(value: 0)
    private let started = DispatchTime.now()

    /// `environment` is added to (and overrides) this process's environment; `removing` drops variables first.
    init(_ executable: URL, _ arguments: [String], environment: [String: String] = [:], removing: Set<String> = [],
         currentDirectory: URL? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !removing.contains($0.key) }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        for (pipe, isOut) in [(outPipe, true), (errPipe, false)] {
            readersDone.enter()
            pipe.fileHandleForReading.readabilityHandler = { [weak self] h in
                let chunk = h.availableData
                guard let self else { return }
                if chunk.isEmpty {
                    h.readabilityHandler = nil
                    self.readersDone.leave()
                    return
                }
                self.lock.lock()
                if isOut { self.out.append(chunk) } else { self.err.append(chunk) }
                self.lock.unlock()
            }
        }
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Output captured so far.
    var stdoutSoFar: String { lock.lock(); defer { lock.unlock() }; return String(decoding: out, as: UTF8.self) }
    var stderrSoFar: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }

    /// Polls until `predicate(stdout so far)` holds or `timeout` passes; returns whether it held.
    func waitForOutput(timeout: Double, _ predicate: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if predicate(stdoutSoFar) { return true }
            if !process.isRunning { return predicate(stdoutSoFar) }
            usleep(20_000)
        }
        return predicate(stdoutSoFar)
    }

    /// Waits for exit; past `timeout` seconds sends SIGTERM (mpirun then ends its ranks), then SIGKILL.
    func wait(timeout: Double) -> ProcessResult {
        var timedOut = false
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            process.terminate()
            if exited.wait(timeout: .now() + 3) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                _ = exited.wait(timeout: .now() + 3)
            }
        }
        // The pipes reach EOF once every writer (the child and anything it spawned) is gone.
        _ = readersDone.wait(timeout: .now() + 5)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) * 1e-9
        lock.lock(); defer { lock.unlock() }
        return ProcessResult(stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self),
                             exitCode: process.isRunning ? -1 : process.terminationStatus, timedOut: timedOut, seconds: seconds)
    }
}

enum MPITestSupport {
    /// Environment every mpirun in the tests gets: root is allowed (CI runs as root), one BLAS thread per rank.
    static let mpiEnvironment: [String: String] = [
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    ]

    /// Variables that make a process think it was started by an MPI launcher (removed for single-process runs).
    static let launcherVariables: Set<String> = ["OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"]

    /// `name` on PATH (plus the usual system directories), if it exists.
    static func findOnPath(_ name: String) -> URL? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/bin:/usr/local/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let u = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }

    /// mpirun, or an XCTSkip when Open MPI is not installed.
    static func mpirun() throws -> URL {
        guard let u = findOnPath("mpirun") else { throw XCTSkip("mpirun is not installed") }
        return u
    }

    /// The `episodic` executable SwiftPM built next to the test bundle.
    static func episodic(for testClass: AnyClass) throws -> URL {
        let bundle = Bundle(for: testClass).bundleURL
        // On Linux the bundle URL is the directory holding the .xctest; elsewhere it is the .xctest itself.
        let candidates = [bundle.deletingLastPathComponent().appendingPathComponent("episodic"),
                          bundle.appendingPathComponent("episodic"),
                          URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("episodic")]
        guard let u = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw NSError(domain: "MPITestSupport", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "episodic executable not found next to the test bundle (looked at \(candidates.map(\.path))); build it with swift build --build-tests"])
        }
        return u
    }

    /// Runs a command to completion (or kills it at `timeout` seconds).
    static func run(_ executable: URL, _ arguments: [String], environment: [String: String] = [:], removing: Set<String> = [],
                    timeout: Double = 20) throws -> ProcessResult {
        try SpawnedProcess(executable, arguments, environment: environment, removing: removing).wait(timeout: timeout)
    }

    /// The mpirun arguments the tests use on this host: `-np N --oversubscribe --bind-to none` plus `extra`.
    static func mpirunArguments(np: Int, extra: [String] = []) -> [String] {
        ["-np", String(np), "--oversubscribe", "--bind-to", "none"] + extra
    }

    /// Every descendant of `pid` (children, grandchildren, ...) from /proc, optionally only those whose command name
    /// (/proc/PID/comm) is `named`. For kill -9 tests: the ranks of `mpirun` are its descendants named "episodic".
    static func descendants(of pid: Int32, named: String? = nil) -> [Int32] {
        var parent: [Int32: Int32] = [:]
        var comm: [Int32: String] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for e in entries {
            guard let p = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8) else { continue }
            // stat: "pid (comm) state ppid ..."; comm may contain spaces, so split after the last ')'.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let pp = Int32(fields[1]) else { continue }
            parent[p] = pp
            comm[p] = (try? String(contentsOfFile: "/proc/\(e)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func isDescendant(_ p: Int32) -> Bool {
            var q = parent[p]
            var hops = 0
            while let x = q, hops < 64 { if x == pid { return true }; q = parent[x]; hops += 1 }
            return false
        }
        return parent.keys.filter { isDescendant($0) && (named == nil || comm[$0] == named) }.sorted()
    }

    /// Starts `mpirun -np N ... episodic <args>` without waiting (for kill -9 tests).
    static func startEpisodic(np: Int, mpiArguments: [String] = [], _ args: [String], for testClass: AnyClass,
                              environment: [String: String] = [:]) throws -> SpawnedProcess {
        let exe = try episodic(for: testClass)
        let env = mpiEnvironment.merging(environment) { _, new in new }
        return try SpawnedProcess(try mpirun(), mpirunArguments(np: np, extra: mpiArguments) + [exe.path] + args, environment: env)
    }

    /// Runs `mpirun -np N ... episodic <args>` to completion.
    static func runEpisodic(np: Int, mpiArguments: [String] = [], _ args: [String], for testClass: AnyClass,
                            environment: [String: String] = [:], timeout: Double = 20) throws -> ProcessResult {
        try startEpisodic(np: np, mpiArguments: mpiArguments, args, for: testClass, environment: environment).wait(timeout: timeout)
    }
}
