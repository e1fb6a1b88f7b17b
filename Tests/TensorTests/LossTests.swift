import XCTest
@testable import Tensor

final class LossTests: XCTestCase {
    /// Deterministic logits in roughly [-3, 3].
    private func makeLogits(_ n: Int, key: UInt64) -> [Float] {
        (0 ..< n).map { Float(6 * CounterRNG.uniform(key: key, counter: UInt64($0)) - 3) }
    }

    private func total(_ loss: SegmentationLoss, _ logits: [Float], _ labels: [UInt8], batch: Int, pixels: Int) throws -> LossValue {
        let s = try loss.partialSums(logits: logits, labels: labels, batch: batch, pixels: pixels)
        return loss.value(global: s)
    }

    func testHandComputedTwoClassValue() throws {
        // Zero logits: p = 1/2 everywhere. Pixel 0 is class 1, pixel 1 class 0.
        let loss = SegmentationLoss(numClasses: 2)
        let s = try loss.partialSums(logits: [0, 0, 0, 0], labels: [1, 0], batch: 1, pixels: 2)
        XCTAssertEqual(s.ceCount, 2)
        XCTAssertEqual(s.intersection, [0.5])
        XCTAssertEqual(s.predSum, [1.0])
        XCTAssertEqual(s.targetSum, [1.0])
        let v = loss.value(global: s)
        let smooth = 1e-5
        XCTAssertEqual(v.ce, log(2.0), accuracy: 1e-12)
        XCTAssertEqual(v.dice, -(1 + smooth) / (2 + smooth), accuracy: 1e-12)
        XCTAssertEqual(v.total, log(2.0) - (1 + smooth) / (2 + smooth), accuracy: 1e-12)
    }

    func testIgnoredPixelsDoNotCount() throws {
        let loss = SegmentationLoss(numClasses: 3, ignoreLabel: 255)
        let logits = makeLogits(2 * 3 * 4, key: 7)
        let labels: [UInt8] = [0, 1, 255, 2, 255, 255, 1, 0]
        let s = try loss.partialSums(logits: logits, labels: labels, batch: 2, pixels: 4)
        XCTAssertEqual(s.ceCount, 5)
        XCTAssertEqual(s.targetSum, [2, 1])
        var d = [Float](repeating: .nan, count: logits.count)
        loss.gradient(global: s, into: &d)
        for (b, p) in [(0, 2), (1, 0), (1, 1)] {
            for c in 0 ..< 3 { XCTAssertEqual(d[(b * 3 + c) * 4 + p], 0, "ignored pixel \(b),\(p) class \(c)") }
        }
        // Changing the logits of ignored pixels does not change the loss.
        var other = logits
        other[(0 * 3 + 1) * 4 + 2] += 5
        other[(1 * 3 + 2) * 4 + 1] -= 4
        XCTAssertEqual(try total(SegmentationLoss(numClasses: 3), other, labels, batch: 2, pixels: 4).total,
                       loss.value(global: s).total, accuracy: 1e-12)
    }

    func testAllIgnoredGivesZeroCEAndFiniteGradient() throws {
        let loss = SegmentationLoss(numClasses: 3)
        let logits = makeLogits(3 * 4, key: 3)
        let s = try loss.partialSums(logits: logits, labels: [255, 255, 255, 255], batch: 1, pixels: 4)
        let v = loss.value(global: s)
        XCTAssertEqual(v.ce, 0)
        XCTAssertEqual(v.dice, -1, accuracy: 1e-12) // (0 + s)/(0 + s) per class
        var d = [Float](repeating: .nan, count: logits.count)
        loss.gradient(global: s, into: &d)
        XCTAssertTrue(d.allSatisfy { $0 == 0 })
    }

    func testRejectsOutOfRangeLabel() {
        let loss = SegmentationLoss(numClasses: 3)
        XCTAssertThrowsError(try loss.partialSums(logits: makeLogits(3 * 2, key: 1), labels: [0, 3], batch: 1, pixels: 2)) {
            XCTAssertTrue("\($0)".contains("label value 3"), "\($0)")
        }
        // Without an ignore label, 255 is just an invalid class.
        let strict = SegmentationLoss(numClasses: 3, ignoreLabel: nil)
        XCTAssertThrowsError(try strict.partialSums(logits: makeLogits(3 * 2, key: 1), labels: [0, 255], batch: 1, pixels: 2))
    }

    func testStableForHugeLogits() throws {
        let loss = SegmentationLoss(numClasses: 2)
        let s = try loss.partialSums(logits: [1000, -1000, -1000, 1000], labels: [0, 1], batch: 1, pixels: 2)
        let v = loss.value(global: s)
        XCTAssertTrue(v.total.isFinite)
        XCTAssertEqual(v.ce, 0, accuracy: 1e-12)
    }

    /// Finite differences of the total loss w.r.t. every logit, with ignored pixels and a class (3) absent
    /// from the batch, and unequal weights so both terms are checked.
    func testGradientMatchesFiniteDifferences() throws {
        let B = 2, C = 4, P = 15
        let logits = makeLogits(B * C * P, key: 42)
        var labels = (0 ..< B * P).map { UInt8(CounterRNG.bits(key: 9, counter: UInt64($0)) % 3) } // classes 0..2 only
        for i in [3, 11, 17, 29] { labels[i] = 255 }
        let loss = SegmentationLoss(numClasses: C, ceWeight: 0.7, diceWeight: 1.3)
        let s = try loss.partialSums(logits: logits, labels: labels, batch: B, pixels: P)
        XCTAssertEqual(s.targetSum[2], 0, "class 3 must be absent")
        var grad = [Float](repeating: 0, count: logits.count)
        loss.gradient(global: s, into: &grad)

        let probe = SegmentationLoss(numClasses: C, ceWeight: 0.7, diceWeight: 1.3)
        let h: Float = 1e-3
        var maxErr = 0.0, maxGrad = 0.0
        for i in 0 ..< logits.count {
            var plus = logits, minus = logits
            plus[i] += h
            minus[i] -= h
            let fp = try total(probe, plus, labels, batch: B, pixels: P).total
            let fm = try total(probe, minus, labels, batch: B, pixels: P).total
            let fd = (fp - fm) / (Double(plus[i]) - Double(minus[i]))
            maxErr = max(maxErr, abs(fd - Double(grad[i])))
            maxGrad = max(maxGrad, abs(fd))
        }
        XCTAssertGreaterThan(maxGrad, 1e-3)
        XCTAssertLessThan(maxErr, 1e-5 + 1e-4 * maxGrad, "max |fd − analytic| = \(maxErr), max |grad| = \(maxGrad)")
    }

    /// Splitting a batch over two "ranks": summed partial sums equal the whole batch's, and the two local
    /// gradients (computed from the global sums) concatenate to the whole batch's gradient.
    func testSplitBatchEqualsWholeBatch() throws {
        let B = 5, C = 3, P = 16
        let logits = makeLogits(B * C * P, key: 77)
        var labels = (0 ..< B * P).map { UInt8(CounterRNG.bits(key: 5, counter: UInt64($0)) % 3) }
        labels[7] = 255; labels[40] = 255
        let whole = SegmentationLoss(numClasses: C)
        let sw = try whole.partialSums(logits: logits, labels: labels, batch: B, pixels: P)
        var gw = [Float](repeating: 0, count: logits.count)
        whole.gradient(global: sw, into: &gw)

        for split in [1, 2, 4] {
            let a = SegmentationLoss(numClasses: C), b = SegmentationLoss(numClasses: C)
            let la = Array(logits[0 ..< split * C * P]), lb = Array(logits[split * C * P ..< B * C * P])
            let ya = Array(labels[0 ..< split * P]), yb = Array(labels[split * P ..< B * P])
            let sa = try a.partialSums(logits: la, labels: ya, batch: split, pixels: P)
            let sb = try b.partialSums(logits: lb, labels: yb, batch: B - split, pixels: P)
            // The all-reduce path: flat → sum → init(flat:).
            let reduced = LossSums(flat: zip(sa.flat, sb.flat).map { $0 + $1 }, numClasses: C)
            for (x, y) in zip(reduced.flat, sw.flat) { XCTAssertEqual(x, y, accuracy: 1e-9 * max(1, abs(y))) }
            XCTAssertEqual(a.value(global: reduced).total, whole.value(global: sw).total, accuracy: 1e-12)
            var ga = [Float](repeating: 0, count: la.count), gb = [Float](repeating: 0, count: lb.count)
            a.gradient(global: reduced, into: &ga)
            b.gradient(global: reduced, into: &gb)
            let g = ga + gb
            for i in g.indices { XCTAssertEqual(g[i], gw[i], accuracy: 1e-7, "split \(split) index \(i)") }
        }
    }

    func testSingleClassIsCEOnly() throws {
        let loss = SegmentationLoss(numClasses: 1)
        let s = try loss.partialSums(logits: [0.3, -2], labels: [0, 0], batch: 1, pixels: 2)
        let v = loss.value(global: s)
        XCTAssertEqual(v.dice, 0)
        XCTAssertEqual(v.ce, 0, accuracy: 1e-12)
        var d: [Float] = [.nan, .nan]
        loss.gradient(global: s, into: &d)
        XCTAssertEqual(d, [0, 0])
    }

    func testFlatRoundTrip() {
        var s = LossSums(numClasses: 4)
        s.ceSum = 3; s.ceCount = 10
        s.intersection = [1, 2, 3]; s.predSum = [4, 5, 6]; s.targetSum = [7, 8, 9]
        XCTAssertEqual(s.flat.count, LossSums.flatCount(numClasses: 4))
        XCTAssertEqual(LossSums(flat: s.flat, numClasses: 4), s)
        XCTAssertEqual((s + s).flat, s.flat.map { 2 * $0 })
    }
}
