import Foundation
import XCTest
@testable import Data

final class SplitsTests: XCTestCase {
    func testGeneratedSplitsDisjointReproducibleAndWritten() throws {
        let root = try makePhantom("splits", cases: 20, size: 16, slices: 2)
        defer { try? FileManager.default.removeItem(at: root) }
        let ds = try Dataset.open(root)
        let s = try Splits.make(dataset: ds, seed: 7)
        XCTAssertEqual(s.testSource, "holdout")
        XCTAssertEqual(s.test.count, 3)  // round(0.15 · 20)
        XCTAssertEqual(s.folds.count, 5)
        let all = Set(ds.training.map(\.id))
        let dev = all.subtracting(s.test)
        var vals: [String] = []
        for f in s.folds {
            XCTAssertTrue(Set(f.train).isDisjoint(with: f.val))
            XCTAssertTrue(Set(f.train + f.val).isDisjoint(with: s.test))
            XCTAssertEqual(Set(f.train).union(f.val), dev)
            vals += f.val
        }
        XCTAssertEqual(vals.sorted(), dev.sorted())  // each development case validates exactly once
        // Written in nnU-Net format; a second call reads it and agrees.
        XCTAssertTrue(FileManager.default.fileExists(atPath: ds.splitsFile.path))
        let raw = try JSONSerialization.jsonObject(with: Data(contentsOf: ds.splitsFile)) as? [[String: [String]]]
        XCTAssertEqual(raw?.count, 5)
        let again = try Splits.make(dataset: ds, seed: 7)
        XCTAssertEqual(again.folds, s.folds)
        XCTAssertEqual(again.foldSource, ds.splitsFile.path)
        // Reproducible without the file; another seed differs.
        try FileManager.default.removeItem(at: ds.splitsFile)
        XCTAssertEqual(try Splits.make(dataset: ds, seed: 7, writeIfMissing: false), s)
        let other = try Splits.make(dataset: ds, seed: 8, writeIfMissing: false)
        XCTAssertTrue(other.test != s.test || other.folds != s.folds)
    }

    func testSplitsFromImagesTsAndUnknownCases() throws {
        let root = try makePhantom("splits-ts", cases: 10, size: 16, slices: 2, testCases: 3)
        defer { try? FileManager.default.removeItem(at: root) }
        let ds = try Dataset.open(root)
        let s = try Splits.make(dataset: ds, seed: 1)
        XCTAssertEqual(s.testSource, "imagesTs")
        XCTAssertEqual(s.test, ["phantom_010", "phantom_011", "phantom_012"])
        XCTAssertEqual(Set(s.folds.flatMap { $0.val }).count, 10)
        var bad = s.folds
        bad[2].val.append("ghost_case")
        try Splits.writeNNUNet(bad, to: ds.splitsFile)
        assertThrows({ _ = try Splits.make(dataset: ds) }, contains: ["splits_final.json", "fold 2", "ghost_case"])
        var leak = s.folds
        leak[0].train.append("phantom_011")
        try Splits.writeNNUNet(leak, to: ds.splitsFile)
        assertThrows({ _ = try Splits.make(dataset: ds) }, contains: ["splits_final.json", "test case", "phantom_011"])
        try Data("{\"not\": \"a list\"}".utf8).write(to: ds.splitsFile)
        assertThrows({ _ = try Splits.make(dataset: ds) }, contains: ["splits_final.json"])
    }

    func testLowData() throws {
        let folds = [Fold(train: (0..<144).map { "c\($0)" }, val: (144..<180).map { "c\($0)" }),
                     Fold(train: ["a", "b"], val: ["c"])]
        let s = Splits(test: [], folds: folds, foldSource: "test", testSource: "test")
        let low = try s.lowData(fold: 0, fraction: 0.1, seed: 3)
        XCTAssertEqual(low.train.count, 14)
        XCTAssertEqual(low.val.count, 4)
        XCTAssertTrue(Set(low.train).isSubset(of: folds[0].train))
        XCTAssertTrue(Set(low.val).isSubset(of: folds[0].val))
        XCTAssertEqual(try s.lowData(fold: 0, fraction: 0.1, seed: 3), low)
        XCTAssertNotEqual(try s.lowData(fold: 0, fraction: 0.1, seed: 4).train, low.train)
        let tiny = try s.lowData(fold: 1, fraction: 0.1, seed: 3)
        XCTAssertEqual(tiny.train.count, 1)
        XCTAssertEqual(tiny.val, ["c"])
        assertThrows({ _ = try s.lowData(fold: 5, seed: 0) }, contains: ["fold 5"])
    }

    func testSplitMixKnownValues() {
        // Reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        var r = SplitMix64(seed: 0)
        XCTAssertEqual(r.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(r.next(), 0x6E78_9E6A_A1B9_65F4)
    }
}

final class PhantomTests: XCTestCase {
    /// The default phantom (24 cases × 64² × 24 slices): IMAT, QLM, PEM, PSM are the four rarest classes by slice
    /// prevalence, every class occurs, and ESM/SAT/SM are in every slice.
    func testDefaultPhantomStatistics() throws {
        for seed: UInt64 in [0, 12345] {
            var rows: [[Int]] = []
            for i in 0..<24 {
                let c = Phantom.generate(index: i, size: 64, slices: 24, seed: seed)
                for z in 0..<24 {
                    var row = [Int](repeating: 0, count: 10)
                    for v in c.labels[(z * 4096)..<((z + 1) * 4096)] { row[Int(v)] += 1 }
                    rows.append(row)
                }
            }
            let st = ClassStatistics(classNames: Phantom.classNames, classCounts: rows, cases: 24)
            let rare = Set(st.rarestFirst.prefix(4).map { st.classNames[$0] })
            XCTAssertEqual(rare, ["IMAT", "QLM", "PEM", "PSM"], "seed \(seed): \(st.table())")
            XCTAssertTrue(st.slicesWithClass.allSatisfy { $0 > 0 }, "seed \(seed)")
            for name in ["ESM", "SAT", "SM"] {
                XCTAssertEqual(st.slicePrevalence[Phantom.classNames.firstIndex(of: name) ?? 0], 1, name)
            }
        }
    }

    func testDeterministicInSeed() throws {
        let a = Phantom.generate(index: 3, size: 32, slices: 6, seed: 11)
        let b = Phantom.generate(index: 3, size: 32, slices: 6, seed: 11)
        let c = Phantom.generate(index: 3, size: 32, slices: 6, seed: 12)
        XCTAssertEqual(a.hu, b.hu)
        XCTAssertEqual(a.labels, b.labels)
        XCTAssertNotEqual(a.hu, c.hu)
        XCTAssertNotEqual(a.labels, c.labels)
        // Written files are identical too (gzip without timestamps in the payload we compare: the voxels).
        let d1 = try makePhantom("det1", cases: 2, size: 16, slices: 3, seed: 4)
        let d2 = try makePhantom("det2", cases: 2, size: 16, slices: 3, seed: 4)
        defer { try? FileManager.default.removeItem(at: d1); try? FileManager.default.removeItem(at: d2) }
        for f in ["imagesTr/phantom_001_0000.nii.gz", "labelsTr/phantom_001.nii.gz"] {
            XCTAssertEqual(try NiftiVolume.read(d1.appendingPathComponent(f)).data,
                           try NiftiVolume.read(d2.appendingPathComponent(f)).data)
        }
    }

    /// Muscles share one HU distribution (position, not intensity, separates ESM from SM); fat is far below.
    func testTissueIntensities() throws {
        let c = Phantom.generate(index: 0, size: 64, slices: 12, seed: 2)
        func mean(_ label: UInt8) -> Double {
            let v = zip(c.labels, c.hu).filter { $0.0 == label }.map { Double($0.1) }
            return v.reduce(0, +) / Double(max(1, v.count))
        }
        XCTAssertEqual(mean(Phantom.ESM), mean(Phantom.SM), accuracy: 5)
        XCTAssertEqual(mean(Phantom.SAT), -100, accuracy: 15)
        XCTAssertLessThan(mean(Phantom.VAT), -60)
        XCTAssertGreaterThan(mean(Phantom.SM), 25)
    }
}

final class PhantomRewriteTests: XCTestCase {
    func testRewriteReplacesOldCasesAndRefusesForeignData() throws {
        let d = try makePhantom("rewrite", cases: 6, size: 16, slices: 2)
        defer { try? FileManager.default.removeItem(at: d) }
        _ = try Splits.make(dataset: try Dataset.open(d), seed: 0, numFolds: 2)
        try Phantom.write(to: d, cases: 3, size: 16, slices: 2, seed: 1)
        let ds = try Dataset.open(d)
        XCTAssertEqual(ds.training.map(\.id), ["phantom_000", "phantom_001", "phantom_002"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: ds.splitsFile.path))
        try Data(#"{"labels": {"background": 0}, "name": "Mine"}"#.utf8).write(to: ds.datasetJSON)
        assertThrows({ try Phantom.write(to: d, cases: 2, size: 16, slices: 2) }, contains: ["dataset.json", "not a phantom"])
    }
}
