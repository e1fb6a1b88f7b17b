import Foundation

public enum SamplerKind: String, Codable, Sendable, CaseIterable {
    case random, weighted, episodic
}

/// Sampler part of a run config. JSON keys = property names; missing keys take the defaults below, unknown keys
/// and unknown values are errors.
/// - kind: random | weighted | episodic
/// - batchSize (16): slices per batch for random/weighted; ignored by episodic, whose batch is k × slices per class
/// - frequency (slicePrevalence | pixelShare): f_c of the weighted sampler
/// - k (4), nSupport (2), nQuery (2), use (support | query | both = default): the episode; the paper's values are
///   unknown, these defaults give 16 slices like the other samplers
/// - episodesPerEpoch (500): iterations per epoch of the episodic sampler
/// - allowReplacement (false): episodic classes with fewer than nSupport + nQuery slices are sampled with
///   replacement (warning) instead of refused
public struct SamplerConfig: Codable, Sendable, Equatable {
    public var kind: SamplerKind
    public var batchSize: Int
    public var frequency: ClassFrequency
    public var k: Int
    public var nSupport: Int
    public var nQuery: Int
    public var use: EpisodeUse
    public var episodesPerEpoch: Int
    public var allowReplacement: Bool

    public init(kind: SamplerKind = .random, batchSize: Int = 16, frequency: ClassFrequency = .slicePrevalence,
                k: Int = 4, nSupport: Int = 2, nQuery: Int = 2, use: EpisodeUse = .both,
                episodesPerEpoch: Int = 500, allowReplacement: Bool = false) {
        self.kind = kind
        self.batchSize = batchSize
        self.frequency = frequency
        self.k = k
        self.nSupport = nSupport
        self.nQuery = nQuery
        self.use = use
        self.episodesPerEpoch = episodesPerEpoch
        self.allowReplacement = allowReplacement
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, batchSize, frequency, k, nSupport, nQuery, use, episodesPerEpoch, allowReplacement
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public static var optionNames: [String] { CodingKeys.allCases.map(\.stringValue) }

    public init(from decoder: Decoder) throws {
        let raw = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(SamplerConfig.optionNames)
        if let unknown = raw.allKeys.map(\.stringValue).first(where: { !known.contains($0) }) {
            throw SamplingError("sampler config: unknown option '\(unknown)' (known: \(SamplerConfig.optionNames.joined(separator: ", ")))")
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SamplerConfig()
        func enumValue<E: RawRepresentable & CaseIterable>(_ key: CodingKeys, _ def: E) throws -> E where E.RawValue == String {
            guard let s = try c.decodeIfPresent(String.self, forKey: key) else { return def }
            guard let v = E(rawValue: s) else {
                throw SamplingError("sampler config: unknown \(key.stringValue) '\(s)' (expected \(E.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return v
        }
        kind = try enumValue(.kind, d.kind)
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        frequency = try enumValue(.frequency, d.frequency)
        k = try c.decodeIfPresent(Int.self, forKey: .k) ?? d.k
        nSupport = try c.decodeIfPresent(Int.self, forKey: .nSupport) ?? d.nSupport
        nQuery = try c.decodeIfPresent(Int.self, forKey: .nQuery) ?? d.nQuery
        use = try enumValue(.use, d.use)
        episodesPerEpoch = try c.decodeIfPresent(Int.self, forKey: .episodesPerEpoch) ?? d.episodesPerEpoch
        allowReplacement = try c.decodeIfPresent(Bool.self, forKey: .allowReplacement) ?? d.allowReplacement
    }

    /// `--set sampler.<key>=<value>` style override; the key is a property name.
    public func setting(_ key: String, to value: String) throws -> SamplerConfig {
        var copy = self
        func int() throws -> Int {
            guard let v = Int(value) else { throw SamplingError("sampler.\(key): '\(value)' is not an integer") }
            return v
        }
        func parse<E: RawRepresentable & CaseIterable>(_: E.Type) throws -> E where E.RawValue == String {
            guard let v = E(rawValue: value) else {
                throw SamplingError("sampler.\(key): unknown value '\(value)' (expected \(E.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return v
        }
        switch key {
        case "kind": copy.kind = try parse(SamplerKind.self)
        case "batchSize": copy.batchSize = try int()
        case "frequency": copy.frequency = try parse(ClassFrequency.self)
        case "k": copy.k = try int()
        case "nSupport": copy.nSupport = try int()
        case "nQuery": copy.nQuery = try int()
        case "use": copy.use = try parse(EpisodeUse.self)
        case "episodesPerEpoch": copy.episodesPerEpoch = try int()
        case "allowReplacement":
            switch value.lowercased() {
            case "true", "1", "yes": copy.allowReplacement = true
            case "false", "0", "no": copy.allowReplacement = false
            default: throw SamplingError("sampler.allowReplacement: '\(value)' is not true or false")
            }
        default:
            throw SamplingError("sampler: unknown option '\(key)' (known: \(SamplerConfig.optionNames.joined(separator: ", ")))")
        }
        return copy
    }

    /// Slices per global batch: batchSize for random/weighted, k × (slices per class used) for episodic.
    public var globalBatchSize: Int {
        switch kind {
        case .random, .weighted: return batchSize
        case .episodic:
            switch use {
            case .support: return k * nSupport
            case .query: return k * nQuery
            case .both: return k * (nSupport + nQuery)
            }
        }
    }

    /// Checks that do not need the pool (the pool-dependent ones happen in `makeSampler`).
    public func validate() throws {
        switch kind {
        case .random, .weighted:
            guard batchSize > 0 else { throw SamplingError("sampler.batchSize must be positive, got \(batchSize)") }
        case .episodic:
            guard k > 0 else { throw SamplingError("sampler.k must be positive, got \(k)") }
            guard nSupport >= 0, nQuery >= 0 else {
                throw SamplingError("sampler.nSupport and sampler.nQuery must be non-negative, got \(nSupport) and \(nQuery)")
            }
            if use == .support && nSupport == 0 { throw SamplingError("sampler.use = support needs sampler.nSupport > 0") }
            if use == .query && nQuery == 0 { throw SamplingError("sampler.use = query needs sampler.nQuery > 0") }
            if nSupport + nQuery == 0 { throw SamplingError("sampler.nSupport + sampler.nQuery must be positive") }
            guard episodesPerEpoch > 0 else {
                throw SamplingError("sampler.episodesPerEpoch must be positive, got \(episodesPerEpoch)")
            }
        }
    }
}

public func makeSampler(config: SamplerConfig, pool: SlicePool, seed: UInt64) throws -> any BatchSampler {
    try config.validate()
    switch config.kind {
    case .random:
        return try RandomSampler(pool: pool, batchSize: config.batchSize, seed: seed)
    case .weighted:
        return try WeightedSampler(pool: pool, batchSize: config.batchSize, frequency: config.frequency, seed: seed)
    case .episodic:
        return try EpisodicSampler(pool: pool, k: config.k, nSupport: config.nSupport, nQuery: config.nQuery,
                                   use: config.use, episodesPerEpoch: config.episodesPerEpoch,
                                   allowReplacement: config.allowReplacement, seed: seed)
    }
}
