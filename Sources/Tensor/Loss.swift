import Foundation

/// Error thrown by `SegmentationLoss` when a label map holds a value that is neither a class nor the ignore label.
public struct LossError: LocalizedError, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var errorDescription: String? { message }
    public var description: String { message }
}

/// The additive pieces of the CE + Dice loss. Every field is a plain sum over pixels, so the sums of several
/// ranks (or several sub-batches) add up to the sums of the whole batch: DataParallel all-reduces `flat`
/// before `SegmentationLoss.value` / `.gradient` form the loss.
public struct LossSums: Equatable, Sendable {
    /// Σ −log softmax(target) over non-ignored pixels.
    public var ceSum: Double
    /// Number of non-ignored pixels.
    public var ceCount: Double
    /// Per foreground class c = 1..C−1 (index c−1): Σ p_c·[y=c], Σ p_c, Σ [y=c], all over non-ignored pixels.
    public var intersection: [Double]
    public var predSum: [Double]
    public var targetSum: [Double]

    public init(numClasses: Int) {
        let f = max(numClasses - 1, 0)
        ceSum = 0; ceCount = 0
        intersection = [Double](repeating: 0, count: f)
        predSum = intersection
        targetSum = intersection
    }

    /// Number of Doubles in `flat` for `numClasses` classes.
    public static func flatCount(numClasses: Int) -> Int { 2 + 3 * max(numClasses - 1, 0) }

    /// Layout: [ceSum, ceCount, intersection..., predSum..., targetSum...].
    public var flat: [Double] { [ceSum, ceCount] + intersection + predSum + targetSum }

    public init(flat: [Double], numClasses: Int) {
        let f = max(numClasses - 1, 0)
        precondition(flat.count == LossSums.flatCount(numClasses: numClasses),
                     "LossSums(flat:) got \(flat.count) values, expected \(LossSums.flatCount(numClasses: numClasses)) for \(numClasses) classes")
        ceSum = flat[0]; ceCount = flat[1]
        intersection = Array(flat[2 ..< 2 + f])
        predSum = Array(flat[2 + f ..< 2 + 2 * f])
        targetSum = Array(flat[2 + 2 * f ..< 2 + 3 * f])
    }

    /// Zeroes every sum in place (no allocation when the arrays are uniquely held).
    public mutating func reset() {
        ceSum = 0; ceCount = 0
        for i in intersection.indices { intersection[i] = 0; predSum[i] = 0; targetSum[i] = 0 }
    }

    /// Writes the `flat` layout into `out` (resized only when its count differs): the allocation-free `flat`.
    public func writeFlat(into out: inout [Double]) {
        let f = intersection.count, n = 2 + 3 * f
        if out.count != n { out = [Double](repeating: 0, count: n) }
        out[0] = ceSum; out[1] = ceCount
        for i in 0 ..< f { out[2 + i] = intersection[i]; out[2 + f + i] = predSum[i]; out[2 + 2 * f + i] = targetSum[i] }
    }

    /// Sets the sums from the `flat` layout in place: the allocation-free `init(flat:numClasses:)`.
    public mutating func update(flat: [Double]) {
        let f = intersection.count
        precondition(flat.count == 2 + 3 * f, "LossSums.update(flat:) got \(flat.count) values, expected \(2 + 3 * f)")
        ceSum = flat[0]; ceCount = flat[1]
        for i in 0 ..< f { intersection[i] = flat[2 + i]; predSum[i] = flat[2 + f + i]; targetSum[i] = flat[2 + 2 * f + i] }
    }

    public static func + (a: LossSums, b: LossSums) -> LossSums {
        precondition(a.intersection.count == b.intersection.count, "LossSums of different class counts")
        var r = a
        r.ceSum += b.ceSum; r.ceCount += b.ceCount
        for i in r.intersection.indices {
            r.intersection[i] += b.intersection[i]
            r.predSum[i] += b.predSum[i]
            r.targetSum[i] += b.targetSum[i]
        }
        return r
    }
}

public struct LossValue: Equatable, Sendable {
    /// ceWeight·ce + diceWeight·dice.
    public var total: Double
    /// Mean cross-entropy over non-ignored pixels (0 when there are none, as nnU-Net).
    public var ce: Double
    /// The Dice loss term: −mean over foreground classes of the soft batch Dice (so in [−1, 0]).
    public var dice: Double
    /// Soft batch Dice per foreground class c = 1..C−1 (index c−1).
    public var perClassDice: [Double]

    public init(total: Double, ce: Double, dice: Double, perClassDice: [Double]) {
        self.total = total; self.ce = ce; self.dice = dice; self.perClassDice = perClassDice
    }
}

/// nnU-Net's DC_and_CE_loss for 2D multi-class segmentation: cross-entropy (mean over non-ignored pixels) plus
/// MemoryEfficientSoftDiceLoss (softmax, batch Dice, no background, smooth 1e-5, denominator clipped at 1e-8,
/// ignored pixels masked out of all three sums).
///
/// Use in three steps so the sums can be all-reduced in between:
/// `partialSums` (local batch; caches the softmax) → `value(global:)` → `gradient(global:into:)`.
/// The gradient is ∂(global loss)/∂(local logits); summing the parameter gradients of all ranks gives the
/// gradient of the global-batch loss.
public final class SegmentationLoss {
    public let numClasses: Int
    public let ignoreLabel: UInt8?
    public let smooth: Double
    public let ceWeight: Double
    public let diceWeight: Double

    // Cache of the last partialSums call (needed by gradient).
    private var probs: [Float] = []
    private var labels: [UInt8] = []
    private var batch = 0
    private var pixels = 0
    // Per-sample work buffers, reused across calls.
    private var expBuf: [Double] = []
    private var maxBuf: [Double] = []
    private var sumBuf: [Double] = []

    public init(numClasses: Int, ignoreLabel: UInt8? = 255, smooth: Double = 1e-5,
                ceWeight: Double = 1, diceWeight: Double = 1) {
        // numClasses comes from an already validated UNetConfig (> 0). With a single class there is no foreground
        // Dice term (it is 0) and the loss is CE only.
        precondition(numClasses >= 1, "SegmentationLoss needs at least 1 class, got \(numClasses)")
        self.numClasses = numClasses
        self.ignoreLabel = ignoreLabel
        self.smooth = smooth
        self.ceWeight = ceWeight
        self.diceWeight = diceWeight
    }

    /// Sums of the local batch. `logits` is [batch, numClasses, pixels] (NCHW with pixels = H·W), `labels` is
    /// [batch, pixels]. Throws when a label is neither a class id nor the ignore label.
    public func partialSums(logits: UnsafePointer<Float>, labels: UnsafePointer<UInt8>,
                            batch: Int, pixels: Int) throws -> LossSums {
        var sums = LossSums(numClasses: numClasses)
        try partialSums(logits: logits, labels: labels, batch: batch, pixels: pixels, into: &sums)
        return sums
    }

    /// `partialSums` written into `sums` (reset first; it must be for this loss's class count). Reuses every buffer,
    /// so a training step calling it allocates nothing once the shapes are fixed.
    public func partialSums(logits: UnsafePointer<Float>, labels: UnsafePointer<UInt8>,
                            batch: Int, pixels: Int, into sums: inout LossSums) throws {
        let C = numClasses, P = pixels
        precondition(sums.intersection.count == max(C - 1, 0), "partialSums(into:) got sums for another class count")
        precondition(batch >= 0 && pixels >= 0)
        let ignore: Int = ignoreLabel.map { Int($0) } ?? -1
        // Validate labels first so no state is half-updated on error.
        for i in 0 ..< batch * P {
            let y = Int(labels[i])
            if y >= C && y != ignore {
                throw LossError("label value \(y) at sample \(i / max(P, 1)), pixel \(i % max(P, 1)) is not a class id "
                    + "(0..<\(C)) nor the ignore label (\(ignoreLabel.map { String($0) } ?? "none"))")
            }
        }
        self.batch = batch
        self.pixels = P
        if probs.count != batch * C * P { probs = [Float](repeating: 0, count: batch * C * P) }
        if self.labels.count != batch * P { self.labels = [UInt8](repeating: 0, count: batch * P) }
        self.labels.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: labels, count: batch * P) }
        if expBuf.count != C * P {
            expBuf = [Double](repeating: 0, count: C * P)
            maxBuf = [Double](repeating: 0, count: P)
            sumBuf = [Double](repeating: 0, count: P)
        }
        sums.reset()
        probs.withUnsafeMutableBufferPointer { pr in
        expBuf.withUnsafeMutableBufferPointer { ex in
        maxBuf.withUnsafeMutableBufferPointer { mx in
        sumBuf.withUnsafeMutableBufferPointer { se in
            for b in 0 ..< batch {
                let z = logits + b * C * P
                let lab = labels + b * P
                let pb = pr.baseAddress! + b * C * P
                // Numerically stable softmax: subtract the per-pixel max over classes. Plane-wise loops keep
                // memory access contiguous.
                for p in 0 ..< P { mx[p] = Double(z[p]) }
                for c in 1 ..< C {
                    let zc = z + c * P
                    for p in 0 ..< P { let v = Double(zc[p]); if v > mx[p] { mx[p] = v } }
                }
                for p in 0 ..< P { se[p] = 0 }
                for c in 0 ..< C {
                    let zc = z + c * P
                    for p in 0 ..< P {
                        let e = Foundation.exp(Double(zc[p]) - mx[p])
                        ex[c * P + p] = e
                        se[p] += e
                    }
                }
                for p in 0 ..< P { se[p] = 1 / se[p] }
                for c in 0 ..< C {
                    var inter = 0.0, pred = 0.0, target = 0.0
                    for p in 0 ..< P {
                        let prob = ex[c * P + p] * se[p]
                        pb[c * P + p] = Float(prob)
                        let y = Int(lab[p])
                        if y == ignore { continue }
                        pred += prob
                        if y == c { inter += prob; target += 1 }
                    }
                    if c > 0 {
                        sums.intersection[c - 1] += inter
                        sums.predSum[c - 1] += pred
                        sums.targetSum[c - 1] += target
                    }
                }
                // CE = log Σ exp(z − max) − (z_y − max) = −log p_y, from the unnormalised sums for precision.
                var ce = 0.0, n = 0.0
                for p in 0 ..< P {
                    let y = Int(lab[p])
                    if y == ignore { continue }
                    ce += -Foundation.log(se[p]) - (Double(z[y * P + p]) - mx[p])
                    n += 1
                }
                sums.ceSum += ce
                sums.ceCount += n
            }
        }}}}
    }

    /// Foreground class k's (0-based) soft Dice dc and its gradient coefficients: coefP, ∂D/∂p_c for every valid pixel
    /// (from the denominator), and coefY, the extra ∂D/∂p_c where y = c (from the intersection).
    @inline(__always)
    private func diceTerms(_ s: LossSums, _ k: Int) -> (dc: Double, coefP: Double, coefY: Double) {
        let F = Double(numClasses - 1)
        let num = 2 * s.intersection[k] + smooth
        let raw = s.targetSum[k] + s.predSum[k] + smooth
        // torch.clip(x, 1e-8): the gradient passes only where x ≥ min.
        let den = max(raw, 1e-8)
        // D = −(1/F) Σ dc_k;  ∂dc_k/∂p_{n,k} = m_n (2 y_{n,k} / den − num / den² · [raw ≥ 1e-8]).
        return (num / den, raw >= 1e-8 ? (num / (den * den)) / F : 0, -(2 / den) / F)
    }

    /// The loss of the (global) batch whose sums are `global`.
    public func value(global s: LossSums) -> LossValue {
        var v = LossValue(total: 0, ce: 0, dice: 0, perClassDice: [])
        value(global: s, into: &v)
        return v
    }

    /// `value(global:)` written into `out`, reusing its perClassDice storage (no allocation when uniquely held).
    public func value(global s: LossSums, into out: inout LossValue) {
        let F = numClasses - 1
        if out.perClassDice.count != F { out.perClassDice = [Double](repeating: 0, count: F) }
        var sum = 0.0
        for k in 0 ..< F {
            let dc = diceTerms(s, k).dc
            out.perClassDice[k] = dc
            sum += dc
        }
        out.ce = s.ceCount > 0 ? s.ceSum / s.ceCount : 0
        out.dice = -sum / Double(max(F, 1))
        out.total = ceWeight * out.ce + diceWeight * out.dice
    }

    /// ∂(global loss)/∂(local logits) for the batch of the last `partialSums` call, written (not accumulated)
    /// into `dLogits` ([batch, numClasses, pixels]). Ignored pixels get zero gradient.
    public func gradient(global s: LossSums, into dLogits: UnsafeMutablePointer<Float>) {
        let C = numClasses, P = pixels
        precondition(probs.count == batch * C * P, "SegmentationLoss.gradient called before partialSums")
        let ignore: Int = ignoreLabel.map { Int($0) } ?? -1
        let ceScale = s.ceCount > 0 ? ceWeight / s.ceCount : 0
        // Per class k: g_k = coefP_k + coefY_k·[y=k] (k ≥ 1), g_0 = 0, scaled by the Dice weight (on stack scratch:
        // no allocation per step).
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 3 * C) { tmp in
        let gP = tmp.baseAddress!, gY = gP + C, g = gP + 2 * C
        gP.initialize(repeating: 0, count: 3 * C)
        for k in 1 ..< C {
            let t = diceTerms(s, k - 1)
            gY[k] = diceWeight * t.coefY
            gP[k] = diceWeight * t.coefP
        }
        probs.withUnsafeBufferPointer { pr in
        labels.withUnsafeBufferPointer { lab in
            for b in 0 ..< batch {
                let pb = pr.baseAddress! + b * C * P
                let db = dLogits + b * C * P
                let lb = lab.baseAddress! + b * P
                for p in 0 ..< P {
                    let y = Int(lb[p])
                    if y == ignore {
                        for c in 0 ..< C { db[c * P + p] = 0 }
                        continue
                    }
                    // Softmax backward of the Dice part: ∂D/∂z_j = p_j (g_j − Σ_k p_k g_k).
                    var dot = 0.0
                    for k in 0 ..< C {
                        let gk = gP[k] + (k == y ? gY[k] : 0)
                        g[k] = gk
                        dot += Double(pb[k * P + p]) * gk
                    }
                    for j in 0 ..< C {
                        let pj = Double(pb[j * P + p])
                        let dce = ceScale * (pj - (j == y ? 1 : 0))
                        db[j * P + p] = Float(dce + pj * (g[j] - dot))
                    }
                }
            }
        }}
        }
    }
}
