import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Train

/// The experiment report on a hand-made experiment folder: 1 budget × 1 regime × 2 samplers × 3 folds, one run missing.
final class ReportTests: XCTestCase {
    // Per fold: test mean Dice of classes A and B (the runs' summaries), and HD95 (nil = every case infinite).
    static let dice: [String: [[Double]]] = [
        "random": [[0.80, 0.60], [0.90, 0.70], [0.85, 0.50]],
        "episodic": [[0.82, 0.66], [0.95, 0.72]],
    ]
    static let hd95: [String: [[Double?]]] = [
        "random": [[4.0, 6.0], [2.0, nil], [3.0, 9.0]],
        "episodic": [[3.0, 5.0], [1.0, 4.0]],
    ]

    var folder: URL!

    override func setUpWithError() throws {
        folder = Scratch.path("report-test")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var cfg = ExperimentConfig()
        cfg.name = "synthetic"
        cfg.folds = [0, 1, 2]
        cfg.regimes = [.low]
        cfg.samplers = [cfg.samplers[0], cfg.samplers[2]] // random, episodic
        try ConfigJSON.prettyData(cfg).write(to: folder.appendingPathComponent("experiment.json"))
        for run in cfg.runs() {
            let dir = folder.appendingPathComponent(run.relativePath)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try ConfigJSON.prettyData(run).write(to: dir.appendingPathComponent("run.json"))
            guard let d = Self.dice[run.sampler], run.fold < d.count, let h = Self.hd95[run.sampler] else { continue } // unfinished
            try Self.resultsJSON(sampler: run.sampler, fold: run.fold, dice: d[run.fold], hd95: h[run.fold])
                .write(to: dir.appendingPathComponent("results.json"))
            try Self.exampleJSON(sampler: run.sampler).write(to: dir.appendingPathComponent("example.json"))
        }
    }

    override func tearDownWithError() throws {
        if let folder { try? FileManager.default.removeItem(at: folder) }
    }

    /// results.json as the runner writes it (RunResult through ConfigJSON.prettyData), by hand: NaN as "nan", null
    /// where Metrics writes non-finite scores.
    static func resultsJSON(sampler: String, fold: Int, dice: [Double], hd95: [Double?]) throws -> Data {
        let ipe = sampler == "random" ? 43 : 500
        let iters = sampler == "random" ? 2150 - 43 * fold : 25_000
        func classSummary(_ c: Int) -> [String: Any] {
            ["classID": c + 1, "name": ["A", "B"][c], "diceMean": dice[c], "diceStd": 0.01, "diceCases": 2,
             "hd95Mean": hd95[c].map { $0 as Any } ?? NSNull(), "hd95Std": hd95[c] == nil ? NSNull() : 0.5 as Any,
             "hd95Cases": hd95[c] == nil ? 0 : 2, "hd95Infinite": hd95[c] == nil ? 2 : 0,
             "bothEmpty": 0, "predEmpty": hd95[c] == nil ? 2 : 0, "refEmpty": 0]
        }
        let finiteHD = hd95.compactMap { $0 }
        let summary: [String: Any] = [
            "cases": 2, "classes": [classSummary(0), classSummary(1)],
            "meanDice": dice.reduce(0, +) / 2,
            "meanHD95": finiteHD.reduce(0, +) / Double(finiteHD.count),
            "hd95Infinite": hd95.filter { $0 == nil }.count * 2,
        ]
        let caseScores: [[String: Any]] = [["caseID": "t0", "scores": [
            ["classID": 1, "dice": dice[0], "hd95": hd95[0].map { $0 as Any } ?? NSNull(), "presence": "both", "predVoxels": 5, "refVoxels": 5],
            ["classID": 2, "dice": NSNull(), "hd95": NSNull(), "presence": "bothEmpty", "predVoxels": 0, "refVoxels": 0],
        ]]]
        var exposureRows: [[String: Any]] = []
        for c in 1...2 {
            let share: Double = sampler == "random" ? 0.1 * Double(c) : 0.5
            var row: [String: Any] = ["classID": c, "name": ["A", "B"][c - 1], "slicesDrawn": 10 * c, "sliceShare": share]
            row["pixelsDrawn"] = 100
            row["pixelShare"] = 0.5
            row["poolSlices"] = 5
            row["poolPrevalence"] = 0.1 * Double(c)
            row["poolPixelShare"] = 0.5
            exposureRows.append(row)
        }
        // Validation every 100 iterations; one fold has a NaN row (a class absent from validation).
        // Validation every 100 iterations; fold 1 has a "nan" row (a class absent from validation).
        var curve: [[String: Any]] = []
        for i in 1...5 {
            let dice: Double = 0.3 + 0.1 * Double(i) + 0.01 * Double(fold)
            var row: [String: Any] = ["iteration": i * 100, "epoch": Double(i * 100) / Double(ipe), "samplesSeen": i * 1600]
            row["lr"] = 0.001
            row["trainLoss"] = 1.0 / Double(i)
            row["valMeanDice"] = (fold == 1 && i == 3) ? "nan" as Any : dice as Any
            row["valDice"] = [0.5, "nan"] as [Any]
            curve.append(row)
        }
        let obj: [String: Any] = [
            "config": try JSONSerialization.jsonObject(with: ConfigJSON.prettyData(RunConfig())),
            "budget": ["maxIterations": iters, "milestones": [], "gamma": 0.1, "patienceIterations": 0, "validationEvery": 100,
                       "iterationsPerEpoch": ipe, "unitIterations": ipe],
            "iterationsTrained": iters, "epochsTrained": Double(iters) / Double(ipe), "samplesSeen": iters * 16,
            "bestIteration": 500, "bestValidationDice": fold == 2 ? "nan" as Any : 0.8, "wallSeconds": 1.5, "ranks": 1,
            "stopReason": fold == 1 ? "early stopping: no improvement for 500 iterations (patience 500)" : "budget exhausted",
            "exposure": ["slicesDrawn": 100, "foregroundPixelsDrawn": 200, "classes": exposureRows, "maxMinSliceExposure": 2.0],
            "classNames": ["background", "A", "B"],
            "test": ["cases": caseScores, "summary": summary],
            "curve": curve,
        ]
        return try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
    }

    static let exampleImage: [UInt8] = [0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 255]

    static func exampleJSON(sampler: String) throws -> Data {
        let ref: [UInt8] = [0, 0, 1, 1, 0, 2, 2, 0, 0, 0, 1, 0]
        let pred: [UInt8] = sampler == "random" ? [0, 0, 1, 0, 0, 2, 2, 2, 0, 0, 1, 0] : ref
        let obj: [String: Any] = ["caseID": "t0", "slice": 7, "width": 4, "height": 3, "image": exampleImage,
                                  "reference": ref, "prediction": pred]
        return try JSONSerialization.data(withJSONObject: obj)
    }

    func popStd(_ xs: [Double]) -> Double {
        let m = xs.reduce(0, +) / Double(xs.count)
        return (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count)).squareRoot()
    }

    // MARK: - tests

    func testTableNumbersAndMissingRun() throws {
        let out = try ExperimentReport.build(folder: folder)
        XCTAssertEqual(out.missingRuns, ["runs/epochs/low/episodic/fold2"])
        let s = try ExperimentReport.readSummary(out.summaryURL)
        XCTAssertEqual(s.runs.expected, 6)
        XCTAssertEqual(s.runs.finished, 5)
        XCTAssertEqual(s.classNames, ["A", "B"])
        XCTAssertTrue(s.runs.unreadable.isEmpty, "\(s.runs.unreadable)")

        let random = try XCTUnwrap(s.cell(budget: "epochs", regime: "low", sampler: "random"))
        XCTAssertEqual(random.foldsFinished, [0, 1, 2])
        XCTAssertEqual(try XCTUnwrap(random.classes[0].dice.mean), 0.85, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(random.classes[0].dice.std), (0.005 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(random.classes[1].dice.mean), 0.6, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(random.classes[1].dice.std), popStd([0.6, 0.7, 0.5]), accuracy: 1e-12)
        // HD95 of B: fold 1 had only infinite cases, so 2 folds contribute and 2 cases are counted as infinite.
        XCTAssertEqual(random.classes[1].hd95.n, 2)
        XCTAssertEqual(try XCTUnwrap(random.classes[1].hd95.mean), 7.5, accuracy: 1e-12)
        XCTAssertEqual(random.classes[1].hd95Infinite, 2)
        // The mean row: per fold the mean over classes, then over folds.
        XCTAssertEqual(try XCTUnwrap(random.mean.dice.mean), (0.70 + 0.80 + 0.675) / 3, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(random.mean.dice.std), popStd([0.70, 0.80, 0.675]), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(random.iterationsTrained.mean), Double(2150 + 2107 + 2064) / 3, accuracy: 1e-9)
        XCTAssertEqual(random.iterationsPerEpoch.mean, 43)
        XCTAssertEqual(random.stopReasons, ["budget exhausted": 2, "early stopping": 1])
        // bestValidationDice was "nan" in fold 2: two defined folds.
        XCTAssertEqual(random.bestValidationDice.n, 2)

        let episodic = try XCTUnwrap(s.cell(budget: "epochs", regime: "low", sampler: "episodic"))
        XCTAssertEqual(episodic.foldsFinished, [0, 1])
        XCTAssertEqual(try XCTUnwrap(episodic.classes[0].dice.mean), 0.885, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(episodic.classes[0].dice.std), 0.065, accuracy: 1e-12)
        XCTAssertEqual(episodic.iterationsPerEpoch.mean, 500)

        // Paired: random − episodic over folds 0 and 1 only.
        let cmp = try XCTUnwrap(s.comparisons.first)
        XCTAssertEqual(s.comparisons.count, 1)
        XCTAssertEqual([cmp.a, cmp.b], ["random", "episodic"])
        XCTAssertEqual(cmp.classes[0].folds, [0, 1])
        XCTAssertEqual(try XCTUnwrap(cmp.classes[0].meanDifference), -0.035, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(cmp.classes[0].pValue), 0.5, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(cmp.mean.meanDifference), ((0.70 - 0.74) + (0.80 - 0.835)) / 2, accuracy: 1e-12)

        // table.csv: the random class-A row carries the same numbers.
        let csv = try String(contentsOf: out.tableCSVURL, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let header = csv[0]
        let row = try XCTUnwrap(csv.first { $0.count > 4 && $0[2] == "random" && $0[4] == "A" })
        func col(_ name: String) throws -> String { row[try XCTUnwrap(header.firstIndex(of: name), name)] }
        XCTAssertEqual(try XCTUnwrap(Double(try col("dice_mean"))), 0.85, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(Double(try col("dice_std"))), (0.005 / 3).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(try col("iterations_per_epoch"), "43.00")
        XCTAssertEqual(try col("folds_finished"), "3")

        // table.md: Table-2 layout with the budget rows and the missing run named.
        let md = try String(contentsOf: out.tableMarkdownURL, encoding: .utf8)
        XCTAssertEqual(md, out.tableMarkdown)
        XCTAssertTrue(md.contains("| class | low · random | low · episodic |"), md)
        XCTAssertTrue(md.contains("| A | 0.850 ± 0.041 | 0.885 ± 0.065 (n=2) |"), md)
        XCTAssertTrue(md.contains("| *iterations / epoch* | 43 | 500 |"), md)
        XCTAssertTrue(md.contains("runs/epochs/low/episodic/fold2"), md)
    }

    func testPermutationTestAndT() throws {
        // All n = 3 differences positive: only all-plus and all-minus reach |Σ| = 6 → 2/8.
        XCTAssertEqual(try XCTUnwrap(ReportStats.signFlipPValue([0.01, 0.02, 0.03])).p, 0.25, accuracy: 1e-12)
        // ±1 ±2 ±3 takes |Σ| ∈ {6, 0, 2, 4, 4, 2, 0, 6}; observed |1 − 2 + 3| = 2 → 6/8.
        XCTAssertEqual(try XCTUnwrap(ReportStats.signFlipPValue([1, -2, 3])).p, 0.75, accuracy: 1e-12)
        // Observed |1 + 1 − 1 − 1| = 0: every assignment is at least as extreme.
        XCTAssertEqual(try XCTUnwrap(ReportStats.signFlipPValue([1, 1, -1, -1])).p, 1, accuracy: 1e-12)
        // Five positive differences: 2/32.
        let five = try XCTUnwrap(ReportStats.signFlipPValue([0.1, 0.3, 0.2, 0.05, 0.4]))
        XCTAssertEqual(five.p, 2.0 / 32, accuracy: 1e-12)
        XCTAssertTrue(five.exact)
        XCTAssertNil(ReportStats.signFlipPValue([]))
        // Beyond the exact limit: a Monte Carlo estimate, flagged, near the exact 2/2^20.
        let many = try XCTUnwrap(ReportStats.signFlipPValue(Array(repeating: 1, count: 20)))
        XCTAssertFalse(many.exact)
        XCTAssertLessThan(many.p, 0.001)

        XCTAssertEqual(try XCTUnwrap(ReportStats.pairedT([1, 2, 3])), 2 / (1 / 3.0.squareRoot()), accuracy: 1e-12)
        XCTAssertNil(ReportStats.pairedT([0.5]))
        XCTAssertNil(ReportStats.pairedT([0, 0, 0]))
        XCTAssertEqual(ReportStats.pairedT([0.2, 0.2]), .infinity)
        // Two-sided t p-values at the textbook 5% critical values.
        XCTAssertEqual(try XCTUnwrap(ReportStats.tTestPValue(t: 12.7062, df: 1)), 0.05, accuracy: 1e-4)
        XCTAssertEqual(try XCTUnwrap(ReportStats.tTestPValue(t: -2.776445, df: 4)), 0.05, accuracy: 1e-5)
        XCTAssertEqual(try XCTUnwrap(ReportStats.tTestPValue(t: 0, df: 4)), 1, accuracy: 1e-12)
    }

    func testBandCombinesFoldsOfDifferentLength() {
        // Fold b stopped early at x = 2; at x = 3 only fold a contributes. Fold c is validated at other x's.
        let b = ReportHTML.band([[(1, 0.2), (2, 0.4), (3, 0.6)], [(1, 0.4), (2, 0.6)], [(1.5, 0.5)]])
        XCTAssertEqual(b.map(\.x), [1, 1.5, 2, 3])
        XCTAssertEqual(b[0].mean, 0.3, accuracy: 1e-12)
        XCTAssertEqual(b[1].mean, (0.3 + 0.5 + 0.5) / 3, accuracy: 1e-12) // a and b interpolated at 1.5
        XCTAssertEqual(b[1].lo, 0.3, accuracy: 1e-12)
        XCTAssertEqual(b[3].mean, 0.6, accuracy: 1e-12)
        XCTAssertEqual(b[3].lo, b[3].hi)
    }

    func testReportHTMLIsSelfContainedWithValidSVGAndPNG() throws {
        let out = try ExperimentReport.build(folder: folder)
        let html = try String(contentsOf: out.reportURL, encoding: .utf8)
        // Self-contained: no external fetches.
        let withoutNamespace = html.replacingOccurrences(of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "")
        XCTAssertFalse(withoutNamespace.contains("http://") || withoutNamespace.contains("https://"))
        XCTAssertFalse(html.contains("<script"))
        XCTAssertTrue(html.contains("runs/epochs/low/episodic/fold2"))

        // Every <svg>…</svg> block parses as XML.
        var svgs: [String] = []
        var rest = html[...]
        while let start = rest.range(of: "<svg"), let end = rest.range(of: "</svg>", range: start.upperBound..<rest.endIndex) {
            svgs.append(String(rest[start.lowerBound..<end.upperBound]))
            rest = rest[end.upperBound...]
        }
        XCTAssertEqual(svgs.count, 4, "one panel each for figures 1–4")
        for svg in svgs {
            let parser = XMLParser(data: Data(svg.utf8))
            XCTAssertTrue(parser.parse(), "SVG does not parse: \(parser.parserError.map { "\($0)" } ?? "?")\n\(svg.prefix(300))")
        }
        XCTAssertTrue(svgs[0].contains("<polyline"), "figure 1 draws the curves")

        // Embedded PNGs: CT (grey), reference and two samplers (RGB).
        var pngs: [Data] = []
        rest = html[...]
        while let start = rest.range(of: "data:image/png;base64,") {
            let tail = rest[start.upperBound...]
            let end = tail.firstIndex(of: "\"") ?? tail.endIndex
            pngs.append(try XCTUnwrap(Data(base64Encoded: String(tail[..<end]))))
            rest = tail[end...]
        }
        XCTAssertEqual(pngs.count, 4)
        let ct = try decodePNG(pngs[0])
        XCTAssertEqual(ct.width, 4)
        XCTAssertEqual(ct.height, 3)
        XCTAssertEqual(ct.colorType, 0)
        XCTAssertEqual(ct.pixels, Self.exampleImage)
        let ref = try decodePNG(pngs[1])
        XCTAssertEqual(ref.colorType, 3, "indexed colour for up to 16 classes")
        XCTAssertEqual(ref.pixels.count, 4 * 3 * 3)
        // Background pixel 1 stays grey (20); pixel 2 (class 1) is tinted.
        XCTAssertEqual(Array(ref.pixels[3..<6]), [20, 20, 20])
        XCTAssertNotEqual(ref.pixels[6], ref.pixels[7])
    }

    func testPNGEncoderLargeImageSpansSeveralStoredBlocks() throws {
        // 300×300 RGB = 270,300 bytes of scanlines: five stored blocks.
        var px = [UInt8](repeating: 0, count: 300 * 300 * 3)
        for i in px.indices { px[i] = UInt8((i * 7) & 0xFF) }
        let d = try decodePNG(try PNGEncoder.encode(width: 300, height: 300, colorType: .rgb, pixels: px))
        XCTAssertEqual(d.pixels, px)
        XCTAssertGreaterThan(d.blocks, 4)
        XCTAssertThrowsError(try PNGEncoder.encode(width: 2, height: 2, colorType: .grey, pixels: [1, 2, 3]))
        let pal: [(UInt8, UInt8, UInt8)] = [(0, 0, 0), (255, 0, 0), (0, 0, 255)]
        let indexed = try decodePNG(try PNGEncoder.encodeIndexed(width: 3, height: 1, palette: pal, indices: [2, 0, 1]))
        XCTAssertEqual(indexed.pixels, [0, 0, 255, 0, 0, 0, 255, 0, 0])
        XCTAssertThrowsError(try PNGEncoder.encodeIndexed(width: 1, height: 1, palette: pal, indices: [3]))
    }

    func testFolderWithoutRunsIsAnErrorNamingIt() throws {
        let empty = folder.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ExperimentReport.build(folder: empty)) { e in
            XCTAssertTrue("\(e)".contains(empty.path), "\(e)")
        }
    }

    func testUnreadableResultsAreListedNotFatal() throws {
        let bad = folder.appendingPathComponent("runs/epochs/low/random/fold1/results.json")
        try Data("{\"budget\": 3}".utf8).write(to: bad)
        let out = try ExperimentReport.build(folder: folder)
        XCTAssertEqual(out.unreadableRuns.map(\.relativePath), ["runs/epochs/low/random/fold1"])
        XCTAssertEqual(out.summary.cell(budget: "epochs", regime: "low", sampler: "random")?.foldsFinished, [0, 2])
    }

    // MARK: - an independent PNG reader (bitwise CRC, plain Adler-32) for the checks

    struct DecodedPNG { var width = 0, height = 0, colorType = 0, blocks = 0, pixels: [UInt8] = [] }

    func decodePNG(_ data: Data) throws -> DecodedPNG {
        let b = [UInt8](data)
        XCTAssertEqual(Array(b.prefix(8)), [137, 80, 78, 71, 13, 10, 26, 10], "PNG signature")
        func u32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        func crc(_ bytes: ArraySlice<UInt8>) -> Int {
            var c: UInt32 = 0xFFFF_FFFF
            for x in bytes {
                c ^= UInt32(x)
                for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
            }
            return Int(c ^ 0xFFFF_FFFF)
        }
        var out = DecodedPNG()
        var idat: [UInt8] = []
        var palette: [[UInt8]] = []
        var pos = 8, sawEnd = false
        while pos + 12 <= b.count {
            let len = u32(pos)
            let type = String(decoding: b[(pos + 4)..<(pos + 8)], as: UTF8.self)
            XCTAssertLessThanOrEqual(pos + 12 + len, b.count)
            XCTAssertEqual(crc(b[(pos + 4)..<(pos + 8 + len)]), u32(pos + 8 + len), "CRC of chunk \(type)")
            let body = Array(b[(pos + 8)..<(pos + 8 + len)])
            switch type {
            case "IHDR":
                out.width = u32(pos + 8); out.height = u32(pos + 12)
                XCTAssertEqual(body[8], 8, "bit depth")
                out.colorType = Int(body[9])
            case "PLTE": palette = stride(from: 0, to: body.count, by: 3).map { Array(body[$0..<($0 + 3)]) }
            case "IDAT": idat += body
            case "IEND": sawEnd = true
            default: break
            }
            pos += 12 + len
        }
        XCTAssertTrue(sawEnd)
        XCTAssertEqual(crc(ArraySlice(Array("IEND".utf8))), 0xAE42_6082, "the reader's CRC matches the known IEND CRC")
        // zlib: header, stored blocks, Adler-32.
        XCTAssertEqual((Int(idat[0]) << 8 | Int(idat[1])) % 31, 0)
        XCTAssertEqual(idat[0] & 0x0F, 8)
        var raw: [UInt8] = []
        var p = 2, final = false
        while !final {
            let hdr = idat[p]
            final = hdr & 1 == 1
            XCTAssertEqual((hdr >> 1) & 3, 0, "stored block")
            let len = Int(idat[p + 1]) | Int(idat[p + 2]) << 8
            let nlen = Int(idat[p + 3]) | Int(idat[p + 4]) << 8
            XCTAssertEqual(len ^ 0xFFFF, nlen)
            raw += idat[(p + 5)..<(p + 5 + len)]
            p += 5 + len
            out.blocks += 1
        }
        var a = 1, s2 = 0
        for x in raw { a = (a + Int(x)) % 65_521; s2 = (s2 + a) % 65_521 }
        let stored = Int(idat[p]) << 24 | Int(idat[p + 1]) << 16 | Int(idat[p + 2]) << 8 | Int(idat[p + 3])
        XCTAssertEqual(stored, s2 << 16 | a, "Adler-32")
        XCTAssertEqual(p + 4, idat.count)
        let ch = out.colorType == 2 ? 3 : 1
        let rowBytes = out.width * ch
        XCTAssertEqual(raw.count, out.height * (rowBytes + 1))
        for y in 0..<out.height {
            XCTAssertEqual(raw[y * (rowBytes + 1)], 0, "filter type")
            out.pixels += raw[(y * (rowBytes + 1) + 1)..<((y + 1) * (rowBytes + 1))]
        }
        if out.colorType == 3 { // expand palette indices to RGB
            XCTAssertTrue(out.pixels.allSatisfy { Int($0) < palette.count }, "palette index in range")
            out.pixels = out.pixels.flatMap { Int($0) < palette.count ? palette[Int($0)] : [0, 0, 0] }
        }
        return out
    }
}
