import Foundation
import Sampling
import Tensor

/// Which training data the run sees (PROTOCOL.md "Data"): all of the fold's cases, or a seeded patient-level fraction.
public enum Regime: String, Codable, Sendable, CaseIterable { case full, low }

public enum BudgetUnit: String, Codable, Sendable { case epochs, iterations }

/// A training budget. Every count (max, milestones, patience, validation interval) is in `unit`.
/// `calibrateIterationsPerEpoch` > 0 converts an epoch-based budget to iterations with that many iterations per epoch,
/// whatever the sampler's own epoch length: the paper's "calibrated" protocol (500 = episodic's episodes per epoch).
public struct BudgetConfig: Codable, Sendable, Equatable {
    public var unit: BudgetUnit = .epochs
    public var max: Int = 200
    /// LR milestones (×gamma at each); empty = constant learning rate.
    public var milestones: [Int] = [30, 45]
    public var gamma: Double = 0.1
    /// Early-stopping patience on mean foreground validation Dice; 0 = no early stopping.
    public var patience: Int = 20
    /// Validate (and checkpoint) every this many units.
    public var validationInterval: Int = 1
    public var calibrateIterationsPerEpoch: Int = 0

    public init() {}

    public func validate() throws {
        guard max > 0 else { throw ConfigError("budget.max must be > 0, got \(max)") }
        guard validationInterval > 0 else { throw ConfigError("budget.validationInterval must be > 0, got \(validationInterval)") }
        guard patience >= 0 else { throw ConfigError("budget.patience must be ≥ 0 (0 = no early stopping), got \(patience)") }
        guard gamma.isFinite, gamma > 0 else { throw ConfigError("budget.gamma must be a positive number, got \(gamma)") }
        if let m = milestones.first(where: { $0 <= 0 || $0 > max }) {
            throw ConfigError("budget.milestones: \(m) is outside 1...\(max) (budget.max, in \(unit.rawValue))")
        }
        guard milestones == milestones.sorted() else { throw ConfigError("budget.milestones must be ascending, got \(milestones)") }
        guard calibrateIterationsPerEpoch >= 0 else { throw ConfigError("budget.calibrateIterationsPerEpoch must be ≥ 0") }
        if calibrateIterationsPerEpoch > 0 && unit != .epochs {
            throw ConfigError("budget.calibrateIterationsPerEpoch converts an epoch budget; it needs budget.unit = \"epochs\"")
        }
    }

    /// The budget in iterations, given the sampler's iterations per epoch.
    public func resolve(samplerIterationsPerEpoch ipe: Int) -> ResolvedBudget {
        let scale: Int
        switch unit {
        case .iterations: scale = 1
        case .epochs: scale = calibrateIterationsPerEpoch > 0 ? calibrateIterationsPerEpoch : ipe
        }
        return ResolvedBudget(maxIterations: max * scale, milestones: milestones.map { $0 * scale }, gamma: gamma,
                              patienceIterations: patience * scale, validationEvery: validationInterval * scale,
                              iterationsPerEpoch: ipe, unitIterations: scale)
    }
}

/// A budget converted to iterations; `iterationsPerEpoch` is the sampler's own (for the epoch column of logs).
public struct ResolvedBudget: Codable, Sendable, Equatable {
    public var maxIterations: Int
    public var milestones: [Int]
    public var gamma: Double
    public var patienceIterations: Int
    public var validationEvery: Int
    public var iterationsPerEpoch: Int
    /// Iterations in one unit of the configured budget (1 for iteration budgets).
    public var unitIterations: Int

    public var schedule: LRSchedule { milestones.isEmpty ? .constant : .multiStep(milestones: milestones, gamma: gamma) }
    /// PyTorch's MultiStepLR stepped per epoch: during epoch e the rate has decayed once per milestone ≤ e. In
    /// iterations that is: iteration t counts milestone m·ipe once t ≥ m·ipe.
    public func lr(base: Double, iteration t: Int) -> Double { schedule.lr(base: base, at: t) }
    public func epoch(ofIteration t: Int) -> Double { Double(t) / Double(iterationsPerEpoch) }
}

public struct OptimizerConfig: Codable, Sendable, Equatable {
    /// AdamW initial learning rate and weight decay: the paper's values are lost; PyTorch's AdamW defaults are used.
    public var lr: Double = 1e-3
    public var weightDecay: Double = 1e-2
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public init() {}
    public func validate() throws {
        guard lr > 0, lr.isFinite else { throw ConfigError("optimizer.lr must be > 0, got \(lr)") }
        guard weightDecay >= 0 else { throw ConfigError("optimizer.weightDecay must be ≥ 0, got \(weightDecay)") }
        guard (0..<1).contains(beta1), (0..<1).contains(beta2) else { throw ConfigError("optimizer.beta1/beta2 must be in [0, 1)") }
    }
}

public struct LossConfig: Codable, Sendable, Equatable {
    public var ceWeight: Double = 1
    public var diceWeight: Double = 1
    public var smooth: Double = 1e-5
    public init() {}
}

/// Everything a training run is a function of (with the data and the seed). Every field has a default; JSON files need
/// only the fields they change. See README "Run configuration".
public struct RunConfig: Codable, Sendable, Equatable {
    /// nnU-Net raw dataset folder (dataset.json, imagesTr, labelsTr, ...).
    public var data: String = "data/phantom"
    /// Preprocessed slice cache folder; "" = `<data>/.episodic-cache`.
    public var cache: String = ""
    /// In-plane size slices are resized to; 0 = keep the volumes' own size.
    public var size: Int = 0
    public var fold: Int = 0
    public var folds: Int = 5
    public var regime: Regime = .full
    public var lowDataFraction: Double = 0.1
    /// Seed of the test holdout, the fold split (when no splits_final.json exists) and the low-data subsample.
    public var splitSeed: UInt64 = 12345
    public var sampler: SamplerConfig = SamplerConfig()
    public var network: UNetConfig = UNetConfig()
    public var loss: LossConfig = LossConfig()
    public var optimizer: OptimizerConfig = OptimizerConfig()
    public var budget: BudgetConfig = BudgetConfig()
    /// Seed of the weights, the sampler and dropout.
    public var seed: UInt64 = 0
    /// Slices per forward pass during validation/prediction (per rank).
    public var evalBatch: Int = 8
    /// Print a progress line every this many iterations.
    public var logEvery: Int = 10
    /// Score the test split with the best checkpoint at the end.
    public var scoreTest: Bool = true

    public init() {}

    public func validate() throws {
        try budget.validate()
        try optimizer.validate()
        do { try sampler.validate() } catch { throw ConfigError("sampler: \(error)") }
        do { try network.validate() } catch { throw ConfigError("network: \(error)") }
        guard folds >= 2 else { throw ConfigError("folds must be ≥ 2, got \(folds)") }
        guard (0..<folds).contains(fold) else { throw ConfigError("fold \(fold) is out of range 0..<\(folds)") }
        guard lowDataFraction > 0, lowDataFraction <= 1 else { throw ConfigError("lowDataFraction must be in (0, 1], got \(lowDataFraction)") }
        guard size >= 0 else { throw ConfigError("size must be ≥ 0, got \(size)") }
        if size > 0 { do { try network.validate(height: size, width: size) } catch { throw ConfigError("size: \(error)") } }
        guard evalBatch > 0 else { throw ConfigError("evalBatch must be > 0") }
        guard logEvery > 0 else { throw ConfigError("logEvery must be > 0") }
    }

    /// Reads a JSON config file (fields absent take defaults; unknown fields are refused) and applies `--set` overrides.
    public static func load(path: String?, overrides: [String] = []) throws -> RunConfig {
        var obj = try ConfigJSON.encodeToObject(RunConfig())
        if let path {
            let url = URL(fileURLWithPath: path)
            guard let data = try? Data(contentsOf: url) else { throw ConfigError("\(path): cannot read the config file") }
            obj = try ConfigJSON.merge(obj, ConfigJSON.object(from: data, source: path), source: path)
        }
        for o in overrides { try ConfigJSON.applyOverride(&obj, o) }
        let cfg = try ConfigJSON.decode(RunConfig.self, from: obj, source: path ?? "config")
        try cfg.validate()
        return cfg
    }

    public func jsonData() throws -> Data { try ConfigJSON.prettyData(self) }
}
