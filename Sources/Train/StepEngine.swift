import DataParallel
import Foundation
import Tensor

/// Where a step's slices come from: a flat image record and a label record per slice id.
public protocol SliceSource: AnyObject {
    var height: Int { get }
    var width: Int { get }
    func image(_ i: Int) -> UnsafeBufferPointer<Float>
    func label(_ i: Int) -> UnsafeBufferPointer<UInt8>
}

/// One data-parallel training step over a group: the global batch is sharded contiguously over the ranks; the loss
/// is the exact loss of the global batch (CE over all its pixels, batch Dice from all-reduced per-class sums), so
/// every rank's ∂loss/∂logits is a share of the global gradient and the parameter gradients are summed, bucket by
/// bucket, while backward is still running.
public final class StepEngine {
    public let net: UNet
    public let loss: SegmentationLoss
    public let optimizer: AdamW
    public let comm: Communicator
    let buckets: GradientBuckets
    let seed: UInt64
    private var input: [Float] = []
    private var labels: [UInt8] = []
    private var dLogits: [Float] = []
    private var sums: [Double] = []
    // Reused every step (steady state allocates nothing): the local and global loss sums, the returned value and the
    // bucket callback's state (a closure capturing locals would box them on the heap each step).
    private var localSums: LossSums
    private var globalSums: LossSums
    private var lastValue = LossValue(total: 0, ce: 0, dice: 0, perClassDice: [])
    private var bucketError: Error?
    private var reported = 0
    private var backwardDone = Date()
    private var onBucket: ((Range<Int>) -> Void)?
    /// Seconds spent waiting for gradient all-reduces after backward (exposed communication), last step.
    public private(set) var lastCommWait: Double = 0
    public private(set) var lastCompute: Double = 0

    public init(net: UNet, loss: SegmentationLoss, optimizer: AdamW, comm: Communicator, seed: UInt64,
                bucketBytes: Int = 25 << 20) throws {
        self.net = net
        self.loss = loss
        self.optimizer = optimizer
        self.comm = comm
        self.seed = seed
        buckets = try GradientBuckets(communicator: comm, count: net.parameters.count, bucketBytes: bucketBytes)
        localSums = LossSums(numClasses: net.config.numClasses)
        globalSums = localSums
        // Created once; it holds self weakly-unowned (the engine owns it).
        onBucket = { [unowned self] range in self.bucketReady(range) }
    }

    /// Backward's bucket callback: starts the non-blocking all-reduce of finished gradient ranges; the last range
    /// arrives after backward's final write, so the wait happens inside it, within backward's access.
    private func bucketReady(_ range: Range<Int>) {
        guard bucketError == nil, let g = net.backwardGradients else { return }
        do {
            if reported == 0 { try buckets.begin(g) }
            buckets.report(range)
            reported += range.count
            if reported == net.parameters.count { backwardDone = Date(); try buckets.finish() }
        } catch { bucketError = error }
    }

    /// Runs forward, loss, backward, gradient all-reduce and the AdamW step for `globalBatch` (identical on every
    /// rank). Returns the global loss.
    @discardableResult
    public func step(globalBatch: [Int], iteration: Int, lr: Double, data: SliceSource) throws -> LossValue {
        let t0 = Date()
        let shard = Coordinator.shard(of: globalBatch.count, rank: comm.rank, size: comm.size)
        let n = shard.count
        let h = data.height, w = data.width, p = h * w, c = net.config.numClasses
        precondition(n > 0, "a rank with an empty shard: the group is larger than the batch (refused at start)")
        if input.count != n * p { input = [Float](repeating: 0, count: n * p); labels = [UInt8](repeating: 0, count: n * p) }
        if dLogits.count != n * c * p { dLogits = [Float](repeating: 0, count: n * c * p) }
        input.withUnsafeMutableBufferPointer { inp in
            labels.withUnsafeMutableBufferPointer { lab in
                for (j, id) in globalBatch[shard].enumerated() {
                    _ = UnsafeMutableBufferPointer(rebasing: inp[(j * p)..<((j + 1) * p)]).initialize(from: data.image(id))
                    _ = UnsafeMutableBufferPointer(rebasing: lab[(j * p)..<((j + 1) * p)]).initialize(from: data.label(id))
                }
            }
        }
        let logits = try input.withUnsafeBufferPointer { inp in
            try net.forward(input: inp.baseAddress!, batch: n, height: h, width: w, training: true,
                            dropout: DropoutKey(seed: seed, step: UInt64(iteration), firstGlobalSample: shard.lowerBound))
        }
        try labels.withUnsafeBufferPointer { lab in
            try loss.partialSums(logits: logits.baseAddress!, labels: lab.baseAddress!, batch: n, pixels: p, into: &localSums)
        }
        localSums.writeFlat(into: &sums)
        try comm.allReduceSum(&sums)
        globalSums.update(flat: sums)
        loss.value(global: globalSums, into: &lastValue)
        dLogits.withUnsafeMutableBufferPointer { loss.gradient(global: globalSums, into: $0.baseAddress!) }
        // Buckets start reducing while backward is still producing earlier layers' gradients (bucketReady).
        bucketError = nil
        reported = 0
        backwardDone = Date()
        let total = net.parameters.count
        dLogits.withUnsafeBufferPointer { d in net.backward(dLogits: d.baseAddress!, onBucketReady: onBucket) }
        if let bucketError { throw bucketError }
        guard reported == total else {
            throw TrainError("backward reported \(reported) of \(total) gradient values to the all-reduce")
        }
        let t1 = backwardDone
        let t2 = Date()
        net.parameters.values.withUnsafeMutableBufferPointer { pv in
            net.parameters.grads.withUnsafeBufferPointer { g in
                optimizer.step(params: pv.baseAddress!, grads: g.baseAddress!, lr: lr)
            }
        }
        lastCompute = t1.timeIntervalSince(t0) + Date().timeIntervalSince(t2)
        lastCommWait = t2.timeIntervalSince(t1)
        return lastValue
    }
}
