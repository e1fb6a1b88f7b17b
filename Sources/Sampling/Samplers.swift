import Foundation

/// A batch sampler: a batch is a pure function of (seed, iteration), so resuming needs no saved sampler state and
/// the sequence of global batches is the same for any number of ranks.
public protocol BatchSampler: Sendable {
    /// Slice ids (from `SlicePool.sliceIDs`) of the global batch of `iteration`.
    func batch(iteration: Int) -> [Int]
    /// Training slices per batch.
    var batchSize: Int { get }
    var iterationsPerEpoch: Int { get }
    /// Non-fatal notes found at construction (e.g. episodic classes sampled with replacement); empty if none.
    var warnings: [String] { get }
    /// The foreground classes an episode was built from (for logging); nil for non-episodic samplers.
    func episodeClasses(iteration: Int) -> [Int]?
}

extension BatchSampler {
    public var warnings: [String] { [] }
    public func episodeClasses(iteration: Int) -> [Int]? { nil }
}

// MARK: - random

/// B slices i.i.d. uniform with replacement.
public struct RandomSampler: BatchSampler {
    public let pool: SlicePool
    public let batchSize: Int
    public let seed: UInt64

    public init(pool: SlicePool, batchSize: Int = 16, seed: UInt64) throws {
        guard batchSize > 0 else { throw SamplingError("sampler.batchSize must be positive, got \(batchSize)") }
        self.pool = pool
        self.batchSize = batchSize
        self.seed = seed
    }

    /// ceil(training slices / B).
    public var iterationsPerEpoch: Int { (pool.count + batchSize - 1) / batchSize }

    public func batch(iteration: Int) -> [Int] {
        let key = SamplerRNG.iterationKey(seed: seed, purpose: .random, iteration: iteration)
        return (0..<batchSize).map { j in
            pool.sliceIDs[SamplerRNG.index(key: key, counter: UInt64(j), bound: pool.count)]
        }
    }
}

// MARK: - alias table

/// Walker/Vose alias table: O(n) build, O(1) draw of index i with probability weights[i] / sum(weights).
public struct AliasTable: Sendable {
    /// Probability of keeping column i (otherwise take alias[i]).
    public let keep: [Double]
    public let alias: [Int]

    public init(weights: [Double]) throws {
        let n = weights.count
        guard n > 0 else { throw SamplingError("alias table: no weights") }
        guard weights.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw SamplingError("alias table: weights must be finite and non-negative")
        }
        let total = weights.reduce(0, +)
        guard total > 0 else { throw SamplingError("alias table: all weights are zero") }
        // Scaled so the mean column mass is 1.
        var scaled = weights.map { $0 * Double(n) / total }
        var keep = [Double](repeating: 1, count: n)
        var alias = Array(0..<n)
        var small: [Int] = [], large: [Int] = []
        for i in 0..<n { if scaled[i] < 1 { small.append(i) } else { large.append(i) } }
        while let s = small.popLast() {
            guard let l = large.popLast() else { small.append(s); break }
            keep[s] = scaled[s]
            alias[s] = l
            // l gives away (1 - scaled[s]) of its mass to fill column s.
            scaled[l] = (scaled[l] + scaled[s]) - 1
            if scaled[l] < 1 { small.append(l) } else { large.append(l) }
        }
        // Whatever remains is 1 up to rounding: those columns keep themselves entirely.
        for i in small { keep[i] = 1; alias[i] = i }
        for i in large { keep[i] = 1; alias[i] = i }
        self.keep = keep
        self.alias = alias
    }

    public var count: Int { keep.count }

    /// Probabilities implied by the table: column i contributes keep[i]/n to i and (1-keep[i])/n to alias[i].
    public func impliedProbabilities() -> [Double] {
        let n = Double(count)
        var p = [Double](repeating: 0, count: count)
        for i in 0..<count {
            p[i] += keep[i] / n
            p[alias[i]] += (1 - keep[i]) / n
        }
        return p
    }

    /// One draw from two counter-based numbers: a column and a coin.
    @inline(__always)
    public func draw(key: UInt64, counter: UInt64) -> Int {
        let column = SamplerRNG.index(key: key, counter: counter &* 2, bound: count)
        let coin = SamplerRNG.uniform(key: key, counter: counter &* 2 &+ 1)
        return coin < keep[column] ? column : alias[column]
    }
}

// MARK: - weighted

public enum ClassFrequency: String, Codable, Sendable, CaseIterable {
    /// f_c = fraction of pool slices containing class c (default).
    case slicePrevalence
    /// f_c = fraction of pool pixels that are class c.
    case pixelShare
}

/// i.i.d. with replacement, p(s) ∝ 1 / min_{c ∈ C(s)} f_c (C(s): foreground classes present in s), so a slice
/// counts as rare as its rarest class. Slices without foreground get weight 1 / max_c f_c, the weight of the most
/// frequent foreground class (they are kept, but as unattractive as the commonest class). If no slice has any
/// foreground, all weights are equal.
public struct WeightedSampler: BatchSampler {
    public let pool: SlicePool
    public let batchSize: Int
    public let seed: UInt64
    public let frequency: ClassFrequency
    /// Unnormalised weight per pool position.
    public let weights: [Double]
    public let table: AliasTable

    public init(pool: SlicePool, batchSize: Int = 16, frequency: ClassFrequency = .slicePrevalence, seed: UInt64) throws {
        guard batchSize > 0 else { throw SamplingError("sampler.batchSize must be positive, got \(batchSize)") }
        self.pool = pool
        self.batchSize = batchSize
        self.seed = seed
        self.frequency = frequency
        self.weights = WeightedSampler.weights(pool: pool, frequency: frequency)
        self.table = try AliasTable(weights: weights)
    }

    public static func classFrequencies(pool: SlicePool, frequency: ClassFrequency) -> [Double] {
        (0..<pool.numClasses).map { c in
            frequency == .slicePrevalence ? pool.slicePrevalence(c) : pool.pixelShare(c)
        }
    }

    public static func weights(pool: SlicePool, frequency: ClassFrequency) -> [Double] {
        let f = classFrequencies(pool: pool, frequency: frequency)
        let fg = (1..<pool.numClasses).map { f[$0] }.filter { $0 > 0 }
        guard let maxF = fg.max() else { return [Double](repeating: 1, count: pool.count) }
        return pool.presentClasses.map { present in
            // A present class always has f_c > 0, so the minimum is positive.
            guard let minF = present.map({ f[$0] }).min() else { return 1 / maxF }
            return 1 / minF
        }
    }

    public var iterationsPerEpoch: Int { (pool.count + batchSize - 1) / batchSize }

    public func batch(iteration: Int) -> [Int] {
        let key = SamplerRNG.iterationKey(seed: seed, purpose: .weighted, iteration: iteration)
        return (0..<batchSize).map { j in pool.sliceIDs[table.draw(key: key, counter: UInt64(j))] }
    }
}

// MARK: - episodic

public enum EpisodeUse: String, Codable, Sendable, CaseIterable {
    case support, query, both
}

/// One episode: k classes, and per class its support and query slice ids.
public struct Episode: Sendable, Equatable {
    public let classes: [Int]
    public let support: [[Int]]
    public let query: [[Int]]
    /// Training slices in order: per class (in `classes` order) its support, then its query slices, filtered by `use`.
    public let slices: [Int]
}

/// Each batch is an episode: k foreground classes uniformly without replacement among the classes with a
/// non-empty pool; per class nSupport + nQuery distinct slices from that class's pool (uniformly without
/// replacement), the first nSupport being support, the rest query; training uses support, query or both. A slice
/// may appear under two classes of one episode (it contains both); it is distinct within each class's draw.
///
/// A class whose pool is smaller than nSupport + nQuery is refused by default (error naming the class and sizes).
/// With `allowReplacement`, such a class takes its whole pool in random order and fills the rest with draws with
/// replacement from the same pool; `warnings` lists those classes.
public struct EpisodicSampler: BatchSampler {
    public let pool: SlicePool
    public let k: Int
    public let nSupport: Int
    public let nQuery: Int
    public let use: EpisodeUse
    public let episodesPerEpoch: Int
    public let allowReplacement: Bool
    public let seed: UInt64
    /// Foreground classes with a non-empty pool (the classes an episode may choose from).
    public let eligibleClasses: [Int]
    public let warnings: [String]

    public init(pool: SlicePool, k: Int = 4, nSupport: Int = 2, nQuery: Int = 2, use: EpisodeUse = .both,
                episodesPerEpoch: Int = 500, allowReplacement: Bool = false, seed: UInt64) throws {
        guard k > 0 else { throw SamplingError("sampler.k must be positive, got \(k)") }
        guard nSupport >= 0, nQuery >= 0 else {
            throw SamplingError("sampler.nSupport and sampler.nQuery must be non-negative, got \(nSupport) and \(nQuery)")
        }
        switch use {
        case .support where nSupport == 0: throw SamplingError("sampler.use = support needs sampler.nSupport > 0")
        case .query where nQuery == 0: throw SamplingError("sampler.use = query needs sampler.nQuery > 0")
        case .both where nSupport + nQuery == 0: throw SamplingError("sampler.nSupport + sampler.nQuery must be positive")
        default: break
        }
        guard episodesPerEpoch > 0 else {
            throw SamplingError("sampler.episodesPerEpoch must be positive, got \(episodesPerEpoch)")
        }
        let eligible = pool.nonEmptyForegroundClasses
        guard k <= eligible.count else {
            throw SamplingError("sampler.k = \(k) is larger than the \(eligible.count) foreground classes with a non-empty "
                                + "pool in this training set (\(eligible.map { pool.className($0) }.joined(separator: ", ")))")
        }
        let need = nSupport + nQuery
        var warnings: [String] = []
        for c in eligible where pool.slicesContaining[c].count < need {
            let size = pool.slicesContaining[c].count
            if !allowReplacement {
                throw SamplingError("episodic sampler: \(pool.className(c)) has only \(size) slice(s) containing it, fewer than "
                                    + "nSupport + nQuery = \(need); lower sampler.nSupport/nQuery or set "
                                    + "sampler.allowReplacement = true to sample it with replacement")
            }
            warnings.append("episodic sampler: \(pool.className(c)) has only \(size) slice(s) for nSupport + nQuery = \(need); "
                            + "its episodes repeat slices (allowReplacement)")
        }
        self.pool = pool
        self.k = k
        self.nSupport = nSupport
        self.nQuery = nQuery
        self.use = use
        self.episodesPerEpoch = episodesPerEpoch
        self.allowReplacement = allowReplacement
        self.seed = seed
        self.eligibleClasses = eligible
        self.warnings = warnings
    }

    public var perClass: Int {
        switch use {
        case .support: return nSupport
        case .query: return nQuery
        case .both: return nSupport + nQuery
        }
    }

    public var batchSize: Int { k * perClass }
    public var iterationsPerEpoch: Int { episodesPerEpoch }

    public func batch(iteration: Int) -> [Int] { episode(iteration: iteration).slices }

    public func episodeClasses(iteration: Int) -> [Int]? { episode(iteration: iteration).classes }

    public func episode(iteration: Int) -> Episode {
        let key = SamplerRNG.iterationKey(seed: seed, purpose: .episodic, iteration: iteration)
        // Classes: partial Fisher–Yates over the eligible list, draws at counters 0..<k.
        let classKey = SamplerRNG.mixKey(key, 0)
        var candidates = eligibleClasses
        for i in 0..<k {
            let j = i + SamplerRNG.index(key: classKey, counter: UInt64(i), bound: candidates.count - i)
            candidates.swapAt(i, j)
        }
        let classes = Array(candidates[0..<k])
        let need = nSupport + nQuery
        var support: [[Int]] = [], query: [[Int]] = [], slices: [Int] = []
        slices.reserveCapacity(batchSize)
        for (slot, c) in classes.enumerated() {
            let members = pool.slicesContaining[c]
            let drawn = EpisodicSampler.draw(need, from: members, key: SamplerRNG.mixKey(key, 1, UInt64(slot)))
            let ids = drawn.map { pool.sliceIDs[$0] }
            let s = Array(ids[0..<nSupport]), q = Array(ids[nSupport...])
            support.append(s)
            query.append(q)
            if use != .query { slices += s }
            if use != .support { slices += q }
        }
        return Episode(classes: classes, support: support, query: query, slices: slices)
    }

    /// `n` elements of `members` in uniformly random order: distinct when the pool is large enough (Floyd's
    /// subset + shuffle, O(n) regardless of the pool size), else the whole pool then draws with replacement.
    static func draw(_ n: Int, from members: [Int], key: UInt64) -> [Int] {
        let m = members.count
        var counter: UInt64 = 0
        func next(_ bound: Int) -> Int {
            defer { counter += 1 }
            return SamplerRNG.index(key: key, counter: counter, bound: bound)
        }
        var picked: [Int] = []
        picked.reserveCapacity(n)
        if n <= m {
            var chosen = Set<Int>()
            for j in (m - n)..<m {
                let t = next(j + 1)
                let v = chosen.contains(t) ? j : t
                chosen.insert(v)
                picked.append(v)
            }
        } else {
            picked = Array(0..<m)
            for _ in m..<n { picked.append(next(m)) }
        }
        // Floyd's insertion order is not a uniform permutation; shuffle so the support/query split is random.
        if picked.count > 1 {
            for i in stride(from: picked.count - 1, to: 0, by: -1) { picked.swapAt(i, next(i + 1)) }
        }
        return picked.map { members[$0] }
    }
}
