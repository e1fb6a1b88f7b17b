import Foundation

/// Communication time of one step's gradient all-reduce, for the benchmark.
public struct CommStats: Sendable, Equatable {
    /// Time inside the calls that start and poke the non-blocking reductions during backward.
    public var startSeconds: Double = 0
    /// Time `finish()` spent waiting for reductions still in flight after backward ended.
    public var waitSeconds: Double = 0
    /// Time spent scaling the reduced gradients.
    public var scaleSeconds: Double = 0
    /// Communication time not hidden behind compute: everything the training thread spent in this layer.
    public var exposedSeconds: Double { startSeconds + waitSeconds + scaleSeconds }
    public var bucketsReduced: Int = 0
    public init() {}
}

/// Bucketed gradient all-reduce over a flat gradient arena of `count` floats.
///
/// The arena is cut into buckets of `bucketBytes` (default 25 MB, as PyTorch DDP), aligned from the END of the arena:
/// backward finishes the last layers first, and the leftover (smaller) bucket sits at the start of the arena, so the
/// reduction that is still in flight when backward ends is the short one. Backward reports finished ranges in any
/// order (`report`, usable as `onBucketReady`); as soon as a bucket is completely covered its MPI_Iallreduce (sum)
/// starts. `finish(scale:)` waits for all of them and optionally multiplies by `scale`.
///
/// Lifetime: the buffer passed to `begin` must stay valid and untouched from `begin` to `finish`, e.g.
/// `grads.withUnsafeMutableBufferPointer { g in try buckets.begin(g); backward(onBucketReady: buckets.report); try buckets.finish() }`.
public final class GradientBuckets {
    public let communicator: Communicator
    public let count: Int
    public let bucketElements: Int
    /// Bucket ranges in ascending arena order (they partition 0..<count).
    public let buckets: [Range<Int>]

    private var base: UnsafeMutablePointer<Float>?
    private var covered: [Int]
    private var pieces: [[Range<Int>]]
    private var requests: [CommRequest?]
    /// Last step's completed requests, handed back to the communicator for reuse (no allocation per step).
    private var spares: [CommRequest?]
    private var firstError: Error?
    private var stats = CommStats()
    private let lock = NSLock()
    /// Time of the last finished step.
    public private(set) var lastStats = CommStats()
    /// Sum over all finished steps.
    public private(set) var totalStats = CommStats()

    public static let defaultBucketBytes = 25 * 1024 * 1024

    public init(communicator: Communicator, count: Int, bucketBytes: Int = GradientBuckets.defaultBucketBytes) throws {
        guard count >= 0 else { throw DataParallelError.invalidArgument(operation: "GradientBuckets", message: "arena length \(count) must be ≥ 0") }
        guard bucketBytes >= MemoryLayout<Float>.stride else {
            throw DataParallelError.invalidArgument(operation: "GradientBuckets", message: "bucket size \(bucketBytes) bytes must be at least \(MemoryLayout<Float>.stride) (one float)")
        }
        self.communicator = communicator
        self.count = count
        bucketElements = bucketBytes / MemoryLayout<Float>.stride
        var b: [Range<Int>] = []
        var end = count
        while end > 0 {
            let start = Swift.max(0, end - bucketElements)
            b.append(start..<end)
            end = start
        }
        buckets = b.reversed()
        covered = Array(repeating: 0, count: buckets.count)
        pieces = Array(repeating: [], count: buckets.count)
        requests = Array(repeating: nil, count: buckets.count)
        spares = Array(repeating: nil, count: buckets.count)
    }

    /// Index of the bucket holding arena offset `offset` (0 ≤ offset < count).
    public func bucketIndex(of offset: Int) -> Int {
        let firstSize = buckets[0].count
        return offset < firstSize ? 0 : 1 + (offset - firstSize) / bucketElements
    }

    /// Starts a step over `grads` (which must hold `count` floats).
    public func begin(_ grads: UnsafeMutableBufferPointer<Float>) throws {
        lock.lock(); defer { lock.unlock() }
        guard base == nil else { throw DataParallelError.protocolViolation(operation: "GradientBuckets.begin", message: "the previous step was not finished") }
        guard grads.count == count else {
            throw DataParallelError.invalidArgument(operation: "GradientBuckets.begin", message: "gradient buffer has \(grads.count) floats, the buckets were made for \(count)")
        }
        base = grads.baseAddress
        for i in buckets.indices { covered[i] = 0; pieces[i].removeAll(keepingCapacity: true); spares[i] = requests[i] ?? spares[i]; requests[i] = nil }
        firstError = nil
        stats = CommStats()
    }

    /// Backward's callback: `range` of arena offsets holds final gradients. Errors (bad or repeated ranges, MPI
    /// failures) are kept and thrown by `finish()`, because backward's callback cannot throw.
    public func report(_ range: Range<Int>) {
        lock.lock(); defer { lock.unlock() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { stats.startSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9 }
        guard firstError == nil else { return }
        guard base != nil || count == 0 else {
            firstError = DataParallelError.protocolViolation(operation: "GradientBuckets.report", message: "report(\(range)) outside begin()/finish()")
            return
        }
        guard !range.isEmpty else { return }
        guard range.lowerBound >= 0 && range.upperBound <= count else {
            firstError = DataParallelError.invalidArgument(operation: "GradientBuckets.report", message: "range \(range) is outside the arena 0..<\(count)")
            return
        }
        var lo = range.lowerBound
        while lo < range.upperBound {
            let bi = bucketIndex(of: lo)
            let part = lo..<Swift.min(range.upperBound, buckets[bi].upperBound)
            if let clash = pieces[bi].first(where: { $0.overlaps(part) }) {
                firstError = DataParallelError.invalidArgument(operation: "GradientBuckets.report", message: "range \(part) was already reported (overlaps \(clash))")
                return
            }
            pieces[bi].append(part)
            covered[bi] += part.count
            if covered[bi] == buckets[bi].count { start(bi) }
            lo = part.upperBound
        }
        poke()
    }

    private func start(_ bi: Int) {
        guard let base else { return }
        let r = buckets[bi]
        do {
            requests[bi] = try communicator.iallReduceSum(UnsafeMutableBufferPointer(start: base + r.lowerBound, count: r.count), reusing: spares[bi])
            spares[bi] = nil
            stats.bucketsReduced += 1
        } catch {
            firstError = error
        }
    }

    /// Open MPI progresses non-blocking collectives only inside MPI calls; testing the outstanding ones while backward
    /// reports keeps them moving (otherwise everything would happen in `finish`).
    private func poke() {
        for i in requests.indices {
            guard let r = requests[i] else { continue }
            do { _ = try r.test() } catch { firstError = firstError ?? error }
        }
    }

    /// Waits for every bucket's reduction, then multiplies the arena by `scale` if given. Throws if backward did not
    /// cover the whole arena or an MPI call failed (after waiting for what was started, so the buffer is free again).
    @discardableResult
    public func finish(scale: Float? = nil) throws -> CommStats {
        lock.lock(); defer { lock.unlock() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        for r in requests {
            guard let r else { continue }
            do { try r.wait() } catch { firstError = firstError ?? error }
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        stats.waitSeconds += Double(t1 - t0) * 1e-9
        let b = base
        base = nil
        if let e = firstError { throw e }
        if let missing = covered.indices.first(where: { covered[$0] != buckets[$0].count }) {
            let n = covered.indices.filter { covered[$0] != buckets[$0].count }.count
            throw DataParallelError.protocolViolation(operation: "GradientBuckets.finish", message: "\(n) of \(buckets.count) buckets were not fully reported by backward (first: bucket \(missing), \(buckets[missing]), \(covered[missing]) of \(buckets[missing].count) floats)")
        }
        if let scale, scale != 1, let b {
            for i in 0..<count { b[i] *= scale }
            stats.scaleSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) * 1e-9
        }
        lastStats = stats
        totalStats.startSeconds += stats.startSeconds
        totalStats.waitSeconds += stats.waitSeconds
        totalStats.scaleSeconds += stats.scaleSeconds
        totalStats.bucketsReduced += stats.bucketsReduced
        return stats
    }

    /// The no-overlap path: reduce the whole arena now (for a backward that reports nothing).
    @discardableResult
    public func reduceAll(_ grads: UnsafeMutableBufferPointer<Float>, scale: Float? = nil) throws -> CommStats {
        try begin(grads)
        report(0..<count)
        return try finish(scale: scale)
    }

    public func resetTotals() { lock.lock(); totalStats = CommStats(); lock.unlock() }
}
