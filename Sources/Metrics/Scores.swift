import Foundation

/// Which of the two masks are non-empty.
public enum Presence: String, Codable, Sendable {
    case both, bothEmpty, predEmpty, refEmpty
}

/// Dice and HD95 (mm) of one class in one case. In memory: dice NaN when both empty; hd95 NaN when both empty and
/// +inf when exactly one is empty. In JSON non-finite values are written as null; `presence` tells which.
public struct ClassScore: Codable, Sendable, Equatable {
    public let classID: Int
    public let dice: Double
    public let hd95: Double
    public let presence: Presence
    public let predVoxels: Int
    public let refVoxels: Int

    public init(classID: Int, dice: Double, hd95: Double, presence: Presence, predVoxels: Int, refVoxels: Int) {
        self.classID = classID
        self.dice = dice
        self.hd95 = hd95
        self.presence = presence
        self.predVoxels = predVoxels
        self.refVoxels = refVoxels
    }

    enum CodingKeys: String, CodingKey { case classID, dice, hd95, presence, predVoxels, refVoxels }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        classID = try c.decode(Int.self, forKey: .classID)
        presence = try c.decode(Presence.self, forKey: .presence)
        predVoxels = try c.decode(Int.self, forKey: .predVoxels)
        refVoxels = try c.decode(Int.self, forKey: .refVoxels)
        dice = try c.decodeIfPresent(Double.self, forKey: .dice) ?? .nan
        hd95 = try c.decodeIfPresent(Double.self, forKey: .hd95) ?? (presence == .bothEmpty ? .nan : .infinity)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(classID, forKey: .classID)
        try c.encode(dice.isFinite ? dice : nil, forKey: .dice)
        try c.encode(hd95.isFinite ? hd95 : nil, forKey: .hd95)
        try c.encode(presence, forKey: .presence)
        try c.encode(predVoxels, forKey: .predVoxels)
        try c.encode(refVoxels, forKey: .refVoxels)
    }

    /// NaN-aware equality (two NaN scores are the same score).
    public static func == (l: ClassScore, r: ClassScore) -> Bool {
        func same(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) }
        return l.classID == r.classID && same(l.dice, r.dice) && same(l.hd95, r.hd95) && l.presence == r.presence
            && l.predVoxels == r.predVoxels && l.refVoxels == r.refVoxels
    }
}

public struct CaseScores: Codable, Sendable, Equatable {
    public let caseID: String
    /// Foreground classes in ascending class id.
    public let scores: [ClassScore]

    public init(caseID: String, scores: [ClassScore]) {
        self.caseID = caseID
        self.scores = scores
    }

    public func score(ofClass c: Int) -> ClassScore? { scores.first { $0.classID == c } }

    /// Mean Dice over this case's foreground classes with a defined Dice (nil if none).
    public var meanDice: Double? { nanMean(scores.map(\.dice)) }
}

/// Scores one case: Dice and HD95 for every foreground class 1..<numClasses. Label maps x fastest; voxels whose
/// reference label is `ignoreLabel` are excluded. `computeHD95: false` skips the distance transforms (HD95 = NaN
/// for both-empty, +inf for one-empty, NaN otherwise) — for cheap validation during training.
public func scoreCase(caseID: String, pred: [UInt8], ref: [UInt8], dims: (Int, Int, Int),
                      spacing: (Double, Double, Double), numClasses: Int, ignoreLabel: UInt8? = nil,
                      computeHD95: Bool = true, convention: HD95Convention = .pooled) throws -> CaseScores {
    let n = dims.0 * dims.1 * dims.2
    guard dims.0 > 0, dims.1 > 0, dims.2 > 0 else { throw MetricsError("case \(caseID): invalid dims \(dims)") }
    guard pred.count == n else {
        throw MetricsError("case \(caseID): prediction has \(pred.count) voxels, expected \(dims.0)×\(dims.1)×\(dims.2) = \(n)")
    }
    guard ref.count == n else {
        throw MetricsError("case \(caseID): reference has \(ref.count) voxels, expected \(dims.0)×\(dims.1)×\(dims.2) = \(n)")
    }
    guard spacing.0 > 0, spacing.1 > 0, spacing.2 > 0, spacing.0.isFinite, spacing.1.isFinite, spacing.2.isFinite else {
        throw MetricsError("case \(caseID): voxel spacing must be positive and finite, got \(spacing)")
    }
    guard numClasses >= 2, numClasses <= 256 else {
        throw MetricsError("case \(caseID): numClasses must be in 2...256, got \(numClasses)")
    }
    // One pass for all voxel counts.
    var predCount = [Int](repeating: 0, count: 256), refCount = predCount, inter = predCount
    for i in 0..<n {
        let r = ref[i]
        if let ig = ignoreLabel, r == ig { continue }
        let p = pred[i]
        predCount[Int(p)] += 1
        refCount[Int(r)] += 1
        if p == r { inter[Int(p)] += 1 }
    }
    var scores: [ClassScore] = []
    for c in 1..<numClasses {
        let p = predCount[c], r = refCount[c]
        let presence: Presence = p > 0 && r > 0 ? .both : (p == 0 && r == 0 ? .bothEmpty : (p == 0 ? .predEmpty : .refEmpty))
        let d = p + r == 0 ? Double.nan : 2 * Double(inter[c]) / Double(p + r)
        let h: Double
        switch presence {
        case .bothEmpty: h = .nan
        case .predEmpty, .refEmpty: h = .infinity
        case .both:
            h = computeHD95 ? hd95(pred: pred, ref: ref, dims: dims, spacing: spacing, class: UInt8(c),
                                   ignoreLabel: ignoreLabel, convention: convention) : .nan
        }
        scores.append(ClassScore(classID: c, dice: d, hd95: h, presence: presence, predVoxels: p, refVoxels: r))
    }
    return CaseScores(caseID: caseID, scores: scores)
}

// MARK: - aggregation

/// Per class over cases. Dice: mean/std over cases with a defined Dice (both-empty excluded; one-empty counts as
/// 0). HD95: mean/std over finite values; one-empty cases (+inf) are excluded from the mean and counted in
/// `hd95Infinite`. std is the population std (numpy's default ddof=0). nil when no case contributes.
public struct ClassSummary: Codable, Sendable, Equatable {
    public let classID: Int
    public let name: String?
    public let diceMean: Double?
    public let diceStd: Double?
    public let diceCases: Int
    public let hd95Mean: Double?
    public let hd95Std: Double?
    public let hd95Cases: Int
    public let hd95Infinite: Int
    public let bothEmpty: Int
    public let predEmpty: Int
    public let refEmpty: Int
}

/// `meanDice` / `meanHD95`: mean over foreground classes of the per-class means (classes with no defined mean left
/// out), as nnU-Net's foreground mean.
public struct ScoreSummary: Codable, Sendable, Equatable {
    public let cases: Int
    public let classes: [ClassSummary]
    public let meanDice: Double?
    public let meanHD95: Double?
    public let hd95Infinite: Int
}

func nanMean(_ xs: [Double]) -> Double? {
    let f = xs.filter { !$0.isNaN }
    return f.isEmpty ? nil : f.reduce(0, +) / Double(f.count)
}

func meanStd(_ xs: [Double]) -> (Double, Double)? {
    guard !xs.isEmpty else { return nil }
    let m = xs.reduce(0, +) / Double(xs.count)
    let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count)
    return (m, v.squareRoot())
}

public func aggregate(_ cases: [CaseScores], classNames: [String]? = nil) -> ScoreSummary {
    let ids = Set(cases.flatMap { $0.scores.map(\.classID) }).sorted()
    var rows: [ClassSummary] = []
    for c in ids {
        let s = cases.compactMap { $0.score(ofClass: c) }
        let dices = s.map(\.dice).filter { !$0.isNaN }
        let hds = s.map(\.hd95).filter { $0.isFinite }
        let d = meanStd(dices), h = meanStd(hds)
        rows.append(ClassSummary(
            classID: c, name: classNames.flatMap { c < $0.count ? $0[c] : nil },
            diceMean: d?.0, diceStd: d?.1, diceCases: dices.count,
            hd95Mean: h?.0, hd95Std: h?.1, hd95Cases: hds.count,
            hd95Infinite: s.filter { $0.hd95 == .infinity }.count,
            bothEmpty: s.filter { $0.presence == .bothEmpty }.count,
            predEmpty: s.filter { $0.presence == .predEmpty }.count,
            refEmpty: s.filter { $0.presence == .refEmpty }.count))
    }
    let md = rows.compactMap(\.diceMean), mh = rows.compactMap(\.hd95Mean)
    return ScoreSummary(cases: cases.count, classes: rows,
                        meanDice: md.isEmpty ? nil : md.reduce(0, +) / Double(md.count),
                        meanHD95: mh.isEmpty ? nil : mh.reduce(0, +) / Double(mh.count),
                        hd95Infinite: rows.reduce(0) { $0 + $1.hd95Infinite })
}

// MARK: - CSV

/// CSV text (header + rows, "\n" line ends). Non-finite values are written as nan / inf (pandas reads both).
public enum MetricsCSV {
    static func num(_ x: Double?) -> String {
        guard let x else { return "" }
        if x.isNaN { return "nan" }
        if x.isInfinite { return x > 0 ? "inf" : "-inf" }
        return "\(x)"
    }

    static func field(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    public static func perCase(_ cases: [CaseScores], classNames: [String]? = nil) -> String {
        var lines = ["case,class,name,dice,hd95,presence,pred_voxels,ref_voxels"]
        for cs in cases {
            for s in cs.scores {
                let name = classNames.flatMap { s.classID < $0.count ? $0[s.classID] : nil } ?? ""
                lines.append([field(cs.caseID), "\(s.classID)", field(name), num(s.dice), num(s.hd95), s.presence.rawValue,
                              "\(s.predVoxels)", "\(s.refVoxels)"].joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func summary(_ summary: ScoreSummary) -> String {
        var lines = ["class,name,dice_mean,dice_std,dice_cases,hd95_mean,hd95_std,hd95_cases,hd95_inf,both_empty,pred_empty,ref_empty"]
        for r in summary.classes {
            lines.append([String(r.classID), field(r.name ?? ""), num(r.diceMean), num(r.diceStd), String(r.diceCases),
                          num(r.hd95Mean), num(r.hd95Std), String(r.hd95Cases), String(r.hd95Infinite),
                          String(r.bothEmpty), String(r.predEmpty), String(r.refEmpty)].joined(separator: ","))
        }
        lines.append(["mean", "foreground", num(summary.meanDice), "", "", num(summary.meanHD95), "", "",
                      String(summary.hd95Infinite), "", "", ""].joined(separator: ","))
        return lines.joined(separator: "\n") + "\n"
    }
}
