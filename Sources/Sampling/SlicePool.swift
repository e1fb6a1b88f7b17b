import Foundation

/// Errors of the Sampling module; every message names the option or input that is wrong.
public struct SamplingError: Error, LocalizedError, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// The training pool as the samplers see it: slice ids and, per slice, the pixel count of every class
/// (index = label value, class 0 = background). Samplers work on positions 0..<count and hand back `sliceIDs[pos]`.
public struct SlicePool: Sendable {
    public let sliceIDs: [Int]
    public let classPixelCounts: [[Int]]
    public let numClasses: Int
    /// Optional names (index = label value) used only in messages and reports.
    public let classNames: [String]?
    /// Per class c, the positions of the slices containing at least one pixel of c (ascending). Index 0 = background.
    public let slicesContaining: [[Int]]
    /// Per class c, the total pixel count of c over the pool.
    public let totalPixels: [Int]
    /// Per slice position, the foreground classes present (ascending).
    public let presentClasses: [[Int]]
    private let positionOfID: [Int: Int]

    public init(sliceIDs: [Int], classPixelCounts: [[Int]], numClasses: Int, classNames: [String]? = nil) throws {
        guard numClasses >= 2 else {
            throw SamplingError("slice pool: numClasses must be at least 2 (background + one foreground class), got \(numClasses)")
        }
        guard !sliceIDs.isEmpty else { throw SamplingError("slice pool: the training pool is empty (no slices)") }
        guard sliceIDs.count == classPixelCounts.count else {
            throw SamplingError("slice pool: \(sliceIDs.count) slice ids but \(classPixelCounts.count) class-count rows")
        }
        if let names = classNames, names.count != numClasses {
            throw SamplingError("slice pool: \(names.count) class names for \(numClasses) classes")
        }
        var positionOfID: [Int: Int] = [:]
        positionOfID.reserveCapacity(sliceIDs.count)
        var containing = [[Int]](repeating: [], count: numClasses)
        var totals = [Int](repeating: 0, count: numClasses)
        var present = [[Int]]()
        present.reserveCapacity(sliceIDs.count)
        for (pos, id) in sliceIDs.enumerated() {
            if positionOfID.updateValue(pos, forKey: id) != nil {
                throw SamplingError("slice pool: slice id \(id) occurs more than once")
            }
            let row = classPixelCounts[pos]
            guard row.count == numClasses else {
                throw SamplingError("slice pool: slice id \(id) has \(row.count) class counts, expected \(numClasses)")
            }
            var here: [Int] = []
            for c in 0..<numClasses {
                guard row[c] >= 0 else {
                    throw SamplingError("slice pool: slice id \(id) has a negative pixel count \(row[c]) for class \(c)")
                }
                if row[c] > 0 {
                    containing[c].append(pos)
                    if c > 0 { here.append(c) }
                }
                totals[c] += row[c]
            }
            present.append(here)
        }
        self.sliceIDs = sliceIDs
        self.classPixelCounts = classPixelCounts
        self.numClasses = numClasses
        self.classNames = classNames
        self.slicesContaining = containing
        self.totalPixels = totals
        self.presentClasses = present
        self.positionOfID = positionOfID
    }

    public var count: Int { sliceIDs.count }

    /// Foreground classes (1..<numClasses) whose pool is non-empty.
    public var nonEmptyForegroundClasses: [Int] { (1..<numClasses).filter { !slicesContaining[$0].isEmpty } }

    /// Slice prevalence f_c = (slices containing c) / (slices in the pool).
    public func slicePrevalence(_ c: Int) -> Double { Double(slicesContaining[c].count) / Double(count) }

    /// Pixel share f_c = (pixels of c) / (all pixels of the pool, background included). Only ratios between
    /// foreground classes matter for the weighted sampler, so including background changes nothing there.
    public func pixelShare(_ c: Int) -> Double {
        let all = totalPixels.reduce(0, +)
        return all == 0 ? 0 : Double(totalPixels[c]) / Double(all)
    }

    public func position(ofSliceID id: Int) -> Int? { positionOfID[id] }

    /// "class 3 (muscle)" when names are known, "class 3" otherwise.
    public func className(_ c: Int) -> String {
        if let names = classNames, c >= 0, c < names.count { return "class \(c) (\(names[c]))" }
        return "class \(c)"
    }
}
