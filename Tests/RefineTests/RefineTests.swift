import Data
import Foundation
import XCTest
@testable import Refine

/// A synthetic case on a small RAS grid: boxes of label values per source and HU values in the CT.
struct Scene {
    let nx = 24, ny = 20, nz = 16
    var ct: [Float]
    var src: [String: [UInt16]]

    init() {
        let n = nx * ny * nz
        // 1000 HU lies outside every tissue range, so only voxels a test sets can become a class.
        ct = [Float](repeating: 1000, count: n)
        src = ["body_regions": [UInt16](repeating: 0, count: n), "body_parts": [UInt16](repeating: 1, count: n),
               "tissues": [UInt16](repeating: 0, count: n), "total": [UInt16](repeating: 0, count: n)]
    }

    func each(_ x: Range<Int>, _ y: Range<Int>, _ z: Range<Int>, _ f: (Int) -> Void) {
        for k in z { for j in y { for i in x { f((k * ny + j) * nx + i) } } }
    }
    mutating func label(_ s: String, _ v: UInt16, _ x: Range<Int>, _ y: Range<Int>, _ z: Range<Int>) {
        if src[s] == nil { src[s] = [UInt16](repeating: 0, count: nx * ny * nz) }
        var a = src[s]!
        each(x, y, z) { a[$0] = v }
        src[s] = a
    }
    mutating func hu(_ v: Float, _ x: Range<Int>, _ y: Range<Int>, _ z: Range<Int>) {
        var a = ct
        each(x, y, z) { a[$0] = v }
        ct = a
    }
    var inputs: RefineInputs { RefineInputs(dims: [nx, ny, nz], ct: ct, sources: src) }
}

/// boa-1.0 with every optional rule off, so one test switches on only the rule it checks.
func bareMapping() throws -> RefineMapping {
    var m = try RefinePresets.preset("boa-1.0")
    m.rules.componentRemoval = false
    m.rules.bodyParts = false
    m.rules.crop = false
    m.ignore.sources = []
    return m
}

func count(_ labels: [UInt8], _ name: String) -> Int {
    let v = name == "ignore" ? RefineClasses.ignoreLabel : RefineClasses.value(of: name)!
    return labels.reduce(0) { $0 + ($1 == v ? 1 : 0) }
}

final class RefineRuleTests: XCTestCase {
    func testNamedMusclesSMAndMuscleHU() throws {
        var s = Scene()
        s.label("tissues", 1, 0..<6, 0..<5, 0..<4); s.hu(40, 0..<6, 0..<5, 0..<4)   // 120 muscle voxels
        s.label("total", 86, 0..<2, 0..<5, 0..<4)                                  // 40 of them autochthon → ESM
        s.hu(200, 5..<6, 0..<5, 0..<4)                                              // 20 too dense
        s.hu(-100, 4..<5, 0..<5, 0..<4)                                             // 20 fat → IMAT
        s.hu(-10, 0..<1, 0..<1, 0..<4)                                              // still muscle
        s.hu(-35, 1..<2, 0..<1, 0..<4)                                              // 4 ESM voxels fat → IMAT
        s.label("total", 88, 10..<12, 0..<2, 0..<2); s.hu(50, 10..<12, 0..<2, 0..<2) // PSM outside the base
        let r = try Refiner.refine(s.inputs, mapping: bareMapping())
        XCTAssertEqual(count(r.labels, "ESM"), 36)
        XCTAssertEqual(count(r.labels, "PSM"), 8)
        XCTAssertEqual(count(r.labels, "SM"), 40)
        XCTAssertEqual(count(r.labels, "IMAT"), 24)
        XCTAssertEqual(r.log.removed["huThresholds"]?["SM"], 40)
        XCTAssertEqual(r.log.removed["huThresholds"]?["ESM"], 4)
        XCTAssertEqual(r.log.counts["SM"], 40)
        // Without the plausibility rule the muscles keep their fat and dense voxels and IMAT takes none.
        var m = try bareMapping(); m.rules.huThresholds = false
        let r2 = try Refiner.refine(s.inputs, mapping: m)
        XCTAssertEqual(count(r2.labels, "ESM"), 40)
        XCTAssertEqual(count(r2.labels, "SM"), 80)
        XCTAssertEqual(count(r2.labels, "IMAT"), 0)
        // A threshold from the mapping: muscle up to 250 HU keeps the dense slab.
        m = try bareMapping(); m.hu.muscle.max = 250
        XCTAssertEqual(count(try Refiner.refine(s.inputs, mapping: m).labels, "SM"), 60)
    }

    func testOverlapFirstListedWins() throws {
        var s = Scene()
        s.label("total", 86, 0..<4, 0..<4, 0..<4); s.hu(40, 0..<8, 0..<4, 0..<4)
        s.label("tissues", 5, 2..<8, 0..<4, 0..<4)   // a second source overlapping ESM at x 2..<4
        var m = try bareMapping()
        m.classes = [NamedClass(name: "ESM", mask: .from("total", [86])),
                     NamedClass(name: "QLM", mask: .from("tissues", [5]))]
        let r = try Refiner.refine(s.inputs, mapping: m)
        XCTAssertEqual(count(r.labels, "ESM"), 64)
        XCTAssertEqual(count(r.labels, "QLM"), 64)
        XCTAssertEqual(r.log.removed["overlap"]?["QLM"], 32)
    }

    func testSATVATAndIMATSubtraction() throws {
        var s = Scene()
        s.label("tissues", 3, 0..<4, 0..<4, 0..<2); s.hu(-100, 0..<4, 0..<4, 0..<2)   // 32 SAT
        s.hu(-250, 3..<4, 0..<4, 0..<2)                                              // 8 too light
        s.label("body_regions", 3, 10..<16, 10..<15, 5..<9); s.hu(-100, 10..<16, 10..<15, 5..<9) // 120 cavity fat
        s.hu(-40, 10..<12, 10..<15, 5..<9)                // 40 fat but outside the VAT range
        s.label("total", 5, 14..<16, 10..<15, 5..<9)      // 40 liver: organ mask
        s.label("tissues", 1, 12..<14, 10..<15, 5..<9)    // 40 muscle-mask voxels with VAT HU
        let r = try Refiner.refine(s.inputs, mapping: bareMapping())
        XCTAssertEqual(count(r.labels, "SAT"), 24)
        XCTAssertEqual(r.log.removed["huThresholds"]?["SAT"], 8)
        XCTAssertEqual(count(r.labels, "VAT"), 40)
        XCTAssertEqual(r.log.removed["huThresholds"]?["VAT"], 40)
        XCTAssertEqual(r.log.removed["vatOrganMask"]?["VAT"], 40)
        // The fat inside the muscle mask is VAT, so IMAT loses it (rule 5's subtraction).
        XCTAssertEqual(count(r.labels, "IMAT"), 0)
        XCTAssertEqual(r.log.removed["imat"]?["IMAT"], 40)
        XCTAssertEqual(count(r.labels, "SM"), 0)
        var m = try bareMapping(); m.rules.vatOrganMask = false
        XCTAssertEqual(count(try Refiner.refine(s.inputs, mapping: m).labels, "VAT"), 80)
        // SAT subtraction: with SAT from the SAROS region overlapping the muscle mask.
        var t = Scene()
        t.label("body_regions", 1, 0..<4, 0..<4, 0..<2); t.hu(-100, 0..<4, 0..<4, 0..<2)
        t.label("tissues", 1, 0..<2, 0..<4, 0..<2)
        t.label("tissues", 1, 6..<8, 0..<4, 0..<2); t.hu(-100, 6..<8, 0..<4, 0..<2)   // 16 true IMAT
        m = try bareMapping(); m.sat = .from("body_regions", [1])
        let r3 = try Refiner.refine(t.inputs, mapping: m)
        XCTAssertEqual(count(r3.labels, "SAT"), 32)
        XCTAssertEqual(count(r3.labels, "IMAT"), 16)
        XCTAssertEqual(r3.log.removed["imat"]?["IMAT"], 16)
        m.rules.imat = false
        XCTAssertEqual(count(try Refiner.refine(t.inputs, mapping: m).labels, "IMAT"), 0)
    }

    func testComponentRemovalConnectivity() throws {
        var s = Scene()
        func sat(_ x: Range<Int>, _ y: Range<Int>, _ z: Range<Int>) { s.label("tissues", 3, x, y, z); s.hu(-100, x, y, z) }
        sat(0..<4, 0..<1, 0..<1)        // 4 voxels: removed
        sat(10..<15, 0..<1, 0..<1)      // 5 voxels: kept
        sat(0..<3, 10..<11, 10..<11)    // two 3-voxel rods touching only at a corner
        sat(3..<6, 11..<12, 11..<12)
        var m = try bareMapping(); m.rules.componentRemoval = true
        var r = try Refiner.refine(s.inputs, mapping: m)
        XCTAssertEqual(count(r.labels, "SAT"), 11)
        XCTAssertEqual(r.log.removed["componentRemoval"]?["SAT"], 4)
        m.components.connectivity = 18
        r = try Refiner.refine(s.inputs, mapping: m)
        XCTAssertEqual(count(r.labels, "SAT"), 5)
        XCTAssertEqual(r.log.removed["componentRemoval"]?["SAT"], 10)
        m.components.connectivity = 26; m.components.minVoxels = 7
        XCTAssertEqual(count(try Refiner.refine(s.inputs, mapping: m).labels, "SAT"), 0)
        // Components are per class: a 3-voxel SAT rod next to 3 voxels of SM is still removed.
        var t = Scene()
        t.label("tissues", 3, 0..<3, 0..<1, 0..<1); t.hu(-100, 0..<3, 0..<1, 0..<1)
        t.label("tissues", 1, 3..<6, 0..<1, 0..<1); t.hu(40, 3..<6, 0..<1, 0..<1)
        m.components.minVoxels = 5
        let r2 = try Refiner.refine(t.inputs, mapping: m)
        XCTAssertEqual(count(r2.labels, "SAT") + count(r2.labels, "SM"), 0)
    }

    func testBodyPartsAndIgnore() throws {
        var s = Scene()
        s.label("tissues", 3, 0..<2, 0..<2, 0..<2); s.hu(-100, 0..<2, 0..<2, 0..<2)
        s.label("body_parts", 2, 0..<2, 0..<2, 0..<2)    // head: dropped
        s.label("tissues", 3, 5..<7, 0..<2, 0..<2); s.hu(-100, 5..<7, 0..<2, 0..<2)
        s.label("body_parts", 3, 5..<7, 0..<2, 0..<2)    // right leg: kept
        s.label("tissues", 3, 10..<12, 0..<2, 6..<9); s.hu(-100, 10..<12, 0..<2, 6..<9)
        s.label("body_regions", 255, 0..<24, 0..<20, 7..<8)  // an unannotated slice
        var m = try bareMapping(); m.rules.bodyParts = true; m.ignore = IgnoreSpec()
        let r = try Refiner.refine(s.inputs, mapping: m)
        XCTAssertEqual(count(r.labels, "SAT"), 8 + 8)
        XCTAssertEqual(r.log.removed["bodyParts"]?["SAT"], 8)
        XCTAssertEqual(count(r.labels, "ignore"), 24 * 20)
        XCTAssertTrue(r.labels[(7 * 20) * 24..<(8 * 20) * 24].allSatisfy { $0 == 255 })
    }

    func testCropPicksVertebraSlices() throws {
        var s = Scene()
        let v2 = RefinePresets.TotalV2.self
        s.label("total", UInt16(v2.thoracic[12 - 5]), 8..<12, 8..<12, 12..<14)  // T5 at z 12–13
        s.label("total", UInt16(v2.lumbar[5 - 2]), 8..<12, 8..<12, 3..<5)      // L2 at z 3–4
        s.label("total", UInt16(v2.lumbar[0]), 8..<12, 8..<12, 0..<2)          // L5: below "at most L4"
        s.label("tissues", 3, 0..<2, 0..<2, 0..<16); s.hu(-100, 0..<2, 0..<2, 0..<16)
        var m = try bareMapping(); m.rules.crop = true
        let r = try Refiner.refine(s.inputs, mapping: m)
        XCTAssertEqual(r.zRange, 3...13)
        XCTAssertEqual(r.log.cropFrom, "T5"); XCTAssertEqual(r.log.cropTo, "L2")
        XCTAssertEqual(r.labels.count, 24 * 20 * 11)
        XCTAssertEqual(count(r.labels, "SAT"), 4 * 11)
        XCTAssertEqual(r.log.removed["crop"]?["SAT"], 4 * 5)
        // T1 and L4 bound the crop even when vertebrae above/below are labelled.
        s.label("total", UInt16(v2.thoracic[11]), 8..<13, 8..<12, 14..<15)       // T1 at z 14, 20 voxels
        s.label("total", 50, 8..<12, 8..<12, 15..<16)                            // C1 above: not a level
        s.label("total", UInt16(v2.lumbar[1]), 8..<12, 8..<12, 2..<3)            // L4 at z 2
        XCTAssertEqual(try Refiner.refine(s.inputs, mapping: m).zRange, 2...14)
        // A stray-voxel guard: L4 with 16 voxels is ignored at minVoxels 20.
        m.crop.minVoxels = 20
        XCTAssertEqual(try Refiner.refine(s.inputs, mapping: m).zRange, 3...14)
        // No vertebra: skipped with a message, or kept whole with the flag.
        var t = Scene(); t.label("tissues", 3, 0..<2, 0..<2, 0..<2)
        XCTAssertThrowsError(try Refiner.refine(t.inputs, mapping: m)) { e in
            XCTAssertTrue("\(e)".contains("no vertebra"), "\(e)")
        }
        m.crop.keepUncroppable = true
        XCTAssertEqual(try Refiner.refine(t.inputs, mapping: m).zRange, 0...15)
    }
}

final class RefinePresetTests: XCTestCase {
    func testPresetValuesMatchTheIssueTables() throws {
        let v1 = try RefinePresets.preset("boa-0.1"), v2 = try RefinePresets.preset("boa-1.0")
        XCTAssertEqual(v1.classes, [NamedClass(name: "ESM", mask: .from("total", [100, 101])),
                                    NamedClass(name: "PSM", mask: .from("total", [102, 103]))])
        XCTAssertEqual(v2.classes, [NamedClass(name: "ESM", mask: .from("total", [86, 87])),
                                    NamedClass(name: "PSM", mask: .from("total", [88, 89]))])
        let names = (1...12).map { "T\($0)" } + (1...4).map { "L\($0)" }
        XCTAssertEqual(v1.crop.levels.map(\.name), names)
        XCTAssertEqual(v2.crop.levels.map(\.name), names)
        // v1: T1 = 34 … T12 = 23, L1 = 22 … L4 = 19; v2: T1 = 43 … T12 = 32, L1 = 31 … L4 = 28.
        XCTAssertEqual(v1.crop.levels.map(\.value), Array((23...34).reversed()) + [22, 21, 20, 19])
        XCTAssertEqual(v2.crop.levels.map(\.value), Array((32...43).reversed()) + [31, 30, 29, 28])
        XCTAssertEqual(v2.organBoneMask, .from("total", Array(1...24) + Array(25...50) + Array(51...68)
                                                   + Array(69...78) + Array(91...117)))
        for muscle in [86, 87, 88, 89, 79, 80, 85, 90] {
            XCTAssertFalse(v2.organBoneMask.references.contains { $0.value == muscle }, "\(muscle)")
        }
        for muscle in [100, 101, 102, 103, 94, 99, 50, 93] {
            XCTAssertFalse(v1.organBoneMask.references.contains { $0.value == muscle }, "\(muscle)")
        }
        for m in [v1, v2] {
            XCTAssertEqual(m.muscleBase, .from("tissues", [1]))
            XCTAssertEqual(m.sat, .from("tissues", [3]))
            XCTAssertEqual(m.visceralRegion, .from("body_regions", [3]))
            XCTAssertEqual(m.bodyParts.keep, [1, 3, 4, 5, 6])
            XCTAssertEqual(m.hu.muscle, HURange(-29, 150)); XCTAssertEqual(m.hu.sat, HURange(-190, -30))
            XCTAssertEqual(m.hu.imat, HURange(-190, -30)); XCTAssertEqual(m.hu.vat, HURange(-150, -50))
            XCTAssertEqual(m.components.minVoxels, 5); XCTAssertEqual(m.components.connectivity, 26)
            XCTAssertFalse(m.sourcesUsed.contains("abdominal_muscles"))
        }
        for name in ["boa-0.1-abdominal-muscles", "boa-1.0-abdominal-muscles"] {
            let m = try RefinePresets.preset(name)
            let a = "abdominal_muscles"
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: m.classes.map { ($0.name, $0.mask) }),
                           ["PEM": .from(a, [1, 2]), "RAM": .from(a, [3, 4]), "ESM": .from(a, [15, 16]),
                            "PSM": .from(a, [19, 20]), "QLM": .from(a, [21, 22])])
            XCTAssertTrue(m.sourcesUsed.contains(a))
            XCTAssertEqual(m.crop, name.hasPrefix("boa-0.1") ? v1.crop : v2.crop)
            XCTAssertEqual(m.organBoneMask, name.hasPrefix("boa-0.1") ? v1.organBoneMask : v2.organBoneMask)
            XCTAssertNoThrow(try m.validate())
        }
        XCTAssertEqual(RefineClasses.names, ["background", "ESM", "IMAT", "PEM", "PSM", "QLM", "RAM", "SAT", "SM", "VAT"])
    }

    func testMappingFileErrorsAndOverrides() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("refine-map-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try RefinePresets.load(mapping: nil, presetName: "boa-2.0")) { e in
            XCTAssertTrue("\(e)".contains("unknown preset 'boa-2.0'") && "\(e)".contains("boa-1.0-abdominal-muscles"), "\(e)")
        }
        func write(_ s: String) throws -> URL {
            let u = dir.appendingPathComponent("m\(UUID().uuidString).json"); try s.write(to: u, atomically: true, encoding: .utf8); return u
        }
        let twice = try write(#"{"preset": "boa-1.0", "classes": [{"name": "ESM", "mask": {"source": "total", "values": [86]}}, {"name": "ESM", "mask": {"source": "total", "values": [87]}}]}"#)
        XCTAssertThrowsError(try RefinePresets.load(mapping: twice, presetName: nil)) { e in
            XCTAssertTrue("\(e)".contains("\"ESM\" is defined twice"), "\(e)")
        }
        let derived = try write(#"{"preset": "boa-1.0", "classes": [{"name": "SM", "mask": {"source": "tissues", "values": [1]}}]}"#)
        XCTAssertThrowsError(try RefinePresets.load(mapping: derived, presetName: nil)) { e in
            XCTAssertTrue("\(e)".contains("made by a rule"), "\(e)")
        }
        let typo = try write(#"{"preset": "boa-1.0", "thresholds": {}}"#)
        XCTAssertThrowsError(try RefinePresets.load(mapping: typo, presetName: nil)) { e in
            XCTAssertTrue("\(e)".contains("unknown mapping field \"thresholds\""), "\(e)")
        }
        let noPreset = try write(#"{"name": "x"}"#)
        XCTAssertThrowsError(try RefinePresets.load(mapping: noPreset, presetName: nil)) { e in
            XCTAssertTrue("\(e)".contains("missing field"), "\(e)")
        }
        let custom = try write(#"{"preset": "boa-1.0", "hu": {"muscle": {"max": 250}}, "components": {"connectivity": 6}, "muscleBase": {"allOf": [{"source": "body_regions", "values": [2]}, {"source": "tissues", "values": [1]}]}, "organBoneMask": {"source": "total", "ranges": [[1, 24]]}}"#)
        let m = try RefinePresets.load(mapping: custom, presetName: nil)
        XCTAssertEqual(m.hu.muscle, HURange(-29, 250))
        XCTAssertEqual(m.hu.sat, HURange(-190, -30))
        XCTAssertEqual(m.components.connectivity, 6); XCTAssertEqual(m.components.minVoxels, 5)
        XCTAssertEqual(m.organBoneMask, .from("total", Array(1...24)))
        XCTAssertEqual(m.classes, try RefinePresets.preset("boa-1.0").classes)
        // The allOf base: only SAROS muscle ∩ BOA muscle is SM.
        var s = Scene()
        s.label("tissues", 1, 0..<4, 0..<4, 0..<4); s.hu(40, 0..<4, 0..<4, 0..<4)
        s.label("body_regions", 2, 0..<2, 0..<4, 0..<4)
        var mm = m; mm.rules.crop = false; mm.rules.bodyParts = false; mm.rules.componentRemoval = false; mm.ignore.sources = []
        let r = try Refiner.refine(s.inputs, mapping: mm)
        XCTAssertEqual(count(r.labels, "SM"), 32)
        // A value the files do not contain is a warning, not an error.
        XCTAssertTrue(r.log.warnings.contains { $0.contains("class ESM") == false && $0.contains("ESM names value(s) 86,87") }, "\(r.log.warnings)")
    }
}

// MARK: whole pipeline on files

final class RefinePipelineTests: XCTestCase {
    var root: URL!
    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("refine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    /// A case with all structures and a T3…L3 spine, so the crop, every class and the ignore slices show up.
    func richScene() -> Scene {
        var s = Scene()
        let v2 = RefinePresets.TotalV2.self
        s.label("total", UInt16(v2.thoracic[12 - 3]), 10..<13, 12..<15, 11..<14)   // T3 z 11–13
        s.label("total", UInt16(v2.lumbar[5 - 3]), 10..<13, 12..<15, 2..<4)        // L3 z 2–3
        s.label("tissues", 1, 2..<10, 2..<8, 0..<16); s.hu(40, 2..<10, 2..<8, 0..<16)
        s.label("total", 86, 2..<4, 2..<8, 0..<16)
        s.hu(-80, 6..<7, 2..<8, 0..<16)
        s.label("tissues", 3, 14..<20, 2..<6, 0..<16); s.hu(-100, 14..<20, 2..<6, 0..<16)
        s.label("body_regions", 3, 14..<20, 10..<18, 0..<16); s.hu(-100, 14..<20, 10..<18, 0..<16)
        s.label("total", 5, 17..<20, 10..<18, 0..<16)
        s.label("body_regions", 255, 0..<24, 0..<20, 5..<6)
        s.label("body_parts", 2, 0..<24, 0..<20, 15..<16)
        return s
    }

    /// Writes a case; `lps` stores x and y reversed with a matching affine (same world grid).
    func write(_ s: Scene, id: String, lps: Bool = false, skip: Set<String> = [], shiftTissues: Bool = false) throws {
        let saros = root.appendingPathComponent("saros/\(id)"), boa = root.appendingPathComponent("boa/\(id)")
        for d in [saros, boa] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        var affine: [Double] = [0.8, 0, 0, -10, 0, 0.8, 0, 5, 0, 0, 2.5, -300, 0, 0, 0, 1]
        func stored<T>(_ a: [T]) -> [T] {
            guard lps else { return a }
            var o = a
            for k in 0..<s.nz { for j in 0..<s.ny { for i in 0..<s.nx {
                o[(k * s.ny + (s.ny - 1 - j)) * s.nx + (s.nx - 1 - i)] = a[(k * s.ny + j) * s.nx + i]
            } } }
            return o
        }
        if lps {
            // Voxel 0 of the stored grid is the RAS voxel (nx-1, ny-1, 0).
            affine = [-0.8, 0, 0, -10 + 0.8 * Double(s.nx - 1), 0, -0.8, 0, 5 + 0.8 * Double(s.ny - 1),
                      0, 0, 2.5, -300, 0, 0, 0, 1]
        }
        let dims = [s.nx, s.ny, s.nz]
        if !skip.contains("image") {
            try NiftiVolume.write(.int16(stored(s.ct).map { Int16($0) }), dims: dims, affine: affine,
                                  to: saros.appendingPathComponent("image.nii.gz"))
        }
        let files = ["body_regions": saros.appendingPathComponent("body-regions.nii.gz"),
                     "body_parts": saros.appendingPathComponent("body-parts.nii.gz"),
                     "tissues": boa.appendingPathComponent("tissues.nii.gz"),
                     "total": boa.appendingPathComponent("total.nii.gz")]
        for (k, url) in files where !skip.contains(k) {
            var a = affine
            if shiftTissues && k == "tissues" { a[3] += 5 }
            try NiftiVolume.write(.uint8(stored(s.src[k]!).map { UInt8($0) }), dims: dims, affine: a, to: url)
        }
    }

    func options(_ m: RefineMapping, out: String = "out") -> RefineOptions {
        RefineOptions(saros: root.appendingPathComponent("saros"), boa: root.appendingPathComponent("boa"),
                      abdominalMuscles: nil, out: root.appendingPathComponent(out), mapping: m)
    }

    func testLPSCaseGivesTheSameOutputAsRAS() throws {
        let s = richScene()
        try write(s, id: "a")
        let m = try RefinePresets.preset("boa-1.0")
        let ras = try RefinePipeline.run(options(m, out: "ras"))
        try FileManager.default.removeItem(at: root.appendingPathComponent("saros"))
        try FileManager.default.removeItem(at: root.appendingPathComponent("boa"))
        try write(s, id: "a", lps: true)
        let lps = try RefinePipeline.run(options(m, out: "lps"))
        XCTAssertEqual(ras.ok, 1); XCTAssertEqual(lps.ok, 1)
        let la = try NiftiVolume.read(root.appendingPathComponent("ras/labelsTr/a.nii.gz"))
        let lb = try NiftiVolume.read(root.appendingPathComponent("lps/labelsTr/a.nii.gz"))
        XCTAssertEqual(la.dims, [24, 20, 12]); XCTAssertEqual(la.geometry.orientation, "RAS")
        XCTAssertEqual(la.dims, lb.dims); XCTAssertEqual(la.data, lb.data)
        for (x, y) in zip(la.affine, lb.affine) { XCTAssertEqual(x, y, accuracy: 1e-4) }
        // The crop starts at z 2, so the output origin moves up 2 slices of 2.5 mm.
        XCTAssertEqual(la.affine[11], -300 + 2 * 2.5, accuracy: 1e-4)
        let ia = try NiftiVolume.read(root.appendingPathComponent("ras/imagesTr/a_0000.nii.gz"))
        let ib = try NiftiVolume.read(root.appendingPathComponent("lps/imagesTr/a_0000.nii.gz"))
        XCTAssertEqual(ia.data, ib.data)
        XCTAssertEqual(ia.data, Refiner.crop(s.ct, dims: [24, 20, 16], z: 2...13))
        // Every class the scene has ends up in the file, and the log agrees with the file.
        let log = try XCTUnwrap(ras.results.first?.log)
        let labels = la.data.map { UInt8($0) }
        for c in ["ESM", "SM", "IMAT", "SAT", "VAT", "ignore"] {
            XCTAssertGreaterThan(count(labels, c), 0, c)
            XCTAssertEqual(log.counts[c], count(labels, c), c)
        }
        XCTAssertEqual(log.counts["ignore"], 24 * 20)
        XCTAssertEqual(log.cropFrom, "T3"); XCTAssertEqual(log.cropTo, "L3")
        let ds = try Dataset.open(root.appendingPathComponent("ras"))
        XCTAssertEqual(ds.description.classNames, RefineClasses.names)
        XCTAssertEqual(ds.description.ignoreLabel, 255)
        XCTAssertEqual(ds.training.map(\.id), ["a"])
    }

    func testBadInputCasesAreReportedAndOthersProcessed() throws {
        let s = richScene()
        try write(s, id: "c1-good")
        try write(s, id: "c2-missing", skip: ["total"])
        try write(s, id: "c3-geometry", shiftTissues: true)
        var flat = s; flat.src["total"] = flat.src["total"]!.map { $0 == 86 || $0 == 5 ? $0 : 0 }
        try write(flat, id: "c4-novertebra")
        let m = try RefinePresets.preset("boa-1.0")
        let sum = try RefinePipeline.run(options(m))
        XCTAssertEqual(sum.ok, 1)
        XCTAssertEqual(sum.failed.map(\.id), ["c2-missing", "c3-geometry"])
        XCTAssertEqual(sum.skipped.map(\.id), ["c4-novertebra"])
        XCTAssertTrue(sum.failed[0].message!.contains("missing file(s)") && sum.failed[0].message!.contains("c2-missing/total.nii.gz"))
        XCTAssertTrue(sum.failed[1].message!.contains("tissues.nii.gz") && sum.failed[1].message!.contains("not on the same grid"))
        XCTAssertTrue(sum.skipped[0].message!.contains("no vertebra"))
        let out = root.appendingPathComponent("out")
        let images = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("imagesTr").path)
        let labels = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("labelsTr").path)
        XCTAssertEqual(images, ["c1-good_0000.nii.gz"]); XCTAssertEqual(labels, ["c1-good.nii.gz"])
        XCTAssertEqual(try Dataset.open(out).training.count, 1)
        for id in ["c1-good", "c2-missing", "c3-geometry", "c4-novertebra"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("refine-logs/\(id).json").path), id)
        }
        let summary = try JSONDecoder().decode(RefineSummary.self, from: Data(contentsOf: out.appendingPathComponent("refine-summary.json")))
        XCTAssertEqual(summary.results.count, 4)
        // With keepUncroppable the vertebra-less case is written whole.
        var keep = m; keep.crop.keepUncroppable = true
        let again = try RefinePipeline.run(options(keep))
        XCTAssertEqual(again.ok, 2)
        XCTAssertEqual(try NiftiVolume.read(out.appendingPathComponent("labelsTr/c4-novertebra.nii.gz")).dims, [24, 20, 16])
        // A value the mapping names but the file lacks: the case is written, with a warning.
        XCTAssertTrue(again.results.first { $0.id == "c1-good" }!.warnings.contains { $0.contains("ESM names value(s) 87") })
    }

    func testRanksSplitCasesAndRankZeroWritesDatasetJSON() throws {
        let s = richScene()
        for id in ["a", "b", "c"] { try write(s, id: id) }
        let m = try RefinePresets.preset("boa-1.0")
        var o1 = options(m); o1.rank = 1; o1.size = 2; o1.jobID = "t"
        var o0 = options(m); o0.rank = 0; o0.size = 2; o0.jobID = "t"; o0.waitTimeout = 30
        // Rank 0 waits for rank 1's marker; run rank 1 on another thread.
        let done = expectation(description: "rank 1")
        let r1Box = Box()
        let o1c = o1
        DispatchQueue.global().async { r1Box.value = try? RefinePipeline.run(o1c); done.fulfill() }
        let s0 = try RefinePipeline.run(o0)
        wait(for: [done], timeout: 30)
        XCTAssertEqual(r1Box.value?.results.map(\.id), ["b"])
        XCTAssertEqual(s0.results.map(\.id), ["a", "b", "c"])
        XCTAssertTrue(s0.complete)
        XCTAssertEqual(try Dataset.open(root.appendingPathComponent("out")).training.map(\.id), ["a", "b", "c"])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("out").path)
            .filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [])
        var env = options(m)
        try env.readMPIEnvironment(["OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_MCA_ess_base_jobid": "12/3"])
        XCTAssertEqual(env.rank, 3); XCTAssertEqual(env.size, 4); XCTAssertEqual(env.jobID, "12_3")
        XCTAssertThrowsError(try env.readMPIEnvironment(["OMPI_COMM_WORLD_RANK": "4", "OMPI_COMM_WORLD_SIZE": "4"]))
    }
}

final class Box: @unchecked Sendable { var value: RefineSummary? }
