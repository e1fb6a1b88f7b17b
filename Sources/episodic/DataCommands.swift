import Data
import Foundation

private func jsonString(_ obj: Any) throws -> String {
    let d = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    return String(decoding: d, as: UTF8.self)
}

private func uint64(_ a: inout Args, _ name: String, default d: UInt64) throws -> UInt64 {
    guard let s = a.string(name) else { return d }
    guard let v = UInt64(s) else { throw UsageError("option --\(name): '\(s)' is not a non-negative integer") }
    return v
}

/// Settings shared by `preprocess` and anything else that builds the slice cache.
private func preprocessSettings(_ a: inout Args) throws -> PreprocessSettings {
    var s = PreprocessSettings()
    s.size = try a.int("size", min: 1)
    s.windowLevel = try a.double("window-level", default: 40) ?? 40
    s.windowWidth = try a.double("window-width", default: 400) ?? 400
    if let z = a.string("z-range") {
        let parts = z.split(separator: ":").map { Int($0) }
        guard parts.count == 2, let lo = parts[0], let hi = parts[1] else {
            throw UsageError("option --z-range: '\(z)' is not FIRST:LAST (RAS slice indices, inclusive)")
        }
        s.zRange = [lo, hi]
    }
    if let mb = try a.int("max-volume-mb", min: 1) { s.memoryCapBytes = mb << 20 }
    return s
}

let phantomCommand = Command(name: "phantom", summary: "write the synthetic body-composition CT data set") { argv in
    var a = try Args(argv)
    let out = try a.required("out")
    let cases = try a.int("cases", default: 24, min: 1) ?? 24
    let size = try a.int("size", default: 64, min: 16) ?? 64
    let slices = try a.int("slices", default: 24, min: 2) ?? 24
    let seed = try uint64(&a, "seed", default: 0)
    let test = try a.int("test-cases", default: 0, min: 0) ?? 0
    let orient = a.string("orientation") ?? "RAS"
    try a.checkAllUsed()
    guard let o = Phantom.StoredOrientation(rawValue: orient.uppercased()) else {
        throw UsageError("option --orientation: '\(orient)' is not RAS or LPS")
    }
    let t0 = Date()
    try Phantom.write(to: URL(fileURLWithPath: out), cases: cases, size: size, slices: slices, seed: seed,
                      testCases: test, orientation: o)
    eprint(String(format: "phantom: %d cases (%d×%d×%d) in %@ (%.1f s)", cases + test, size, size, slices, out,
                  Date().timeIntervalSince(t0)))
    return 0
}

let preprocessCommand = Command(name: "preprocess", summary: "build the memory-mapped slice cache of a data set") { argv in
    var a = try Args(argv, flagNames: ["quiet"])
    let data = try a.required("data")
    let out = a.string("out")
    let settings = try preprocessSettings(&a)
    let quiet = a.flag("quiet")
    try a.checkAllUsed()
    let ds = try Dataset.open(URL(fileURLWithPath: data))
    let root = out.map { URL(fileURLWithPath: $0) }
    let t0 = Date()
    let dir = try SliceStore.build(dataset: ds, settings: settings, cacheRoot: root,
                                   progress: quiet ? nil : { eprint("preprocess: " + $0) })
    let store = try SliceStore.open(directory: dir)
    print("cache \(dir.path)")
    print("cases \(store.cases.count), slices \(store.count), \(store.width)×\(store.height), "
        + String(format: "%.1f s", Date().timeIntervalSince(t0)))
    return 0
}

let inspectCommand = Command(name: "inspect", summary: "show a NIfTI file's geometry and values after RAS reorientation") { argv in
    var a = try Args(argv, flagNames: ["json"])
    let json = a.flag("json")
    try a.checkAllUsed()
    guard a.positional.count == 1, let path = a.positional.first else { throw UsageError("usage: episodic inspect FILE [--json]") }
    let v = try NiftiVolume.read(URL(fileURLWithPath: path), rejectNonFinite: false)
    var lo = Float.infinity, hi = -Float.infinity, sum = 0.0, finite = 0
    for x in v.data where x.isFinite { lo = min(lo, x); hi = max(hi, x); sum += Double(x); finite += 1 }
    let mean = finite > 0 ? sum / Double(finite) : .nan
    let h = v.header
    if json {
        let obj: [String: Any] = [
            "file": path, "storedDims": h.dims, "rasDims": v.dims, "spacing": v.spacing,
            "orientation": v.geometry.orientation, "datatype": h.datatypeName, "sclSlope": h.sclSlope,
            "sclInter": h.sclInter, "qformCode": h.qformCode, "sformCode": h.sformCode,
            "affineSource": h.sformCode > 0 ? "sform" : "qform", "rasAffine": v.affine,
            "min": finite > 0 ? Double(lo) : NSNull(), "max": finite > 0 ? Double(hi) : NSNull(),
            "mean": finite > 0 ? mean : NSNull(), "nonFiniteVoxels": v.data.count - finite, "byteSwapped": h.byteSwapped,
        ]
        print(try jsonString(obj))
    } else {
        print("file         \(path)")
        print("stored dims  \(h.dims)  orientation \(v.geometry.orientation)  (\(h.sformCode > 0 ? "sform" : "qform"), sform_code \(h.sformCode), qform_code \(h.qformCode))")
        print("RAS dims     \(v.dims)")
        print("spacing mm   " + v.spacing.map { String(format: "%.4g", $0) }.joined(separator: " × "))
        print("datatype     \(h.datatypeName)\(h.byteSwapped ? " (byte-swapped)" : "")  scaling slope \(h.sclSlope) inter \(h.sclInter)")
        print(String(format: "values       min %.6g  max %.6g  mean %.6g", lo, hi, mean)
              + (finite < v.data.count ? "  (\(v.data.count - finite) NaN/inf)" : ""))
    }
    return 0
}

let datasetCommand = Command(name: "dataset", summary: "dataset stats: per-class slice prevalence and pixel share") { argv in
    guard argv.first == "stats" else { throw UsageError("usage: episodic dataset stats --data DIR [--subset train|test] [--json]") }
    var a = try Args(Array(argv.dropFirst()), flagNames: ["json"])
    let data = try a.required("data")
    let json = a.flag("json")
    let subset = a.string("subset")
    try a.checkAllUsed()
    if let s = subset, s != "train", s != "test" { throw UsageError("option --subset: '\(s)' is not train or test") }
    let ds = try Dataset.open(URL(fileURLWithPath: data))
    let st = try ClassStatistics.compute(dataset: ds, subset: subset)
    if json {
        let classes: [[String: Any]] = st.rarestFirst.map { c in
            ["class": st.classNames[c], "label": c, "slices": st.slicesWithClass[c],
             "slicePrevalence": st.slicePrevalence[c], "pixels": st.pixels[c], "pixelShare": st.pixelShare[c]]
        }
        print(try jsonString(["cases": st.cases, "slices": st.slices, "annotatedPixels": st.annotatedPixels,
                              "classesRarestFirst": classes]))
    } else {
        print(st.table(), terminator: "")
    }
    return 0
}
