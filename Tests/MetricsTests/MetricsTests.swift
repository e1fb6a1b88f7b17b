import XCTest
@testable import Metrics

private struct Fixture: Decodable {
    struct Case: Decodable {
        let name: String
        let dims: [Int]
        let spacing: [Double]
        let maskA: [Int]
        let maskB: [Int]
        let edtA: [Double]
        let surfaceA: [Int]
        let dice: Double
        let hd95Pooled: Double
        let hd95MaxOfDirected: Double
        let hd100: Double
    }
    let cases: [Case]
}

private func loadFixture() throws -> Fixture {
    guard let url = Bundle.module.url(forResource: "edt_hd95", withExtension: "json", subdirectory: "Fixtures") else {
        throw MetricsError("Fixtures/edt_hd95.json missing from the test bundle (run scripts/make_metric_fixtures.py)")
    }
    return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
}

private func tuple3(_ a: [Int]) -> (Int, Int, Int) { (a[0], a[1], a[2]) }
private func tuple3(_ a: [Double]) -> (Double, Double, Double) { (a[0], a[1], a[2]) }

/// Box mask (inclusive ranges) in an nx×ny×nz volume, x fastest.
private func box(_ dims: (Int, Int, Int), x: ClosedRange<Int>, y: ClosedRange<Int>, z: ClosedRange<Int>) -> [Bool] {
    var m = [Bool](repeating: false, count: dims.0 * dims.1 * dims.2)
    for k in z { for j in y { for i in x { m[i + dims.0 * (j + dims.1 * k)] = true } } }
    return m
}

private func voxel(_ dims: (Int, Int, Int), _ pts: [(Int, Int, Int)]) -> [Bool] {
    var m = [Bool](repeating: false, count: dims.0 * dims.1 * dims.2)
    for p in pts { m[p.0 + dims.0 * (p.1 + dims.1 * p.2)] = true }
    return m
}

final class DistanceTransformTests: XCTestCase {
    func testFixtureEDTMatchesScipy() throws {
        let fx = try loadFixture()
        XCTAssertGreaterThanOrEqual(fx.cases.count, 3)
        for c in fx.cases {
            let edt = EuclideanDistance.transform(features: c.maskA.map { $0 != 0 }, dims: tuple3(c.dims),
                                                  spacing: tuple3(c.spacing))
            XCTAssertEqual(edt.count, c.edtA.count)
            var worst = 0.0
            for i in 0..<edt.count { worst = max(worst, abs(edt[i] - c.edtA[i])) }
            XCTAssertLessThan(worst, 1e-4, "\(c.name): max |EDT − scipy| = \(worst)")
            // The fixture must exercise non-trivial distances (diagonals across anisotropic axes, not just steps).
            XCTAssertGreaterThan(Set(c.edtA.map { ($0 * 1e6).rounded() }).count, 6, c.name)
        }
    }

    func testEDTAgainstBruteForceAnisotropic() {
        let dims = (7, 5, 4), sp = (0.6, 1.7, 2.9)
        var mask = [Bool](repeating: false, count: 7 * 5 * 4)
        var state: UInt64 = 12345
        for i in 0..<mask.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            mask[i] = (state >> 60) == 0   // ~1/16 of the voxels
        }
        mask[0] = true
        let d2 = EuclideanDistance.squaredTransform(features: mask, dims: dims, spacing: sp)
        for z in 0..<4 { for y in 0..<5 { for x in 0..<7 {
            var best = Double.infinity
            for k in 0..<4 { for j in 0..<5 { for i in 0..<7 where mask[i + 7 * (j + 5 * k)] {
                let dx = Double(x - i) * sp.0, dy = Double(y - j) * sp.1, dz = Double(z - k) * sp.2
                best = min(best, dx * dx + dy * dy + dz * dz)
            } } }
            XCTAssertEqual(d2[x + 7 * (y + 5 * z)], best, accuracy: 1e-9)
        } } }
    }

    func testEDTWithoutFeaturesIsInfinite() {
        let d = EuclideanDistance.squaredTransform(features: [Bool](repeating: false, count: 24), dims: (4, 3, 2),
                                                   spacing: (1, 1, 1))
        XCTAssertTrue(d.allSatisfy { $0 == .infinity })
    }
}

final class SurfaceAndHD95Tests: XCTestCase {
    func testFixtureSurfaceDiceHD95MatchScipy() throws {
        let fx = try loadFixture()
        for c in fx.cases {
            let dims = tuple3(c.dims), sp = tuple3(c.spacing)
            let a = c.maskA.map { $0 != 0 }, b = c.maskB.map { $0 != 0 }
            XCTAssertEqual(surface(of: a, dims: dims), c.surfaceA.map { $0 != 0 }, c.name)
            let pooled = hd95(maskA: a, maskB: b, dims: dims, spacing: sp)
            let directed = hd95(maskA: a, maskB: b, dims: dims, spacing: sp, convention: .maxOfDirected)
            XCTAssertEqual(pooled, c.hd95Pooled, accuracy: 1e-4, c.name)
            XCTAssertEqual(directed, c.hd95MaxOfDirected, accuracy: 1e-4, c.name)
            // Symmetric in its arguments.
            XCTAssertEqual(hd95(maskA: b, maskB: a, dims: dims, spacing: sp), pooled, accuracy: 1e-12, c.name)
            let full = directedSurfaceDistances(from: a, to: b, dims: dims, spacing: sp)
                + directedSurfaceDistances(from: b, to: a, dims: dims, spacing: sp)
            XCTAssertEqual(full.max() ?? -1, c.hd100, accuracy: 1e-4, c.name)
            let pred = c.maskA.map(UInt8.init), ref = c.maskB.map { UInt8($0 * 1) }
            XCTAssertEqual(dice(pred: pred, ref: ref, class: 1) ?? -1, c.dice, accuracy: 1e-12, c.name)
        }
    }

    func testSingleVoxelsAtKnownDistance() {
        let dims = (8, 8, 4), sp = (0.5, 2.0, 3.0)
        let a = voxel(dims, [(1, 1, 1)]), b = voxel(dims, [(4, 3, 2)])
        let expected = (1.5 * 1.5 + 4.0 * 4.0 + 3.0 * 3.0).squareRoot()
        XCTAssertEqual(hd95(maskA: a, maskB: b, dims: dims, spacing: sp), expected, accuracy: 1e-12)
        XCTAssertEqual(hd95(maskA: a, maskB: b, dims: dims, spacing: sp, convention: .maxOfDirected), expected, accuracy: 1e-12)
    }

    /// A = {p}, B = {p, q}, |pq| = d: A→B = [0], B→A = [0, d]. Pooled [0, 0, d] → numpy's linear percentile at
    /// h = 1.9 gives 0.9·d; MONAI's max of directed gives max(0, 0.95·d).
    func testPercentileConventionsByHand() {
        let dims = (6, 4, 3), sp = (1.0, 1.0, 2.0)
        let a = voxel(dims, [(1, 1, 0)]), b = voxel(dims, [(1, 1, 0), (4, 1, 2)])
        let d = (9.0 + 16.0).squareRoot()
        XCTAssertEqual(hd95(maskA: a, maskB: b, dims: dims, spacing: sp), 0.9 * d, accuracy: 1e-12)
        XCTAssertEqual(hd95(maskA: a, maskB: b, dims: dims, spacing: sp, convention: .maxOfDirected), 0.95 * d, accuracy: 1e-12)
    }

    /// 4³ cube vs the same cube shifted by one voxel in x, away from the border. With spacing sx along x:
    /// A→B: the 16 voxels of A's x=2 face are sx away, the 4 inner voxels of its x=5 face are min(sx, 1) away (a
    /// side face of B is one voxel away in y/z), the other 36 surface voxels lie on B's surface. Same for B→A.
    func testCubeVersusShiftedCube() {
        let dims = (12, 8, 8)
        let a = box(dims, x: 2...5, y: 2...5, z: 2...5), b = box(dims, x: 3...6, y: 2...5, z: 2...5)
        XCTAssertEqual(surface(of: a, dims: dims).filter { $0 }.count, 56)
        // sx = 2: pooled 112 values = 72 zeros, 8 ones, 32 twos → 95th percentile (h = 105.45) is 2.
        XCTAssertEqual(hd95(maskA: a, maskB: b, dims: dims, spacing: (2, 1, 1)), 2, accuracy: 1e-12)
        let ab = directedSurfaceDistances(from: a, to: b, dims: dims, spacing: (2, 1, 1)).sorted()
        XCTAssertEqual(ab.filter { $0 == 0 }.count, 36)
        XCTAssertEqual(ab.filter { $0 == 1 }.count, 4)
        XCTAssertEqual(ab.filter { $0 == 2 }.count, 16)
        // sx = 0.5: all 20 non-zero distances are 0.5.
        XCTAssertEqual(hd95(maskA: a, maskB: b, dims: dims, spacing: (0.5, 1, 1)), 0.5, accuracy: 1e-12)
        let la = a.map { $0 ? UInt8(3) : 0 }, lb = b.map { $0 ? UInt8(3) : 0 }
        XCTAssertEqual(dice(pred: la, ref: lb, class: 3) ?? -1, 2.0 * 48 / 128, accuracy: 1e-12)
    }

    /// Voxels on the volume border are surface even when all their in-volume neighbours are in the mask.
    func testVolumeBorderCountsAsSurface() {
        let dims = (3, 3, 3)
        let full = [Bool](repeating: true, count: 27)
        let s = surface(of: full, dims: dims)
        XCTAssertEqual(s.filter { $0 }.count, 26)
        XCTAssertFalse(s[1 + 3 * (1 + 3 * 1)])
    }

    func testEmptyMasks() {
        let dims = (4, 4, 2)
        let empty = [Bool](repeating: false, count: 32), one = voxel(dims, [(1, 2, 1)])
        XCTAssertTrue(hd95(maskA: empty, maskB: empty, dims: dims, spacing: (1, 1, 1)).isNaN)
        XCTAssertEqual(hd95(maskA: one, maskB: empty, dims: dims, spacing: (1, 1, 1)), .infinity)
        XCTAssertEqual(hd95(maskA: empty, maskB: one, dims: dims, spacing: (1, 1, 1)), .infinity)
        let z = [UInt8](repeating: 0, count: 32), o = one.map { $0 ? UInt8(1) : 0 }
        XCTAssertNil(dice(pred: z, ref: z, class: 1))
        XCTAssertEqual(dice(pred: z, ref: o, class: 1), 0)
        XCTAssertEqual(dice(pred: o, ref: o, class: 1), 1)
    }

    func testIgnoreLabelExcludedFromDice() {
        let pred: [UInt8] = [1, 1, 1, 0], ref: [UInt8] = [1, 255, 255, 0]
        XCTAssertEqual(dice(pred: pred, ref: ref, class: 1, ignoreLabel: 255), 1)
        XCTAssertEqual(dice(pred: pred, ref: ref, class: 1) ?? -1, 0.5, accuracy: 1e-12)
    }
}

final class ScoresTests: XCTestCase {
    /// Three classes over two cases in a 6×6×3 volume: class 1 overlaps, class 2 missing from the prediction in
    /// case b, class 3 absent everywhere.
    private func makeCases() throws -> [CaseScores] {
        let dims = (6, 6, 3)
        func labels(_ parts: [(UInt8, [Bool])]) -> [UInt8] {
            var l = [UInt8](repeating: 0, count: 108)
            for (c, m) in parts { for i in 0..<108 where m[i] { l[i] = c } }
            return l
        }
        let c1 = box(dims, x: 0...2, y: 0...2, z: 0...1), c1s = box(dims, x: 1...3, y: 0...2, z: 0...1)
        let c2 = box(dims, x: 4...5, y: 4...5, z: 2...2)
        let a = try scoreCase(caseID: "a", pred: labels([(1, c1), (2, c2)]), ref: labels([(1, c1), (2, c2)]),
                              dims: dims, spacing: (1, 1, 2), numClasses: 4)
        let b = try scoreCase(caseID: "b", pred: labels([(1, c1s)]), ref: labels([(1, c1), (2, c2)]),
                              dims: dims, spacing: (1, 1, 2), numClasses: 4)
        return [a, b]
    }

    func testScoreCasePresenceAndValues() throws {
        let cases = try makeCases()
        let a = cases[0], b = cases[1]
        XCTAssertEqual(a.scores.map(\.classID), [1, 2, 3])
        XCTAssertEqual(a.score(ofClass: 1)?.dice, 1)
        XCTAssertEqual(a.score(ofClass: 1)?.hd95, 0)
        XCTAssertEqual(a.score(ofClass: 3)?.presence, .bothEmpty)
        XCTAssertTrue(a.score(ofClass: 3)?.dice.isNaN ?? false)
        XCTAssertEqual(b.score(ofClass: 2)?.presence, .predEmpty)
        XCTAssertEqual(b.score(ofClass: 2)?.dice, 0)
        XCTAssertEqual(b.score(ofClass: 2)?.hd95, .infinity)
        // Class 1 in b: 18 vs 18 voxels, 12 shared.
        XCTAssertEqual(b.score(ofClass: 1)?.dice ?? -1, 24.0 / 36.0, accuracy: 1e-12)
        // Every voxel of the 2-slice-thick boxes is surface; 6 of 18 per direction are 1 voxel (1 mm in x) off, so
        // the pooled 36 distances are 24 zeros and 12 ones and the 95th percentile is 1.
        XCTAssertEqual(b.score(ofClass: 1)?.hd95 ?? -1, 1, accuracy: 1e-12)
        XCTAssertEqual(a.meanDice ?? -1, 1, accuracy: 1e-12)
    }

    func testAggregateIgnoresNaNAndCountsInfinity() throws {
        let s = aggregate(try makeCases(), classNames: ["bg", "one", "two", "three"])
        XCTAssertEqual(s.cases, 2)
        let c1 = s.classes[0], c2 = s.classes[1], c3 = s.classes[2]
        XCTAssertEqual(c1.name, "one")
        XCTAssertEqual(c1.diceMean ?? -1, (1 + 24.0 / 36.0) / 2, accuracy: 1e-12)
        XCTAssertEqual(c1.diceStd ?? -1, (1 - 24.0 / 36.0) / 2, accuracy: 1e-12)
        XCTAssertEqual(c1.hd95Mean ?? -1, 0.5, accuracy: 1e-12)
        XCTAssertEqual(c2.diceMean ?? -1, 0.5, accuracy: 1e-12)   // one-empty counts as Dice 0
        XCTAssertEqual(c2.hd95Mean, 0)                            // the inf is excluded ...
        XCTAssertEqual(c2.hd95Infinite, 1)                        // ... and counted
        XCTAssertEqual(c2.predEmpty, 1)
        XCTAssertNil(c3.diceMean)
        XCTAssertEqual(c3.bothEmpty, 2)
        XCTAssertEqual(s.meanDice ?? -1, ((1 + 24.0 / 36.0) / 2 + 0.5) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.meanHD95 ?? -1, 0.25, accuracy: 1e-12)
        XCTAssertEqual(s.hd95Infinite, 1)
        XCTAssertTrue(s.meanDice?.isFinite ?? false)
    }

    func testJSONRoundTripWritesNullForNonFinite() throws {
        let cases = try makeCases()
        let data = try JSONEncoder().encode(cases)
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains("\"hd95\":null"))
        XCTAssertFalse(text.lowercased().contains("nan") || text.lowercased().contains("inf\""))
        let back = try JSONDecoder().decode([CaseScores].self, from: data)
        XCTAssertEqual(back, cases)
        XCTAssertEqual(back[1].score(ofClass: 2)?.hd95, .infinity)
        XCTAssertTrue(back[0].score(ofClass: 3)?.hd95.isNaN ?? false)
        _ = try JSONEncoder().encode(aggregate(cases))
    }

    func testCSV() throws {
        let cases = try makeCases()
        let csv = MetricsCSV.perCase(cases, classNames: ["bg", "one", "two", "three"])
        let lines = csv.split(separator: "\n")
        XCTAssertEqual(lines.count, 1 + 6)
        XCTAssertEqual(lines[0], "case,class,name,dice,hd95,presence,pred_voxels,ref_voxels")
        XCTAssertTrue(lines.contains("b,2,two,0.0,inf,predEmpty,0,4"))
        XCTAssertTrue(lines.contains("a,3,three,nan,nan,bothEmpty,0,0"))
        let summary = MetricsCSV.summary(aggregate(cases))
        XCTAssertEqual(summary.split(separator: "\n").count, 1 + 3 + 1)
    }

    func testScoreCaseRejectsMismatchedSizes() {
        XCTAssertThrowsError(try scoreCase(caseID: "x7", pred: [UInt8](repeating: 0, count: 10),
                                           ref: [UInt8](repeating: 0, count: 12), dims: (2, 2, 3),
                                           spacing: (1, 1, 1), numClasses: 3)) { e in
            XCTAssertTrue("\(e)".contains("x7") && "\(e)".contains("prediction has 10 voxels"), "\(e)")
        }
        XCTAssertThrowsError(try scoreCase(caseID: "y", pred: [0], ref: [0], dims: (1, 1, 1), spacing: (1, 0, 1),
                                           numClasses: 3))
    }
}
