import Foundation
import Metrics
import Sampling

/// A value of one fold (nil where that fold's run has no defined value, e.g. a class absent from every test case).
public struct FoldValue: Codable, Sendable, Equatable {
    public var fold: Int
    public var value: Double?
}

/// mean ± std (population, ddof = 0) over the folds with a defined value; `n` of them.
public struct FoldStat: Codable, Sendable, Equatable {
    public var mean: Double?
    public var std: Double?
    public var n: Int
    public var values: [FoldValue]

    init(_ values: [FoldValue]) {
        self.values = values
        let defined = values.compactMap(\.value).filter(\.isFinite)
        n = defined.count
        let ms = ReportStats.meanStd(defined)
        mean = ms?.mean
        std = ms?.std
    }
}

public struct ReportClassRow: Codable, Sendable, Equatable {
    /// nil for the mean over the foreground classes.
    public var classID: Int?
    public var name: String
    /// Per fold: the run's test mean Dice of the class over test cases (Metrics' aggregate).
    public var dice: FoldStat
    /// Per fold: the run's test mean HD95 (mm) over cases where both masks are non-empty.
    public var hd95: FoldStat
    /// Test cases with an infinite HD95 (one mask empty), summed over folds; they are left out of hd95.
    public var hd95Infinite: Int
}

/// Exposure of one class, mean over folds.
public struct ReportExposureRow: Codable, Sendable, Equatable {
    public var classID: Int
    public var name: String
    /// Share of drawn slices containing the class.
    public var sliceShare: FoldStat
    /// Share of the training pool's slices containing the class.
    public var poolPrevalence: FoldStat
}

/// One budget × regime × sampler cell of the table.
public struct ReportCell: Codable, Sendable, Equatable {
    public var budget: String
    public var regime: String
    public var sampler: String
    public var foldsExpected: [Int]
    public var foldsFinished: [Int]
    public var iterationsPerEpoch: FoldStat
    public var maxIterations: FoldStat
    public var iterationsTrained: FoldStat
    public var epochsTrained: FoldStat
    public var bestValidationDice: FoldStat
    /// Stop reason (the text before its first ':') → number of folds.
    public var stopReasons: [String: Int]
    public var classes: [ReportClassRow]
    public var mean: ReportClassRow
    public var exposure: [ReportExposureRow]
}

public struct ReportComparisonRow: Codable, Sendable, Equatable {
    public var classID: Int?
    public var name: String
    /// Folds where both samplers have a value.
    public var folds: [Int]
    /// Dice of `a` minus Dice of `b`, per fold in `folds`.
    public var differences: [Double]
    public var meanDifference: Double?
    /// Two-sided exact sign-flip permutation p-value over folds (2^n assignments).
    public var pValue: Double?
    public var pValueExact: Bool
    public var tStatistic: Double?
    /// Two-sided p-value of the paired t-test (df = n − 1), for reference beside the permutation test.
    public var tTestPValue: Double?
}

/// Paired comparison of two samplers in one budget × regime: `a` − `b` per fold.
public struct ReportComparison: Codable, Sendable, Equatable {
    public var budget: String
    public var regime: String
    public var a: String
    public var b: String
    public var classes: [ReportComparisonRow]
    public var mean: ReportComparisonRow
}

public struct ReportRuns: Codable, Sendable, Equatable {
    public var expected: Int
    public var finished: Int
    /// relativePath of every run without results.json.
    public var missing: [String]
    public var unreadable: [ReportRunProblem]
}

/// summary.json.
public struct ReportSummary: Codable, Sendable, Equatable {
    public var experiment: String
    public var conventions: String
    /// Foreground class names (class 1 first).
    public var classNames: [String]
    public var runs: ReportRuns
    public var notes: [String]
    public var cells: [ReportCell]
    public var comparisons: [ReportComparison]

    public func cell(budget: String, regime: String, sampler: String) -> ReportCell? {
        cells.first { $0.budget == budget && $0.regime == regime && $0.sampler == sampler }
    }
}

func shortStopReason(_ s: String) -> String {
    let head = s.split(separator: ":", maxSplits: 1).first.map(String.init) ?? s
    return head.isEmpty ? "unknown" : head
}

extension ReportInput {
    /// The class names of the finished runs (all runs of one experiment share the data set); background dropped.
    var foregroundNames: [String] {
        let all = results.values.map(\.classNames).max { $0.count < $1.count } ?? []
        return Array(all.dropFirst())
    }

    func summarize() -> ReportSummary {
        let names = foregroundNames
        var cells: [ReportCell] = []
        var comparisons: [ReportComparison] = []
        for b in budgets {
            for r in regimes {
                let ss = samplers[b + "/" + r] ?? []
                for s in ss { cells.append(makeCell(budget: b, regime: r, sampler: s, names: names)) }
                for i in 0..<ss.count {
                    for j in (i + 1)..<max(i + 1, ss.count) {
                        let ca = cells.first { $0.budget == b && $0.regime == r && $0.sampler == ss[i] }
                        let cb = cells.first { $0.budget == b && $0.regime == r && $0.sampler == ss[j] }
                        if let ca, let cb { comparisons.append(compare(ca, cb)) }
                    }
                }
            }
        }
        var notes = self.notes
        let distinct = Set(results.values.map(\.classNames))
        if distinct.count > 1 { notes.append("runs disagree on the class names: \(distinct.map { $0.joined(separator: ",") }.sorted())") }
        return ReportSummary(
            experiment: name,
            conventions: "per fold: the run's test mean over test cases (Dice: cases with a defined Dice; HD95 in mm: cases where both masks are non-empty); "
                + "then mean ± population std (ddof = 0) over folds. 'mean' = mean over the foreground classes per fold. "
                + "Comparisons: a − b per fold over the folds both finished; exact two-sided sign-flip permutation p over 2^n sign assignments; paired t with ddof = 1.",
            classNames: names,
            runs: ReportRuns(expected: expected.count, finished: results.count, missing: missing, unreadable: unreadable),
            notes: notes, cells: cells, comparisons: comparisons)
    }

    func makeCell(budget: String, regime: String, sampler: String, names: [String]) -> ReportCell {
        let keys = expected.filter { $0.budget == budget && $0.regime == regime && $0.sampler == sampler }
        let done = keys.compactMap { k in results[k].map { (k.fold, $0) } }
        func stat(_ f: (ReportRunResult) -> Double?) -> FoldStat { FoldStat(done.map { FoldValue(fold: $0.0, value: f($0.1)) }) }
        var reasons: [String: Int] = [:]
        for (_, r) in done { reasons[shortStopReason(r.stopReason), default: 0] += 1 }
        let classes = names.indices.map { i -> ReportClassRow in
            let id = i + 1
            func row(_ r: ReportRunResult) -> ClassSummary? { r.test?.classes.first { $0.classID == id } }
            return ReportClassRow(classID: id, name: names[i], dice: stat { row($0)?.diceMean }, hd95: stat { row($0)?.hd95Mean },
                                  hd95Infinite: done.reduce(0) { $0 + (row($1.1)?.hd95Infinite ?? 0) })
        }
        let mean = ReportClassRow(classID: nil, name: "mean", dice: stat { $0.test?.meanDice }, hd95: stat { $0.test?.meanHD95 },
                                  hd95Infinite: done.reduce(0) { $0 + ($1.1.test?.hd95Infinite ?? 0) })
        let exposure = names.indices.map { i -> ReportExposureRow in
            func row(_ r: ReportRunResult) -> ExposureReport.ClassRow? { r.exposure?.classes.first { $0.classID == i + 1 } }
            return ReportExposureRow(classID: i + 1, name: names[i], sliceShare: stat { row($0)?.sliceShare },
                                     poolPrevalence: stat { row($0)?.poolPrevalence })
        }
        return ReportCell(budget: budget, regime: regime, sampler: sampler, foldsExpected: keys.map(\.fold),
                          foldsFinished: done.map(\.0),
                          iterationsPerEpoch: stat { Double($0.iterationsPerEpoch) }, maxIterations: stat { Double($0.maxIterations) },
                          iterationsTrained: stat { Double($0.iterationsTrained) }, epochsTrained: stat { $0.epochsTrained },
                          bestValidationDice: stat { $0.bestValidationDice >= 0 ? $0.bestValidationDice : nil },
                          stopReasons: reasons, classes: classes, mean: mean, exposure: exposure)
    }

    func compare(_ a: ReportCell, _ b: ReportCell) -> ReportComparison {
        func row(_ ra: ReportClassRow, _ rb: ReportClassRow) -> ReportComparisonRow {
            var folds: [Int] = [], diffs: [Double] = []
            for va in ra.dice.values {
                guard let x = va.value, x.isFinite,
                      let y = rb.dice.values.first(where: { $0.fold == va.fold })?.value, y.isFinite else { continue }
                folds.append(va.fold)
                diffs.append(x - y)
            }
            let p = ReportStats.signFlipPValue(diffs)
            let t = ReportStats.pairedT(diffs)
            return ReportComparisonRow(classID: ra.classID, name: ra.name, folds: folds, differences: diffs,
                                       meanDifference: ReportStats.meanStd(diffs)?.mean, pValue: p?.p, pValueExact: p?.exact ?? true,
                                       tStatistic: t, tTestPValue: t.flatMap { ReportStats.tTestPValue(t: $0, df: diffs.count - 1) })
        }
        return ReportComparison(budget: a.budget, regime: a.regime, a: a.sampler, b: b.sampler,
                                classes: zip(a.classes, b.classes).map { row($0, $1) }, mean: row(a.mean, b.mean))
    }
}
