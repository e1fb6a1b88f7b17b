import DataParallel
import Foundation
import Tensor

/// Synthetic slices for benchmarks: smooth-ish random images and banded labels so every class occurs.
public final class SyntheticSlices: SliceSource {
    public let height: Int
    public let width: Int
    let count: Int
    private let images: UnsafeMutableBufferPointer<Float>
    private let labels: UnsafeMutableBufferPointer<UInt8>

    public init(count: Int, size: Int, numClasses: Int, seed: UInt64 = 0x42454E43) {
        self.count = count
        height = size
        width = size
        let p = size * size
        images = .allocate(capacity: count * p)
        labels = .allocate(capacity: count * p)
        let key = CounterRNG.mixKey(seed)
        for i in 0..<(count * p) { images[i] = Float(CounterRNG.uniform(key: key, counter: UInt64(i))) }
        for n in 0..<count {
            for y in 0..<size { for x in 0..<size { labels[n * p + y * size + x] = UInt8((y * numClasses / size + n) % numClasses) } }
        }
    }
    deinit { images.deallocate(); labels.deallocate() }
    public func image(_ i: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(rebasing: images[(i * height * width)..<((i + 1) * height * width)]) }
    public func label(_ i: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: labels[(i * height * width)..<((i + 1) * height * width)]) }
}

/// Timing of full data-parallel training steps (forward, loss with all-reduced sums, backward with bucketed
/// gradient all-reduce, AdamW) over a communicator.
public struct StepTiming: Codable, Sendable {
    public var ranks: Int
    public var blasThreads: Int
    public var globalBatch: Int
    public var medianStep: Double
    /// Median over steps of the slowest rank's compute time.
    public var medianCompute: Double
    /// Median over steps of the exposed communication: what the slowest rank (the step's critical path) waited for
    /// the gradient all-reduce after its own backward ended. Time a faster rank spends waiting for a slower one is
    /// load imbalance, not communication, and is reported apart (`medianSkew`, `medianLongestWait`).
    public var medianCommWait: Double
    /// Median over steps of the longest wait of any rank (the fastest rank's: communication plus the skew).
    public var medianLongestWait: Double
    /// Median over steps of the spread of the ranks' compute times (slowest − fastest).
    public var medianSkew: Double
    /// Minor page faults per timed step of the rank with the most (median over steps): memory the step maps afresh,
    /// ours or a library's. Steady state should have none.
    public var pageFaultsPerStep: Double
    /// The most in any one timed step: a one-off growth of a buffer pool to a new high-water mark shows here, not
    /// in the median (Open MPI's temporary buffers grew by ~10 MB in one step of some 2-rank runs).
    public var pageFaultsMaxStep: Double
    /// The benchmarked network's size and analytic forward FLOPs per image (so callers need not build another one).
    public var parameters: Int
    public var forwardFLOPsPerImage: Double
    /// Of those, what this rank's Winograd layers do not multiply (UNet.winogradSkippedFLOPs).
    public var winogradSkippedFLOPsPerImage: Double
    public var imagesPerSecond: Double { Double(globalBatch) / medianStep }

    /// One step's per-rank compute and wait times → the slowest rank's compute, its wait (the exposed
    /// communication), the longest wait of any rank, and the skew (slowest − fastest compute).
    public static func split(compute c: [Double], wait w: [Double]) -> (compute: Double, exposed: Double, longestWait: Double, skew: Double) {
        guard let slowest = c.indices.max(by: { c[$0] < c[$1] }), w.count == c.count else { return (0, 0, 0, 0) }
        return (c[slowest], w[slowest], w.max() ?? 0, c[slowest] - (c.min() ?? 0))
    }
}

public enum StepBenchmark {
    public static func run(config: UNetConfig, size: Int, globalBatch: Int, steps: Int, warmup: Int, comm: Communicator,
                           bucketBytes: Int = GradientBuckets.defaultBucketBytes, perStep: ((Int, Double) -> Void)? = nil) throws -> StepTiming {
        let net = try UNet(config: config, seed: 0)
        let loss = SegmentationLoss(numClasses: config.numClasses)
        let engine = try StepEngine(net: net, loss: loss, optimizer: AdamW(count: net.parameterCount, weightDecay: 1e-2),
                                    comm: comm, seed: 0, bucketBytes: bucketBytes)
        let data = SyntheticSlices(count: globalBatch, size: size, numClasses: config.numClasses)
        let batch = Array(0..<globalBatch)
        var times: [Double] = [], compute: [Double] = [], wait: [Double] = [], longest: [Double] = [], skew: [Double] = []
        var faults: [Double] = []
        // Every rank's step time, compute, wait and page faults, each in its own slot (the sum gathers them in one
        // all-reduce).
        let slots = 4
        var perRank = [Double](repeating: 0, count: slots * comm.size)
        for i in 0..<(warmup + steps) {
            try comm.barrier()
            let f0 = minorPageFaults()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try engine.step(globalBatch: batch, iteration: i, lr: 1e-4, data: data)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            let df = minorPageFaults() - f0
            guard i >= warmup else { continue }
            for j in perRank.indices { perRank[j] = 0 }
            perRank[slots * comm.rank] = dt
            perRank[slots * comm.rank + 1] = engine.lastCompute
            perRank[slots * comm.rank + 2] = engine.lastCommWait
            perRank[slots * comm.rank + 3] = Double(df)
            try comm.allReduceSum(&perRank)
            func slot(_ j: Int) -> [Double] { stride(from: j, to: perRank.count, by: slots).map { perRank[$0] } }
            faults.append(slot(3).max() ?? 0)
            // The step is as slow as its slowest rank.
            times.append(slot(0).max() ?? dt)
            let split = StepTiming.split(compute: slot(1), wait: slot(2))
            compute.append(split.compute)
            wait.append(split.exposed)
            longest.append(split.longestWait)
            skew.append(split.skew)
            perStep?(i - warmup, times.last ?? 0)
        }
        return StepTiming(ranks: comm.size, blasThreads: BLASInfo.threads, globalBatch: globalBatch,
                          medianStep: median(times), medianCompute: median(compute), medianCommWait: median(wait),
                          medianLongestWait: median(longest), medianSkew: median(skew),
                          pageFaultsPerStep: median(faults), pageFaultsMaxStep: faults.max() ?? .nan,
                          parameters: net.parameterCount, forwardFLOPsPerImage: net.forwardFLOPs(height: size, width: size),
                          winogradSkippedFLOPsPerImage: net.winogradSkippedFLOPs(
                              height: size, width: size,
                              batch: Coordinator.shard(of: globalBatch, rank: comm.rank, size: comm.size).count))
    }

    /// Minor page faults of this process so far (all threads).
    static func minorPageFaults() -> Int {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return u.ru_minflt
    }

    public static func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
    }
}
