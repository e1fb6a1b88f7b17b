import Foundation
import Train

let reportCommand = Command(name: "report", summary: "write summary.json, table.csv/md and report.html for an experiment folder") { argv in
    var a = try Args(argv)
    try a.checkAllUsed()
    guard a.positional.count == 1, let dir = a.positional.first else {
        throw UsageError("usage: episodic report DIR (an experiment folder, as written by `episodic experiment --out DIR`)")
    }
    let outcome = try ExperimentReport.build(folder: URL(fileURLWithPath: dir))
    print(outcome.tableMarkdown)
    if !outcome.missingRuns.isEmpty {
        eprint("report: \(outcome.missingRuns.count) run(s) unfinished (no results.json), left out:")
        for r in outcome.missingRuns { eprint("  " + r) }
    }
    for u in outcome.unreadableRuns { eprint("report: left out \(u.relativePath): \(u.message)") }
    print("report: " + outcome.reportURL.path)
    return 0
}
