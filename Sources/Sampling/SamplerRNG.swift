import Foundation

/// Stateless counter-based random numbers for the samplers: a byte-for-byte copy of the algorithm of
/// `CounterRNG` in `Sources/Tensor/Random.swift` (Sampling may not import Tensor). Every draw is a pure function of
/// (key, counter), so a batch depends only on (seed, iteration): a resumed run needs no sampler state and the batch
/// sequence does not depend on the number of ranks.
public enum SamplerRNG {
    public static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// SplitMix64 finaliser.
    @inline(__always)
    public static func mix64(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public static func mixKey(_ parts: UInt64...) -> UInt64 { mixKey(parts) }

    /// Order-sensitive combination of key parts (seed, purpose tag, iteration, ...).
    public static func mixKey(_ parts: [UInt64]) -> UInt64 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3
        for p in parts { h = mix64(h ^ mix64(p &+ golden)) }
        return h
    }

    @inline(__always)
    public static func bits(key: UInt64, counter: UInt64) -> UInt64 {
        mix64(key ^ (counter &* golden))
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public static func uniform(key: UInt64, counter: UInt64) -> Double {
        Double(bits(key: key, counter: counter) >> 11) * 0x1p-53
    }

    /// Integer in 0..<bound from one 64-bit draw by multiply-high (Lemire without the rejection step: the bias is
    /// at most bound / 2^64, far below anything measurable for pool sizes here, and it keeps one draw per counter).
    @inline(__always)
    public static func index(key: UInt64, counter: UInt64, bound: Int) -> Int {
        precondition(bound > 0, "SamplerRNG.index: bound must be positive")
        return Int(bits(key: key, counter: counter).multipliedFullWidth(by: UInt64(bound)).high)
    }

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
