import Foundation

/// report.html: one self-contained file (inline CSS, inline SVG, PNGs as data: URIs; nothing fetched).
enum ReportHTML {
    static let samplerPalette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    static let classPalette: [(UInt8, UInt8, UInt8)] = [
        (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
        (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200),
        (128, 0, 0), (170, 255, 195),
    ]

    static func classColor(_ c: Int) -> (UInt8, UInt8, UInt8) { classPalette[(c - 1 + classPalette.count) % classPalette.count] }
    static func hex(_ c: (UInt8, UInt8, UInt8)) -> String { String(format: "#%02x%02x%02x", c.0, c.1, c.2) }

    /// Escapes text for XML/HTML content and attribute values.
    static func esc(_ s: String) -> String {
        var o = ""
        for ch in s {
            switch ch {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            default: o.append(ch)
            }
        }
        return o
    }

    static func n(_ x: Double) -> String { String(format: "%.2f", x) }

    // MARK: - page

    static func page(summary s: ReportSummary, input: ReportInput, tableMarkdown: String) throws -> String {
        let allSamplers = input.budgets.flatMap { b in input.regimes.flatMap { input.samplers[b + "/" + $0] ?? [] } }
            .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        func color(_ sampler: String) -> String {
            samplerPalette[(allSamplers.firstIndex(of: sampler) ?? 0) % samplerPalette.count]
        }
        let panels: [(String, String)] = input.budgets.flatMap { b in input.regimes.compactMap { r in
            (input.samplers[b + "/" + r] ?? []).isEmpty ? nil : (b, r)
        } }
        /// One row of panels per budget, regimes side by side.
        func rows(_ panel: (String, String) -> String) -> String {
            input.budgets.map { b in
                "<div class=\"panels\">" + panels.filter { $0.0 == b }.map { panel($0.0, $0.1) }.joined() + "</div>\n"
            }.joined()
        }

        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(esc(s.experiment)) — report</title>
        <style>
        body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
        h1{font-size:22px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc} h3{font-size:15px}
        table{border-collapse:collapse;margin:8px 0 16px;font-size:13px} th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
        th{background:#f3f3f3} td,th{white-space:nowrap} th.c{text-align:center} td.l,th.l{text-align:left} tr.mean td{font-weight:bold} tr.budget td{color:#555;font-style:italic;text-align:center}
        .panels{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:10px} .warn{background:#fff4e0;border:1px solid #e0a040;padding:8px 12px}
        figure{margin:0 8px 8px 0;display:inline-block;text-align:center} figcaption{font-size:12px}
        img.px{image-rendering:pixelated;image-rendering:crisp-edges;border:1px solid #999}
        .legend span{display:inline-block;margin-right:14px;font-size:13px} .sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px;border:1px solid #555}
        .sig{color:#b00}
        </style></head><body>
        <h1>\(esc(s.experiment))</h1>
        <p>Runs finished: \(s.runs.finished) of \(s.runs.expected). Scores are test-split means per fold, then mean ± std over folds
        (population std). HD95 in mm over cases where both masks are non-empty.</p>

        """
        if !s.runs.missing.isEmpty || !s.runs.unreadable.isEmpty {
            h += "<div class=\"warn\"><b>Incomplete experiment.</b> "
            if !s.runs.missing.isEmpty {
                h += "Missing (unfinished) runs: " + s.runs.missing.map { "<code>\(esc($0))</code>" }.joined(separator: ", ") + ". "
            }
            if !s.runs.unreadable.isEmpty {
                h += "Unreadable: " + s.runs.unreadable.map { "<code>\(esc($0.relativePath))</code> (\(esc($0.message)))" }.joined(separator: ", ")
            }
            h += "</div>\n"
        }
        for note in s.notes { h += "<p><i>Note: \(esc(note))</i></p>\n" }

        h += "<h2>Table: test Dice and HD95 (mean ± std over folds)</h2>\n"
        h += table2(s, input: input)

        let samplerLegend = "<div class=\"legend\">" + allSamplers.map {
            "<span><i class=\"sw\" style=\"background:\(color($0))\"></i>\(esc($0))</span>"
        }.joined() + "</div>\n"

        h += "<h2>Figure 1: validation mean Dice against iterations</h2>\n<p>Line: mean over folds; band: min–max over folds.</p>\n"
        h += samplerLegend + rows { b, r in curvePanel(input, budget: b, regime: r, epochs: false, color: color) }
        h += "<h2>Figure 2: validation mean Dice against epochs</h2>\n<p>Epochs of each sampler's own length (iterations ÷ its iterations per epoch).</p>\n"
        h += samplerLegend + rows { b, r in curvePanel(input, budget: b, regime: r, epochs: true, color: color) }
        h += "<h2>Figure 3: per-class test Dice</h2>\n<p>Bar: mean over folds; whisker: ± std.</p>\n"
        h += samplerLegend + rows { b, r in diceBars(s, input: input, budget: b, regime: r, color: color) }
        h += "<h2>Figure 4: class exposure against prevalence</h2>\n"
        h += "<p>Bar: share of the slices drawn in training that contain the class (mean over folds); black tick: share of the training pool's slices containing it (prevalence).</p>\n"
        h += samplerLegend + rows { b, r in exposureBars(s, input: input, budget: b, regime: r, color: color) }
        h += "<h2>Figure 5: example test slice</h2>\n"
        h += try examples(s, input: input, panels: panels)
        h += "<h2>Paired comparison across folds</h2>\n"
        h += comparisons(s)
        h += "<h2>Table (markdown, as in table.md)</h2>\n<pre>\(esc(tableMarkdown))</pre>\n</body></html>\n"
        return h
    }

    // MARK: - tables

    static func table2(_ s: ReportSummary, input: ReportInput) -> String {
        var h = ""
        for b in input.budgets {
            let cols: [(String, String)] = input.regimes.flatMap { r in (input.samplers[b + "/" + r] ?? []).map { (r, $0) } }
            guard !cols.isEmpty else { continue }
            let cells = cols.map { s.cell(budget: b, regime: $0.0, sampler: $0.1) }
            h += "<h3>Budget <code>\(esc(b))</code></h3>\n<table><tr><th class=\"l\" rowspan=\"3\">class</th>"
            for r in input.regimes {
                let k = (input.samplers[b + "/" + r] ?? []).count
                if k > 0 { h += "<th class=\"c\" colspan=\"\(2 * k)\">\(esc(r))</th>" }
            }
            h += "</tr><tr>" + cols.map { "<th class=\"c\" colspan=\"2\">\(esc($0.1))</th>" }.joined() + "</tr>\n<tr>"
                + cols.map { _ in "<th>Dice</th><th>HD95 (mm)</th>" }.joined() + "</tr>\n"
            let nClasses = s.classNames.count
            for i in 0...nClasses {
                let isMean = i == nClasses
                h += isMean ? "<tr class=\"mean\"><td class=\"l\">mean (\(nClasses) classes)</td>" : "<tr><td class=\"l\">\(esc(s.classNames[i]))</td>"
                for c in cells {
                    guard let c, isMean || i < c.classes.count else { h += "<td>–</td><td>–</td>"; continue }
                    let row = isMean ? c.mean : c.classes[i]
                    h += "<td>\(esc(ReportTables.pm(row.dice, digits: 3, expected: c.foldsExpected.count)))</td>"
                        + "<td>\(esc(ReportTables.pm(row.hd95, digits: 2, expected: c.foldsExpected.count)))</td>"
                }
                h += "</tr>\n"
            }
            func line(_ label: String, _ f: (ReportCell) -> String) {
                h += "<tr class=\"budget\"><td class=\"l\">\(esc(label))</td>"
                    + cells.map { "<td colspan=\"2\">\(esc($0.map(f) ?? "–"))</td>" }.joined() + "</tr>\n"
            }
            line("folds finished") { "\($0.foldsFinished.count)/\($0.foldsExpected.count)" }
            line("iterations / epoch") { ReportTables.countStat($0.iterationsPerEpoch) }
            line("iteration budget") { ReportTables.countStat($0.maxIterations) }
            line("iterations trained") { ReportTables.countStat($0.iterationsTrained) }
            line("epochs trained") { ReportTables.countStat($0.epochsTrained, digits: 2) }
            line("stop") { ReportTables.stops($0.stopReasons) }
            h += "</table>\n"
        }
        return h
    }

    static func comparisons(_ s: ReportSummary) -> String {
        guard !s.comparisons.isEmpty else { return "<p>No two samplers to compare.</p>\n" }
        var h = "<p>Δ = Dice(a) − Dice(b), mean over the folds both finished (n); p: exact two-sided sign-flip permutation test over folds "
            + "(2<sup>n</sup> sign assignments; with n folds the smallest possible p is 2/2<sup>n</sup>); t: paired t statistic. "
            + "<span class=\"sig\">Red</span>: p ≤ 0.05.</p>\n"
        var groups: [(String, String)] = []
        for c in s.comparisons where !groups.contains(where: { $0 == (c.budget, c.regime) }) { groups.append((c.budget, c.regime)) }
        for (b, r) in groups {
            let cs = s.comparisons.filter { $0.budget == b && $0.regime == r }
            h += "<h3>Budget <code>\(esc(b))</code>, regime <code>\(esc(r))</code></h3>\n<table><tr><th class=\"l\" rowspan=\"2\">class</th>"
            h += cs.map { "<th colspan=\"4\">\(esc($0.a)) − \(esc($0.b))</th>" }.joined() + "</tr><tr>"
            h += cs.map { _ in "<th>Δ Dice</th><th>n</th><th>p</th><th>t</th>" }.joined() + "</tr>\n"
            let n = cs.first?.classes.count ?? 0
            for i in 0...n {
                let isMean = i == n
                let name = isMean ? "mean" : cs[0].classes[i].name
                h += (isMean ? "<tr class=\"mean\">" : "<tr>") + "<td class=\"l\">\(esc(name))</td>"
                for c in cs {
                    let row = isMean ? c.mean : c.classes[i]
                    let d = row.meanDifference.map { String(format: "%+.4f", $0) } ?? "–"
                    let p = row.pValue.map { String(format: "%.3f", $0) + (row.pValueExact ? "" : "*") } ?? "–"
                    let t = row.tStatistic.map { $0.isFinite ? String(format: "%.2f", $0) : ($0 > 0 ? "∞" : "−∞") } ?? "–"
                    let sig = (row.pValue ?? 1) <= 0.05 ? " class=\"sig\"" : ""
                    h += "<td\(sig)>\(d)</td><td>\(row.folds.count)</td><td\(sig)>\(p)</td><td>\(t)</td>"
                }
                h += "</tr>\n"
            }
            h += "</table>\n"
        }
        return h
    }

    // MARK: - SVG helpers

    /// About `count` round tick values covering lo...hi.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(max(count, 1))
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var out: [Double] = []
        var v = ceil(lo / step - 1e-9) * step
        while v <= hi + step * 1e-9 { out.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return out
    }

    static func tickLabel(_ v: Double) -> String {
        if abs(v) >= 1000, v == v.rounded() { return String(Int(v)) }
        if v == v.rounded() { return String(Int(v)) }
        let s = String(format: "%.3f", v)
        var t = s
        while t.hasSuffix("0") { t.removeLast() }
        if t.hasSuffix(".") { t.removeLast() }
        return t
    }

    struct Frame {
        var width = 420.0, height = 280.0
        var left = 52.0, right = 24.0, top = 26.0, bottom = 44.0
        var x0 = 0.0, x1 = 1.0, y0 = 0.0, y1 = 1.0
        var plotW: Double { width - left - right }
        var plotH: Double { height - top - bottom }
        func px(_ x: Double) -> Double { left + (x - x0) / max(x1 - x0, 1e-12) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / max(y1 - y0, 1e-12)) * plotH }

        /// Opening tag, title, grid, ticks and axis labels.
        func open(title: String, xLabel: String?, yLabel: String, xTicks: Bool = true) -> String {
            var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(width))\" height=\"\(n(height))\" viewBox=\"0 0 \(n(width)) \(n(height))\" font-family=\"Helvetica,Arial,sans-serif\" font-size=\"11\">"
            s += "<rect x=\"0\" y=\"0\" width=\"\(n(width))\" height=\"\(n(height))\" fill=\"#ffffff\"/>"
            s += "<text x=\"\(n(width / 2))\" y=\"16\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(esc(title))</text>"
            for t in ticks(y0, y1) {
                s += "<line x1=\"\(n(left))\" x2=\"\(n(left + plotW))\" y1=\"\(n(py(t)))\" y2=\"\(n(py(t)))\" stroke=\"#e4e4e4\"/>"
                s += "<text x=\"\(n(left - 4))\" y=\"\(n(py(t) + 4))\" text-anchor=\"end\">\(tickLabel(t))</text>"
            }
            if xTicks {
                for t in ticks(x0, x1) {
                    s += "<line x1=\"\(n(px(t)))\" x2=\"\(n(px(t)))\" y1=\"\(n(top + plotH))\" y2=\"\(n(top + plotH + 4))\" stroke=\"#444\"/>"
                    s += "<text x=\"\(n(px(t)))\" y=\"\(n(top + plotH + 15))\" text-anchor=\"middle\">\(tickLabel(t))</text>"
                }
            }
            s += "<rect x=\"\(n(left))\" y=\"\(n(top))\" width=\"\(n(plotW))\" height=\"\(n(plotH))\" fill=\"none\" stroke=\"#444\"/>"
            if let xLabel {
                s += "<text x=\"\(n(left + plotW / 2))\" y=\"\(n(height - 6))\" text-anchor=\"middle\">\(esc(xLabel))</text>"
            }
            s += "<text transform=\"translate(13 \(n(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(esc(yLabel))</text>"
            return s
        }
    }

    static func emptyPanel(title: String, message: String) -> String {
        var f = Frame()
        f.height = 120
        return f.open(title: title, xLabel: nil, yLabel: "", xTicks: false)
            + "<text x=\"\(n(f.width / 2))\" y=\"\(n(f.top + f.plotH / 2))\" text-anchor=\"middle\" fill=\"#888\">\(esc(message))</text></svg>"
    }

    // MARK: - figures 1 and 2

    /// Mean and min–max over folds at every x any fold has, each fold linearly interpolated within its own range
    /// (so folds validated at slightly different iterations, or stopped early, still combine).
    static func band(_ folds: [[(Double, Double)]]) -> [(x: Double, mean: Double, lo: Double, hi: Double)] {
        let fs = folds.map { $0.filter { $0.0.isFinite && $0.1.isFinite }.sorted { $0.0 < $1.0 } }.filter { !$0.isEmpty }
        let xs = Array(Set(fs.flatMap { $0.map(\.0) })).sorted()
        var out: [(Double, Double, Double, Double)] = []
        for x in xs {
            var vals: [Double] = []
            for f in fs {
                guard let first = f.first, let last = f.last, x >= first.0, x <= last.0 else { continue }
                if let j = f.firstIndex(where: { $0.0 >= x }) {
                    if f[j].0 == x || j == 0 { vals.append(f[j].1) } else {
                        let (xa, ya) = f[j - 1], (xb, yb) = f[j]
                        vals.append(ya + (yb - ya) * (x - xa) / (xb - xa))
                    }
                }
            }
            guard !vals.isEmpty else { continue }
            out.append((x, vals.reduce(0, +) / Double(vals.count), vals.min() ?? 0, vals.max() ?? 0))
        }
        return out
    }

    static func curvePanel(_ input: ReportInput, budget: String, regime: String, epochs: Bool, color: (String) -> String) -> String {
        let title = "\(budget) · \(regime)"
        let samplers = input.samplers[budget + "/" + regime] ?? []
        var series: [(String, [(x: Double, mean: Double, lo: Double, hi: Double)], Int)] = []
        for s in samplers {
            let runs = input.expected.filter { $0.budget == budget && $0.regime == regime && $0.sampler == s }.compactMap { input.results[$0] }
            let curves = runs.map { r in r.curve.map { (epochs ? $0.epoch : Double($0.iteration), $0.valMeanDice) } }
            let b = band(curves)
            if !b.isEmpty { series.append((s, b, runs.count)) }
        }
        guard !series.isEmpty else { return emptyPanel(title: title, message: "no finished run with a validation curve") }
        var f = Frame()
        f.x0 = 0
        f.x1 = series.flatMap { $0.1.map(\.x) }.max() ?? 1
        if f.x1 <= 0 { f.x1 = 1 }
        let lo = series.flatMap { $0.1.map(\.lo) }.min() ?? 0, hi = series.flatMap { $0.1.map(\.hi) }.max() ?? 1
        f.y0 = max(0, floor(lo * 10) / 10)
        f.y1 = min(1, ceil(hi * 10) / 10)
        if f.y1 <= f.y0 { f.y0 = max(0, f.y0 - 0.1); f.y1 = min(1, f.y0 + 0.2) }
        var s = f.open(title: title, xLabel: epochs ? "epoch" : "iteration", yLabel: "validation mean Dice")
        for (name, pts, _) in series {
            let c = color(name)
            if pts.count > 1 {
                let upper = pts.map { "\(n(f.px($0.x))),\(n(f.py($0.hi)))" }
                let lower = pts.reversed().map { "\(n(f.px($0.x))),\(n(f.py($0.lo)))" }
                s += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(c)\" fill-opacity=\"0.18\" stroke=\"none\"/>"
                s += "<polyline points=\"\(pts.map { "\(n(f.px($0.x))),\(n(f.py($0.mean)))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.8\"/>"
            } else if let p = pts.first {
                s += "<line x1=\"\(n(f.px(p.x)))\" x2=\"\(n(f.px(p.x)))\" y1=\"\(n(f.py(p.lo)))\" y2=\"\(n(f.py(p.hi)))\" stroke=\"\(c)\"/>"
                s += "<circle cx=\"\(n(f.px(p.x)))\" cy=\"\(n(f.py(p.mean)))\" r=\"3\" fill=\"\(c)\"/>"
            }
        }
        // Legend in the lower right, with the number of folds each line averages.
        var ly = f.top + f.plotH - 8 - Double(series.count - 1) * 14
        for (name, _, k) in series {
            let x = f.left + f.plotW - 120
            s += "<line x1=\"\(n(x))\" x2=\"\(n(x + 16))\" y1=\"\(n(ly - 4))\" y2=\"\(n(ly - 4))\" stroke=\"\(color(name))\" stroke-width=\"2\"/>"
            s += "<text x=\"\(n(x + 20))\" y=\"\(n(ly))\">\(esc(name)) (\(k) fold\(k == 1 ? "" : "s"))</text>"
            ly += 14
        }
        return s + "</svg>"
    }

    // MARK: - figures 3 and 4

    /// Grouped bars: groups along x, one bar per sampler in each group. `values[g][s]` = (height, whisker ±, marker).
    static func groupedBars(title: String, yLabel: String, groups: [String], samplers: [String], color: (String) -> String,
                            yMax: Double, values: [[(Double?, Double?)]], markers: [Double?] = []) -> String {
        var f = Frame()
        let barW = 9.0, gap = 10.0
        let groupW = Double(max(samplers.count, 1)) * barW + gap
        f.width = max(300, f.left + f.right + Double(groups.count) * groupW)
        f.bottom = 58
        f.height = 300
        f.x0 = 0; f.x1 = Double(groups.count)
        f.y0 = 0; f.y1 = yMax
        var s = f.open(title: title, xLabel: nil, yLabel: yLabel, xTicks: false)
        let scale = f.plotW / Double(max(groups.count, 1))
        for (g, name) in groups.enumerated() {
            let gx = f.left + Double(g) * scale + (scale - Double(samplers.count) * barW) / 2
            for (k, sampler) in samplers.enumerated() {
                guard g < values.count, k < values[g].count, let v = values[g][k].0, v.isFinite else { continue }
                let x = gx + Double(k) * barW
                let top = f.py(min(max(v, 0), yMax))
                s += "<rect x=\"\(n(x))\" y=\"\(n(top))\" width=\"\(n(barW - 1))\" height=\"\(n(f.top + f.plotH - top))\" fill=\"\(color(sampler))\"><title>\(esc(sampler)) \(esc(name)): \(String(format: "%.4f", v))</title></rect>"
                if let e = values[g][k].1, e.isFinite, e > 0 {
                    let cx = x + (barW - 1) / 2
                    let y1 = f.py(min(max(v - e, 0), yMax)), y2 = f.py(min(max(v + e, 0), yMax))
                    s += "<line x1=\"\(n(cx))\" x2=\"\(n(cx))\" y1=\"\(n(y1))\" y2=\"\(n(y2))\" stroke=\"#222\" stroke-width=\"1\"/>"
                }
            }
            if g < markers.count, let m = markers[g], m.isFinite {
                let y = f.py(min(max(m, 0), yMax))
                s += "<line x1=\"\(n(gx - 2))\" x2=\"\(n(gx + Double(samplers.count) * barW + 1))\" y1=\"\(n(y))\" y2=\"\(n(y))\" stroke=\"#000\" stroke-width=\"2\"><title>prevalence \(esc(name)): \(String(format: "%.4f", m))</title></line>"
            }
            let lx = f.left + Double(g) * scale + scale / 2, ly = f.top + f.plotH + 10
            s += "<text transform=\"translate(\(n(lx)) \(n(ly))) rotate(-40)\" text-anchor=\"end\">\(esc(name))</text>"
        }
        return s + "</svg>"
    }

    static func diceBars(_ s: ReportSummary, input: ReportInput, budget: String, regime: String, color: (String) -> String) -> String {
        let samplers = input.samplers[budget + "/" + regime] ?? []
        let cells = samplers.map { s.cell(budget: budget, regime: regime, sampler: $0) }
        guard cells.contains(where: { ($0?.foldsFinished.count ?? 0) > 0 }) else {
            return emptyPanel(title: "\(budget) · \(regime)", message: "no finished run")
        }
        let groups = s.classNames + ["mean"]
        let values: [[(Double?, Double?)]] = groups.indices.map { g in
            cells.map { c in
                guard let c else { return (nil, nil) }
                let row = g < c.classes.count ? c.classes[g] : c.mean
                return (row.dice.mean, row.dice.std)
            }
        }
        return groupedBars(title: "\(budget) · \(regime)", yLabel: "test Dice", groups: groups, samplers: samplers,
                           color: color, yMax: 1, values: values)
    }

    static func exposureBars(_ s: ReportSummary, input: ReportInput, budget: String, regime: String, color: (String) -> String) -> String {
        let samplers = input.samplers[budget + "/" + regime] ?? []
        let cells = samplers.map { s.cell(budget: budget, regime: regime, sampler: $0) }
        guard cells.contains(where: { c in c?.exposure.contains { $0.sliceShare.n > 0 } ?? false }) else {
            return emptyPanel(title: "\(budget) · \(regime)", message: "no finished run with exposure counts")
        }
        let values: [[(Double?, Double?)]] = s.classNames.indices.map { g in
            cells.map { c in g < (c?.exposure.count ?? 0) ? (c?.exposure[g].sliceShare.mean, nil) : (nil, nil) }
        }
        // The pool is the regime's training pool, the same for every sampler of a fold: average over all of them.
        let markers: [Double?] = s.classNames.indices.map { g in
            ReportStats.meanStd(cells.compactMap { $0 }.flatMap { c in g < c.exposure.count ? c.exposure[g].poolPrevalence.values.compactMap(\.value) : [] })?.mean
        }
        let top = (values.flatMap { $0.compactMap(\.0) } + markers.compactMap { $0 }).max() ?? 1
        let yMax = min(1, max(0.1, ceil(top * 10) / 10))
        return groupedBars(title: "\(budget) · \(regime)", yLabel: "share of slices with the class", groups: s.classNames,
                           samplers: samplers, color: color, yMax: yMax, values: values, markers: markers)
    }

    // MARK: - figure 5

    /// CT in grey with `labels` blended in class colours (alpha 0.5); labels outside 1..<numClasses stay grey.
    static func overlay(_ e: ExampleSlice, labels: [UInt8], numClasses: Int) throws -> Data {
        if numClasses - 1 <= 16 { return try overlayIndexed(e, labels: labels, numClasses: numClasses) }
        var rgb = [UInt8](repeating: 0, count: e.width * e.height * 3)
        for i in 0..<(e.width * e.height) {
            let g = Double(e.image[i])
            let l = Int(labels[i])
            if l >= 1 && l < numClasses {
                let c = classColor(l)
                rgb[3 * i] = UInt8((0.45 * g + 0.55 * Double(c.0)).rounded())
                rgb[3 * i + 1] = UInt8((0.45 * g + 0.55 * Double(c.1)).rounded())
                rgb[3 * i + 2] = UInt8((0.45 * g + 0.55 * Double(c.2)).rounded())
            } else {
                rgb[3 * i] = e.image[i]; rgb[3 * i + 1] = e.image[i]; rgb[3 * i + 2] = e.image[i]
            }
        }
        return try PNGEncoder.encode(width: e.width, height: e.height, colorType: .rgb, pixels: rgb)
    }

    /// The same overlay as an indexed PNG: entries 0–127 are 128 grey levels (unlabelled pixels), then 8 grey levels
    /// blended with each of up to 16 class colours (labelled pixels; the CT under a colour needs little depth).
    static func overlayIndexed(_ e: ExampleSlice, labels: [UInt8], numClasses: Int) throws -> Data {
        var palette: [(UInt8, UInt8, UInt8)] = (0..<128).map { i in
            let g = UInt8((Double(i) * 255 / 127).rounded())
            return (g, g, g)
        }
        for c in 1..<max(numClasses, 2) {
            let col = classColor(c)
            for level in 0..<8 {
                let g = Double(level * 32 + 16)
                func mix(_ v: UInt8) -> UInt8 { UInt8((0.45 * g + 0.55 * Double(v)).rounded()) }
                palette.append((mix(col.0), mix(col.1), mix(col.2)))
            }
        }
        var idx = [UInt8](repeating: 0, count: e.width * e.height)
        for i in idx.indices {
            let l = Int(labels[i])
            idx[i] = l >= 1 && l < numClasses ? UInt8(128 + (l - 1) * 8 + Int(e.image[i] >> 5)) : e.image[i] >> 1
        }
        return try PNGEncoder.encodeIndexed(width: e.width, height: e.height, palette: palette, indices: idx)
    }

    static func examples(_ s: ReportSummary, input: ReportInput, panels: [(String, String)]) throws -> String {
        let numClasses = s.classNames.count + 1
        guard let fold = input.folds.first(where: { f in input.examples.keys.contains { $0.fold == f } }) else {
            return "<p>No finished run wrote an example slice (example.json).</p>\n"
        }
        var h = "<p>Fold \(fold)" + (fold == input.folds.first ? "" : " (the first fold with an example)") + ": the same test slice for every sampler; "
            + "segmentations blended over the CT.</p>\n<div class=\"legend\">"
        for (i, name) in s.classNames.enumerated() {
            h += "<span><i class=\"sw\" style=\"background:\(hex(classColor(i + 1)))\"></i>\(esc(name))</span>"
        }
        h += "</div>\n"
        for (b, r) in panels {
            let samplers = input.samplers[b + "/" + r] ?? []
            let exs = samplers.compactMap { sm in input.examples[ReportRunKey(budget: b, regime: r, sampler: sm, fold: fold)].map { (sm, $0) } }
            h += "<h3>\(esc(b)) · \(esc(r))</h3>\n"
            guard let first = exs.first?.1 else { h += "<p>No example for this fold.</p>\n"; continue }
            let shown = Double(max(first.width, first.height)) < 200 ? 200.0 / Double(max(first.width, first.height)) : 1
            let w = Int((Double(first.width) * shown).rounded()), hh = Int((Double(first.height) * shown).rounded())
            func fig(_ png: Data, _ caption: String) -> String {
                "<figure><img class=\"px\" width=\"\(w)\" height=\"\(hh)\" alt=\"\(esc(caption))\" src=\"\(PNGEncoder.dataURI(png))\"><figcaption>\(esc(caption))</figcaption></figure>"
            }
            h += "<div>"
            h += fig(try PNGEncoder.encode(width: first.width, height: first.height, colorType: .grey, pixels: first.image),
                     "CT (\(first.caseID), slice \(first.slice))")
            h += fig(try overlay(first, labels: first.reference, numClasses: numClasses), "reference")
            for (sm, e) in exs {
                guard e.width == first.width, e.height == first.height else { continue }
                h += fig(try overlay(e, labels: e.prediction, numClasses: numClasses), sm)
            }
            h += "</div>\n"
        }
        return h
    }
}
