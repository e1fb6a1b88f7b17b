import Data
import Foundation
import Metrics
import Tensor
import Train

let predictCommand = Command(name: "predict", summary: "write label maps (NIfTI, input geometry) for CT volumes") { argv in
    var a = try Args(argv)
    let ck = try a.required("checkpoint")
    let input = try a.required("i")
    let outDir = try a.required("o")
    let cfg = a.string("config")
    try a.checkAllUsed()
    let predictor = try Predictor(checkpoint: URL(fileURLWithPath: ck), configPath: cfg)
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: input, isDirectory: &isDir) else { throw UsageError("-i \(input): no such file or folder") }
    let files: [URL] = isDir.boolValue
        ? try fm.contentsOfDirectory(atPath: input).filter { $0.hasSuffix(".nii.gz") || $0.hasSuffix(".nii") }.sorted()
            .map { URL(fileURLWithPath: input).appendingPathComponent($0) }
        : [URL(fileURLWithPath: input)]
    guard !files.isEmpty else { throw UsageError("-i \(input): no .nii or .nii.gz files") }
    try fm.createDirectory(atPath: outDir, withIntermediateDirectories: true)
    for (n, f) in files.enumerated() {
        let volume = try NiftiVolume.read(f)
        let labels = try predictor.predict(volume)
        // nnU-Net naming: CASE_0000.nii.gz (channel 0) → CASE.nii.gz
        var name = f.lastPathComponent
        let ext = name.hasSuffix(".nii.gz") ? ".nii.gz" : ".nii"
        name = String(name.dropLast(ext.count))
        if name.hasSuffix("_0000") { name = String(name.dropLast(5)) }
        let out = URL(fileURLWithPath: outDir).appendingPathComponent(name + ext)
        try NiftiVolume.writeLabelVolume(like: volume, labels: labels, to: out)
        eprint("[\(n + 1)/\(files.count)] \(f.lastPathComponent) → \(out.path)")
    }
    return 0
}

let scoreCommand = Command(name: "score", summary: "Dice and HD95 per case and class of a prediction folder") { argv in
    var a = try Args(argv, flagNames: ["json", "no-hd95"])
    let pred = try a.required("pred")
    let ref = try a.required("ref")
    let ds = try a.required("dataset")
    let json = a.flag("json")
    let noHD = a.flag("no-hd95")
    try a.checkAllUsed()
    let desc = try DatasetDescription.load(URL(fileURLWithPath: ds))
    let (cases, summary) = try FolderScoring.score(pred: URL(fileURLWithPath: pred), ref: URL(fileURLWithPath: ref),
                                                   dataset: desc, computeHD95: !noHD)
    struct Out: Encodable { let cases: [CaseScores]; let summary: ScoreSummary }
    let data = try ConfigJSON.prettyData(Out(cases: cases, summary: summary))
    try AtomicFile.write(data, to: URL(fileURLWithPath: pred).appendingPathComponent("summary.json"))
    try AtomicFile.write(Data(MetricsCSV.perCase(cases, classNames: desc.classNames).utf8),
                         to: URL(fileURLWithPath: pred).appendingPathComponent("scores.csv"))
    if json {
        print(String(decoding: data, as: UTF8.self))
    } else {
        print("class        dice (mean ± std)     HD95 mm (mean ± std)   one-empty")
        for c in summary.classes {
            let d = c.diceMean.map { String(format: "%.4f ± %.4f", $0, c.diceStd ?? 0) } ?? "n/a"
            let h = c.hd95Mean.map { String(format: "%.2f ± %.2f", $0, c.hd95Std ?? 0) } ?? "n/a"
            print((c.name ?? "\(c.classID)").padding(toLength: 12, withPad: " ", startingAt: 0) + " " + d.padding(toLength: 21, withPad: " ", startingAt: 0) + " " + h.padding(toLength: 22, withPad: " ", startingAt: 0) + " \(c.hd95Infinite)")
        }
        print(String(format: "mean         %@   %@   (%d cases)", summary.meanDice.map { String(format: "%.4f", $0) } ?? "n/a",
                     summary.meanHD95.map { String(format: "%.2f mm", $0) } ?? "n/a", summary.cases))
        print("wrote \(pred)/summary.json and \(pred)/scores.csv")
    }
    return 0
}
