import Data
import Foundation

/// Outcome of one case.
public struct CaseResult: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable { case ok, failed, skipped }
    public var id: String
    public var status: Status
    public var message: String?
    public var warnings: [String]
    public var slices: Int?
    public var log: RefineLog?
}

/// What a run did, over all ranks.
public struct RefineSummary: Codable, Equatable, Sendable {
    public var mapping: String
    public var results: [CaseResult]
    public var ok: Int { results.filter { $0.status == .ok }.count }
    public var failed: [CaseResult] { results.filter { $0.status == .failed } }
    public var skipped: [CaseResult] { results.filter { $0.status == .skipped } }
    /// Only rank 0 (or a single process) knows all cases.
    public var complete: Bool
}

public struct RefineOptions: Sendable {
    public var saros: URL
    public var boa: URL
    public var abdominalMuscles: URL?
    public var out: URL
    public var mapping: RefineMapping
    /// Restrict to these case ids (nil: every case folder of `saros`).
    public var cases: [String]?
    public var rank = 0
    public var size = 1
    /// Shared by the ranks of one launch, so rank 0 never mistakes an old run's marker for a finished rank.
    public var jobID = "single"
    /// How long rank 0 waits for the other ranks' markers.
    public var waitTimeout: TimeInterval = 7 * 24 * 3600
    public init(saros: URL, boa: URL, abdominalMuscles: URL?, out: URL, mapping: RefineMapping) {
        self.saros = saros; self.boa = boa; self.abdominalMuscles = abdominalMuscles; self.out = out
        self.mapping = mapping
    }

    /// Rank and size from Open MPI's environment (mpirun sets them; no MPI library is needed to split a case list).
    public mutating func readMPIEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let r = env["OMPI_COMM_WORLD_RANK"], let s = env["OMPI_COMM_WORLD_SIZE"] else { return }
        guard let rank = Int(r), let size = Int(s), size >= 1, rank >= 0, rank < size else {
            throw RefineError("OMPI_COMM_WORLD_RANK=\(r) / OMPI_COMM_WORLD_SIZE=\(s) are not a valid rank and size")
        }
        self.rank = rank; self.size = size
        jobID = env["OMPI_MCA_ess_base_jobid"] ?? env["PMIX_NAMESPACE"] ?? env["OMPI_MCA_orte_ess_jobid"] ?? "mpi"
        jobID = String(jobID.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}

public enum RefinePipeline {
    static let fm = FileManager.default

    /// Case ids: the non-hidden subfolders of the SAROS folder, sorted.
    public static func discoverCases(saros: URL) throws -> [String] {
        let names: [String]
        do { names = try fm.contentsOfDirectory(atPath: saros.path) } catch {
            throw RefineError("\(saros.path): cannot list the SAROS folder (\(error.localizedDescription))")
        }
        var isDir: ObjCBool = false
        return names.filter { !$0.hasPrefix(".") }
            .filter { fm.fileExists(atPath: saros.appendingPathComponent($0).path, isDirectory: &isDir) && isDir.boolValue }
            .sorted()
    }

    static func dir(_ role: String, _ o: RefineOptions) throws -> URL {
        switch role {
        case "saros": return o.saros
        case "boa": return o.boa
        case "abdominal_muscles":
            guard let d = o.abdominalMuscles else {
                throw RefineError("mapping \(o.mapping.name) reads abdominal_muscles; give --abdominal-muscles DIR")
            }
            return d
        default:
            throw RefineError("mapping \(o.mapping.name): files dir \"\(role)\" is not saros, boa or abdominal_muscles")
        }
    }

    /// Every source file of a case (CT as "image").
    public static func caseFiles(_ id: String, _ o: RefineOptions) throws -> [String: URL] {
        var out: [String: URL] = [:]
        for s in o.mapping.sourcesUsed.union(["image"]) {
            guard let f = o.mapping.files[s] else { throw RefineError("mapping \(o.mapping.name): no file for source \"\(s)\"") }
            out[s] = try dir(f.dir, o).appendingPathComponent(id).appendingPathComponent(f.file)
        }
        return out
    }

    /// Rule 1: reads everything reoriented to RAS and checks all share the image's grid.
    public static func load(_ id: String, _ o: RefineOptions) throws -> (RefineInputs, NiftiVolume) {
        let files = try caseFiles(id, o)
        let missing = files.filter { !fm.fileExists(atPath: $0.value.path) }.map(\.value.path).sorted()
        if !missing.isEmpty { throw RefineError("missing file(s): " + missing.joined(separator: ", ")) }
        guard let imageURL = files["image"] else { throw RefineError("internal: no image source") }
        var image = try NiftiVolume.read(imageURL)
        var sources: [String: [UInt16]] = [:]
        for (s, url) in files.sorted(by: { $0.key < $1.key }) where s != "image" {
            let v = try NiftiVolume.read(url)
            try checkSameGrid(v, url, image, imageURL)
            var lab = [UInt16](repeating: 0, count: v.data.count)
            for (i, x) in v.data.enumerated() {
                guard x >= 0, x <= 65535, x == x.rounded() else {
                    throw RefineError("\(url.path): value \(x) at RAS voxel \(i) is not a label (integer 0…65535)")
                }
                lab[i] = UInt16(x)
            }
            sources[s] = lab
        }
        let inputs = RefineInputs(dims: image.dims, ct: image.data, sources: sources)
        image.data = []
        return (inputs, image)
    }

    static func checkSameGrid(_ v: NiftiVolume, _ url: URL, _ ref: NiftiVolume, _ refURL: URL) throws {
        guard v.dims == ref.dims else {
            throw RefineError("\(url.path): RAS dims \(v.dims) differ from \(refURL.lastPathComponent) \(ref.dims)")
        }
        // Same grid up to float noise in the header: directions/sizes within 1e-3, origins within 0.01 mm.
        for r in 0..<3 {
            for c in 0..<4 {
                let d = abs(v.affine[r * 4 + c] - ref.affine[r * 4 + c])
                if d > (c == 3 ? 1e-2 : 1e-3) {
                    throw RefineError("\(url.path): voxel-to-world matrix differs from \(refURL.lastPathComponent) "
                        + "(entry [\(r)][\(c)]: \(v.affine[r * 4 + c]) vs \(ref.affine[r * 4 + c])); "
                        + "the files are not on the same grid")
                }
            }
        }
    }

    struct Paths {
        let image, label, log, imagePartial, labelPartial: URL
        init(_ out: URL, _ id: String) {
            image = out.appendingPathComponent("imagesTr/\(id)_0000.nii.gz")
            label = out.appendingPathComponent("labelsTr/\(id).nii.gz")
            log = out.appendingPathComponent("refine-logs/\(id).json")
            // Hidden names: Dataset.open skips them, so a crash mid-write never shows as a case.
            imagePartial = out.appendingPathComponent("imagesTr/.\(id)_0000.partial.nii.gz")
            labelPartial = out.appendingPathComponent("labelsTr/.\(id).partial.nii.gz")
        }
    }

    /// Refines and writes one case. The case's old outputs are removed first and new ones appear by rename, so a
    /// case is either complete or absent.
    public static func processCase(_ id: String, _ o: RefineOptions) -> CaseResult {
        let p = Paths(o.out, id)
        for u in [p.image, p.label, p.imagePartial, p.labelPartial, p.log] { try? fm.removeItem(at: u) }
        var result: CaseResult
        do {
            let (inputs, image) = try load(id, o)
            let r: RefineOutput
            do { r = try Refiner.refine(inputs, mapping: o.mapping) } catch let e as RefineError
                where e.description.hasPrefix("no vertebra") {
                result = CaseResult(id: id, status: .skipped, message: e.description,
                                    warnings: Refiner.missingValueWarnings(o.mapping, inputs), slices: nil, log: nil)
                try? writeJSON(result, to: p.log)
                return result
            }
            let z = r.zRange
            let ct = Refiner.crop(inputs.ct, dims: inputs.dims, z: z)
            let dims = [inputs.dims[0], inputs.dims[1], z.count]
            // Voxel (i, j, k) of the crop is voxel (i, j, k + z0) of the RAS grid.
            var affine = image.affine
            for row in 0..<3 { affine[row * 4 + 3] += affine[row * 4 + 2] * Double(z.lowerBound) }
            let integral = ct.allSatisfy { $0 == $0.rounded() && $0 >= -32768 && $0 <= 32767 }
            try NiftiVolume.write(integral ? .int16(ct.map { Int16($0) }) : .float32(ct), dims: dims, affine: affine,
                                  to: p.imagePartial)
            try NiftiVolume.write(.uint8(r.labels), dims: dims, affine: affine, to: p.labelPartial)
            try rename(p.labelPartial, p.label)
            try rename(p.imagePartial, p.image)
            result = CaseResult(id: id, status: .ok, message: nil, warnings: r.log.warnings, slices: z.count, log: r.log)
        } catch {
            for u in [p.image, p.label, p.imagePartial, p.labelPartial] { try? fm.removeItem(at: u) }
            result = CaseResult(id: id, status: .failed, message: "\(error)", warnings: [], slices: nil, log: nil)
        }
        do { try writeJSON(result, to: p.log) } catch {
            result.warnings.append("cannot write the log \(p.log.path): \(error)")
        }
        return result
    }

    /// Runs this rank's share of the cases (case i goes to rank i mod size); rank 0 then waits for the others,
    /// writes `dataset.json` and `refine-summary.json`.
    public static func run(_ o: RefineOptions, progress: ((String) -> Void)? = nil) throws -> RefineSummary {
        try o.mapping.validate()
        if o.mapping.sourcesUsed.contains(where: { o.mapping.files[$0]?.dir == "abdominal_muscles" }) {
            _ = try dir("abdominal_muscles", o)
        }
        let all = try o.cases ?? discoverCases(saros: o.saros)
        if all.isEmpty { throw RefineError("\(o.saros.path): no case folders") }
        for d in ["imagesTr", "labelsTr", "refine-logs"] {
            do { try fm.createDirectory(at: o.out.appendingPathComponent(d), withIntermediateDirectories: true) } catch {
                throw RefineError("\(o.out.path): cannot create \(d) (\(error.localizedDescription))")
            }
        }
        let mine = all.enumerated().filter { $0.offset % o.size == o.rank }.map(\.element)
        var results: [CaseResult] = []
        for (k, id) in mine.enumerated() {
            let t0 = Date()
            let r = processCase(id, o)
            results.append(r)
            let what: String
            switch r.status {
            case .ok: what = "ok, \(r.slices ?? 0) slices" + (r.log?.cropFrom.map { ", \($0)–\(r.log?.cropTo ?? "")" } ?? "")
            case .skipped: what = "SKIPPED: " + (r.message ?? "")
            case .failed: what = "FAILED: " + (r.message ?? "")
            }
            let prefix = o.size > 1 ? "rank \(o.rank) " : ""
            progress?(String(format: "%@[%d/%d] %@: %@ (%.1f s)", prefix, k + 1, mine.count, id, what,
                             Date().timeIntervalSince(t0)))
            for w in r.warnings { progress?("  \(id): warning: \(w)") }
        }
        let marker = { (r: Int) in o.out.appendingPathComponent(".refine-rank-\(o.jobID)-\(r).json") }
        if o.rank != 0 {
            try writeJSON(results, to: marker(o.rank))
            return RefineSummary(mapping: o.mapping.name, results: results, complete: false)
        }
        for r in 1..<max(o.size, 1) {
            let deadline = Date().addingTimeInterval(o.waitTimeout)
            while !fm.fileExists(atPath: marker(r).path) {
                if Date() > deadline { throw RefineError("rank \(r) did not finish within \(Int(o.waitTimeout)) s (no \(marker(r).path))") }
                Thread.sleep(forTimeInterval: 0.2)
            }
            do {
                let theirs = try JSONDecoder().decode([CaseResult].self, from: Data(contentsOf: marker(r)))
                results += theirs
            } catch {
                throw RefineError("\(marker(r).path): cannot read rank \(r)'s results (\(error))")
            }
            try? fm.removeItem(at: marker(r))
        }
        results.sort { $0.id < $1.id }
        let summary = RefineSummary(mapping: o.mapping.name, results: results, complete: true)
        try writeJSON(summary, to: o.out.appendingPathComponent("refine-summary.json"))
        let labels = (try? fm.contentsOfDirectory(atPath: o.out.appendingPathComponent("labelsTr").path)) ?? []
        let n = labels.filter { $0.hasSuffix(".nii.gz") && !$0.hasPrefix(".") }.count
        if n > 0 {
            let desc = DatasetDescription(classNames: RefineClasses.names, ignoreLabel: RefineClasses.ignoreLabel,
                                          fileEnding: ".nii.gz", channelNames: ["CT"], name: "SAROS-refined")
            var obj = desc.jsonObject(numTraining: n)
            obj["description"] = "SAROS body regions refined with BOA/TotalSegmentator (episodic refine, mapping \(o.mapping.name))"
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
            try atomicWrite(data, to: o.out.appendingPathComponent("dataset.json"))
        }
        return summary
    }

    // MARK: files

    static func rename(_ a: URL, _ b: URL) throws {
        if Foundation.rename(a.path, b.path) != 0 {
            throw RefineError("\(b.path): cannot rename \(a.lastPathComponent) into place (\(String(cString: strerror(errno))))")
        }
    }

    /// Data's atomic writer is internal to Data, so Refine has its own (same scheme: `<name>.tmp-<pid>` + rename).
    static func atomicWrite(_ data: Data, to url: URL) throws {
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(url.lastPathComponent + ".tmp-\(ProcessInfo.processInfo.processIdentifier)")
        do { try data.write(to: tmp) } catch {
            throw RefineError("\(url.path): cannot write (\(error.localizedDescription))")
        }
        do { try rename(tmp, url) } catch { try? fm.removeItem(at: tmp); throw error }
    }

    static func writeJSON<T: Encodable>(_ v: T, to url: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomicWrite(try enc.encode(v), to: url)
    }
}
