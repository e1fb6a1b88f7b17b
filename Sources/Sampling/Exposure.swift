import Foundation

/// Per class: how often training saw it (slices drawn containing it, its drawn pixels) beside its share of the pool.
/// Backs `episodic sampler-stats` and the per-run exposure in results. Codable so a run can checkpoint it.
public struct ExposureCounter: Codable, Sendable, Equatable {
    public let numClasses: Int
    public private(set) var slicesDrawn = 0
    /// Per class: drawn slices containing it (with multiplicity: a slice drawn twice counts twice).
    public private(set) var slicesContaining: [Int]
    /// Per class: drawn pixels of it.
    public private(set) var pixels: [Int]
    /// Drawn slice ids that are not in the pool (a caller bug; counted, not fatal).
    public private(set) var unknownSlices = 0
    /// Per class: slices drawn *for* it as an episode target (episodic only; zero otherwise). This is the exposure
    /// the episodic sampler balances: co-occurring classes (SAT, SM, ESM in every trunk slice) make the
    /// slices-containing count unbalanced whatever the sampler does.
    public private(set) var targetSlices: [Int]

    public init(numClasses: Int) {
        self.numClasses = numClasses
        slicesContaining = [Int](repeating: 0, count: numClasses)
        pixels = [Int](repeating: 0, count: numClasses)
        targetSlices = [Int](repeating: 0, count: numClasses)
    }

    /// Records one batch; `episodeClasses` (the episodic sampler's targets for it) splits the batch evenly over them.
    public mutating func add(batch: [Int], pool: SlicePool, episodeClasses: [Int]? = nil) {
        if let cls = episodeClasses, !cls.isEmpty {
            for c in cls where c >= 0 && c < numClasses { targetSlices[c] += batch.count / cls.count }
        }
        for id in batch {
            guard let pos = pool.position(ofSliceID: id) else { unknownSlices += 1; continue }
            slicesDrawn += 1
            let row = pool.classPixelCounts[pos]
            for c in 0..<min(numClasses, row.count) where row[c] > 0 {
                slicesContaining[c] += 1
                pixels[c] += row[c]
            }
        }
    }

    public func report(pool: SlicePool) -> ExposureReport {
        let drawnFG = pixels.dropFirst().reduce(0, +)
        let poolFG = pool.totalPixels.dropFirst().reduce(0, +)
        let rows = (1..<numClasses).map { c -> ExposureReport.ClassRow in
            ExposureReport.ClassRow(
                classID: c,
                name: pool.classNames?[c],
                slicesDrawn: slicesContaining[c],
                sliceShare: slicesDrawn == 0 ? 0 : Double(slicesContaining[c]) / Double(slicesDrawn),
                pixelsDrawn: pixels[c],
                pixelShare: drawnFG == 0 ? 0 : Double(pixels[c]) / Double(drawnFG),
                poolSlices: pool.slicesContaining[c].count,
                poolPrevalence: pool.slicePrevalence(c),
                poolPixelShare: poolFG == 0 ? 0 : Double(pool.totalPixels[c]) / Double(poolFG),
                targetSlices: targetSlices[c])
        }
        let exposed = rows.filter { $0.poolSlices > 0 }.map(\.slicesDrawn)
        var ratio: Double? = nil
        if let mx = exposed.max(), let mn = exposed.min() { ratio = mn == 0 ? nil : Double(mx) / Double(mn) }
        let targets = rows.filter { $0.poolSlices > 0 }.map(\.targetSlices)
        var targetRatio: Double? = nil
        if let mx = targets.max(), let mn = targets.min(), mx > 0 { targetRatio = mn == 0 ? nil : Double(mx) / Double(mn) }
        return ExposureReport(slicesDrawn: slicesDrawn, foregroundPixelsDrawn: drawnFG, classes: rows,
                              maxMinSliceExposure: ratio, maxMinTargetExposure: targetRatio)
    }
}

/// sliceShare = drawn slices containing c / drawn slices; pixelShare = drawn pixels of c / drawn foreground
/// pixels; poolPrevalence = pool slices containing c / pool slices; poolPixelShare = pool pixels of c / pool
/// foreground pixels. maxMinSliceExposure: max/min of slicesDrawn over foreground classes with a non-empty pool
/// (nil if one of them was never drawn).
public struct ExposureReport: Codable, Sendable, Equatable {
    public struct ClassRow: Codable, Sendable, Equatable {
        public let classID: Int
        public let name: String?
        public let slicesDrawn: Int
        public let sliceShare: Double
        public let pixelsDrawn: Int
        public let pixelShare: Double
        public let poolSlices: Int
        public let poolPrevalence: Double
        public let poolPixelShare: Double
        /// Slices drawn as this class's episode target (episodic sampler only; 0 in files written before it existed).
        public let targetSlices: Int

        enum CodingKeys: String, CodingKey {
            case classID, name, slicesDrawn, sliceShare, pixelsDrawn, pixelShare, poolSlices, poolPrevalence, poolPixelShare, targetSlices
        }

        public init(classID: Int, name: String?, slicesDrawn: Int, sliceShare: Double, pixelsDrawn: Int, pixelShare: Double,
                    poolSlices: Int, poolPrevalence: Double, poolPixelShare: Double, targetSlices: Int) {
            self.classID = classID; self.name = name; self.slicesDrawn = slicesDrawn; self.sliceShare = sliceShare
            self.pixelsDrawn = pixelsDrawn; self.pixelShare = pixelShare; self.poolSlices = poolSlices
            self.poolPrevalence = poolPrevalence; self.poolPixelShare = poolPixelShare; self.targetSlices = targetSlices
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            classID = try c.decode(Int.self, forKey: .classID)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            slicesDrawn = try c.decode(Int.self, forKey: .slicesDrawn)
            sliceShare = try c.decode(Double.self, forKey: .sliceShare)
            pixelsDrawn = try c.decode(Int.self, forKey: .pixelsDrawn)
            pixelShare = try c.decode(Double.self, forKey: .pixelShare)
            poolSlices = try c.decode(Int.self, forKey: .poolSlices)
            poolPrevalence = try c.decode(Double.self, forKey: .poolPrevalence)
            poolPixelShare = try c.decode(Double.self, forKey: .poolPixelShare)
            targetSlices = try c.decodeIfPresent(Int.self, forKey: .targetSlices) ?? 0
        }
    }
    public let slicesDrawn: Int
    public let foregroundPixelsDrawn: Int
    public let classes: [ClassRow]
    public let maxMinSliceExposure: Double?
    /// max/min of targetSlices over classes with a non-empty pool (episodic; nil for the other samplers).
    public let maxMinTargetExposure: Double?

    /// Human-readable table for stdout.
    public func table() -> String {
        var lines = ["class  name                 slices   slice-share  pool-prev   pixel-share  pool-pix-share  target-slices"]
        for r in classes {
            let name = (r.name ?? "-").padding(toLength: 20, withPad: " ", startingAt: 0)
            // %@ with a Swift String is not portable to Linux Foundation; format the numbers only.
            lines.append(String(format: "%5d  ", r.classID) + name
                         + String(format: " %8d   %10.4f  %9.4f   %11.4f  %14.4f  %13d", r.slicesDrawn,
                                  r.sliceShare, r.poolPrevalence, r.pixelShare, r.poolPixelShare, r.targetSlices))
        }
        lines.append("slices drawn: \(slicesDrawn); max/min slice exposure over classes: "
                     + (maxMinSliceExposure.map { String(format: "%.3f", $0) } ?? "undefined (a class was never drawn)"))
        if let t = maxMinTargetExposure {
            lines.append("max/min episode-target exposure over classes: " + String(format: "%.3f", t))
        }
        return lines.joined(separator: "\n")
    }
}
