import Foundation

/// One case's inputs on a common RAS grid (x fastest). Label sources are integer volumes by source name.
public struct RefineInputs: Sendable {
    public var dims: [Int]
    public var ct: [Float]
    public var sources: [String: [UInt16]]
    public init(dims: [Int], ct: [Float], sources: [String: [UInt16]]) {
        self.dims = dims; self.ct = ct; self.sources = sources
    }
    public var voxelCount: Int { dims.reduce(1, *) }
}

/// What refinement did to one case (written as the per-case log).
public struct RefineLog: Codable, Equatable, Sendable {
    /// Rule → class → voxels that rule took away from the class.
    public var removed: [String: [String: Int]] = [:]
    /// Class → voxels before the crop (ignore voxels excluded).
    public var countsBeforeCrop: [String: Int] = [:]
    /// Class → voxels in the written label map; "ignore" counts the 255 voxels.
    public var counts: [String: Int] = [:]
    /// Inclusive RAS slice range kept, nil when not cropped.
    public var cropZ: [Int]?
    public var cropFrom: String?
    public var cropTo: String?
    public var warnings: [String] = []

    mutating func add(_ rule: String, _ cls: String, _ n: Int) {
        guard n > 0 else { return }
        removed[rule, default: [:]][cls, default: 0] += n
    }
}

public struct RefineOutput: Sendable {
    /// Label map on the cropped grid (dims `[nx, ny, zRange.count]`).
    public var labels: [UInt8]
    /// Inclusive slice range of the input grid that was kept.
    public var zRange: ClosedRange<Int>
    public var log: RefineLog
}

/// The paper's label refinement (issue 8, rules 2–8) on in-memory volumes.
public enum Refiner {
    /// Boolean mask for a spec; missing sources are an error naming the source.
    static func mask(_ spec: MaskSpec, _ inp: RefineInputs, what: String) throws -> [Bool] {
        let n = inp.voxelCount
        switch spec {
        case .none:
            return [Bool](repeating: false, count: n)
        case .values(let source, let values):
            guard let vol = inp.sources[source] else {
                throw RefineError("\(what): source \"\(source)\" is not loaded")
            }
            var table = [Bool](repeating: false, count: Int(UInt16.max) + 1)
            for v in values { table[v] = true }
            return table.withUnsafeBufferPointer { t in vol.map { t[Int($0)] } }
        case .allOf(let parts):
            guard var acc = try parts.first.map({ try mask($0, inp, what: what) }) else {
                return [Bool](repeating: false, count: n)
            }
            for p in parts.dropFirst() {
                let m = try mask(p, inp, what: what)
                for i in 0..<n where acc[i] && !m[i] { acc[i] = false }
            }
            return acc
        case .anyOf(let parts):
            var acc = [Bool](repeating: false, count: n)
            for p in parts {
                let m = try mask(p, inp, what: what)
                for i in 0..<n where m[i] { acc[i] = true }
            }
            return acc
        }
    }

    /// Warnings for mapping values that do not occur in this case's files.
    public static func missingValueWarnings(_ mapping: RefineMapping, _ inp: RefineInputs) -> [String] {
        var specs: [(String, MaskSpec)] = mapping.classes.map { ($0.name, $0.mask) }
        specs += [("muscleBase", mapping.muscleBase), ("sat", mapping.sat), ("visceralRegion", mapping.visceralRegion)]
        if mapping.rules.vatOrganMask { specs.append(("organBoneMask", mapping.organBoneMask)) }
        var present: [String: [Bool]] = [:]
        var out: [String] = []
        for (what, spec) in specs {
            var missing: [String: [Int]] = [:]
            for (s, v) in spec.references {
                guard let vol = inp.sources[s] else { continue }
                if present[s] == nil {
                    var seen = [Bool](repeating: false, count: Int(UInt16.max) + 1)
                    for x in vol { seen[Int(x)] = true }
                    present[s] = seen
                }
                if present[s]?[v] != true { missing[s, default: []].append(v) }
            }
            for (s, vals) in missing.sorted(by: { $0.key < $1.key }) {
                // The organ mask lists every organ of the tool; missing ones are normal, so only say so if all are.
                if what == "organBoneMask" && vals.count < spec.references.filter({ $0.source == s }).count { continue }
                out.append("mapping \(mapping.name): \(what) names value(s) \(vals.sorted().map(String.init).joined(separator: ",")) "
                    + "that \(s) does not contain")
            }
        }
        return out
    }

    /// Runs rules 2–8. Throws (the case is skipped) when the crop finds no vertebra and `keepUncroppable` is off.
    public static func refine(_ inp: RefineInputs, mapping m: RefineMapping) throws -> RefineOutput {
        let n = inp.voxelCount
        guard inp.ct.count == n, inp.dims.count == 3 else {
            throw RefineError("internal: CT has \(inp.ct.count) voxels, the grid \(inp.dims) needs \(n)")
        }
        for (s, v) in inp.sources where v.count != n {
            throw RefineError("source \"\(s)\" has \(v.count) voxels, the grid \(inp.dims) needs \(n)")
        }
        var log = RefineLog()
        log.warnings = missingValueWarnings(m, inp)
        // Per-voxel tallies (rule, class value); flushed into the log's dictionaries once at the end.
        let rules = ["overlap", "huThresholds", "vatOrganMask", "imat"]
        var tally = [[Int]](repeating: [Int](repeating: 0, count: 256), count: rules.count)
        let OV = 0, HU = 1, ORG = 2, IM = 3
        let ct = inp.ct
        let hu = m.hu
        let noClass: UInt8 = 0

        // Rule 2: named muscles (first listed wins an overlap) and SM = base − named.
        var label = [UInt8](repeating: noClass, count: n)
        var anyMuscle = try mask(m.muscleBase, inp, what: "muscleBase")
        let base = anyMuscle
        for c in m.classes {
            guard let v = RefineClasses.value(of: c.name) else { continue }
            let mk = try mask(c.mask, inp, what: "class \(c.name)")
            var overlap = 0
            for i in 0..<n where mk[i] {
                anyMuscle[i] = true
                if label[i] == noClass { label[i] = v } else { overlap += 1 }
            }
            tally[OV][Int(v)] += overlap
        }
        let sm = RefineClasses.value(of: "SM") ?? 8
        for i in 0..<n where base[i] && label[i] == noClass { label[i] = sm }

        // Rule 3 for the muscles: implausible HU → background.
        if m.rules.huThresholds {
            for i in 0..<n where label[i] != noClass && !hu.muscle.contains(ct[i]) {
                tally[HU][Int(label[i])] += 1
                label[i] = noClass
            }
        }

        // SAT (rule 3 plausibility), claiming only voxels no muscle holds.
        let satV = RefineClasses.value(of: "SAT") ?? 7
        let satMask = try mask(m.sat, inp, what: "sat")
        var isSAT = [Bool](repeating: false, count: n)
        for i in 0..<n where satMask[i] {
            if m.rules.huThresholds && !hu.sat.contains(ct[i]) { tally[HU][Int(satV)] += 1; continue }
            if label[i] != noClass { tally[OV][Int(satV)] += 1; continue }
            label[i] = satV
            isSAT[i] = true
        }

        // Rule 4: VAT = VAT-range HU in the visceral region, minus organs and bones, minus SAT.
        let vatV = RefineClasses.value(of: "VAT") ?? 9
        let region = try mask(m.visceralRegion, inp, what: "visceralRegion")
        let organs = m.rules.vatOrganMask ? try mask(m.organBoneMask, inp, what: "organBoneMask") : nil
        var isVAT = [Bool](repeating: false, count: n)
        for i in 0..<n where region[i] {
            guard hu.vat.contains(ct[i]) else { tally[HU][Int(vatV)] += 1; continue }
            if let o = organs, o[i] { tally[ORG][Int(vatV)] += 1; continue }
            if isSAT[i] { tally[OV][Int(vatV)] += 1; continue }
            if label[i] != noClass { tally[OV][Int(vatV)] += 1; continue }
            label[i] = vatV
            isVAT[i] = true
        }

        // Rule 5: IMAT = IMAT-range HU inside any muscle mask, minus SAT and VAT.
        if m.rules.imat {
            let imatV = RefineClasses.value(of: "IMAT") ?? 2
            for i in 0..<n where anyMuscle[i] && hu.imat.contains(ct[i]) {
                if isSAT[i] || isVAT[i] { tally[IM][Int(imatV)] += 1; continue }
                if label[i] != noClass { tally[OV][Int(imatV)] += 1; continue }
                label[i] = imatV
            }
        }

        for (r, name) in rules.enumerated() {
            for (c, k) in tally[r].enumerated() where k > 0 && c < RefineClasses.names.count {
                log.add(name, RefineClasses.names[c], k)
            }
        }

        // Rule 6: small 3D components per class.
        if m.rules.componentRemoval {
            let removed = removeSmallComponents(&label, dims: inp.dims, minVoxels: m.components.minVoxels,
                                                connectivity: m.components.connectivity)
            for (c, k) in removed.enumerated() where k > 0 { log.add("componentRemoval", RefineClasses.names[c], k) }
        }

        // Rule 7: trunk and extremities only.
        if m.rules.bodyParts {
            guard let parts = inp.sources[m.bodyParts.source] else {
                throw RefineError("bodyParts: source \"\(m.bodyParts.source)\" is not loaded")
            }
            var keep = [Bool](repeating: false, count: Int(UInt16.max) + 1)
            for k in m.bodyParts.keep where (0...Int(UInt16.max)).contains(k) { keep[k] = true }
            // Ignore-valued voxels are handled below, not dropped here.
            let ig = m.ignore.sources.contains(m.bodyParts.source) ? m.ignore.value : -1
            var dropped = [Int](repeating: 0, count: 256)
            for i in 0..<n where label[i] != noClass && !keep[Int(parts[i])] && Int(parts[i]) != ig {
                dropped[Int(label[i])] += 1
                label[i] = noClass
            }
            for (c, k) in dropped.enumerated() where k > 0 && c < RefineClasses.names.count {
                log.add("bodyParts", RefineClasses.names[c], k)
            }
        }

        // Unannotated SAROS voxels → ignore.
        for s in m.ignore.sources {
            guard let vol = inp.sources[s] else { throw RefineError("ignore: source \"\(s)\" is not loaded") }
            let v = UInt16(clamping: m.ignore.value)
            for i in 0..<n where vol[i] == v && label[i] != RefineClasses.ignoreLabel { label[i] = RefineClasses.ignoreLabel }
        }
        log.countsBeforeCrop = counts(label)

        // Rule 8: axial crop.
        let nz = inp.dims[2], slice = inp.dims[0] * inp.dims[1]
        var z = 0...(nz - 1)
        if m.rules.crop {
            if let c = try cropRange(inp, spec: m.crop) {
                z = c.range
                log.cropZ = [c.range.lowerBound, c.range.upperBound]
                log.cropFrom = c.from
                log.cropTo = c.to
            } else if m.crop.keepUncroppable {
                log.warnings.append("no vertebra of \(m.crop.levels.map(\.name).joined(separator: ",")) in "
                    + "\(m.crop.source); kept uncropped")
            } else {
                throw RefineError("no vertebra of \(m.crop.levels.first?.name ?? "?")…\(m.crop.levels.last?.name ?? "?") "
                    + "in \(m.crop.source) (need ≥ \(m.crop.minVoxels) voxels); cannot crop (set crop.keepUncroppable "
                    + "or --keep-uncropped to keep such cases whole)")
            }
        }
        let out = Array(label[(z.lowerBound * slice)..<((z.upperBound + 1) * slice)])
        log.counts = counts(out)
        if z != 0...(nz - 1) {
            for (c, k) in log.countsBeforeCrop where c != "ignore" && c != "background" {
                log.add("crop", c, k - (log.counts[c] ?? 0))
            }
        }
        return RefineOutput(labels: out, zRange: z, log: log)
    }

    static func counts(_ label: [UInt8]) -> [String: Int] {
        var h = [Int](repeating: 0, count: 256)
        for v in label { h[Int(v)] += 1 }
        var out: [String: Int] = [:]
        for (i, name) in RefineClasses.names.enumerated() { out[name] = h[i] }
        out["ignore"] = h[Int(RefineClasses.ignoreLabel)]
        return out
    }

    /// Rule 8's slice range: from the lowest slice of the most caudal listed vertebra present to the highest slice
    /// of the most cranial one present (RAS: z grows superior). nil when none is present.
    public static func cropRange(_ inp: RefineInputs, spec: CropSpec) throws
        -> (range: ClosedRange<Int>, from: String, to: String)?
    {
        guard let vol = inp.sources[spec.source] else { throw RefineError("crop: source \"\(spec.source)\" is not loaded") }
        let slice = inp.dims[0] * inp.dims[1]
        var levelOf = [Int](repeating: -1, count: Int(UInt16.max) + 1)
        for (k, l) in spec.levels.enumerated() where (0...Int(UInt16.max)).contains(l.value) { levelOf[l.value] = k }
        let L = spec.levels.count
        var count = [Int](repeating: 0, count: L)
        var zMin = [Int](repeating: Int.max, count: L), zMax = [Int](repeating: Int.min, count: L)
        for i in 0..<vol.count {
            let k = levelOf[Int(vol[i])]
            if k < 0 { continue }
            let z = i / slice
            count[k] += 1
            if z < zMin[k] { zMin[k] = z }
            if z > zMax[k] { zMax[k] = z }
        }
        let present = (0..<L).filter { count[$0] >= max(1, spec.minVoxels) }
        guard let cranial = present.first, let caudal = present.last else { return nil }
        let lo = zMin[caudal], hi = zMax[cranial]
        // Levels are cranial → caudal, so in a sane scan the cranial one lies higher; tolerate odd labels by
        // taking the full extent of the two.
        let a = min(lo, zMin[cranial]), b = max(hi, zMax[caudal])
        return (a...b, spec.levels[cranial].name, spec.levels[caudal].name)
    }

    /// Removes components (same class, given connectivity) with fewer than `minVoxels` voxels; background (0) and
    /// ignore (255) are not components. Returns removed voxels per class value.
    public static func removeSmallComponents(_ label: inout [UInt8], dims: [Int], minVoxels: Int,
                                             connectivity: Int) -> [Int] {
        let nx = dims[0], ny = dims[1], nz = dims[2]
        var offsets: [(Int, Int, Int)] = []
        for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
            let d = abs(dx) + abs(dy) + abs(dz)
            if d == 0 { continue }
            if connectivity == 6 && d > 1 { continue }
            if connectivity == 18 && d > 2 { continue }
            offsets.append((dx, dy, dz))
        } } }
        var removed = [Int](repeating: 0, count: 256)
        var visited = [Bool](repeating: false, count: label.count)
        var stack: [Int] = [], comp: [Int] = []
        for start in 0..<label.count {
            let c = label[start]
            if visited[start] || c == 0 || c == RefineClasses.ignoreLabel { continue }
            visited[start] = true
            stack.removeAll(keepingCapacity: true); comp.removeAll(keepingCapacity: true)
            stack.append(start)
            while let i = stack.popLast() {
                comp.append(i)
                let x = i % nx, y = (i / nx) % ny, z = i / (nx * ny)
                for (dx, dy, dz) in offsets {
                    let X = x + dx, Y = y + dy, Z = z + dz
                    if X < 0 || Y < 0 || Z < 0 || X >= nx || Y >= ny || Z >= nz { continue }
                    let j = (Z * ny + Y) * nx + X
                    if !visited[j] && label[j] == c { visited[j] = true; stack.append(j) }
                }
            }
            if comp.count < minVoxels {
                for i in comp { label[i] = 0 }
                removed[Int(c)] += comp.count
            }
        }
        return removed
    }

    /// Slices `zRange` of an x-fastest volume.
    public static func crop<T>(_ data: [T], dims: [Int], z: ClosedRange<Int>) -> [T] {
        let s = dims[0] * dims[1]
        return Array(data[(z.lowerBound * s)..<((z.upperBound + 1) * s)])
    }
}
