import XCTest
@testable import Sampling

/// Imbalanced synthetic pool: class c (1...6) alone in sizes[c-1] slices, 100 background-only slices, 10 slices
/// with classes 2 and 5 together; class 7 never occurs. Slice ids are 1000 + position (not positions, on purpose).
private func imbalancedPool() throws -> SlicePool {
    let sizes = [400, 200, 100, 50, 20, 8]
    var rows: [[Int]] = []
    for (i, n) in sizes.enumerated() {
        for j in 0..<n {
            var r = [Int](repeating: 0, count: 8)
            r[0] = 1000
            r[i + 1] = 10 + (j % 7) * (i + 1)
            rows.append(r)
        }
    }
    for _ in 0..<100 { rows.append([1024, 0, 0, 0, 0, 0, 0, 0]) }
    for j in 0..<10 { rows.append([900, 0, 30 + j, 0, 0, 5, 0, 0]) }
    return try SlicePool(sliceIDs: rows.indices.map { 1000 + $0 }, classPixelCounts: rows, numClasses: 8)
}

/// The 5-slice pool whose weights are worked out by hand in `testWeightedWeightsByHand`.
private func tinyPool() throws -> SlicePool {
    try SlicePool(sliceIDs: [10, 11, 12, 13, 14],
                  classPixelCounts: [[100, 0, 0, 0], [90, 10, 0, 0], [70, 20, 10, 0], [50, 0, 30, 20], [60, 40, 0, 0]],
                  numClasses: 4, classNames: ["bg", "a", "b", "c"])
}

final class SamplerRNGTests: XCTestCase {
    func testMatchesSplitMix64ReferenceValue() {
        // First output of the reference SplitMix64 with state 0: mix64(0 + golden).
        XCTAssertEqual(SamplerRNG.bits(key: 0, counter: 1), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(SamplerRNG.mix64(SamplerRNG.golden), 0xE220_A839_7B1D_CDAF)
        XCTAssertNotEqual(SamplerRNG.mixKey(1, 2), SamplerRNG.mixKey(2, 1))
        let u = (0..<1000).map { SamplerRNG.uniform(key: 7, counter: UInt64($0)) }
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(u.reduce(0, +) / 1000, 0.5, accuracy: 0.05)
        XCTAssertTrue((0..<1000).allSatisfy { (0..<3).contains(SamplerRNG.index(key: 3, counter: UInt64($0), bound: 3)) })
    }
}

final class AliasTableTests: XCTestCase {
    func testImpliedProbabilitiesEqualTarget() throws {
        var vectors: [[Double]] = [[1], [1, 1, 1], [5, 0, 1, 0, 3], [1e-6, 1, 1e6], [0.1, 0.2, 0.3, 0.4]]
        var state: UInt64 = 99
        vectors.append((0..<1000).map { _ in
            state = SamplerRNG.mix64(state)
            return Double(state >> 40) / Double(1 << 24) * (state & 1 == 0 ? 1 : 50)
        })
        for w in vectors {
            let table = try AliasTable(weights: w)
            let p = table.impliedProbabilities(), total = w.reduce(0, +)
            for i in w.indices { XCTAssertEqual(p[i], w[i] / total, accuracy: 1e-12, "weights \(w.prefix(5))… index \(i)") }
            for i in w.indices where w[i] == 0 {
                // A zero-weight index is never kept and never an alias target.
                XCTAssertEqual(table.keep[i], 0)
                XCTAssertFalse(table.alias.enumerated().contains { $0.element == i && $0.offset != i && table.keep[$0.offset] < 1 })
            }
        }
    }

    func testRejectsBadWeights() {
        XCTAssertThrowsError(try AliasTable(weights: []))
        XCTAssertThrowsError(try AliasTable(weights: [0, 0]))
        XCTAssertThrowsError(try AliasTable(weights: [1, -1]))
        XCTAssertThrowsError(try AliasTable(weights: [1, .nan]))
    }
}

final class WeightedSamplerTests: XCTestCase {
    /// Prevalence f = (3/5, 2/5, 1/5): s0 background-only → 1/max f = 5/3; s1 {a} → 5/3; s2 {a,b} → 1/(2/5);
    /// s3 {b,c} → 1/(1/5); s4 {a} → 5/3. Pixel share (of 500 pixels): a 70, b 40, c 20.
    func testWeightedWeightsByHand() throws {
        let pool = try tinyPool()
        let wp = WeightedSampler.weights(pool: pool, frequency: .slicePrevalence)
        for (got, want) in zip(wp, [5.0 / 3, 5.0 / 3, 5.0 / 2, 5.0, 5.0 / 3]) { XCTAssertEqual(got, want, accuracy: 1e-12) }
        let wx = WeightedSampler.weights(pool: pool, frequency: .pixelShare)
        for (got, want) in zip(wx, [500.0 / 70, 500.0 / 70, 500.0 / 40, 500.0 / 20, 500.0 / 70]) {
            XCTAssertEqual(got, want, accuracy: 1e-9)
        }
    }

    func testEmpiricalFrequenciesFollowTarget() throws {
        let pool = try tinyPool()
        let s = try WeightedSampler(pool: pool, batchSize: 16, seed: 42)
        var counts = [Int: Int]()
        let iterations = 4000
        for t in 0..<iterations { for id in s.batch(iteration: t) { counts[id, default: 0] += 1 } }
        let n = Double(iterations * 16), total = s.weights.reduce(0, +)
        var chi2 = 0.0
        for (pos, id) in pool.sliceIDs.enumerated() {
            let e = n * s.weights[pos] / total
            let o = Double(counts[id] ?? 0)
            chi2 += (o - e) * (o - e) / e
        }
        XCTAssertLessThan(chi2, 25, "chi-square with 4 dof (p ≈ 5e-5 bound)")
    }
}

final class RandomSamplerTests: XCTestCase {
    func testUniformOverSlices() throws {
        let rows = (0..<50).map { [100, $0 % 3 == 0 ? 5 : 0] }
        let pool = try SlicePool(sliceIDs: Array(0..<50), classPixelCounts: rows, numClasses: 2)
        let s = try RandomSampler(pool: pool, batchSize: 16, seed: 5)
        var counts = [Int](repeating: 0, count: 50)
        for t in 0..<4000 {
            let b = s.batch(iteration: t)
            XCTAssertEqual(b.count, 16)
            for id in b { counts[id] += 1 }
        }
        let e = 4000.0 * 16 / 50
        let chi2 = counts.reduce(0.0) { $0 + (Double($1) - e) * (Double($1) - e) / e }
        XCTAssertLessThan(chi2, 49 + 6 * 98.0.squareRoot(), "chi-square with 49 dof")
        XCTAssertGreaterThan(chi2, 10, "suspiciously perfect: draws are not random")
    }

    func testIterationsPerEpoch() throws {
        let pool = try imbalancedPool()  // 888 slices
        XCTAssertEqual(pool.count, 888)
        XCTAssertEqual(try RandomSampler(pool: pool, batchSize: 16, seed: 1).iterationsPerEpoch, 56)
        XCTAssertEqual(try WeightedSampler(pool: pool, batchSize: 8, seed: 1).iterationsPerEpoch, 111)
        XCTAssertEqual(try EpisodicSampler(pool: pool, seed: 1).iterationsPerEpoch, 500)
        XCTAssertEqual(try EpisodicSampler(pool: pool, episodesPerEpoch: 37, seed: 1).iterationsPerEpoch, 37)
    }
}

final class EpisodicSamplerTests: XCTestCase {
    func testEpisodeStructure() throws {
        let pool = try imbalancedPool()
        let s = try EpisodicSampler(pool: pool, seed: 3)
        XCTAssertEqual(s.eligibleClasses, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(s.batchSize, 16)
        XCTAssertTrue(s.warnings.isEmpty)
        for t in 0..<300 {
            let e = s.episode(iteration: t)
            XCTAssertEqual(e.classes.count, 4)
            XCTAssertEqual(Set(e.classes).count, 4, "classes drawn without replacement")
            XCTAssertTrue(e.classes.allSatisfy { s.eligibleClasses.contains($0) })
            var expected: [Int] = []
            for (slot, c) in e.classes.enumerated() {
                let drawn = e.support[slot] + e.query[slot]
                XCTAssertEqual(e.support[slot].count, 2)
                XCTAssertEqual(e.query[slot].count, 2)
                XCTAssertEqual(Set(drawn).count, 4, "distinct slices within a class draw")
                for id in drawn {
                    guard let pos = pool.position(ofSliceID: id) else { return XCTFail("unknown slice \(id)") }
                    XCTAssertGreaterThan(pool.classPixelCounts[pos][c], 0, "slice \(id) drawn for class \(c) lacks it")
                }
                expected += drawn
            }
            XCTAssertEqual(e.slices, expected, "support then query, per class in order")
            XCTAssertEqual(s.batch(iteration: t), e.slices)
            XCTAssertEqual(s.episodeClasses(iteration: t), e.classes)
        }
    }

    func testUseSupportOrQuery() throws {
        let pool = try imbalancedPool()
        let sup = try EpisodicSampler(pool: pool, k: 3, nSupport: 1, nQuery: 3, use: .support, seed: 8)
        let qry = try EpisodicSampler(pool: pool, k: 3, nSupport: 1, nQuery: 3, use: .query, seed: 8)
        XCTAssertEqual(sup.batchSize, 3)
        XCTAssertEqual(qry.batchSize, 9)
        for t in 0..<20 {
            let e = sup.episode(iteration: t)
            XCTAssertEqual(e.slices, e.support.flatMap { $0 })
            XCTAssertEqual(qry.episode(iteration: t).slices, e.query.flatMap { $0 }, "same seed → same episode")
        }
    }

    func testClassChoiceIsUniform() throws {
        let s = try EpisodicSampler(pool: try imbalancedPool(), seed: 11)
        var chosen = [Int](repeating: 0, count: 8)
        let n = 3000
        for t in 0..<n { for c in s.episodeClasses(iteration: t) ?? [] { chosen[c] += 1 } }
        let p = 4.0 / 6.0, e = Double(n) * p, sd = (Double(n) * p * (1 - p)).squareRoot()
        for c in 1...6 { XCTAssertEqual(Double(chosen[c]), e, accuracy: 4 * sd, "class \(c)") }
        XCTAssertEqual(chosen[7], 0, "a class with an empty pool is never chosen")
    }

    func testSlicesWithinClassAreUniform() throws {
        // Class 6 has 8 slices; each episode choosing it takes 4 of them.
        let pool = try imbalancedPool()
        let s = try EpisodicSampler(pool: pool, seed: 12)
        var counts = [Int: Int]()
        var draws = 0
        for t in 0..<3000 {
            let e = s.episode(iteration: t)
            if let slot = e.classes.firstIndex(of: 6) {
                for id in e.support[slot] + e.query[slot] { counts[id, default: 0] += 1 }
                draws += 4
            }
        }
        XCTAssertEqual(counts.count, 8)
        let ex = Double(draws) / 8
        let chi2 = counts.values.reduce(0.0) { $0 + (Double($1) - ex) * (Double($1) - ex) / ex }
        XCTAssertLessThan(chi2, 30, "chi-square, 7 dof (conservative: draws within an episode are negatively correlated)")
    }
}

final class ExposureTests: XCTestCase {
    private func exposure(_ s: any BatchSampler, pool: SlicePool, iterations: Int) -> ExposureReport {
        var counter = ExposureCounter(numClasses: pool.numClasses)
        for t in 0..<iterations { counter.add(batch: s.batch(iteration: t), pool: pool) }
        return counter.report(pool: pool)
    }

    func testEpisodicNearUniformWhileRandomFollowsPrevalence() throws {
        let pool = try imbalancedPool()
        let iterations = 500
        let ep = exposure(try EpisodicSampler(pool: pool, seed: 21), pool: pool, iterations: iterations)
        XCTAssertEqual(ep.slicesDrawn, iterations * 16)
        let ratio = try XCTUnwrap(ep.maxMinSliceExposure)
        XCTAssertLessThanOrEqual(ratio, 1.5, "episodic max/min slice exposure")
        let rnd = exposure(try RandomSampler(pool: pool, seed: 21), pool: pool, iterations: iterations)
        let n = Double(rnd.slicesDrawn)
        for row in rnd.classes where row.poolSlices > 0 {
            let p = row.poolPrevalence, sd = (n * p * (1 - p)).squareRoot()
            XCTAssertEqual(Double(row.slicesDrawn), n * p, accuracy: 4 * sd, "random exposure of class \(row.classID)")
        }
        XCTAssertGreaterThan(try XCTUnwrap(rnd.maxMinSliceExposure), 20, "random inherits the 400:8 imbalance")
        // Class 7 has an empty pool: it is not part of the ratio.
        XCTAssertEqual(ep.classes.last?.poolSlices, 0)
    }

    func testWeightedFlattensSliceExposure() throws {
        let pool = try imbalancedPool()
        let w = exposure(try WeightedSampler(pool: pool, seed: 2), pool: pool, iterations: 500)
        // Single-class slices get p ∝ 1/prevalence, so every class's expected slice share is nearly equal.
        XCTAssertLessThan(try XCTUnwrap(w.maxMinSliceExposure), 1.5)
    }

    func testCountsByHand() throws {
        let pool = try tinyPool()
        var c = ExposureCounter(numClasses: 4)
        c.add(batch: [12, 13, 13, 99], pool: pool)
        XCTAssertEqual(c.slicesDrawn, 3)
        XCTAssertEqual(c.unknownSlices, 1)
        XCTAssertEqual(c.slicesContaining, [3, 1, 3, 2])
        XCTAssertEqual(c.pixels, [170, 20, 70, 40])
        let r = c.report(pool: pool)
        XCTAssertEqual(r.classes.map(\.classID), [1, 2, 3])
        XCTAssertEqual(r.classes[0].sliceShare, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(r.classes[1].pixelShare, 70.0 / 130, accuracy: 1e-12)
        XCTAssertEqual(r.classes[2].poolPrevalence, 0.2, accuracy: 1e-12)
        XCTAssertEqual(r.classes[0].poolPixelShare, 70.0 / 130, accuracy: 1e-12)
        XCTAssertEqual(r.maxMinSliceExposure ?? 0, 3, accuracy: 1e-12)
        XCTAssertEqual(r.classes[0].name, "a")
        XCTAssertTrue(r.table().contains("max/min slice exposure over classes: 3.000"))
        let back = try JSONDecoder().decode(ExposureCounter.self, from: JSONEncoder().encode(c))
        XCTAssertEqual(back, c)
    }
}

final class DeterminismTests: XCTestCase {
    func testSameSeedSameBatchDifferentSeedDiffers() throws {
        let pool = try imbalancedPool()
        for kind in SamplerKind.allCases {
            let cfg = SamplerConfig(kind: kind)
            let a = try makeSampler(config: cfg, pool: pool, seed: 77)
            let b = try makeSampler(config: cfg, pool: pool, seed: 77)
            let c = try makeSampler(config: cfg, pool: pool, seed: 78)
            // Out-of-order queries give the same batches: no hidden state.
            for t in [5, 0, 999_999, 5, 3] { XCTAssertEqual(a.batch(iteration: t), b.batch(iteration: t), "\(kind) t=\(t)") }
            let differ = (0..<10).filter { a.batch(iteration: $0) != c.batch(iteration: $0) }.count
            XCTAssertGreaterThanOrEqual(differ, 9, "\(kind): different seeds must give different batches")
            XCTAssertNotEqual(a.batch(iteration: 0), a.batch(iteration: 1), "\(kind)")
            XCTAssertEqual(a.batchSize, 16)
        }
    }
}

final class ErrorTests: XCTestCase {
    func testKTooLarge() throws {
        XCTAssertThrowsError(try EpisodicSampler(pool: try imbalancedPool(), k: 7, seed: 1)) { e in
            XCTAssertTrue("\(e)".contains("sampler.k = 7") && "\(e)".contains("6 foreground classes"), "\(e)")
        }
    }

    func testSmallPoolRefusedOrSampledWithReplacement() throws {
        let pool = try imbalancedPool()
        XCTAssertThrowsError(try EpisodicSampler(pool: pool, nSupport: 5, nQuery: 5, seed: 1)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("class 6") && m.contains("only 8 slice") && m.contains("= 10") && m.contains("allowReplacement"), m)
        }
        let s = try EpisodicSampler(pool: pool, nSupport: 5, nQuery: 5, allowReplacement: true, seed: 1)
        XCTAssertEqual(s.warnings.count, 1)
        XCTAssertTrue(s.warnings[0].contains("class 6"))
        var sawClass6 = false
        for t in 0..<40 {
            let e = s.episode(iteration: t)
            guard let slot = e.classes.firstIndex(of: 6) else { continue }
            sawClass6 = true
            let drawn = e.support[slot] + e.query[slot]
            XCTAssertEqual(drawn.count, 10)
            XCTAssertEqual(Set(drawn).count, 8, "the whole small pool, then repeats")
        }
        XCTAssertTrue(sawClass6)
    }

    func testPoolValidation() {
        XCTAssertThrowsError(try SlicePool(sliceIDs: [1, 2], classPixelCounts: [[1, 0]], numClasses: 2))
        XCTAssertThrowsError(try SlicePool(sliceIDs: [1, 1], classPixelCounts: [[1, 0], [1, 0]], numClasses: 2)) { e in
            XCTAssertTrue("\(e)".contains("slice id 1 occurs more than once"))
        }
        XCTAssertThrowsError(try SlicePool(sliceIDs: [1], classPixelCounts: [[1, 0, 0]], numClasses: 2))
        XCTAssertThrowsError(try SlicePool(sliceIDs: [], classPixelCounts: [], numClasses: 2))
        XCTAssertThrowsError(try SlicePool(sliceIDs: [1], classPixelCounts: [[1, -1]], numClasses: 2))
    }

    func testConfigDecodingAndValidation() throws {
        let dec = JSONDecoder()
        let c = try dec.decode(SamplerConfig.self, from: Data(#"{"kind":"episodic","k":3,"use":"query"}"#.utf8))
        XCTAssertEqual(c, SamplerConfig(kind: .episodic, k: 3, use: .query))
        XCTAssertEqual(c.globalBatchSize, 6)
        XCTAssertEqual(try dec.decode(SamplerConfig.self, from: JSONEncoder().encode(c)), c)
        XCTAssertThrowsError(try dec.decode(SamplerConfig.self, from: Data(#"{"kind":"stratified"}"#.utf8))) { e in
            XCTAssertTrue("\(e)".contains("unknown kind 'stratified'"), "\(e)")
        }
        XCTAssertThrowsError(try dec.decode(SamplerConfig.self, from: Data(#"{"kind":"random","nShot":3}"#.utf8))) { e in
            XCTAssertTrue("\(e)".contains("unknown option 'nShot'"), "\(e)")
        }
        XCTAssertThrowsError(try SamplerConfig(kind: .random, batchSize: 0).validate())
        XCTAssertThrowsError(try SamplerConfig(kind: .episodic, nSupport: 0, use: .support).validate())
        XCTAssertThrowsError(try SamplerConfig(kind: .episodic, episodesPerEpoch: 0).validate())
        XCTAssertNoThrow(try SamplerConfig(kind: .random, k: 0).validate(), "episodic fields do not matter for random")
        let s = try SamplerConfig().setting("kind", to: "weighted").setting("frequency", to: "pixelShare")
        XCTAssertEqual(s.kind, .weighted)
        XCTAssertEqual(s.frequency, .pixelShare)
        XCTAssertThrowsError(try SamplerConfig().setting("k", to: "four"))
        XCTAssertThrowsError(try SamplerConfig().setting("bogus", to: "1"))
        let sampler = try makeSampler(config: s, pool: try tinyPool(), seed: 1)
        XCTAssertEqual((sampler as? WeightedSampler)?.frequency, .pixelShare)
    }
}
