import Glibc
import XCTest
@testable import Tensor

/// Steady-state training steps must not grow memory: every buffer (workspace, loss caches, optimiser moments) is
/// sized on the first step of a shape and reused. The resident set (/proc/self/statm; glibc's mallinfo is not in the
/// Glibc module here) from the fourth step on must stay within 64 KB of that after the third, while a step's
/// buffers are several MB: any per-step retained buffer would show. (Per-step malloc calls are counted separately
/// with perf uprobes, docs/performance.md.)
final class SteadyStateMemoryTests: XCTestCase {
    func testTrainingStepsDoNotGrowTheHeap() throws {
        var cfg = UNetConfig()
        cfg.features = [8, 16, 32]
        cfg.numClasses = 3
        let net = try UNet(config: cfg, seed: 7)
        let loss = SegmentationLoss(numClasses: cfg.numClasses)
        let opt = AdamW(count: net.parameterCount, weightDecay: 1e-2)
        let batch = 2, size = 64, p = size * size
        let x = randomArray(batch * p, key: 31)
        let labels = (0..<(batch * p)).map { UInt8($0 % cfg.numClasses) }
        var dLogits = [Float](repeating: 0, count: batch * cfg.numClasses * p)
        var sums = LossSums(numClasses: cfg.numClasses)
        var value = LossValue(total: 0, ce: 0, dice: 0, perClassDice: [])
        var inUse = [Int](repeating: 0, count: 8)
        inUse.reserveCapacity(8)
        var reported = 0
        let onBucket: (Range<Int>) -> Void = { reported += $0.count }
        func step(_ i: Int) throws {
            let logits = try x.withUnsafeBufferPointer {
                try net.forward(input: $0.baseAddress!, batch: batch, height: size, width: size, training: true,
                                dropout: DropoutKey(seed: 1, step: UInt64(i), firstGlobalSample: 0))
            }
            try labels.withUnsafeBufferPointer {
                try loss.partialSums(logits: logits.baseAddress!, labels: $0.baseAddress!, batch: batch, pixels: p, into: &sums)
            }
            loss.value(global: sums, into: &value)
            dLogits.withUnsafeMutableBufferPointer { loss.gradient(global: sums, into: $0.baseAddress!) }
            reported = 0
            dLogits.withUnsafeBufferPointer { net.backward(dLogits: $0.baseAddress!, onBucketReady: onBucket) }
            net.parameters.values.withUnsafeMutableBufferPointer { pv in
                net.parameters.grads.withUnsafeBufferPointer { opt.step(params: pv.baseAddress!, grads: $0.baseAddress!, lr: 1e-3) }
            }
        }
        try step(0)
        try step(1)
        for i in 0..<inUse.count {
            try step(i + 2)
            inUse[i] = try residentBytes()
        }
        XCTAssertEqual(reported, net.parameterCount, "backward reported every gradient range")
        XCTAssertTrue(value.total.isFinite)
        // A retained per-step buffer (several MB here) grows the resident set at every step; a one-off page fault of
        // the process (other threads, the allocator trimming) does not. Compare the later steps with the second one.
        let growth = (inUse[2...].max() ?? 0) - inUse[1]
        XCTAssertLessThanOrEqual(growth, 64 << 10, "resident set grew over steady-state steps: \(inUse)")
    }

    /// Resident bytes of this process from /proc/self/statm (second field, pages).
    func residentBytes() throws -> Int {
        let text = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else {
            throw XCTSkip("cannot parse /proc/self/statm: '\(text)'")
        }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
