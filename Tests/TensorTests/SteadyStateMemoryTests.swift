import CHeapProbe
import Glibc
import XCTest
@testable import Tensor

/// Steady-state training steps must not grow memory: every buffer (workspace, loss caches, optimiser moments) is
/// sized on the first step of a shape and reused.
/// - One worker per rank: the heap in use (glibc's mallinfo2, through a test-only C target) must be the same after
///   each of the fourth to tenth steps, to the byte; any buffer kept per step would show.
/// - Two workers: the layers hand work to libdispatch, whose per-thread continuation caches fill from malloc for
///   a few dozen steps (measured: ~4 KB per step for ~35 steps of a fresh process, then flat), so the heap may grow
///   by up to 128 KB over 7 steps. A retained buffer of a step's sizes (tens of KB to MBs) would exceed that.
/// - Both: the resident set (/proc/self/statm) within 512 KB. It also moves with the stacks of libdispatch's
///   threads, which it starts as it likes (the NT kernel's frame alone is ~42 KB): once 112 KB in one step.
/// (Per-step malloc calls are counted separately with perf uprobes, docs/performance.md.)
final class SteadyStateMemoryTests: XCTestCase {
    override func tearDown() { BLASInfo.setThreads(savedThreads) }
    private let savedThreads = BLASInfo.threads

    func testTrainingStepsDoNotGrowTheHeap() throws {
        BLASInfo.setThreads(1)
        let one = try steadyState()
        XCTAssertGreaterThan(one.heap[0], 0, "glibc's mallinfo2 gave no heap count")
        XCTAssertEqual(Set(one.heap[1...]).count, 1, "1 worker: heap in use changed over steady-state steps: \(one.heap)")
        XCTAssertLessThanOrEqual((one.rss[2...].max() ?? 0) - one.rss[1], 512 << 10, "1 worker: resident set grew: \(one.rss)")

        BLASInfo.setThreads(2)
        let two = try steadyState()
        XCTAssertLessThanOrEqual((two.heap[1...].max() ?? 0) - two.heap[1], 128 << 10, "2 workers: heap grew: \(two.heap)")
        XCTAssertLessThanOrEqual((two.rss[2...].max() ?? 0) - two.rss[1], 512 << 10, "2 workers: resident set grew: \(two.rss)")
    }

    /// Heap in use and resident bytes after each of 8 training steps that follow 2 warm-up steps, on a fresh network
    /// (its workspace takes as many workers as BLAS has threads).
    private func steadyState() throws -> (heap: [Int], rss: [Int]) {
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
        var rss = [Int](repeating: 0, count: 8), heap = [Int](repeating: 0, count: 8)
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
        for i in 0..<rss.count {
            try step(i + 2)
            heap[i] = heap_probe_in_use()
            rss[i] = try residentBytes()
        }
        XCTAssertEqual(reported, net.parameterCount, "backward reported every gradient range")
        XCTAssertTrue(value.total.isFinite)
        return (heap, rss)
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
