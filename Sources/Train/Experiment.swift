import Data
import DataParallel
import Foundation
import Sampling
import Tensor

/// A named sampler of the grid (e.g. "episodic-support" for the support/query ablation).
public struct NamedSampler: Codable, Sendable, Equatable {
    public var name: String
    public var sampler: SamplerConfig
}

/// A named budget of the grid ("epochs", "fixed-3000", "calibrated").
public struct NamedBudget: Codable, Sendable, Equatable {
    public var name: String
    public var budget: BudgetConfig
}

/// The experiment grid: every (budget, regime, sampler, fold) is one run with `base` as the rest of its config.
/// `ablation` samplers run only in `ablationRegimes` × `ablationBudgets` (empty = all), so the support/query
/// ablation does not multiply the whole grid.
public struct ExperimentConfig: Codable, Sendable, Equatable {
    public var name: String = "experiment"
    public var base: RunConfig = RunConfig()
    public var folds: [Int] = [0, 1, 2, 3, 4]
    public var regimes: [Regime] = [.full, .low]
    public var samplers: [NamedSampler] = [
        NamedSampler(name: "random", sampler: SamplerConfig(kind: .random)),
        NamedSampler(name: "weighted", sampler: SamplerConfig(kind: .weighted)),
        NamedSampler(name: "episodic", sampler: SamplerConfig(kind: .episodic)),
    ]
    public var budgets: [NamedBudget] = [NamedBudget(name: "epochs", budget: BudgetConfig())]
    public var ablation: [NamedSampler] = []
    public var ablationRegimes: [Regime] = []
    public var ablationBudgets: [String] = []

    public init() {}

    /// Reads an experiment file: unknown keys refused; absent ones default. `base` is itself merged over RunConfig's
    /// defaults, so protocol files carry only what they change. `overrides` (`--set base.size=64`, `--set folds=[0,1]`) apply last.
    public static func load(path: String, overrides: [String] = []) throws -> ExperimentConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw ConfigError("\(path): cannot read the experiment config") }
        let defaults = try ConfigJSON.encodeToObject(ExperimentConfig())
        let listKeys = ["samplers", "ablation", "budgets"]
        // Lists of objects are replaced wholesale (from the file, then from --set); each entry is then checked against
        // its own defaults, so entries only need the fields they change.
        let user = try ConfigJSON.object(from: data, source: path)
        var merged = try ConfigJSON.merge(defaults, user.filter { !listKeys.contains($0.key) }, source: path)
        for k in listKeys { if let v = user[k] { merged[k] = v } }
        for o in overrides { try ConfigJSON.applyOverride(&merged, o) }
        let samplerDefaults = try ConfigJSON.encodeToObject(SamplerConfig())
        let budgetDefaults = try ConfigJSON.encodeToObject(BudgetConfig())
        for (key, inner, innerDefaults) in [("samplers", "sampler", samplerDefaults), ("ablation", "sampler", samplerDefaults),
                                            ("budgets", "budget", budgetDefaults)] {
            guard let list = merged[key] else { continue }
            guard let items = list as? [[String: Any]] else { throw ConfigError("\(path): '\(key)' must be a list of {name, \(inner)} objects") }
            merged[key] = try items.enumerated().map { i, item in
                guard let name = item["name"] as? String else { throw ConfigError("\(path): \(key)[\(i)] needs a \"name\"") }
                if let extra = item.keys.first(where: { $0 != "name" && $0 != inner }) {
                    throw ConfigError("\(path): \(key)[\(i)]: unknown key '\(extra)' (expected name, \(inner))")
                }
                let v = try ConfigJSON.merge(innerDefaults, (item[inner] as? [String: Any]) ?? [:], source: "\(path) \(key)[\(i)].\(inner)")
                return ["name": name, inner: v] as [String: Any]
            }
        }
        let cfg = try ConfigJSON.decode(ExperimentConfig.self, from: merged, source: path)
        try cfg.validate()
        return cfg
    }

    public func validate() throws {
        guard !folds.isEmpty, !regimes.isEmpty, !samplers.isEmpty, !budgets.isEmpty else {
            throw ConfigError("experiment \(name): folds, regimes, samplers and budgets must each list at least one entry")
        }
        let names = (samplers + ablation).map(\.name)
        guard Set(names).count == names.count else { throw ConfigError("experiment \(name): sampler names must be unique, got \(names)") }
        guard Set(budgets.map(\.name)).count == budgets.count else { throw ConfigError("experiment \(name): budget names must be unique") }
        if let b = ablationBudgets.first(where: { n in !budgets.contains { $0.name == n } }) {
            throw ConfigError("experiment \(name): ablationBudgets names unknown budget '\(b)'")
        }
        for r in runs() { try r.config.validate() }
    }

    /// The grid in a fixed order (budget, regime, sampler, fold), each run with its directory name.
    public func runs() -> [ExperimentRun] {
        var out: [ExperimentRun] = []
        for b in budgets {
            for regime in regimes {
                var ss = samplers
                if (ablationRegimes.isEmpty || ablationRegimes.contains(regime))
                    && (ablationBudgets.isEmpty || ablationBudgets.contains(b.name)) { ss += ablation }
                for s in ss {
                    for f in folds {
                        var c = base
                        c.fold = f
                        c.regime = regime
                        c.sampler = s.sampler
                        c.budget = b.budget
                        out.append(ExperimentRun(budget: b.name, regime: regime, sampler: s.name, fold: f, config: c))
                    }
                }
            }
        }
        return out
    }
}

public struct ExperimentRun: Codable, Sendable, Equatable {
    public var budget: String
    public var regime: Regime
    public var sampler: String
    public var fold: Int
    public var config: RunConfig
    /// `runs/<budget>/<regime>/<sampler>/fold<k>` under the experiment folder.
    public var relativePath: String { "runs/\(budget)/\(regime.rawValue)/\(sampler)/fold\(fold)" }
}

/// Runs an experiment grid over the world: `groups` equal groups of ranks, runs handed out by world rank 0's work
/// queue, each group training one run at a time data-parallel. Finished runs (results.json present) are skipped;
/// unfinished ones resume from their last checkpoint. World rank 0 writes the summary and report at the end.
public enum ExperimentRunner {
    public static func run(config: ExperimentConfig, out: URL, world: Communicator, groups: Int, force: Bool,
                           report: (URL) throws -> Void) throws {
        let layout = try GroupLayout(world: world.size, groups: groups)
        let runs = config.runs()
        for r in runs { try validateBatch(globalBatch: r.config.sampler.globalBatchSize, groupSize: layout.groupSize) }
        // World rank 0 checks the folder and builds the data cache once; everyone learns the outcome.
        var failure = ""
        if world.rank == 0 {
            do {
                try prepareFolder(config: config, out: out, force: force)
                let dataset = try Dataset.open(URL(fileURLWithPath: config.base.data))
                try SliceStore.build(dataset: dataset, settings: RunData.settings(for: config.base),
                                     cacheRoot: config.base.cache.isEmpty ? nil : URL(fileURLWithPath: config.base.cache)) { msg in
                    FileHandle.standardError.write(Data(("preprocess: " + msg + "\n").utf8))
                }
                let splits = try Splits.make(dataset: dataset, seed: config.base.splitSeed, numFolds: config.base.folds)
                try checkSamplers(config: config, dataset: dataset, splits: splits)
            } catch { failure = "\(error)" }
        }
        failure = try world.broadcast(failure, root: 0)
        guard failure.isEmpty else { throw SharedFailure(failure) }

        let group = try world.splitGroups(layout)
        let pending = runs.indices.filter { !FileManager.default.fileExists(atPath: out.appendingPathComponent(runs[$0].relativePath + "/results.json").path) }
        if world.rank == 0 {
            FileHandle.standardError.write(Data("experiment \(config.name): \(runs.count) runs, \(runs.count - pending.count) already finished, \(layout.groups) group(s) of \(layout.groupSize) rank(s)\n".utf8))
        }
        let queue = try WorkQueue(world: world, group: group, runs: pending)
        while let i = try queue.next() {
            let r = runs[i]
            let dir = out.appendingPathComponent(r.relativePath)
            if group.rank == 0 {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try AtomicFile.write(try ConfigJSON.prettyData(r), to: dir.appendingPathComponent("run.json"))
                FileHandle.standardError.write(Data("[group \(layout.group(ofWorldRank: world.rank))] run \(i + 1)/\(runs.count): \(r.relativePath)\n".utf8))
            }
            let data = try RunData.prepare(config: r.config, comm: group)
            let resume = FileManager.default.fileExists(atPath: Checkpointing.latestDir(dir).path)
                || FileManager.default.fileExists(atPath: dir.appendingPathComponent("checkpoint_latest.old").path)
            let trainer = try Trainer(config: r.config, runDir: dir, comm: group, data: data, resume: resume)
            guard let result = try trainer.run() else { continue }
            try queue.submit(run: i, result: Data(String(format: "%.4f", result.bestValidationDice).utf8))
        }
        _ = try queue.finish()
        // Groups finish at different times; waiting politely keeps idle ranks off the cores others still train on.
        if let m = world as? MPICommunicator { try m.idleBarrier() } else { try world.barrier() }
        if world.rank == 0 { try report(out) }
        try world.barrier()
    }

    /// Builds every run's training pool and sampler before any training, so a grid that cannot run (a fold out of
    /// range, an episodic class pool smaller than nSupport + nQuery in some fold) is refused at once, listing every
    /// problem, instead of failing hours later.
    static func checkSamplers(config: ExperimentConfig, dataset: Dataset, splits: Splits) throws {
        let store = try SliceStore.open(dataset: dataset, settings: RunData.settings(for: config.base),
                                        cacheRoot: config.base.cache.isEmpty ? nil : URL(fileURLWithPath: config.base.cache))
        var problems: [String] = []
        for r in config.runs() {
            do {
                let fold = try RunData.fold(for: r.config, in: splits)
                let data = try RunData(store: store, splits: splits, fold: fold, test: splits.test)
                _ = try makeSampler(config: r.config.sampler, pool: data.pool, seed: Trainer.samplerSeed(r.config.seed))
            } catch {
                problems.append("\(r.relativePath): \(error)")
            }
        }
        guard problems.isEmpty else {
            throw ConfigError("experiment \(config.name): \(problems.count) run(s) cannot start:\n  " + problems.joined(separator: "\n  "))
        }
    }

    /// The folder belongs to one experiment: `experiment.json` records it; another config is refused unless `force`.
    static func prepareFolder(config: ExperimentConfig, out: URL, force: Bool) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        let file = out.appendingPathComponent("experiment.json")
        let mine = try ConfigJSON.prettyData(config)
        if let existing = fm.contents(atPath: file.path), existing != mine, !force {
            throw ConfigError("\(out.path) holds another experiment (its experiment.json differs from this config); choose another --out or pass --force to reuse it")
        }
        try AtomicFile.write(mine, to: file)
    }
}
