import CounterRandom

/// The samplers draw from the shared counter-based generator: a batch is a pure function of (seed, iteration), so a
/// resumed run needs no sampler state and the batch sequence does not depend on the number of ranks.
public typealias SamplerRNG = CounterRNG

extension CounterRNG {
    /// Purpose tags keep the streams of different samplers / uses independent for the same seed.
    enum Purpose: UInt64 {
        case random = 0x5241_4E44   // "RAND"
        case weighted = 0x5747_4854 // "WGHT"
        case episodic = 0x4550_4953 // "EPIS"
    }

    static func iterationKey(seed: UInt64, purpose: Purpose, iteration: Int) -> UInt64 {
        mixKey(seed, purpose.rawValue, UInt64(bitPattern: Int64(iteration)))
    }
}
