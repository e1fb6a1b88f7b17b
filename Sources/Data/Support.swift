import Foundation

/// Errors of the Data module. Every message names the file (or case / option) and what is wrong.
public struct DataError: Error, LocalizedError, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
    public var errorDescription: String? { description }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator for the Data module's seeded choices
/// (splits, phantom). Data may not import Tensor, so it carries its own; the algorithm matches `CounterRNG`'s mixer.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }

    public static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A key for one purpose from several parts (seed, purpose tag, index ...), so streams do not overlap.
    public static func key(_ parts: UInt64...) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for p in parts { h = mix(h ^ mix(p &+ 0x9E37_79B9_7F4A_7C15)) }
        return h
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform integer in 0..<n (n > 0), by rejection so there is no modulo bias.
    public mutating func below(_ n: Int) -> Int {
        precondition(n > 0)
        let bound = UInt64(n)
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let r = next()
            if r < limit { return Int(r % bound) }
        }
    }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    /// Fisher–Yates; our own so the permutation for a seed never depends on the standard library's algorithm.
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = below(i + 1)
            if i != j { a.swapAt(i, j) }
        }
    }
}

/// String hash for tags (purpose names) fed into `SplitMix64.key`.
func fnv1a64(_ s: String, offset: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var h = offset
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}

/// Atomic file writes for the Data module (Data sits below Tensor, so it cannot use `AtomicFile`): write
/// `<name>.tmp-<pid>` beside the target, then rename over it.
enum AtomicWrite {
    static func write(_ data: Data, to url: URL) throws {
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(url.lastPathComponent + ".tmp-\(ProcessInfo.processInfo.processIdentifier)")
        do {
            try data.write(to: tmp)
        } catch {
            throw DataError("\(url.path): cannot write (\(error.localizedDescription))")
        }
        if rename(tmp.path, url.path) != 0 {
            let msg = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw DataError("\(url.path): cannot rename the temporary file into place (\(msg))")
        }
    }

    static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(try enc.encode(value), to: url)
    }
}

extension FileManager {
    func isDirectory(_ url: URL) -> Bool {
        var isDir: ObjCBool = false
        return fileExists(atPath: url.path, isDirectory: &isDir) && isDir.boolValue
    }
}
