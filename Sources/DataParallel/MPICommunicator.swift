import Foundation
import MPIShim

/// Process-wide MPI lifetime: initialised once (on first use of `MPICommunicator.world()`), finalised once by the
/// executable on a clean exit (`MPIRuntime.finalize()`). On an error exit do NOT finalise: Open MPI's finalize
/// synchronises with the other ranks and would hang if they are still inside a collective; exiting non-zero without
/// finalising makes mpirun end the whole job instead.
public enum MPIRuntime {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var providedLevel: Int32 = -1

    /// Initialises MPI (MPI_THREAD_MULTIPLE requested: the work-queue server thread on world rank 0 talks while the
    /// main thread trains). Idempotent and thread-safe.
    public static func initialize() throws {
        lock.lock(); defer { lock.unlock() }
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        if flag != 0 {
            if providedLevel < 0 { var p: Int32 = 0; MPI_Query_thread(&p); providedLevel = p }
            return
        }
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized != 0 {
            throw DataParallelError.protocolViolation(operation: "MPI_Init_thread", message: "MPI was already finalised in this process; it cannot be initialised again")
        }
        // Open MPI's default choice for MPI_Iallreduce (libnbc) on large buffers measured 1.7–2× slower than its
        // blocking all-reduce here (80 MB, 2 ranks, shared memory and TCP); the reduce-scatter + all-gather algorithm
        // (Rabenseifner, 3) is bandwidth-optimal and beat the blocking call. MCA parameters are read from the
        // environment during MPI_Init, so set it here unless the user chose one (setenv does not overwrite).
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0)
        keepCollectiveBuffers()
        var provided: Int32 = 0
        let rc = MPI_Init_thread(nil, nil, shim_thread_multiple(), &provided)
        guard rc == shim_success() else { throw mpiError(rc, "MPI_Init_thread") }
        providedLevel = provided
        // Errors come back as return codes (turned into Swift errors) instead of aborting the job inside MPI.
        try check(MPI_Comm_set_errhandler(shim_comm_world(), shim_errors_return()), "MPI_Comm_set_errhandler")
    }

    /// Every MPI_Iallreduce allocates a temporary buffer the size of its bucket. With glibc's adaptive defaults the
    /// freed buckets (2–3 × 25 MB in flight) went back to the kernel at every step and were faulted in again at the
    /// next: ~6 400 page faults per step and rank with the 64² network, while a 1-rank step has none. A fixed mmap
    /// threshold at glibc's 32 MB maximum and a trim threshold of 256 MB keep those pages in the heap (peak RSS is
    /// unchanged: the memory was in use). A user's own malloc settings (GLIBC_TUNABLES, MALLOC_*_) are left alone.
    static func keepCollectiveBuffers(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let own = environment["GLIBC_TUNABLES"].map { $0.contains("glibc.malloc.") } ?? false
            || environment.keys.contains { $0.hasPrefix("MALLOC_") && $0.hasSuffix("_") }
        guard !own else { return }
        _ = shim_set_malloc_thresholds(32 << 20, 256 << 20)
    }

    /// Whether MPI is initialised and not yet finalised in this process.
    public static var isActive: Bool {
        var i: Int32 = 0, f: Int32 = 0
        MPI_Initialized(&i); MPI_Finalized(&f)
        return i != 0 && f == 0
    }

    /// True when MPI granted MPI_THREAD_MULTIPLE (needed by `WorkQueue` with more than one group).
    public static var supportsThreadMultiple: Bool {
        lock.lock(); defer { lock.unlock() }
        return providedLevel >= shim_thread_multiple()
    }

    /// Finalises MPI if it was initialised; a no-op otherwise (so the single-process binary can always call it).
    public static func finalize() {
        lock.lock(); defer { lock.unlock() }
        guard isActive else { return }
        MPI_Finalize()
    }
}

/// MPI_Error_string text for a return code.
func mpiError(_ code: Int32, _ operation: String) -> DataParallelError {
    var buf = [CChar](repeating: 0, count: Int(shim_max_error_string()) + 1)
    var len: Int32 = 0
    let text: String
    // Open MPI aborts the process if MPI_Error_string is called before MPI_Init (e.g. when MPI_Init_thread failed).
    if !MPIRuntime.isActive {
        text = "MPI is not initialised (no error text available)"
    } else if MPI_Error_string(code, &buf, &len) == shim_success() {
        text = String(decoding: buf.prefix(Int(len)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    } else {
        text = "unknown MPI error"
    }
    return .mpi(operation: operation, code: code, message: text)
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
    if rc != shim_success() { throw mpiError(rc, operation()) }
}

/// Non-blocking operation split into one MPI request per chunk. Reusable once complete (`restart`), so a training
/// step's bucket reductions do not allocate.
final class MPIRequest: CommRequest {
    private var requests: [MPI_Request?]
    private let operation: String
    /// Floats covered, for error messages (built only when an error is thrown).
    private var elements: Int
    private(set) var done = false

    init(requests: [MPI_Request?], operation: String, elements: Int = 0) {
        self.requests = requests
        self.operation = operation
        self.elements = elements
        done = requests.isEmpty
    }

    private var label: String { elements > 0 ? "\(operation) of \(elements) floats" : operation }

    /// Makes a completed request track new MPI requests: `start` appends each chunk's request to the kept array.
    func restart(elements: Int, _ start: (inout [MPI_Request?]) throws -> Void) throws {
        precondition(done, "MPIRequest.restart on a request still in flight")
        requests.removeAll(keepingCapacity: true)
        self.elements = elements
        do { try start(&requests) } catch {
            _ = requests.withUnsafeMutableBufferPointer { MPI_Waitall(Int32($0.count), $0.baseAddress, nil) }
            requests.removeAll(keepingCapacity: true)
            throw error
        }
        done = requests.isEmpty
    }

    func wait() throws {
        if done { return }
        let rc = requests.withUnsafeMutableBufferPointer { MPI_Waitall(Int32($0.count), $0.baseAddress, nil) }
        done = true
        try check(rc, "MPI_Waitall (\(label))")
    }

    func test() throws -> Bool {
        if done { return true }
        var flag: Int32 = 0
        let rc = requests.withUnsafeMutableBufferPointer { MPI_Testall(Int32($0.count), $0.baseAddress, &flag, nil) }
        try check(rc, "MPI_Testall (\(label))")
        if flag != 0 { done = true }
        return done
    }

    deinit {
        // A request must complete before its buffer goes away and before MPI_Finalize.
        if !done && MPIRuntime.isActive { try? wait() }
    }
}

/// Open MPI communicator. Every call checks the return code (MPI_ERRORS_RETURN is set) and throws
/// `DataParallelError.mpi` with MPI's error text. Counts larger than `maxElementsPerCall` (default Int32.max, the
/// largest MPI count) are split into several calls.
public final class MPICommunicator: Communicator {
    public let comm: MPI_Comm?
    public let rank: Int
    public let size: Int
    /// Largest count passed to a single MPI call. Lower it only to exercise the chunking in tests.
    public var maxElementsPerCall: Int = Int(Int32.max)
    /// Request objects `iallReduceSum` had to allocate (not reused): flat over steady-state training steps.
    public private(set) var requestObjectsCreated = 0
    private var freed = false

    nonisolated(unsafe) private static var worldInstance: MPICommunicator?
    private static let worldLock = NSLock()

    /// MPI_COMM_WORLD, initialising MPI on first use. Always returns the same object.
    public static func world() throws -> MPICommunicator {
        worldLock.lock(); defer { worldLock.unlock() }
        if let w = worldInstance { return w }
        try MPIRuntime.initialize()
        let w = try MPICommunicator(wrapping: shim_comm_world())
        worldInstance = w
        return w
    }

    init(wrapping comm: MPI_Comm?) throws {
        self.comm = comm
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r); size = Int(s)
    }

    /// Releases a communicator made by `split` (collective over its ranks). World is never freed.
    public func free() throws {
        guard !freed, comm != shim_comm_world(), MPIRuntime.isActive else { return }
        var c = comm
        freed = true
        try check(MPI_Comm_free(&c), "MPI_Comm_free")
    }

    /// Runs `body(offset, count)` over chunks of at most `maxElementsPerCall` elements.
    private func chunks(_ total: Int, _ body: (Int, Int32) throws -> Void) throws {
        let limit = Swift.max(1, Swift.min(maxElementsPerCall, Int(Int32.max)))
        var offset = 0
        while offset < total {
            let n = Swift.min(limit, total - offset)
            try body(offset, Int32(n))
            offset += n
        }
    }

    private func mpiOp(_ op: ReduceOp) -> MPI_Op? {
        switch op { case .sum: return shim_sum(); case .max: return shim_max(); case .min: return shim_min() }
    }

    public func barrier() throws { try check(MPI_Barrier(comm), "MPI_Barrier") }

    public func broadcastRaw(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        try checkRoot(root, "MPI_Bcast")
        guard let base = buffer.baseAddress else { return }
        try chunks(buffer.count) { off, n in
            try check(MPI_Bcast(base + off, n, shim_byte(), Int32(root), comm), "MPI_Bcast (\(buffer.count) bytes)")
        }
    }

    private func allReduceTyped<T>(_ buffer: UnsafeMutableBufferPointer<T>, _ type: MPI_Datatype?, _ op: ReduceOp, _ name: String) throws {
        guard let base = buffer.baseAddress else { return }
        try chunks(buffer.count) { off, n in
            try check(MPI_Allreduce(shim_in_place(), base + off, n, type, mpiOp(op), comm), "MPI_Allreduce (\(name), \(buffer.count) elements)")
        }
    }

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws { try allReduceTyped(buffer, shim_float(), op, "float \(op)") }
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp) throws { try allReduceTyped(buffer, shim_double(), op, "double \(op)") }
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Int>, op: ReduceOp) throws {
        // Swift's Int is 64-bit on every platform this builds for.
        try allReduceTyped(buffer, shim_int64(), op, "int64 \(op)")
    }

    public func iallReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CommRequest {
        try iallReduceSum(buffer, reusing: nil)
    }

    public func iallReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>, reusing spare: CommRequest?) throws -> CommRequest {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return CompletedRequest.shared }
        let request: MPIRequest
        if let s = spare as? MPIRequest, s.done {
            request = s
        } else {
            request = MPIRequest(requests: [], operation: "MPI_Iallreduce")
            requestObjectsCreated += 1
        }
        try request.restart(elements: buffer.count) { reqs in
            try chunks(buffer.count) { off, n in
                var r: MPI_Request? = shim_request_null()
                try check(MPI_Iallreduce(shim_in_place(), base + off, n, shim_float(), shim_sum(), comm, &r), "MPI_Iallreduce (\(buffer.count) floats)")
                reqs.append(r)
            }
        }
        return request
    }

    public func gather(_ data: Data, root: Int) throws -> [Data]? {
        try checkRoot(root, "gather")
        // Every rank learns every count, so a too-large gather is refused on all ranks alike (nobody hangs).
        var counts = [Int](repeating: 0, count: size)
        var mine = data.count
        try counts.withUnsafeMutableBufferPointer { c in
            try check(MPI_Allgather(&mine, 1, shim_int64(), c.baseAddress, 1, shim_int64(), comm), "MPI_Allgather (gather sizes)")
        }
        let total = counts.reduce(0, +)
        guard total <= Int(Int32.max) else {
            throw DataParallelError.invalidArgument(operation: "gather", message: "\(total) bytes in total exceed the 2 GiB an MPI_Gatherv can address; gather in pieces")
        }
        let counts32 = counts.map { Int32($0) }
        var displs = [Int32](repeating: 0, count: size)
        for i in 1..<Swift.max(1, size) { displs[i] = displs[i - 1] + counts32[i - 1] }
        var recv = [UInt8](repeating: 0, count: rank == root ? Swift.max(total, 1) : 1)
        var sendBytes = [UInt8](data)
        if sendBytes.isEmpty { sendBytes = [0] }  // a valid address for a zero-count send
        try sendBytes.withUnsafeMutableBytes { s in
            try recv.withUnsafeMutableBytes { r in
                try check(MPI_Gatherv(s.baseAddress, Int32(data.count), shim_byte(), r.baseAddress, counts32, displs, shim_byte(), Int32(root), comm), "MPI_Gatherv (\(total) bytes)")
            }
        }
        guard rank == root else { return nil }
        return (0..<size).map { i in Data(recv[Int(displs[i])..<Int(displs[i]) + counts[i]]) }
    }

    public func split(color: Int, key: Int) throws -> Communicator {
        guard color >= 0 && color <= Int(Int32.max) else {
            throw DataParallelError.invalidArgument(operation: "MPI_Comm_split", message: "color \(color) must be in 0...\(Int32.max)")
        }
        var newComm: MPI_Comm? = shim_comm_null()
        try check(MPI_Comm_split(comm, Int32(color), Int32(truncatingIfNeeded: key), &newComm), "MPI_Comm_split")
        try check(MPI_Comm_set_errhandler(newComm, shim_errors_return()), "MPI_Comm_set_errhandler")
        let c = try MPICommunicator(wrapping: newComm)
        c.maxElementsPerCall = maxElementsPerCall
        return c
    }

    /// A duplicate of this communicator: a separate message space (the work queue's tags never meet anyone else's).
    public func duplicate() throws -> MPICommunicator {
        var newComm: MPI_Comm? = shim_comm_null()
        try check(MPI_Comm_dup(comm, &newComm), "MPI_Comm_dup")
        try check(MPI_Comm_set_errhandler(newComm, shim_errors_return()), "MPI_Comm_set_errhandler")
        let c = try MPICommunicator(wrapping: newComm)
        c.maxElementsPerCall = maxElementsPerCall
        return c
    }

    private func checkPeer(_ r: Int, _ op: String) throws {
        guard r >= 0 && r < size else { throw DataParallelError.invalidArgument(operation: op, message: "rank \(r) is outside 0..<\(size)") }
    }

    public func send(_ data: Data, to destination: Int, tag: Int) throws {
        try checkPeer(destination, "MPI_Send")
        guard tag >= 0 && tag <= 32767 else { throw DataParallelError.invalidArgument(operation: "MPI_Send", message: "tag \(tag) must be in 0...32767") }
        guard data.count <= Int(Int32.max) else {
            throw DataParallelError.invalidArgument(operation: "MPI_Send", message: "message of \(data.count) bytes exceeds the 2 GiB of one MPI message")
        }
        var bytes = [UInt8](data)
        let n = Int32(bytes.count)
        if bytes.isEmpty { bytes = [0] }
        try bytes.withUnsafeMutableBytes { b in
            try check(MPI_Send(b.baseAddress, n, shim_byte(), Int32(destination), Int32(tag), comm), "MPI_Send (\(n) bytes to rank \(destination), tag \(tag))")
        }
    }

    /// Waits by polling with a short sleep instead of MPI's busy-wait, so a rank waiting for work does not steal a core
    /// from the ranks that are computing. Uses matched probes (MPI_Improbe/MPI_Mrecv) so another thread cannot take
    /// the message between the probe and the receive.
    public func receive(from source: Int?, tag: Int?) throws -> (data: Data, source: Int, tag: Int) {
        if let source { try checkPeer(source, "MPI_Mrecv") }
        var sleepMicros: UInt32 = 20
        while true {
            var flag: Int32 = 0
            var message: MPI_Message? = nil
            var status = MPI_Status()
            try check(MPI_Improbe(Int32(source ?? Int(shim_any_source())), Int32(tag ?? Int(shim_any_tag())), comm, &flag, &message, &status), "MPI_Improbe")
            if flag != 0 {
                var count: Int32 = 0
                try check(MPI_Get_count(&status, shim_byte(), &count), "MPI_Get_count")
                var buf = [UInt8](repeating: 0, count: Swift.max(Int(count), 1))
                try buf.withUnsafeMutableBytes { b in
                    try check(MPI_Mrecv(b.baseAddress, count, shim_byte(), &message, shim_status_ignore()), "MPI_Mrecv (\(count) bytes)")
                }
                return (Data(buf.prefix(Int(count))), Int(shim_status_source(&status)), Int(shim_status_tag(&status)))
            }
            usleep(sleepMicros)
            sleepMicros = Swift.min(sleepMicros * 2, 2000)
        }
    }

    public func probe(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int, count: Int)? {
        var flag: Int32 = 0
        var status = MPI_Status()
        try check(MPI_Iprobe(Int32(source ?? Int(shim_any_source())), Int32(tag ?? Int(shim_any_tag())), comm, &flag, &status), "MPI_Iprobe")
        guard flag != 0 else { return nil }
        var count: Int32 = 0
        try check(MPI_Get_count(&status, shim_byte(), &count), "MPI_Get_count")
        return (Int(shim_status_source(&status)), Int(shim_status_tag(&status)), Int(count))
    }

    /// Waits for a non-blocking request politely (see `receive`).
    func politeWait(_ request: CommRequest) throws {
        var sleepMicros: UInt32 = 20
        while try !request.test() {
            usleep(sleepMicros)
            sleepMicros = Swift.min(sleepMicros * 2, 2000)
        }
    }

    /// A barrier that waits by polling with short sleeps (MPI_Ibarrier): for ranks that are done and wait for others
    /// that still compute, so the waiting ranks do not spin on a core the others need.
    public func idleBarrier() throws {
        var r: MPI_Request? = shim_request_null()
        try check(MPI_Ibarrier(comm, &r), "MPI_Ibarrier")
        try politeWait(MPIRequest(requests: [r], operation: "MPI_Ibarrier"))
    }

    /// Non-blocking broadcast of raw bytes (one chunk ≤ maxElementsPerCall per request).
    func ibroadcastRaw(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws -> CommRequest {
        try checkRoot(root, "MPI_Ibcast")
        guard let base = buffer.baseAddress, buffer.count > 0 else { return CompletedRequest.shared }
        var reqs: [MPI_Request?] = []
        try chunks(buffer.count) { off, n in
            var r: MPI_Request? = shim_request_null()
            try check(MPI_Ibcast(base + off, n, shim_byte(), Int32(root), comm, &r), "MPI_Ibcast")
            reqs.append(r)
        }
        return MPIRequest(requests: reqs, operation: "MPI_Ibcast")
    }

    /// Makes MPI itself fail (a broadcast from a root that does not exist, bypassing the Swift-side check) and returns
    /// the error it threw: proves the error handler returns codes instead of aborting, and that the text arrives.
    public func provokeErrorForSelfTest() -> Error? {
        var byte: UInt8 = 0
        do {
            try check(MPI_Bcast(&byte, 1, shim_byte(), Int32(size + 5), comm), "MPI_Bcast (self-test, invalid root \(size + 5))")
            return nil
        } catch { return error }
    }

    public func abort(_ code: Int32) -> Never {
        MPI_Abort(comm, code)
        exit(code)
    }
}
