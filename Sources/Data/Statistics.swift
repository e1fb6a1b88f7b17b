import Foundation

/// Per-class frequencies over a set of slices: the paper's Figure 1 and the weighted sampler's f_c.
public struct ClassStatistics: Codable, Equatable, Sendable {
    public var classNames: [String]
    public var cases: Int
    public var slices: Int
    /// Slices containing at least one pixel of the class.
    public var slicesWithClass: [Int]
    /// Pixels per class (ignore excluded).
    public var pixels: [Int]
    /// All annotated (non-ignore) pixels.
    public var annotatedPixels: Int

    /// Fraction of slices that contain the class.
    public var slicePrevalence: [Double] { slicesWithClass.map { slices > 0 ? Double($0) / Double(slices) : 0 } }
    /// Fraction of annotated pixels (background included in the denominator) that belong to the class.
    public var pixelShare: [Double] { pixels.map { annotatedPixels > 0 ? Double($0) / Double(annotatedPixels) : 0 } }
    /// Foreground classes (1...) from rarest to most common slice prevalence; ties by pixel share, then index.
    public var rarestFirst: [Int] {
        Array(1..<classNames.count).sorted {
            (slicesWithClass[$0], pixels[$0], $0) < (slicesWithClass[$1], pixels[$1], $1)
        }
    }

    public init(classNames: [String], classCounts: [[Int]], cases: Int) {
        self.classNames = classNames
        self.cases = cases
        slices = classCounts.count
        var present = [Int](repeating: 0, count: classNames.count)
        var pix = [Int](repeating: 0, count: classNames.count)
        for row in classCounts {
            for c in 0..<min(row.count, classNames.count) where row[c] > 0 {
                present[c] += 1
                pix[c] += row[c]
            }
        }
        slicesWithClass = present
        pixels = pix
        annotatedPixels = pix.reduce(0, +)
    }

    /// Statistics over the given cases of a store (all cases when nil); an unknown case id is an error.
    public static func compute(store: SliceStore, cases: [String]? = nil) throws -> ClassStatistics {
        let ids = cases ?? store.cases.map(\.id)
        let slices = try store.slices(ofCases: ids)
        return ClassStatistics(classNames: store.classNames, classCounts: slices.map { store.classPixelCounts($0) },
                               cases: ids.count)
    }

    /// Straight from the label files at native resolution (no cache): slices that are entirely ignore are skipped,
    /// as in the cache.
    public static func compute(dataset: Dataset, subset: String? = nil,
                               memoryCap: Int = NiftiVolume.defaultMemoryCap) throws -> ClassStatistics {
        let k = dataset.description.numClasses
        let ignore = dataset.description.ignoreLabel.map { Float($0) }
        var rows: [[Int]] = []
        let chosen = dataset.allCases.filter { subset == nil || $0.subset == subset }
        for c in chosen {
            let lab = try NiftiVolume.read(c.label, memoryCap: memoryCap)
            let plane = lab.nx * lab.ny
            for z in 0..<lab.nz {
                var row = [Int](repeating: 0, count: k)
                var annotated = false
                for i in (z * plane)..<((z + 1) * plane) {
                    let v = lab.data[i]
                    if v == ignore { continue }
                    guard v >= 0, v < Float(k), v == v.rounded() else {
                        throw DataError("case \(c.id): label \(c.label.path) contains value \(v) absent from dataset.json")
                    }
                    row[Int(v)] += 1
                    annotated = true
                }
                if annotated { rows.append(row) }
            }
        }
        return ClassStatistics(classNames: dataset.description.classNames, classCounts: rows, cases: chosen.count)
    }

    /// Plain-text table, rarest class first.
    public func table() -> String {
        var s = "cases \(cases), slices \(slices)\n"
        s += "class".padding(toLength: 12, withPad: " ", startingAt: 0) + "  slices  prevalence  pixel share\n"
        for c in rarestFirst {
            let name = classNames[c].padding(toLength: 12, withPad: " ", startingAt: 0)
            s += name + String(format: "  %6d  %9.1f%%  %10.3f%%\n", slicesWithClass[c], 100 * slicePrevalence[c],
                               100 * pixelShare[c])
        }
        return s
    }
}
