import Foundation

/// Stateless counter-based random numbers: every draw is a pure function of (key, counter), so a random choice
/// depends only on (seed, purpose, iteration, index) — never on how many ranks exist or how many draws came before.
/// This makes runs world-size invariant and trivially resumable.
///
/// Algorithm (Tensor, Sampling and Train all draw from this one module, so their streams agree by construction):
/// - `mix64(z)`: the SplitMix64 finaliser
///   `z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB; z ^ z>>31` (wrapping).
/// - `bits(key, counter) = mix64(key ^ (counter * 0x9E3779B97F4A7C15))` (wrapping multiply).
/// - `mixKey(p0, p1, ...)`: `h = 0x243F6A8885A308D3; for p in parts { h = mix64(h ^ mix64(p &+ 0x9E3779B97F4A7C15)) }`.
///   Order matters: mixKey(a, b) != mixKey(b, a).
/// - `uniform = Double(bits >> 11) * 2^-53`, in [0, 1).
/// - `normal(key, c)`: Box–Muller on u1 = 1 - uniform(key, 2c) ∈ (0, 1], u2 = uniform(key, 2c+1):
///   `sqrt(-2 ln u1) * cos(2π u2)`.
public enum CounterRNG {
    public static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always)
    public static func mix64(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Derives one key from several parts (seed, purpose tag, iteration, index, ...).
    public static func mixKey(_ parts: UInt64...) -> UInt64 { mixKey(parts) }

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

    /// Standard normal draw number `counter` of stream `key` (uses the uniforms at counters 2c and 2c+1).
    @inline(__always)
    public static func normal(key: UInt64, counter: UInt64) -> Double {
        let u1 = 1.0 - uniform(key: key, counter: counter &* 2)
        let u2 = uniform(key: key, counter: counter &* 2 &+ 1)
        return (-2.0 * Foundation.log(u1)).squareRoot() * Foundation.cos(2.0 * Double.pi * u2)
    }

    /// Integer in 0..<bound from one 64-bit draw by multiply-high (Lemire without the rejection step: the bias is
    /// at most bound / 2^64, far below anything measurable for pool sizes here, and it keeps one draw per counter).
    @inline(__always)
    public static func index(key: UInt64, counter: UInt64, bound: Int) -> Int {
        precondition(bound > 0, "CounterRNG.index: bound must be positive")
        return Int(bits(key: key, counter: counter).multipliedFullWidth(by: UInt64(bound)).high)
    }
}
