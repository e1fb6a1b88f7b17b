import Foundation

/// table.csv and table.md from a summary.
enum ReportTables {
    static func fmt(_ x: Double?, _ digits: Int) -> String {
        guard let x, x.isFinite else { return "" }
        return String(format: "%.\(digits)f", x)
    }

    /// "m ± s", with the number of folds when fewer than expected contributed; "–" when none did.
    static func pm(_ s: FoldStat, digits: Int, expected: Int) -> String {
        guard let m = s.mean, let sd = s.std else { return "–" }
        var t = fmt(m, digits) + " ± " + fmt(sd, digits)
        if s.n < expected { t += " (n=\(s.n))" }
        return t
    }

    /// A count that is usually the same in every fold: one number if so, else mean ± std.
    static func countStat(_ s: FoldStat, digits: Int = 0) -> String {
        let v = s.values.compactMap(\.value)
        guard let first = v.first, let m = s.mean, let sd = s.std else { return "–" }
        if v.allSatisfy({ $0 == first }) { return fmt(first, digits) }
        return fmt(m, max(digits, 1)) + " ± " + fmt(sd, max(digits, 1))
    }

    static func stops(_ r: [String: Int]) -> String {
        // Short forms of the Trainer's reasons keep the table narrow; other reasons are shown as written.
        let short = ["budget exhausted": "budget", "early stopping": "early stop"]
        return r.isEmpty ? "–" : r.sorted { $0.key < $1.key }.map { "\(short[$0.key] ?? $0.key) ×\($0.value)" }.joined(separator: ", ")
    }

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    static func csv(_ s: ReportSummary) -> String {
        var lines = ["budget,regime,sampler,class_id,class,folds_finished,folds_expected,dice_mean,dice_std,dice_folds,"
            + "hd95_mean,hd95_std,hd95_folds,hd95_inf_cases,iterations_per_epoch,max_iterations,iterations_trained_mean,"
            + "iterations_trained_std,epochs_trained_mean,epochs_trained_std,stop_reasons"]
        for c in s.cells {
            for r in c.classes + [c.mean] {
                let f: [String] = [
                    c.budget, c.regime, c.sampler, r.classID.map(String.init) ?? "mean", r.name,
                    "\(c.foldsFinished.count)", "\(c.foldsExpected.count)",
                    fmt(r.dice.mean, 6), fmt(r.dice.std, 6), "\(r.dice.n)",
                    fmt(r.hd95.mean, 4), fmt(r.hd95.std, 4), "\(r.hd95.n)", "\(r.hd95Infinite)",
                    fmt(c.iterationsPerEpoch.mean, 2), fmt(c.maxIterations.mean, 2),
                    fmt(c.iterationsTrained.mean, 2), fmt(c.iterationsTrained.std, 2),
                    fmt(c.epochsTrained.mean, 4), fmt(c.epochsTrained.std, 4),
                    c.stopReasons.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; "),
                ]
                lines.append(f.map(csvField).joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func mdEscape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

    /// The paper's Table 2 layout per budget: rows = classes + mean, column groups = sampler within regime; one table
    /// for Dice (with the budget rows beneath, so the iteration confound sits next to the scores) and one for HD95.
    static func markdown(_ s: ReportSummary, regimes: [String], samplers: [String: [String]], budgets: [String]) -> String {
        var out = "# \(mdEscape(s.experiment)): test scores, mean ± std over folds\n\n"
        out += "Runs finished: \(s.runs.finished)/\(s.runs.expected).\n"
        for b in budgets {
            let cols: [(String, String)] = regimes.flatMap { r in (samplers[b + "/" + r] ?? []).map { (r, $0) } }
            let cells = cols.map { s.cell(budget: b, regime: $0.0, sampler: $0.1) }
            guard !cols.isEmpty else { continue }
            let header = "| class | " + cols.map { mdEscape("\($0.0) · \($0.1)") }.joined(separator: " | ") + " |\n"
                + "|---|" + String(repeating: "---:|", count: cols.count) + "\n"
            func rows(_ pick: (ReportClassRow) -> FoldStat, digits: Int) -> String {
                var t = ""
                let n = cells.first??.classes.count ?? s.classNames.count
                for i in 0..<n {
                    let name = cells.compactMap { $0?.classes[i].name }.first ?? "class \(i + 1)"
                    t += "| \(mdEscape(name)) | " + cells.map { c in
                        c.map { pm(pick($0.classes[i]), digits: digits, expected: $0.foldsExpected.count) } ?? "–"
                    }.joined(separator: " | ") + " |\n"
                }
                t += "| **mean (\(n) classes)** | " + cells.map { c in
                    c.map { "**" + pm(pick($0.mean), digits: digits, expected: $0.foldsExpected.count) + "**" } ?? "–"
                }.joined(separator: " | ") + " |\n"
                return t
            }
            out += "\n## Budget `\(b)`\n\n### Dice\n\n" + header + rows({ $0.dice }, digits: 3)
            func line(_ label: String, _ f: (ReportCell) -> String) -> String {
                "| *\(label)* | " + cells.map { $0.map(f) ?? "–" }.joined(separator: " | ") + " |\n"
            }
            out += line("folds finished") { "\($0.foldsFinished.count)/\($0.foldsExpected.count)" }
            out += line("iterations / epoch") { countStat($0.iterationsPerEpoch) }
            out += line("iteration budget") { countStat($0.maxIterations) }
            out += line("iterations trained") { countStat($0.iterationsTrained) }
            out += line("epochs trained") { countStat($0.epochsTrained, digits: 2) }
            out += line("stop") { mdEscape(stops($0.stopReasons)) }
            out += "\n### HD95 (mm)\n\n" + header + rows({ $0.hd95 }, digits: 2)
            out += line("class-case pairs with HD95 = ∞ (left out)") { "\($0.mean.hd95Infinite)" }
        }
        if !s.runs.missing.isEmpty {
            out += "\nMissing (unfinished) runs: " + s.runs.missing.map { "`\($0)`" }.joined(separator: ", ") + "\n"
        }
        if !s.runs.unreadable.isEmpty {
            out += "\nUnreadable runs: " + s.runs.unreadable.map { "`\($0.relativePath)` (\(mdEscape($0.message)))" }.joined(separator: ", ") + "\n"
        }
        return out
    }
}
