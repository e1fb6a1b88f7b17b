import Foundation

/// Errors of the Refine module; every message names the file / case / option and what is wrong.
public struct RefineError: Error, LocalizedError, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
    public var errorDescription: String? { description }
}

/// The output classes (PROTOCOL.md order). Index = label value; 255 = ignore (unannotated SAROS voxels).
public enum RefineClasses {
    public static let names = ["background", "ESM", "IMAT", "PEM", "PSM", "QLM", "RAM", "SAT", "SM", "VAT"]
    public static let namedMuscles = ["ESM", "PEM", "PSM", "QLM", "RAM"]
    public static let ignoreLabel: UInt8 = 255
    public static func value(of name: String) -> UInt8? { names.firstIndex(of: name).map { UInt8($0) } }
}

/// Which voxels of one or more source volumes form a mask. JSON forms:
/// `{"source": "total", "values": [86, 87], "ranges": [[25, 50]]}` (value set, ranges inclusive),
/// `{"allOf": [MASK, ...]}` (intersection), `{"anyOf": [MASK, ...]}` (union), `{"none": true}` (empty).
public indirect enum MaskSpec: Codable, Equatable, Sendable {
    case values(source: String, values: [Int])
    case allOf([MaskSpec])
    case anyOf([MaskSpec])
    case none

    private enum Keys: String, CodingKey { case source, values, ranges, allOf, anyOf, none }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let path = decoder.codingPath.map(\.stringValue).joined(separator: ".")
        if let a = try c.decodeIfPresent([MaskSpec].self, forKey: .allOf) { self = .allOf(a); return }
        if let a = try c.decodeIfPresent([MaskSpec].self, forKey: .anyOf) { self = .anyOf(a); return }
        if (try c.decodeIfPresent(Bool.self, forKey: .none)) == true { self = .none; return }
        guard let source = try c.decodeIfPresent(String.self, forKey: .source) else {
            throw RefineError("mapping \(path): a mask needs \"source\" + \"values\"/\"ranges\", or \"allOf\"/\"anyOf\"/\"none\"")
        }
        var vals = try c.decodeIfPresent([Int].self, forKey: .values) ?? []
        for r in try c.decodeIfPresent([[Int]].self, forKey: .ranges) ?? [] {
            guard r.count == 2, r[0] <= r[1] else {
                throw RefineError("mapping \(path): range \(r) is not [low, high] with low ≤ high")
            }
            vals += Array(r[0]...r[1])
        }
        guard !vals.isEmpty else { throw RefineError("mapping \(path): mask on \"\(source)\" lists no values") }
        if let bad = vals.first(where: { $0 < 0 || $0 > Int(UInt16.max) }) {
            throw RefineError("mapping \(path): value \(bad) is outside 0…65535")
        }
        self = .values(source: source, values: Array(Set(vals)).sorted())
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .values(let s, let v): try c.encode(s, forKey: .source); try c.encode(v, forKey: .values)
        case .allOf(let a): try c.encode(a, forKey: .allOf)
        case .anyOf(let a): try c.encode(a, forKey: .anyOf)
        case .none: try c.encode(true, forKey: .none)
        }
    }

    /// (source, value) pairs this mask reads, for the "value not in file" warning.
    public var references: [(source: String, value: Int)] {
        switch self {
        case .values(let s, let v): return v.map { (s, $0) }
        case .allOf(let a), .anyOf(let a): return a.flatMap(\.references)
        case .none: return []
        }
    }

    public var sources: Set<String> { Set(references.map(\.source)) }

    public static func from(_ source: String, _ values: [Int]) -> MaskSpec { .values(source: source, values: values) }
}

/// One named muscle class and its mask.
public struct NamedClass: Codable, Equatable, Sendable {
    public var name: String
    public var mask: MaskSpec
    public init(name: String, mask: MaskSpec) { self.name = name; self.mask = mask }
}

/// Inclusive HU interval.
public struct HURange: Codable, Equatable, Sendable {
    public var min: Float
    public var max: Float
    public init(_ lo: Float, _ hi: Float) { min = lo; max = hi }
    @inline(__always) func contains(_ v: Float) -> Bool { v >= min && v <= max }
}

/// Rule 3's ranges. Defaults are the literature values (the paper's own numbers are lost, PROTOCOL.md).
public struct HUThresholds: Codable, Equatable, Sendable {
    public var muscle = HURange(-29, 150)
    public var sat = HURange(-190, -30)
    public var imat = HURange(-190, -30)
    public var vat = HURange(-150, -50)
    public init() {}
}

/// One vertebra level for the crop: name (e.g. "T1") and its value in the vertebra source.
public struct VertebraLevel: Codable, Equatable, Sendable {
    public var name: String
    public var value: Int
    public init(_ name: String, _ value: Int) { self.name = name; self.value = value }
}

/// Rule 8: levels ordered cranial → caudal; the crop spans the most cranial present to the most caudal present.
public struct CropSpec: Codable, Equatable, Sendable {
    public var source: String
    public var levels: [VertebraLevel]
    /// A level counts as present with at least this many voxels (guards against stray voxels).
    public var minVoxels: Int = 1
    /// Keep cases without any listed vertebra uncropped instead of skipping them.
    public var keepUncroppable: Bool = false
    public init(source: String, levels: [VertebraLevel]) { self.source = source; self.levels = levels }
}

/// Rule 6 settings.
public struct ComponentSpec: Codable, Equatable, Sendable {
    /// Components with fewer voxels are removed.
    public var minVoxels: Int = 5
    /// 6, 18 or 26.
    public var connectivity: Int = 26
    public init() {}
}

/// Rule 7 and the ignore handling.
public struct BodyPartSpec: Codable, Equatable, Sendable {
    public var source: String = "body_parts"
    /// SAROS body-parts: 1 torso, 3/4 legs, 5/6 arms kept; 0 background and 2 head dropped.
    public var keep: [Int] = [1, 3, 4, 5, 6]
    public init() {}
}

public struct IgnoreSpec: Codable, Equatable, Sendable {
    /// Voxels whose value in any of these sources equals `value` are written as 255 (not annotated).
    public var sources: [String] = ["body_regions", "body_parts"]
    public var value: Int = 255
    public init() {}
}

/// Switches for the configurable rules (rule 1 reorientation and the class composition always run).
public struct RuleSwitches: Codable, Equatable, Sendable {
    /// Rule 3 plausibility filter of the muscle classes and SAT (VAT and IMAT are defined by their HU ranges).
    public var huThresholds = true
    /// Rule 4: subtract the organ-and-bone mask from VAT.
    public var vatOrganMask = true
    /// Rule 5: IMAT at all (off: IMAT stays empty).
    public var imat = true
    /// Rule 6.
    public var componentRemoval = true
    /// Rule 7.
    public var bodyParts = true
    /// Rule 8.
    public var crop = true
    public init() {}
}

/// Where a source volume comes from: an input directory role ("saros", "boa", "abdominal_muscles") and a file name
/// inside the case folder.
public struct SourceFile: Codable, Equatable, Sendable {
    public var dir: String
    public var file: String
    public init(dir: String, file: String) { self.dir = dir; self.file = file }
}

/// The full refinement recipe: which file and values make each class, plus every rule's settings.
public struct RefineMapping: Codable, Equatable, Sendable {
    public var name: String
    /// Source name → file. The CT is always the source "image".
    public var files: [String: SourceFile]
    /// Named muscles (ESM, PEM, PSM, QLM, RAM); a muscle listed nowhere stays part of SM. Earlier entries win overlaps.
    public var classes: [NamedClass]
    /// SM base before the named muscles are taken out.
    public var muscleBase: MaskSpec
    public var sat: MaskSpec
    /// Region in which fat-HU voxels are VAT (SAROS abdominal cavity).
    public var visceralRegion: MaskSpec
    public var organBoneMask: MaskSpec
    public var hu = HUThresholds()
    public var components = ComponentSpec()
    public var bodyParts = BodyPartSpec()
    public var ignore = IgnoreSpec()
    public var crop: CropSpec
    public var rules = RuleSwitches()

    /// Every source this mapping reads (besides "image").
    public var sourcesUsed: Set<String> {
        var s = Set<String>()
        for c in classes { s.formUnion(c.mask.sources) }
        for m in [muscleBase, sat, visceralRegion] { s.formUnion(m.sources) }
        if rules.vatOrganMask { s.formUnion(organBoneMask.sources) }
        if rules.crop { s.insert(crop.source) }
        if rules.bodyParts { s.insert(bodyParts.source) }
        s.formUnion(ignore.sources)
        return s
    }

    /// Checks the mapping for errors that would make every case fail.
    public func validate() throws {
        var seen = Set<String>()
        for c in classes {
            guard RefineClasses.namedMuscles.contains(c.name) else {
                let derived = ["SM", "SAT", "VAT", "IMAT", "background"].contains(c.name)
                throw RefineError("mapping \(name): class \"\(c.name)\" " + (derived
                    ? "is made by a rule, not listed in \"classes\" (set muscleBase / sat / visceralRegion instead)"
                    : "is not one of the named muscles \(RefineClasses.namedMuscles.joined(separator: ", "))"))
            }
            guard seen.insert(c.name).inserted else {
                throw RefineError("mapping \(name): class \"\(c.name)\" is defined twice in \"classes\"")
            }
        }
        guard [6, 18, 26].contains(components.connectivity) else {
            throw RefineError("mapping \(name): components.connectivity \(components.connectivity) must be 6, 18 or 26")
        }
        guard components.minVoxels >= 1 else {
            throw RefineError("mapping \(name): components.minVoxels \(components.minVoxels) must be ≥ 1")
        }
        for (k, r) in [("muscle", hu.muscle), ("sat", hu.sat), ("imat", hu.imat), ("vat", hu.vat)] where !(r.min <= r.max) {
            throw RefineError("mapping \(name): hu.\(k) has min \(r.min) above max \(r.max)")
        }
        if rules.crop && crop.levels.isEmpty { throw RefineError("mapping \(name): crop.levels is empty") }
        if Set(crop.levels.map(\.name)).count != crop.levels.count {
            throw RefineError("mapping \(name): crop.levels names a vertebra twice")
        }
        guard (0...255).contains(ignore.value) || ignore.sources.isEmpty else {
            throw RefineError("mapping \(name): ignore.value \(ignore.value) is outside 0…255")
        }
        for s in sourcesUsed where files[s] == nil {
            throw RefineError("mapping \(name): source \"\(s)\" is used but \"files\" does not say where it is")
        }
    }
}

// MARK: presets

/// Presets for the two BOA versions, each with and without TotalSegmentator `abdominal_muscles`.
public enum RefinePresets {
    public static let names = ["boa-0.1", "boa-0.1-abdominal-muscles", "boa-1.0", "boa-1.0-abdominal-muscles"]

    /// TotalSegmentator v1 `total` (BOA 0.1.x).
    public enum TotalV1 {
        public static let autochthon = [100, 101]
        public static let iliopsoas = [102, 103]
        /// L5 … L1.
        public static let lumbar = [18, 19, 20, 21, 22]
        /// T12 … T1.
        public static let thoracic = Array(23...34)
        /// Organs, vessels, heart, lungs and bones of the v1 class map (1–49 organs/lungs/vertebrae/heart,
        /// 51–92 iliac vessels, bowel, ribs, limb girdle bones, sacrum, 104 urinary bladder); brain 50, face 93
        /// and the muscles 94–103 are not in it.
        public static let organBone: [Int] = Array(1...49) + Array(51...92) + [104]
    }

    /// TotalSegmentator v2 `total` (BOA 1.0.x).
    public enum TotalV2 {
        public static let autochthon = [86, 87]
        public static let iliopsoas = [88, 89]
        public static let lumbar = [27, 28, 29, 30, 31]
        public static let thoracic = Array(32...43)
        public static let organs = Array(1...24)
        public static let vesselsHeart = Array(51...68)
        public static let bones = Array(25...50) + Array(69...78) + Array(91...117)
        public static var organBone: [Int] { (organs + vesselsHeart + bones).sorted() }
    }

    /// TotalSegmentator `abdominal_muscles` (right/left).
    public enum AbdominalMuscles {
        public static let pectoralisMajor = [1, 2]
        public static let rectusAbdominis = [3, 4]
        public static let erectorSpinae = [15, 16]
        public static let psoasMajor = [19, 20]
        public static let quadratusLumborum = [21, 22]
    }

    /// Cranial → caudal T1 … T12, L1 … L4 (L5 is below the crop, "at most L4").
    static func levels(thoracicT12toT1: [Int], lumbarL5toL1: [Int]) -> [VertebraLevel] {
        let t = thoracicT12toT1.reversed().enumerated().map { VertebraLevel("T\($0.offset + 1)", $0.element) }
        let l = lumbarL5toL1.reversed().prefix(4).enumerated().map { VertebraLevel("L\($0.offset + 1)", $0.element) }
        return t + l
    }

    public static func preset(_ name: String) throws -> RefineMapping {
        let v1 = name.hasPrefix("boa-0.1"), am = name.hasSuffix("-abdominal-muscles")
        guard names.contains(name) else {
            throw RefineError("unknown preset '\(name)'; known presets: \(names.joined(separator: ", "))")
        }
        var files: [String: SourceFile] = [
            "image": SourceFile(dir: "saros", file: "image.nii.gz"),
            "body_regions": SourceFile(dir: "saros", file: "body-regions.nii.gz"),
            "body_parts": SourceFile(dir: "saros", file: "body-parts.nii.gz"),
            "tissues": SourceFile(dir: "boa", file: "tissues.nii.gz"),
            "total": SourceFile(dir: "boa", file: "total.nii.gz"),
        ]
        let classes: [NamedClass]
        if am {
            files["abdominal_muscles"] = SourceFile(dir: "abdominal_muscles", file: "abdominal_muscles.nii.gz")
            let m = "abdominal_muscles"
            classes = [NamedClass(name: "ESM", mask: .from(m, AbdominalMuscles.erectorSpinae)),
                       NamedClass(name: "PSM", mask: .from(m, AbdominalMuscles.psoasMajor)),
                       NamedClass(name: "QLM", mask: .from(m, AbdominalMuscles.quadratusLumborum)),
                       NamedClass(name: "RAM", mask: .from(m, AbdominalMuscles.rectusAbdominis)),
                       NamedClass(name: "PEM", mask: .from(m, AbdominalMuscles.pectoralisMajor))]
        } else {
            // Without abdominal_muscles only the two muscle groups of `total` are available (README: the cost).
            classes = [NamedClass(name: "ESM", mask: .from("total", v1 ? TotalV1.autochthon : TotalV2.autochthon)),
                       NamedClass(name: "PSM", mask: .from("total", v1 ? TotalV1.iliopsoas : TotalV2.iliopsoas))]
        }
        let crop = CropSpec(source: "total", levels: v1
            ? levels(thoracicT12toT1: TotalV1.thoracic, lumbarL5toL1: TotalV1.lumbar)
            : levels(thoracicT12toT1: TotalV2.thoracic, lumbarL5toL1: TotalV2.lumbar))
        return RefineMapping(
            name: name, files: files, classes: classes,
            muscleBase: .from("tissues", [1]), sat: .from("tissues", [3]),
            visceralRegion: .from("body_regions", [3]),
            organBoneMask: .from("total", v1 ? TotalV1.organBone : TotalV2.organBone),
            crop: crop)
    }

    /// Loads a user mapping: a JSON object whose fields override those of a preset (`"preset"` in the file, or
    /// `presetName` from the command line, which wins). Without any preset every field must be given.
    public static func load(mapping url: URL?, presetName: String?) throws -> RefineMapping {
        guard let url else {
            guard let p = presetName else { throw RefineError("give --preset NAME or --mapping FILE") }
            let m = try preset(p)
            try m.validate()
            return m
        }
        let raw: Data
        do { raw = try Data(contentsOf: url) } catch {
            throw RefineError("\(url.path): cannot read the mapping (\(error.localizedDescription))")
        }
        guard var obj = (try? JSONSerialization.jsonObject(with: raw)) as? [String: Any] else {
            throw RefineError("\(url.path): the mapping is not a JSON object")
        }
        try checkDuplicateClasses(obj, file: url.path)
        let base = presetName ?? (obj["preset"] as? String)
        obj.removeValue(forKey: "preset")
        var merged: [String: Any] = [:]
        if let base {
            let p = try preset(base)
            let enc = JSONEncoder()
            merged = (try JSONSerialization.jsonObject(with: enc.encode(p))) as? [String: Any] ?? [:]
            if obj["name"] == nil { merged["name"] = base + "+" + url.lastPathComponent }
        }
        // Nested objects (hu, rules, files, ...) merge key by key so a mapping can change one threshold only.
        for (k, v) in obj {
            if let sub = v as? [String: Any], var old = merged[k] as? [String: Any],
               !["muscleBase", "sat", "visceralRegion", "organBoneMask"].contains(k) {
                for (k2, v2) in sub {
                    if let sub2 = v2 as? [String: Any], var old2 = old[k2] as? [String: Any], k == "hu" {
                        for (k3, v3) in sub2 { old2[k3] = v3 }
                        old[k2] = old2
                    } else {
                        old[k2] = v2
                    }
                }
                merged[k] = old
            } else {
                merged[k] = v
            }
        }
        let known: Set<String> = ["name", "files", "classes", "muscleBase", "sat", "visceralRegion", "organBoneMask",
                                  "hu", "components", "bodyParts", "ignore", "crop", "rules"]
        if let bad = obj.keys.first(where: { !known.contains($0) }) {
            throw RefineError("\(url.path): unknown mapping field \"\(bad)\" (known: \(known.sorted().joined(separator: ", ")), preset)")
        }
        let m: RefineMapping
        do {
            m = try JSONDecoder().decode(RefineMapping.self, from: JSONSerialization.data(withJSONObject: merged))
        } catch let e as RefineError {
            throw RefineError("\(url.path): \(e.description)")
        } catch {
            throw RefineError("\(url.path): invalid mapping (\(decodingMessage(error)))" + (base == nil
                ? "; without a preset every field must be given" : ""))
        }
        do { try m.validate() } catch let e as RefineError { throw RefineError("\(url.path): \(e.description)") }
        return m
    }

    /// JSON objects cannot hold a key twice, so classes are a list; a name twice there is an error.
    static func checkDuplicateClasses(_ obj: [String: Any], file: String) throws {
        guard let list = obj["classes"] as? [[String: Any]] else { return }
        var seen = Set<String>()
        for c in list {
            if let n = c["name"] as? String, !seen.insert(n).inserted {
                throw RefineError("\(file): class \"\(n)\" is defined twice in \"classes\"")
            }
        }
    }

    static func decodingMessage(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let k, let ctx):
            return "missing field \((ctx.codingPath + [k]).map(\.stringValue).joined(separator: "."))"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx),
             DecodingError.dataCorrupted(let ctx):
            return "\(ctx.codingPath.map(\.stringValue).joined(separator: ".")): \(ctx.debugDescription)"
        default:
            return "\(error)"
        }
    }
}
