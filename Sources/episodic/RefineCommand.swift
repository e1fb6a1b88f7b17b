import Foundation
import Refine

/// `episodic refine`: SAROS + BOA (+ TotalSegmentator abdominal_muscles) → the nine-class nnU-Net raw data set
/// (issue 8; rules in docs/refine.md). Under mpirun the cases are split across ranks by Open MPI's environment.
let refineCommand = Command(name: "refine", summary: "make the nine-class data set from SAROS + BOA outputs") { argv in
    var a = try Args(argv, flagNames: ["keep-uncropped", "quiet", "list-presets", "print-mapping"])
    if a.flag("list-presets") {
        try a.checkAllUsed()
        for p in RefinePresets.names { print(p) }
        return 0
    }
    let printMapping = a.flag("print-mapping")
    let preset = a.string("preset")
    let mappingFile = a.string("mapping")
    let saros = printMapping ? a.string("saros") : try a.required("saros")
    let boa = printMapping ? a.string("boa") : try a.required("boa")
    let am = a.string("abdominal-muscles")
    let out = printMapping ? a.string("out") : try a.required("out")
    let keepUncropped = a.flag("keep-uncropped")
    let quiet = a.flag("quiet")
    let cases = a.string("cases")
    try a.checkAllUsed()
    guard preset != nil || mappingFile != nil else {
        throw UsageError("give --preset NAME (\(RefinePresets.names.joined(separator: ", "))) and/or --mapping FILE")
    }
    var mapping: RefineMapping
    do {
        mapping = try RefinePresets.load(mapping: mappingFile.map { URL(fileURLWithPath: $0) }, presetName: preset)
    } catch let e as RefineError {
        throw UsageError(e.description)
    }
    if keepUncropped { mapping.crop.keepUncroppable = true }
    if printMapping {
        // The effective recipe, as a starting point for a user mapping file.
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try enc.encode(mapping), as: UTF8.self))
        return 0
    }
    guard let saros, let boa, let out else { throw UsageError("missing --saros, --boa or --out") }
    let usesAM = mapping.sourcesUsed.contains { mapping.files[$0]?.dir == "abdominal_muscles" }
    if usesAM && am == nil {
        throw UsageError("mapping \(mapping.name) reads TotalSegmentator abdominal_muscles; give --abdominal-muscles DIR")
    }
    if !usesAM && am != nil {
        eprint("refine: warning: --abdominal-muscles is given but mapping \(mapping.name) does not use it "
            + "(use a *-abdominal-muscles preset)")
    }
    var o = RefineOptions(saros: URL(fileURLWithPath: saros), boa: URL(fileURLWithPath: boa),
                          abdominalMuscles: am.map { URL(fileURLWithPath: $0) }, out: URL(fileURLWithPath: out),
                          mapping: mapping)
    if let cases { o.cases = cases.split(separator: ",").map(String.init) }
    try o.readMPIEnvironment()
    let t0 = Date()
    let summary = try RefinePipeline.run(o, progress: quiet ? nil : { eprint("refine: " + $0) })
    guard summary.complete else { return 0 }   // ranks > 0: rank 0 reports and sets the exit status
    print("refine: \(summary.ok) case(s) written to \(out), \(summary.skipped.count) skipped, "
        + "\(summary.failed.count) failed (" + String(format: "%.1f s", Date().timeIntervalSince(t0)) + ")")
    for r in summary.skipped { print("  skipped \(r.id): \(r.message ?? "")") }
    for r in summary.failed { print("  FAILED \(r.id): \(r.message ?? "")") }
    return summary.failed.isEmpty ? 0 : 1
}
