import Foundation

/// Hands out the runs of an experiment grid to fold groups on request.
///
/// World rank 0 owns the queue. It is also the leader of group 0 and trains, so requests from the other group
/// leaders are served by a thread on world rank 0 (MPI_THREAD_MULTIPLE), on a duplicate of the world communicator so
/// its messages never mix with anyone else's. Protocol (leader → rank 0): `request` (empty) → `reply` (Int64 run
/// index, −1 = done); `result` (Int64 run index + bytes). A leader sends its result before asking for the next
/// run, and MPI keeps the order of messages between two ranks, so when every leader has been told "done" every
/// result has arrived.
///
/// Usage, on every rank of the world:
/// ```
/// let queue = try WorkQueue(world: world, group: group, runs: unfinished)
/// while let run = try queue.next() { let r = train(run); try queue.submit(run: run, result: r) }
/// let results = try queue.finish()   // [run: Data] on world rank 0, nil elsewhere
/// ```
public final class WorkQueue {
    public let world: Communicator
    public let group: Communicator
    public var isLeader: Bool { group.rank == 0 }
    public let leaderCount: Int

    static let requestTag = 101, replyTag = 102, resultTag = 103

    private let channel: Communicator
    private let lock = NSLock()
    private var pending: [Int]
    private var results: [Int: Data] = [:]
    private var serverDone: DispatchSemaphore?
    private var serverError: Error?
    private var finished = false

    /// Collective over `world`. `runs` (indices ≥ 0, in the order to hand them out) matters on world rank 0 only.
    public init(world: Communicator, group: Communicator, runs: [Int]) throws {
        self.world = world
        self.group = group
        guard runs.allSatisfy({ $0 >= 0 }) else {
            throw DataParallelError.invalidArgument(operation: "WorkQueue", message: "run indices must be ≥ 0 (−1 means done)")
        }
        pending = runs
        var leaders = [group.rank == 0 ? 1 : 0]
        try world.allReduceSum(&leaders)
        leaderCount = leaders[0]
        // World rank 0 serves requests; it must lead a group so its own runs need no messages.
        let rootLeads = try world.broadcastArray([world.rank == 0 && group.rank == 0 ? 1 : 0], root: 0, "WorkQueue")
        guard rootLeads == [1] else {
            throw DataParallelError.invalidConfiguration("WorkQueue: world rank 0 must be rank 0 of its group (split with GroupLayout)")
        }
        if let mpi = world as? MPICommunicator {
            if leaderCount > 1 && !MPIRuntime.supportsThreadMultiple {
                throw DataParallelError.invalidConfiguration("WorkQueue with \(leaderCount) groups needs MPI_THREAD_MULTIPLE, which this MPI library did not grant")
            }
            channel = try mpi.duplicate()
        } else {
            channel = world
        }
        if world.rank == 0 && leaderCount > 1 { startServer() }
    }

    private func takeNext() -> Int {
        lock.lock(); defer { lock.unlock() }
        return pending.isEmpty ? -1 : pending.removeFirst()
    }

    private func startServer() {
        let done = DispatchSemaphore(value: 0)
        serverDone = done
        let remoteLeaders = leaderCount - 1
        let thread = Thread { [self] in
            defer { done.signal() }
            do {
                var released = 0
                while released < remoteLeaders {
                    let m = try channel.receive(from: nil, tag: nil)
                    switch m.tag {
                    case WorkQueue.requestTag:
                        let run = takeNext()
                        try channel.send(WorkQueue.encode(run), to: m.source, tag: WorkQueue.replyTag)
                        if run < 0 { released += 1 }
                    case WorkQueue.resultTag:
                        guard m.data.count >= 8 else {
                            throw DataParallelError.protocolViolation(operation: "WorkQueue", message: "result message of \(m.data.count) bytes from rank \(m.source)")
                        }
                        let run = WorkQueue.decode(m.data.prefix(8))
                        lock.lock(); results[run] = Data(m.data.dropFirst(8)); lock.unlock()
                    default:
                        throw DataParallelError.protocolViolation(operation: "WorkQueue", message: "unexpected tag \(m.tag) from rank \(m.source)")
                    }
                }
            } catch {
                // The other leaders would wait forever for an answer: end the job rather than hang.
                FileHandle.standardError.write(Data("episodic: work queue server failed: \(error)\n".utf8))
                lock.lock(); serverError = error; lock.unlock()
                world.abort(3)
            }
        }
        thread.name = "WorkQueue server"
        thread.start()
    }

    static func encode(_ v: Int) -> Data { withUnsafeBytes(of: Int64(v).littleEndian) { Data($0) } }
    static func decode(_ d: Data) -> Int {
        var v: Int64 = 0
        _ = withUnsafeMutableBytes(of: &v) { d.copyBytes(to: $0) }
        return Int(Int64(littleEndian: v))
    }

    /// Collective over the group: the leader obtains the next run index, the group agrees on it. nil = no more runs.
    public func next() throws -> Int? {
        var run = -1
        if isLeader {
            if world.rank == 0 {
                run = takeNext()
            } else {
                try channel.send(Data(), to: 0, tag: WorkQueue.requestTag)
                run = WorkQueue.decode(try channel.receive(from: 0, tag: WorkQueue.replyTag).data)
            }
        }
        if group.size > 1 {
            var v = [run]
            if let g = group as? MPICommunicator {
                // Group members wait here while the leader waits for rank 0: poll politely instead of spinning.
                try v.withUnsafeMutableBytes { try g.politeWait(g.ibroadcastRaw($0, root: 0)) }
            } else {
                try v.withUnsafeMutableBytes { try group.broadcastRaw($0, root: 0) }
            }
            run = v[0]
        }
        return run < 0 ? nil : run
    }

    /// Sends a run's result to world rank 0. Call on every rank of the group; only the leader's data is used.
    public func submit(run: Int, result: Data) throws {
        guard isLeader else { return }
        if world.rank == 0 {
            lock.lock(); results[run] = result; lock.unlock()
        } else {
            try channel.send(WorkQueue.encode(run) + result, to: 0, tag: WorkQueue.resultTag)
        }
    }

    /// Collective over the world, after `next()` returned nil: world rank 0 gets every submitted result.
    public func finish() throws -> [Int: Data]? {
        if finished { return world.rank == 0 ? results : nil }
        finished = true
        if let done = serverDone { done.wait() }
        lock.lock(); let e = serverError; lock.unlock()
        if let e { throw e }
        if let c = channel as? MPICommunicator, c !== world { try c.free() }
        return world.rank == 0 ? results : nil
    }
}
