import Foundation

/// Optional per-layer wall-clock accounting for `episodic bench --profile`. Disabled by default: then start() is a
/// branch and stop() does nothing (no allocation on the training path).
public enum Profiler {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) static var totals: [String: Double] = [:]

    @inline(__always)
    static func start() -> UInt64 { enabled ? DispatchTime.now().uptimeNanoseconds : 0 }

    @inline(__always)
    static func stop(_ t0: UInt64, _ label: @autoclosure () -> String) {
        guard enabled else { return }
        totals[label(), default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    }

    public static func reset() { totals = [:] }

    /// (label, seconds) sorted by time, largest first.
    public static func report() -> [(String, Double)] { totals.sorted { $0.value > $1.value } }
}
