import Foundation

// DataParallel: the communication layer. It knows flat Float/Double/Int/byte buffers only, never tensors.
// Rules every caller follows:
// - Collectives (everything but send/receive/probe) are called by all ranks of a communicator in the same order.
//   Never put one on the right of `&&`/`||` or behind a rank-dependent `guard`: ranks that skip it hang the others.
// - Refusals that every rank can compute alike (validateGroups, validateBatch) are thrown on every rank and printed
//   once with `printOnRoot`.
// - The process calls `MPIRuntime.finalize()` on a clean exit only; an error on one rank ends the job via a
//   non-zero exit without finalising (or `abort`), which mpirun turns into the end of every rank.

/// Errors of the communication layer. Every message names the operation and what went wrong.
public enum DataParallelError: Error, LocalizedError, CustomStringConvertible, Equatable {
    /// An MPI call returned an error code; `message` is MPI_Error_string's text.
    case mpi(operation: String, code: Int32, message: String)
    /// A configuration that cannot run (groups, batch sizes); refused before any work.
    case invalidConfiguration(String)
    /// Ranks disagree or a peer broke the protocol (wrong length, root had nothing to send, ...).
    case protocolViolation(operation: String, message: String)
    /// Arguments that make no sense (negative root, overlapping gradient ranges, ...).
    case invalidArgument(operation: String, message: String)

    public var description: String {
        switch self {
        case let .mpi(op, code, message): return "MPI error in \(op) (code \(code)): \(message)"
        case let .invalidConfiguration(m): return m
        case let .protocolViolation(op, m): return "\(op): \(m)"
        case let .invalidArgument(op, m): return "\(op): \(m)"
        }
    }
    public var errorDescription: String? { description }
}

/// Reduction operators the communicators support.
public enum ReduceOp: Sendable {
    case sum, max, min
}

/// An in-flight non-blocking operation. The buffer handed to the operation must stay valid and untouched until
/// `wait()` returns.
public protocol CommRequest: AnyObject {
    /// Blocks until the operation is complete (idempotent).
    func wait() throws
    /// Drives progress and reports whether the operation has completed (never blocks).
    func test() throws -> Bool
}

/// A group of processes that can talk to each other. Implementations: `MPICommunicator` (Open MPI) and
/// `SingleProcessCommunicator` (size 1; everything is identity/no-op). Collective calls must be made by every
/// rank of the communicator in the same order.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }

    func barrier() throws

    /// Broadcasts `buffer.count` bytes from `root` in place. Every rank must pass the same count.
    func broadcastRaw(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws

    /// In-place reductions (every rank ends with the reduced values).
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp) throws
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Int>, op: ReduceOp) throws

    /// Starts an in-place sum all-reduce (MPI_Iallreduce). The buffer must stay valid until the request completes.
    func iallReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CommRequest

    /// The same, reusing `spare` — a completed request this communicator returned before, that the caller no longer
    /// needs — instead of allocating a new request object (the gradient buckets' steady state allocates nothing).
    /// A `spare` that is not reusable is ignored.
    func iallReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>, reusing spare: CommRequest?) throws -> CommRequest

    /// Gathers each rank's bytes to `root`: the root gets them in rank order, the others get nil.
    func gather(_ data: Data, root: Int) throws -> [Data]?

    /// Splits into sub-communicators: ranks with the same `color` (≥ 0) end up together, ordered by `key`
    /// (ties by the old rank).
    func split(color: Int, key: Int) throws -> Communicator

    /// Point-to-point (for the work queue). `tag` ≥ 0. Messages between a pair of ranks on one communicator arrive
    /// in the order they were sent.
    func send(_ data: Data, to destination: Int, tag: Int) throws
    /// Blocks until a message from `source` (nil: any) with `tag` (nil: any) arrives.
    func receive(from source: Int?, tag: Int?) throws -> (data: Data, source: Int, tag: Int)
    /// Non-blocking check for a matching message: its (source, tag, byte count) if one is waiting.
    func probe(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int, count: Int)?

    /// Ends the whole job (all ranks) with `code`.
    func abort(_ code: Int32) -> Never
}

// MARK: - Conveniences built on the primitives

extension Communicator {
    /// True on the rank that should print progress and write files.
    public var isRoot: Bool { rank == 0 }

    func checkRoot(_ root: Int, _ op: String) throws {
        guard root >= 0 && root < size else {
            throw DataParallelError.invalidArgument(operation: op, message: "root \(root) is outside 0..<\(size)")
        }
    }

    /// Broadcasts a length (or −1 meaning "the root has nothing": every rank then throws the same error).
    func broadcastLength(_ length: Int?, root: Int, _ op: String) throws -> Int {
        var n = [rank == root ? (length ?? -1) : 0]
        try n.withUnsafeMutableBytes { try broadcastRaw($0, root: root) }
        guard n[0] >= 0 else {
            throw DataParallelError.protocolViolation(operation: op, message: "root rank \(root) had nothing to send")
        }
        return n[0]
    }

    /// Broadcasts a variable-length array of plain values: the length first, then the bytes.
    /// Non-root ranks' `values` are ignored; pass `nil` on the root to make every rank throw.
    func broadcastArray<T: BitwiseCopyable>(_ values: [T]?, root: Int, _ op: String) throws -> [T] {
        try checkRoot(root, op)
        let n = try broadcastLength(values?.count, root: root, op)
        var out: [T]
        if rank == root, let values { out = values } else {
            out = [T](unsafeUninitializedCapacity: n) { buf, initialized in
                // Bytes are overwritten by the broadcast below; zero them so the array is never observed uninitialised.
                if let base = buf.baseAddress { UnsafeMutableRawPointer(base).initializeMemory(as: UInt8.self, repeating: 0, count: n * MemoryLayout<T>.stride) }
                initialized = n
            }
        }
        try out.withUnsafeMutableBytes { try broadcastRaw($0, root: root) }
        return out
    }

    public func broadcast(_ values: [Float], root: Int) throws -> [Float] { try broadcastArray(values, root: root, "broadcast [Float]") }
    public func broadcast(_ values: [Double], root: Int) throws -> [Double] { try broadcastArray(values, root: root, "broadcast [Double]") }
    public func broadcast(_ values: [Int], root: Int) throws -> [Int] { try broadcastArray(values, root: root, "broadcast [Int]") }
    public func broadcast(_ data: Data, root: Int) throws -> Data { Data(try broadcastArray(rank == root ? [UInt8](data) : [], root: root, "broadcast Data")) }

    public func broadcast(_ string: String, root: Int) throws -> String {
        let bytes = try broadcastArray(rank == root ? Array(string.utf8) : [], root: root, "broadcast String")
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Broadcasts a Codable value as JSON. If encoding fails on the root, every rank throws (nobody hangs).
    public func broadcastCodable<T: Codable>(_ value: T?, root: Int) throws -> T {
        let op = "broadcast \(T.self)"
        var encoded: [UInt8]? = nil
        var encodeError: Error? = nil
        if rank == root {
            if let value {
                do { encoded = [UInt8](try JSONEncoder().encode(value)) } catch { encodeError = error }
            }
        }
        let bytes: [UInt8]
        do { bytes = try broadcastArray(rank == root ? encoded : [], root: root, op) } catch {
            if let encodeError { throw DataParallelError.protocolViolation(operation: op, message: "could not encode on the root: \(encodeError)") }
            throw error
        }
        do { return try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw DataParallelError.protocolViolation(operation: op, message: "could not decode the root's value: \(error)")
        }
    }

    /// In-place broadcast of a buffer whose length every rank already knows (parameters, optimiser state).
    /// The lengths are checked first so a mismatch is an error on every rank, not memory corruption.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        try checkRoot(root, "broadcast in place")
        try requireSameCount(buffer.count, "broadcast in place")
        try broadcastRaw(UnsafeMutableRawBufferPointer(buffer), root: root)
    }

    public func broadcast(inPlace values: inout [Float], root: Int) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    public func broadcast(inPlace values: inout [Double], root: Int) throws {
        try checkRoot(root, "broadcast in place")
        try requireSameCount(values.count, "broadcast in place")
        try values.withUnsafeMutableBytes { try broadcastRaw($0, root: root) }
    }

    /// Throws on every rank unless all ranks pass the same count.
    public func requireSameCount(_ count: Int, _ op: String) throws {
        var v = [count, -count]
        try v.withUnsafeMutableBufferPointer { try allReduce($0, op: .max) }
        guard v[0] == count && -v[1] == count else {
            throw DataParallelError.protocolViolation(operation: op, message: "ranks disagree on the element count (this rank \(count), range \(-v[1])...\(v[0]))")
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { try allReduce(buffer, op: .sum) }
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws { try allReduce(buffer, op: .sum) }
    public func allReduceSum(_ values: inout [Float]) throws { try values.withUnsafeMutableBufferPointer { try allReduce($0, op: .sum) } }
    public func allReduceSum(_ values: inout [Double]) throws { try values.withUnsafeMutableBufferPointer { try allReduce($0, op: .sum) } }
    public func allReduceSum(_ values: inout [Int]) throws { try values.withUnsafeMutableBufferPointer { try allReduce($0, op: .sum) } }

    public func allReduceMax(_ value: Int) throws -> Int { var v = [value]; try v.withUnsafeMutableBufferPointer { try allReduce($0, op: .max) }; return v[0] }
    public func allReduceMin(_ value: Int) throws -> Int { var v = [value]; try v.withUnsafeMutableBufferPointer { try allReduce($0, op: .min) }; return v[0] }
    public func allReduceMax(_ value: Double) throws -> Double { var v = [value]; try v.withUnsafeMutableBufferPointer { try allReduce($0, op: .max) }; return v[0] }
    public func allReduceMin(_ value: Double) throws -> Double { var v = [value]; try v.withUnsafeMutableBufferPointer { try allReduce($0, op: .min) }; return v[0] }
    public func allReduceMax(_ values: inout [Int]) throws { try values.withUnsafeMutableBufferPointer { try allReduce($0, op: .max) } }
    public func allReduceMin(_ values: inout [Int]) throws { try values.withUnsafeMutableBufferPointer { try allReduce($0, op: .min) } }
    public func allReduceMax(_ values: inout [Double]) throws { try values.withUnsafeMutableBufferPointer { try allReduce($0, op: .max) } }
    public func allReduceMin(_ values: inout [Double]) throws { try values.withUnsafeMutableBufferPointer { try allReduce($0, op: .min) } }

    /// A barrier for ranks that are idle while others still compute (end of an experiment, waiting for other
    /// groups): under MPI it sleeps between polls instead of spinning on a core.
    public func idleBarrier() throws {
        if let m = self as? MPICommunicator { try m.idleBarrier() } else { try barrier() }
    }

    /// True on every rank iff every rank passed true (for agreeing on stop decisions and check results).
    public func allAgree(_ flag: Bool) throws -> Bool { try allReduceMin(flag ? 1 : 0) == 1 }
    /// True on every rank iff at least one rank passed true.
    public func anyRank(_ flag: Bool) throws -> Bool { try allReduceMax(flag ? 1 : 0) == 1 }

    /// Communicators without reusable requests start a new one.
    public func iallReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>, reusing spare: CommRequest?) throws -> CommRequest {
        try iallReduceSum(buffer)
    }

    /// Prints to standard error on rank 0 only, so a refusal shows once rather than once per rank.
    public func printOnRoot(_ message: String) {
        guard rank == 0 else { return }
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}

/// A request that is already complete (single process, empty buffers).
public final class CompletedRequest: CommRequest {
    /// One shared instance: a finished request has no state, and handing out new ones allocated on every bucket.
    public static let shared = CompletedRequest()
    public init() {}
    public func wait() throws {}
    public func test() throws -> Bool { true }
}

/// The communicator for this process: MPI when started by `mpirun` (Open MPI sets OMPI_COMM_WORLD_SIZE; also
/// PMI_SIZE/PMIX_RANK from srun), otherwise a single-process communicator so the plain binary never touches MPI.
public func detectCommunicator(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Communicator {
    if launchedByMPI(environment: environment) { return try MPICommunicator.world() }
    return SingleProcessCommunicator()
}

/// Whether the process environment says it was started by an MPI launcher.
public func launchedByMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
    environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil || environment["PMI_SIZE"] != nil
}
