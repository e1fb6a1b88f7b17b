import Foundation
import Metrics
import Sampling

// Reading an experiment folder for the report. The report decodes its own narrow, lenient views of results.json
// rather than RunResult itself: an older results.json must stay readable when RunConfig grows a field, and a Double
// may arrive as a number, as "nan"/"inf"/"-inf" (ConfigJSON.prettyData) or as null (Metrics' scores).

/// A Double that accepts a number, null (→ NaN) or the strings "nan", "inf", "-inf".
struct LenientDouble: Decodable {
    let value: Double
    init(_ v: Double) { value = v }
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { value = .nan; return }
        if let d = try? c.decode(Double.self) { value = d; return }
        let s = try c.decode(String.self)
        switch s.lowercased() {
        case "nan": value = .nan
        case "inf", "+inf", "infinity": value = .infinity
        case "-inf", "-infinity": value = -.infinity
        default:
            guard let d = Double(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "'\(s)' is not a number")
            }
            value = d
        }
    }
}

extension KeyedDecodingContainer {
    func lenientDouble(_ key: Key) throws -> Double { try decodeIfPresent(LenientDouble.self, forKey: key)?.value ?? .nan }
}

/// One validation row of a run's curve, as the report needs it.
struct ReportCurvePoint: Decodable {
    var iteration: Int
    var epoch: Double
    var valMeanDice: Double
    enum CodingKeys: String, CodingKey { case iteration, epoch, valMeanDice }
    init(iteration: Int, epoch: Double, valMeanDice: Double) {
        self.iteration = iteration; self.epoch = epoch; self.valMeanDice = valMeanDice
    }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        iteration = try c.decode(Int.self, forKey: .iteration)
        epoch = try c.lenientDouble(.epoch)
        valMeanDice = try c.lenientDouble(.valMeanDice)
    }
}

/// The fields of results.json (RunResult) the report uses.
struct ReportRunResult: Decodable {
    var iterationsPerEpoch: Int
    var maxIterations: Int
    var iterationsTrained: Int
    var epochsTrained: Double
    var bestIteration: Int
    var bestValidationDice: Double
    var stopReason: String
    var exposure: ExposureReport?
    var classNames: [String]
    var test: ScoreSummary?
    var curve: [ReportCurvePoint]

    enum CodingKeys: String, CodingKey {
        case budget, iterationsTrained, epochsTrained, bestIteration, bestValidationDice, stopReason, exposure, classNames, test, curve
    }
    enum BudgetKeys: String, CodingKey { case iterationsPerEpoch, maxIterations }
    enum TestKeys: String, CodingKey { case cases, summary }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let b = try c.nestedContainer(keyedBy: BudgetKeys.self, forKey: .budget)
        iterationsPerEpoch = try b.decode(Int.self, forKey: .iterationsPerEpoch)
        maxIterations = try b.decode(Int.self, forKey: .maxIterations)
        iterationsTrained = try c.decode(Int.self, forKey: .iterationsTrained)
        epochsTrained = try c.lenientDouble(.epochsTrained)
        bestIteration = try c.decodeIfPresent(Int.self, forKey: .bestIteration) ?? -1
        bestValidationDice = try c.lenientDouble(.bestValidationDice)
        stopReason = try c.decodeIfPresent(String.self, forKey: .stopReason) ?? ""
        exposure = try c.decodeIfPresent(ExposureReport.self, forKey: .exposure)
        classNames = try c.decode([String].self, forKey: .classNames)
        if c.contains(.test), !(try c.decodeNil(forKey: .test)) {
            let t = try c.nestedContainer(keyedBy: TestKeys.self, forKey: .test)
            if let s = try t.decodeIfPresent(ScoreSummary.self, forKey: .summary) {
                test = s
            } else {
                let cases = try t.decodeIfPresent([CaseScores].self, forKey: .cases) ?? []
                test = aggregate(cases, classNames: classNames)
            }
        } else {
            test = nil
        }
        curve = try c.decodeIfPresent([ReportCurvePoint].self, forKey: .curve) ?? []
    }
}

/// A run of the grid, by its place in it.
struct ReportRunKey: Hashable {
    var budget: String
    var regime: String
    var sampler: String
    var fold: Int
    var relativePath: String { "runs/\(budget)/\(regime)/\(sampler)/fold\(fold)" }
}

public struct ReportRunProblem: Codable, Sendable, Equatable {
    public var relativePath: String
    public var message: String
}

/// What the folder holds: the grid's order and every finished run that could be read.
struct ReportInput {
    var name: String
    var budgets: [String]
    var regimes: [String]
    /// Sampler names per (budget, regime), in the grid's order (ablation samplers only where the grid runs them).
    var samplers: [String: [String]]
    var folds: [Int]
    var expected: [ReportRunKey]
    var results: [ReportRunKey: ReportRunResult] = [:]
    var examples: [ReportRunKey: ExampleSlice] = [:]
    var missing: [String] = []
    var unreadable: [ReportRunProblem] = []
    var notes: [String] = []

    static func decoder() -> JSONDecoder { ConfigJSON.decoder() }

    static func load(folder: URL) throws -> ReportInput {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw ConfigError("report: \(folder.path) is not a directory")
        }
        var notes: [String] = []
        var grid: [ReportRunKey] = []
        var name = folder.lastPathComponent
        let expFile = folder.appendingPathComponent("experiment.json")
        if fm.fileExists(atPath: expFile.path) {
            do {
                // load() merges over the defaults, so an experiment.json written by an older build still reads.
                let cfg = try ExperimentConfig.load(path: expFile.path)
                name = cfg.name
                grid = cfg.runs().map { ReportRunKey(budget: $0.budget, regime: $0.regime.rawValue, sampler: $0.sampler, fold: $0.fold) }
            } catch {
                notes.append("experiment.json could not be read (\(error)); runs were found by scanning runs/")
            }
        } else {
            notes.append("no experiment.json; runs were found by scanning runs/")
        }
        let scanned = scanRuns(folder.appendingPathComponent("runs"))
        if grid.isEmpty { grid = scanned }
        guard !grid.isEmpty else {
            throw ConfigError("report: \(folder.path) holds neither a readable experiment.json nor any runs/<budget>/<regime>/<sampler>/fold<k> folder")
        }
        // Runs present on disk but outside the grid (e.g. from an earlier config with --force) are reported, not mixed in.
        let gridSet = Set(grid)
        let extra = scanned.filter { !gridSet.contains($0) }
        if !extra.isEmpty { notes.append("ignored \(extra.count) run folder(s) outside this experiment's grid: " + extra.map(\.relativePath).joined(separator: ", ")) }

        var budgets: [String] = [], regimes: [String] = [], folds: [Int] = []
        var samplers: [String: [String]] = [:]
        for k in grid {
            if !budgets.contains(k.budget) { budgets.append(k.budget) }
            if !regimes.contains(k.regime) { regimes.append(k.regime) }
            if !folds.contains(k.fold) { folds.append(k.fold) }
            let cell = k.budget + "/" + k.regime
            if !(samplers[cell] ?? []).contains(k.sampler) { samplers[cell, default: []].append(k.sampler) }
        }
        var input = ReportInput(name: name, budgets: budgets, regimes: regimes, samplers: samplers, folds: folds.sorted(),
                                expected: grid, notes: notes)
        let dec = decoder()
        for k in grid {
            let dir = folder.appendingPathComponent(k.relativePath)
            let resURL = dir.appendingPathComponent("results.json")
            guard let data = fm.contents(atPath: resURL.path) else { input.missing.append(k.relativePath); continue }
            do {
                input.results[k] = try dec.decode(ReportRunResult.self, from: data)
            } catch {
                input.unreadable.append(ReportRunProblem(relativePath: k.relativePath,
                                                         message: "results.json: " + describeDecoding(error)))
                continue
            }
            if let ex = fm.contents(atPath: dir.appendingPathComponent("example.json").path) {
                do {
                    let e = try dec.decode(ExampleSlice.self, from: ex)
                    guard e.width > 0, e.height > 0, e.image.count == e.width * e.height,
                          e.reference.count == e.image.count, e.prediction.count == e.image.count else {
                        throw ConfigError("image/reference/prediction sizes do not match \(e.width)×\(e.height)")
                    }
                    input.examples[k] = e
                } catch {
                    input.notes.append("\(k.relativePath)/example.json skipped: " + describeDecoding(error))
                }
            }
        }
        return input
    }

    /// runs/<budget>/<regime>/<sampler>/fold<k> folders, sorted.
    static func scanRuns(_ runs: URL) -> [ReportRunKey] {
        let fm = FileManager.default
        func dirs(_ u: URL) -> [String] {
            ((try? fm.contentsOfDirectory(atPath: u.path)) ?? []).filter { n in
                var d: ObjCBool = false
                return !n.hasPrefix(".") && fm.fileExists(atPath: u.appendingPathComponent(n).path, isDirectory: &d) && d.boolValue
            }.sorted()
        }
        var out: [ReportRunKey] = []
        for b in dirs(runs) {
            for r in dirs(runs.appendingPathComponent(b)) {
                for s in dirs(runs.appendingPathComponent(b).appendingPathComponent(r)) {
                    for f in dirs(runs.appendingPathComponent(b).appendingPathComponent(r).appendingPathComponent(s)) {
                        guard f.hasPrefix("fold"), let k = Int(f.dropFirst(4)) else { continue }
                        out.append(ReportRunKey(budget: b, regime: r, sampler: s, fold: k))
                    }
                }
            }
        }
        return out.sorted { ($0.budget, $0.regime, $0.sampler, $0.fold) < ($1.budget, $1.regime, $1.sampler, $1.fold) }
    }
}

func describeDecoding(_ e: Error) -> String {
    if let d = e as? DecodingError { return ConfigJSON.describe(d) }
    return "\(e)"
}
