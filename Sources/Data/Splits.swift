import Foundation

/// One cross-validation fold (nnU-Net `splits_final.json` entry).
public struct Fold: Codable, Equatable, Sendable {
    public var train: [String]
    public var val: [String]
    public init(train: [String], val: [String]) { self.train = train; self.val = val }
}

/// Patient-level splits: a held-out test set and k folds over the rest.
public struct Splits: Equatable, Sendable {
    public var test: [String]
    public var folds: [Fold]
    /// Where the folds came from: the splits_final.json path, or "generated".
    public var foldSource: String
    /// Where the test set came from: "imagesTs" or "holdout".
    public var testSource: String

    /// Test = imagesTs/labelsTs when present, else a seeded `testFraction` holdout of imagesTr (at least one case when
    /// there are ≥ 2). Folds from `<dataset>/splits_final.json` when it exists, else generated from `seed` and, when
    /// `writeIfMissing`, written there (atomically) in nnU-Net's format.
    public static func make(dataset: Dataset, seed: UInt64 = 0, testFraction: Double = 0.15, numFolds: Int = 5,
                            writeIfMissing: Bool = true) throws -> Splits {
        guard testFraction >= 0, testFraction < 1 else { throw DataError("test fraction \(testFraction): must be in [0, 1)") }
        guard numFolds >= 2 else { throw DataError("number of folds \(numFolds): must be at least 2") }
        let trainIDs = dataset.training.map(\.id).sorted()
        var test: [String], dev: [String], testSource: String
        if !dataset.test.isEmpty {
            test = dataset.test.map(\.id).sorted()
            dev = trainIDs
            testSource = "imagesTs"
        } else {
            var ids = trainIDs
            var rng = SplitMix64(seed: SplitMix64.key(seed, fnv1a64("test-holdout")))
            rng.shuffle(&ids)
            var n = Int((testFraction * Double(ids.count)).rounded())
            if testFraction > 0 && ids.count >= 2 { n = max(1, n) }
            n = min(n, ids.count - 1)
            test = Array(ids.prefix(n)).sorted()
            dev = Array(ids.dropFirst(n)).sorted()
            testSource = "holdout"
        }
        let file = dataset.splitsFile
        if FileManager.default.fileExists(atPath: file.path) {
            let folds = try readNNUNet(file, allowed: Set(dev), testCases: Set(test))
            return Splits(test: test, folds: folds, foldSource: file.path, testSource: testSource)
        }
        guard dev.count >= numFolds else {
            throw DataError("\(dataset.root.path): \(dev.count) development case(s) cannot make \(numFolds) folds")
        }
        var ids = dev
        var rng = SplitMix64(seed: SplitMix64.key(seed, fnv1a64("cv-folds")))
        rng.shuffle(&ids)
        // Like sklearn's KFold over the shuffled list: the first (n mod k) folds get one extra case.
        var folds: [Fold] = []
        var start = 0
        for f in 0..<numFolds {
            let size = ids.count / numFolds + (f < ids.count % numFolds ? 1 : 0)
            let val = Set(ids[start..<(start + size)])
            folds.append(Fold(train: dev.filter { !val.contains($0) }, val: val.sorted()))
            start += size
        }
        if writeIfMissing { try writeNNUNet(folds, to: file) }
        return Splits(test: test, folds: folds, foldSource: "generated", testSource: testSource)
    }

    /// Reads nnU-Net's `splits_final.json` (a list of {"train": [...], "val": [...]}). Every case must be in
    /// `allowed`; a case named in a fold's train and val, or one from the test set, is an error naming it.
    public static func readNNUNet(_ url: URL, allowed: Set<String>, testCases: Set<String> = []) throws -> [Fold] {
        let folds: [Fold]
        do { folds = try JSONDecoder().decode([Fold].self, from: Data(contentsOf: url)) } catch {
            throw DataError("\(url.path): not an nnU-Net splits file (a JSON list of {\"train\": [...], \"val\": [...]}): "
                + "\(error.localizedDescription)")
        }
        guard !folds.isEmpty else { throw DataError("\(url.path): no folds") }
        for (i, f) in folds.enumerated() {
            let inTest = Set(f.train + f.val).intersection(testCases)
            if !inTest.isEmpty {
                throw DataError("\(url.path): fold \(i) uses test case(s) \(inTest.sorted().joined(separator: ", "))")
            }
            let unknown = (f.train + f.val).filter { !allowed.contains($0) }
            if !unknown.isEmpty {
                throw DataError("\(url.path): fold \(i) names unknown case(s) \(Array(Set(unknown)).sorted().joined(separator: ", "))")
            }
            let both = Set(f.train).intersection(f.val)
            if !both.isEmpty {
                throw DataError("\(url.path): fold \(i) has case(s) in both train and val: \(both.sorted().joined(separator: ", "))")
            }
            if f.train.isEmpty || f.val.isEmpty { throw DataError("\(url.path): fold \(i) has an empty train or val list") }
        }
        return folds
    }

    public static func writeNNUNet(_ folds: [Fold], to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted]
        try AtomicWrite.write(try enc.encode(folds), to: url)
    }

    /// Low-data regime: a seeded `fraction` of the fold's training and validation cases (rounded, at least one each).
    public func lowData(fold: Int, fraction: Double = 0.1, seed: UInt64) throws -> Fold {
        guard folds.indices.contains(fold) else { throw DataError("fold \(fold): must be in 0..<\(folds.count)") }
        guard fraction > 0, fraction <= 1 else { throw DataError("low-data fraction \(fraction): must be in (0, 1]") }
        func pick(_ ids: [String], _ tag: String) -> [String] {
            var a = ids.sorted()
            var rng = SplitMix64(seed: SplitMix64.key(seed, fnv1a64(tag), UInt64(fold)))
            rng.shuffle(&a)
            let n = max(1, min(a.count, Int((fraction * Double(a.count)).rounded())))
            return Array(a.prefix(n)).sorted()
        }
        return Fold(train: pick(folds[fold].train, "low-data-train"), val: pick(folds[fold].val, "low-data-val"))
    }
}
