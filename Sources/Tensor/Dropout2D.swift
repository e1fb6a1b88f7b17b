/// Identifies the dropout masks of one training step: local sample i is global sample firstGlobalSample+i, so a
/// mask is a pure function of (seed, step, global sample, layer, channel), however the batch is split over ranks.
public struct DropoutKey: Sendable, Equatable {
    public var seed: UInt64
    public var step: UInt64
    public var firstGlobalSample: Int
    public init(seed: UInt64, step: UInt64, firstGlobalSample: Int) {
        self.seed = seed
        self.step = step
        self.firstGlobalSample = firstGlobalSample
    }
}

/// Dropout2d: zeroes whole channels with probability p, scales kept channels by 1/(1-p). The mask is stored per
/// (sample, channel) so backward multiplies by the same factors. p = 0 or not training → identity.
struct Dropout2D {
    let channels: Int
    let p: Double
    let layerID: UInt64

    /// Purpose tag so dropout streams never coincide with init or other streams of the same seed.
    static let purpose: UInt64 = 0x4452_4F50 // "DROP"

    /// Key of one (sample, layer) stream; equals CounterRNG.mixKey(seed, purpose, step, sample, layer) without the
    /// variadic array allocation.
    @inline(__always)
    static func streamKey(_ k: DropoutKey, sample: Int, layer: UInt64) -> UInt64 {
        @inline(__always) func fold(_ h: UInt64, _ part: UInt64) -> UInt64 { CounterRNG.mix64(h ^ CounterRNG.mix64(part &+ CounterRNG.golden)) }
        var h: UInt64 = 0x243F_6A88_85A3_08D3
        h = fold(h, k.seed)
        h = fold(h, purpose)
        h = fold(h, k.step)
        h = fold(h, UInt64(bitPattern: Int64(sample)))
        return fold(h, layer)
    }

    /// Fills mask[n*channels + c] with 0 or 1/(1-p). Returns false (mask untouched) when dropout is the identity.
    func makeMask(_ mask: UnsafeMutablePointer<Float>, batch: Int, key: DropoutKey, training: Bool) -> Bool {
        guard training, p > 0 else { return false }
        let scale = Float(1.0 / (1.0 - p))
        for n in 0..<batch {
            let sk = Dropout2D.streamKey(key, sample: key.firstGlobalSample + n, layer: layerID)
            for c in 0..<channels {
                mask[n * channels + c] = CounterRNG.uniform(key: sk, counter: UInt64(c)) < p ? 0 : scale
            }
        }
        return true
    }

    /// x[n, c, :] *= mask[n, c] in place (forward, and backward on the gradient).
    static func apply(_ x: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int) {
        for nc in 0..<(batch * channels) {
            let m = mask[nc]
            let p = x + nc * plane
            if m == 0 { zeroFill(p, plane) } else { for i in 0..<plane { p[i] *= m } }
        }
    }
}
