import Foundation
import Sampling

/// One validation point of a run: both budget units side by side, so curves can be drawn against either.
public struct CurveRow: Codable, Sendable, Equatable {
    public var iteration: Int
    public var epoch: Double
    public var samplesSeen: Int
    public var lr: Double
    /// Mean training loss over the iterations since the previous row.
    public var trainLoss: Double
    public var valMeanDice: Double
    /// Per foreground class (index 0 = class 1), NaN where no validation case has the class.
    public var valDice: [Double]
}

/// Everything besides weights and optimiser moments that a resumed run needs to continue exactly.
public struct RunState: Codable, Sendable, Equatable {
    public var formatVersion = 1
    /// Fingerprint of the run config; `--resume` refuses a checkpoint made with another config.
    public var configHash: String
    /// Iterations completed.
    public var iteration: Int = 0
    public var bestDice: Double = -1
    public var bestIteration: Int = -1
    public var curve: [CurveRow] = []
    public var exposure: ExposureCounter
    public var lossSinceLastRow: Double = 0
    public var itersSinceLastRow: Int = 0
    public var finished = false
    public var stopReason: String = ""
}

enum Hashing {
    /// FNV-1a 64 over bytes, as hex: a stable fingerprint for configs (not security).
    static func fnv1a(_ data: Data) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return String(format: "%016llx", h)
    }
}
