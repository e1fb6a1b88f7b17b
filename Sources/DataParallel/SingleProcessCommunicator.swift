import Foundation

/// A communicator of one process: reductions and broadcasts are the identity, gather returns this rank's data,
/// split returns another single-process communicator. Lets Train run without mpirun and without MPI_Init.
/// Point-to-point messages to oneself are queued (so the work queue logic also runs in one process).
public final class SingleProcessCommunicator: Communicator {
    public init() {}

    public var rank: Int { 0 }
    public var size: Int { 1 }

    private var mailbox: [(data: Data, tag: Int)] = []
    private let lock = NSLock()

    public func barrier() throws {}

    public func broadcastRaw(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        try checkRoot(root, "broadcast")
    }

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws {}
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp) throws {}
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Int>, op: ReduceOp) throws {}

    public func iallReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CommRequest { CompletedRequest.shared }

    public func gather(_ data: Data, root: Int) throws -> [Data]? {
        try checkRoot(root, "gather")
        return [data]
    }

    public func split(color: Int, key: Int) throws -> Communicator {
        guard color >= 0 else { throw DataParallelError.invalidArgument(operation: "split", message: "color \(color) must be ≥ 0") }
        return SingleProcessCommunicator()
    }

    public func send(_ data: Data, to destination: Int, tag: Int) throws {
        guard destination == 0 else { throw DataParallelError.invalidArgument(operation: "send", message: "destination \(destination) is outside 0..<1") }
        guard tag >= 0 else { throw DataParallelError.invalidArgument(operation: "send", message: "tag \(tag) must be ≥ 0") }
        lock.lock(); mailbox.append((data, tag)); lock.unlock()
    }

    public func receive(from source: Int?, tag: Int?) throws -> (data: Data, source: Int, tag: Int) {
        lock.lock(); defer { lock.unlock() }
        // One process cannot wait for itself: a missing message would block forever, so it is an error.
        guard let i = mailbox.firstIndex(where: { tag == nil || $0.tag == tag }), source == nil || source == 0 else {
            throw DataParallelError.protocolViolation(operation: "receive", message: "no message queued in a single-process communicator (would block forever)")
        }
        let m = mailbox.remove(at: i)
        return (m.data, 0, m.tag)
    }

    public func probe(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int, count: Int)? {
        lock.lock(); defer { lock.unlock() }
        guard source == nil || source == 0, let m = mailbox.first(where: { tag == nil || $0.tag == tag }) else { return nil }
        return (0, m.tag, m.data.count)
    }

    public func abort(_ code: Int32) -> Never { exit(code) }
}
