import Foundation

/// Statistics over folds for the report.
public enum ReportStats {
    /// Mean and population std (ddof = 0, as numpy's default and Metrics' aggregate) of the finite values; nil if none.
    public static func meanStd(_ xs: [Double]) -> (mean: Double, std: Double)? {
        let f = xs.filter(\.isFinite)
        guard !f.isEmpty else { return nil }
        let m = f.reduce(0, +) / Double(f.count)
        let v = f.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(f.count)
        return (m, v.squareRoot())
    }

    /// Two-sided sign-flip permutation test of paired differences: the share of the 2^n sign assignments whose
    /// |Σ sᵢdᵢ| is at least the observed |Σ dᵢ| (the observed assignment included). Exact for n ≤ `exactLimit`;
    /// above it a fixed-seed Monte Carlo estimate with 2^16 draws ((hits + 1)/(draws + 1)). nil for n = 0.
    public static func signFlipPValue(_ d: [Double], exactLimit: Int = 16) -> (p: Double, exact: Bool)? {
        let n = d.count
        guard n > 0 else { return nil }
        let observed = abs(d.reduce(0, +))
        // Ties within rounding count as "at least as extreme": sums of the same numbers in another order may differ
        // in the last bits.
        let tol = 1e-9 * max(1, d.reduce(0) { $0 + abs($1) })
        if n <= exactLimit {
            var hits = 0
            for mask in 0..<(1 << n) {
                var s = 0.0
                for i in 0..<n { s += (mask >> i) & 1 == 1 ? -d[i] : d[i] }
                if abs(s) >= observed - tol { hits += 1 }
            }
            return (Double(hits) / Double(1 << n), true)
        }
        var state: UInt64 = 0x5EED_0F_F01D5
        func next() -> UInt64 { // SplitMix64: deterministic, so the report is reproducible.
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let draws = 1 << 16
        var hits = 0
        for _ in 0..<draws {
            var s = 0.0
            var bits = next(), used = 0
            for i in 0..<n {
                if used == 64 { bits = next(); used = 0 }
                s += bits & 1 == 1 ? -d[i] : d[i]
                bits >>= 1; used += 1
            }
            if abs(s) >= observed - tol { hits += 1 }
        }
        return (Double(hits + 1) / Double(draws + 1), false)
    }

    /// Paired t statistic mean(d) / (sd(d)/√n) with the sample sd (ddof = 1); nil for n < 2 or when all differences are
    /// equal to zero; ±inf when the differences are all equal and non-zero.
    public static func pairedT(_ d: [Double]) -> Double? {
        let n = d.count
        guard n >= 2 else { return nil }
        let m = d.reduce(0, +) / Double(n)
        let v = d.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(n - 1)
        if v <= 1e-30 * max(1, m * m) { return m == 0 ? nil : (m > 0 ? .infinity : -.infinity) }
        return m / (v / Double(n)).squareRoot()
    }

    /// Two-sided p-value of a t statistic with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
    public static func tTestPValue(t: Double, df: Int) -> Double? {
        guard df >= 1, !t.isNaN else { return nil }
        if t.isInfinite { return 0 }
        let x = Double(df) / (Double(df) + t * t)
        return regularizedIncompleteBeta(a: Double(df) / 2, b: 0.5, x: x)
    }

    /// I_x(a, b) by its continued fraction (modified Lentz), using the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) where
    /// the fraction converges slowly.
    static func regularizedIncompleteBeta(a: Double, b: Double, x: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnBeta: Double = lgamma(a) + lgamma(b) - lgamma(a + b)
        let lnPow: Double = a * log(x) + b * log(1 - x)
        let lnFront = lnPow - lnBeta
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(a: b, b: a, x: 1 - x) }
        let tiny = 1e-300
        var f = 1.0, c = 1.0, dd = 0.0
        for i in 0...400 {
            let m = Double(i / 2)
            let num: Double
            if i == 0 {
                num = 1
            } else if i % 2 == 0 {
                num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            } else {
                num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
            }
            dd = 1 + num * dd
            if abs(dd) < tiny { dd = tiny }
            dd = 1 / dd
            c = 1 + num / c
            if abs(c) < tiny { c = tiny }
            let delta = c * dd
            f *= delta
            if abs(1 - delta) < 1e-14 { break }
        }
        return exp(lnFront) * (f - 1) / a
    }
}
