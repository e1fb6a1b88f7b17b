import Foundation
import Tensor

/// What `ExperimentReport.build` wrote and what it could not include.
public struct ReportOutcome: Sendable {
    public var summaryURL: URL
    public var tableCSVURL: URL
    public var tableMarkdownURL: URL
    public var reportURL: URL
    public var tableMarkdown: String
    public var summary: ReportSummary
    /// relativePath of every run of the grid without results.json.
    public var missingRuns: [String] { summary.runs.missing }
    public var unreadableRuns: [ReportRunProblem] { summary.runs.unreadable }
}

/// The experiment report: summary.json, table.csv, table.md and report.html in the experiment folder, from whatever
/// runs have finished (unfinished ones are listed, not fatal).
public enum ExperimentReport {
    public static func build(folder: URL) throws -> ReportOutcome {
        let input = try ReportInput.load(folder: folder)
        let summary = input.summarize()
        let md = ReportTables.markdown(summary, regimes: input.regimes, samplers: input.samplers, budgets: input.budgets)
        let html = try ReportHTML.page(summary: summary, input: input, tableMarkdown: md)
        let out = ReportOutcome(summaryURL: folder.appendingPathComponent("summary.json"),
                                tableCSVURL: folder.appendingPathComponent("table.csv"),
                                tableMarkdownURL: folder.appendingPathComponent("table.md"),
                                reportURL: folder.appendingPathComponent("report.html"),
                                tableMarkdown: md, summary: summary)
        try AtomicFile.write(try ConfigJSON.prettyData(summary), to: out.summaryURL)
        try AtomicFile.write(Data(ReportTables.csv(summary).utf8), to: out.tableCSVURL)
        try AtomicFile.write(Data(md.utf8), to: out.tableMarkdownURL)
        try AtomicFile.write(Data(html.utf8), to: out.reportURL)
        return out
    }

    /// Reads a summary.json written by `build` (NaN/inf as strings).
    public static func readSummary(_ url: URL) throws -> ReportSummary {
        guard let d = FileManager.default.contents(atPath: url.path) else { throw ConfigError("\(url.path): cannot read") }
        do { return try ConfigJSON.decoder().decode(ReportSummary.self, from: d) } catch {
            throw ConfigError("\(url.path): " + describeDecoding(error))
        }
    }
}
