import Foundation

/// A synthetic trunk-CT data set in nnU-Net v2 raw layout, so every command runs without downloads.
///
/// Each case covers T1 (top, t = 0) to L4 (bottom, t = 1) in `slices` axial slices of 5 mm. In a slice, from the
/// outside in: air, skin (background), SAT, the muscle wall (SM; PEM over the anterior chest in the upper thorax,
/// RAM either side of the midline from the lower thorax down), then the cavity: lungs / heart / aorta / mediastinum in
/// the thorax, liver / kidneys / bowel (background) and VAT in the abdomen. Around the spine: ESM posterior to it in
/// every slice, PSM beside the vertebral body and QLM lateral to it only in lumbar slices. IMAT: small fat inclusions
/// in muscle on a minority of slices. Every muscle has the same HU distribution, so ESM vs SM (and PSM vs QLM) can only
/// be told apart by position; organs overlap muscle in HU. Per case: body size, fat fraction, position, rotation,
/// level boundaries and noise vary; along z the body shape, fat and muscle sizes change.
/// Labels: background 0, ESM 1, IMAT 2, PEM 3, PSM 4, QLM 5, RAM 6, SAT 7, SM 8, VAT 9 (PROTOCOL.md order).
public enum Phantom {
    public static let classNames = ["background", "ESM", "IMAT", "PEM", "PSM", "QLM", "RAM", "SAT", "SM", "VAT"]
    static let ESM: UInt8 = 1, IMAT: UInt8 = 2, PEM: UInt8 = 3, PSM: UInt8 = 4, QLM: UInt8 = 5, RAM: UInt8 = 6
    static let SAT: UInt8 = 7, SM: UInt8 = 8, VAT: UInt8 = 9

    /// Stored voxel order of the written files.
    public enum StoredOrientation: String, Sendable { case ras = "RAS", lps = "LPS" }

    public struct Case: Sendable {
        public var id: String
        /// HU, RAS grid, x fastest.
        public var hu: [Int16]
        public var labels: [UInt8]
        public var dims: [Int]
        public var spacing: [Double]
        /// RAS voxel → world (row-major 4×4).
        public var affine: [Double]
    }

    /// In-plane spacing: 0.8 mm at 512², scaled so the field of view stays 409.6 mm at other sizes.
    public static func spacing(size: Int) -> Double { 0.8 * 512 / Double(size) }
    public static let sliceThickness = 5.0

    /// Writes `cases` training cases (`imagesTr`, `labelsTr`) and `testCases` cases in `imagesTs`/`labelsTs`,
    /// plus dataset.json. Deterministic in `seed`.
    public static func write(to dir: URL, cases: Int = 24, size: Int = 64, slices: Int = 24, seed: UInt64 = 0,
                             testCases: Int = 0, orientation: StoredOrientation = .ras) throws {
        guard cases >= 1 else { throw DataError("--cases \(cases): need at least one case") }
        guard size >= 16, size <= 2048 else { throw DataError("--size \(size): must be in 16...2048") }
        guard slices >= 2, slices <= 2000 else { throw DataError("--slices \(slices): must be in 2...2000") }
        guard testCases >= 0 else { throw DataError("test cases \(testCases): must be ≥ 0") }
        let fm = FileManager.default
        try clearPrevious(dir)
        var dirs = ["imagesTr", "labelsTr"]
        if testCases > 0 { dirs += ["imagesTs", "labelsTs"] }
        for d in dirs {
            do { try fm.createDirectory(at: dir.appendingPathComponent(d), withIntermediateDirectories: true) } catch {
                throw DataError("\(dir.appendingPathComponent(d).path): cannot create (\(error.localizedDescription))")
            }
        }
        for i in 0..<(cases + testCases) {
            let c = generate(index: i, size: size, slices: slices, seed: seed)
            let (img, lab) = i < cases ? ("imagesTr", "labelsTr") : ("imagesTs", "labelsTs")
            try writeCase(c, image: dir.appendingPathComponent(img).appendingPathComponent(c.id + "_0000.nii.gz"),
                          label: dir.appendingPathComponent(lab).appendingPathComponent(c.id + ".nii.gz"),
                          orientation: orientation)
        }
        let desc = DatasetDescription(classNames: classNames, fileEnding: ".nii.gz", channelNames: ["CT"],
                                      name: "EpisodicPhantom")
        var obj = desc.jsonObject(numTraining: cases)
        obj["description"] = "Synthetic trunk CT (T1–L4) with nine body-composition tissues; episodic phantom, seed \(seed)"
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
        try AtomicWrite.write(data, to: dir.appendingPathComponent("dataset.json"))
    }

    /// Rewriting a phantom over an older one must not leave its extra cases or folds behind; a directory holding
    /// some other data set is refused rather than touched.
    static func clearPrevious(_ dir: URL) throws {
        let fm = FileManager.default
        let dj = dir.appendingPathComponent("dataset.json")
        guard fm.fileExists(atPath: dj.path) else { return }
        let obj = (try? JSONSerialization.jsonObject(with: Data(contentsOf: dj))) as? [String: Any]
        guard obj?["name"] as? String == "EpisodicPhantom" else {
            throw DataError("\(dj.path): the output directory already holds a data set that is not a phantom; "
                + "choose another --out")
        }
        for sub in ["imagesTr", "labelsTr", "imagesTs", "labelsTs"] {
            let d = dir.appendingPathComponent(sub)
            for f in (try? fm.contentsOfDirectory(atPath: d.path)) ?? [] where f.hasPrefix("phantom_") {
                try? fm.removeItem(at: d.appendingPathComponent(f))
            }
        }
        try? fm.removeItem(at: dir.appendingPathComponent("splits_final.json"))
    }

    static func writeCase(_ c: Case, image: URL, label: URL, orientation: StoredOrientation) throws {
        switch orientation {
        case .ras:
            try NiftiVolume.write(.int16(c.hu), dims: c.dims, affine: c.affine, to: image)
            try NiftiVolume.write(.uint8(c.labels), dims: c.dims, affine: c.affine, to: label)
        case .lps:
            // Stored x and y reversed; the affine compensates, so the world content is identical.
            let g = NiftiGeometry(storedDims: c.dims, permutation: [0, 1, 2], flips: [true, true, false],
                                  orientation: "LPS", pixdim: c.spacing, qformCode: 1, qform: c.affine,
                                  sformCode: 1, sform: c.affine)
            var a = c.affine
            for r in 0..<3 {
                a[r * 4 + 3] += a[r * 4 + 0] * Double(c.dims[0] - 1) + a[r * 4 + 1] * Double(c.dims[1] - 1)
                a[r * 4 + 0] = -a[r * 4 + 0]
                a[r * 4 + 1] = -a[r * 4 + 1]
            }
            try NiftiVolume.write(.int16(Orientation.unreorient(c.hu, geometry: g)), dims: c.dims, affine: a, to: image)
            try NiftiVolume.write(.uint8(Orientation.unreorient(c.labels, geometry: g)), dims: c.dims, affine: a, to: label)
        }
    }

    /// Per-case anatomy drawn from the seed.
    struct Anatomy {
        var a0: Double, b0: Double          // inner (fascia) semi-axes, mm
        var fat: Double                     // 0...1
        var cx: Double, cy: Double, theta: Double, thetaDrift: Double
        var t0: Double, t1: Double          // covered part of T1–L4
        var thoraxEnd: Double, pemEnd: Double, ramStart: Double, vatStart: Double, psmStart: Double, qlmStart: Double
        var wobble: [Double]                // shape harmonics (amplitude, phase) ×2
        var muscle: Double                  // muscle size factor
        var imatRate: Double
        var noise: Double
        var huShift: Double
        var field: [(kx: Double, ky: Double, kz: Double, p: Double)]
    }

    static func anatomy(_ r: inout SplitMix64) -> Anatomy {
        func u(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * r.uniform() }
        let thoraxEnd = u(0.62, 0.70)
        var field: [(Double, Double, Double, Double)] = []
        for _ in 0..<6 {
            let ang = u(0, 2 * .pi), k = u(0.03, 0.09)
            field.append((k * cos(ang), k * sin(ang), u(-6, 6), u(0, 2 * .pi)))
        }
        return Anatomy(a0: u(118, 150), b0: u(82, 104), fat: u(0.15, 0.85), cx: u(-14, 14), cy: u(-12, 12),
                       theta: u(-0.1, 0.1), thetaDrift: u(-0.04, 0.04), t0: u(0, 0.05), t1: u(0.95, 1.0),
                       thoraxEnd: thoraxEnd, pemEnd: u(0.30, 0.38), ramStart: u(0.26, 0.34), vatStart: u(0.40, 0.46),
                       psmStart: thoraxEnd + u(-0.03, 0.02), qlmStart: thoraxEnd + u(0.04, 0.09),
                       wobble: [u(0, 0.04), u(0, 2 * .pi), u(0, 0.03), u(0, 2 * .pi)], muscle: u(0.8, 1.2),
                       imatRate: u(0.1, 0.3), noise: u(10, 18), huShift: u(-8, 8),
                       field: field.map { (kx: $0.0, ky: $0.1, kz: $0.2, p: $0.3) })
    }

    /// Tissue kinds that set the HU distribution (labels are separate).
    enum Tissue { case air, lung, skin, fat, vat, muscle, bone, csf, blood, heart, liver, kidney, bowel, gas, soft }

    static func huMean(_ t: Tissue) -> (Double, Double) {
        switch t {
        case .air: return (-1000, 10)
        case .lung: return (-840, 45)
        case .skin: return (35, 15)
        case .fat: return (-100, 22)
        case .vat: return (-92, 25)
        case .muscle: return (45, 14)
        case .bone: return (420, 160)
        case .csf: return (12, 10)
        case .blood: return (45, 12)
        case .heart: return (42, 14)
        case .liver: return (60, 12)
        case .kidney: return (33, 14)
        case .bowel: return (28, 20)
        case .gas: return (-650, 120)
        case .soft: return (30, 18)
        }
    }

    /// One case on the RAS grid. Case `index` gets its own stream, so cases are independent of each other.
    public static func generate(index: Int, size: Int, slices: Int, seed: UInt64) -> Case {
        var rng = SplitMix64(seed: SplitMix64.key(seed, fnv1a64("phantom-case"), UInt64(index)))
        let an = anatomy(&rng)
        let sp = spacing(size: size)
        let n = size * size
        var hu = [Int16](repeating: 0, count: n * slices)
        var lab = [UInt8](repeating: 0, count: n * slices)
        var tissue = [Tissue](repeating: .air, count: n)
        var sl = [UInt8](repeating: 0, count: n)
        for k in 0..<slices {
            // k = 0 is the most inferior slice (RAS: z increases superiorly); t = 0 at T1, 1 at L4.
            let frac = slices > 1 ? Double(k) / Double(slices - 1) : 0
            let t = an.t1 - (an.t1 - an.t0) * frac
            drawSlice(an, t: t, size: size, sp: sp, tissue: &tissue, labels: &sl, rng: &rng)
            for i in 0..<n {
                let (m, s) = huMean(tissue[i])
                let shift = tissue[i] == .air ? 0 : an.huShift
                let v = m + shift + s * 0.6 * rng.normal() + an.noise * rng.normal()
                hu[k * n + i] = Int16(max(-1024, min(3071, v.rounded())))
                lab[k * n + i] = sl[i]
            }
        }
        let half = Double(size - 1) / 2
        let affine = [sp, 0, 0, -half * sp,
                      0, sp, 0, -half * sp,
                      0, 0, sliceThickness, -Double(slices - 1) * sliceThickness / 2,
                      0, 0, 0, 1]
        return Case(id: String(format: "phantom_%03d", index), hu: hu, labels: lab, dims: [size, size, slices],
                    spacing: [sp, sp, sliceThickness], affine: affine)
    }

    static func drawSlice(_ an: Anatomy, t: Double, size: Int, sp: Double, tissue: inout [Tissue],
                          labels: inout [UInt8], rng: inout SplitMix64) {
        let thorax = t < an.thoraxEnd
        let abdomen = t >= an.vatStart
        // Body shape along z: broad chest, narrower waist, deeper abdomen; fat thickens caudally.
        let ai = an.a0 * (1.04 - 0.10 * t), bi = an.b0 * (0.92 + 0.10 * t)
        let satBase = 6 + 32 * an.fat * (0.7 + 0.6 * t)
        let wall = 9 + 5 * an.muscle
        let theta = an.theta + an.thetaDrift * t
        let ct = cos(theta), st = sin(theta)
        let half = Double(size - 1) / 2
        // Spine geometry (body frame; +x = patient's right, +y = anterior).
        let vb = (14 + 6 * t) * an.muscle.squareRoot()
        let yv = -bi * 0.45
        let canalY = yv - vb - 7
        let esmLR = (15 + 8 * t) * an.muscle, esmAP = (canalY + bi) / 2 + 4
        let esmX = 6 + esmLR, esmY = (canalY - bi) / 2
        let psmR = t > an.psmStart ? (6 + 16 * (t - an.psmStart) / max(0.05, 1 - an.psmStart)) * an.muscle : 0
        let qlmS = t > an.qlmStart ? (0.6 + 0.8 * (t - an.qlmStart) / max(0.05, 1 - an.qlmStart)) * an.muscle : 0
        let pemT = t < an.pemEnd ? (10 + 8 * an.muscle) * (1 - 0.5 * t / an.pemEnd) : 0
        let ribPhase = 7 * t
        let liverS = abdomen && t < 0.8 ? 1 - 0.6 * (t - an.vatStart) / max(0.05, 0.8 - an.vatStart) : 0
        let vatThreshold = -0.55 + 1.0 * an.fat
        for j in 0..<size {
            for i in 0..<size {
                let p = j * size + i
                let wx = (Double(i) - half) * sp - an.cx, wy = (Double(j) - half) * sp - an.cy
                let x = ct * wx + st * wy, y = -st * wx + ct * wy
                let rho = (x * x + y * y).squareRoot()
                let phi = atan2(y, x)
                let wob = 1 + an.wobble[0] * cos(2 * phi + an.wobble[1]) + an.wobble[2] * cos(3 * phi + an.wobble[3])
                let c = cos(phi), s = sin(phi)
                let rhoI = wob / (c * c / (ai * ai) + s * s / (bi * bi)).squareRoot()
                // SAT: thicker anteriorly in the abdomen and laterally at the flanks, thinner over the spine.
                let sat = satBase * (1 + 0.35 * s * t - 0.25 * max(0, -s) + 0.2 * c * c)
                let rhoO = rhoI + sat
                var tis: Tissue = .air
                var lb: UInt8 = 0
                if rho > rhoO {
                    tis = .air
                } else if rho > rhoO - 2.0 {
                    tis = .skin
                } else if rho > rhoI {
                    tis = .fat; lb = SAT
                } else if rho > rhoI - wall - pemT {
                    tis = .muscle; lb = SM
                    let angFromAnt = abs(atan2(x, y))  // 0 at the anterior midline
                    if pemT > 0, angFromAnt > 0.25, angFromAnt < 1.15, rho > rhoI - pemT {
                        lb = PEM
                    } else if pemT > 0, rho > rhoI - pemT {
                        tis = .fat; lb = SAT  // outside the pectoral sectors the extra depth is subcutaneous fat
                    } else if t >= an.ramStart, angFromAnt < 0.32 {
                        lb = angFromAnt < 0.025 ? 0 : RAM  // linea alba between the two bellies
                        if lb == 0 { tis = .soft }
                    }
                    if thorax, lb == SM, rho < rhoI - pemT - wall * 0.25, rho > rhoI - pemT - wall * 0.8,
                       cos(9 * phi + ribPhase) > 0.55, angFromAnt > 0.3 {
                        tis = .bone; lb = 0  // ribs inside the chest wall
                    }
                } else {
                    (tis, lb) = cavity(x: x, y: y, t: t, an: an, ai: ai, bi: bi, thorax: thorax, abdomen: abdomen,
                                       yv: yv, vb: vb, liverS: liverS, vatThreshold: vatThreshold)
                }
                // Paraspinal muscles override wall and cavity (inside the fascia only).
                if rho <= rhoI {
                    let ex = (abs(x) - esmX) / esmLR, ey = (y - esmY) / esmAP
                    if ex * ex + ey * ey <= 1 { tis = .muscle; lb = ESM }
                    if qlmS > 0 {
                        let qx = (abs(x) - (esmX + esmLR + 6 * qlmS)) / (12 * qlmS), qy = (y - (yv - 4)) / (9 * qlmS)
                        if qx * qx + qy * qy <= 1 { tis = .muscle; lb = QLM }
                    }
                    if psmR > 0 {
                        let dx = abs(x) - (vb + psmR * 0.8), dy = y - (yv + 2)
                        if dx * dx + dy * dy <= psmR * psmR { tis = .muscle; lb = PSM }
                    }
                    // Vertebral body, canal, spinous process: background bone / CSF.
                    let dvx = x, dvy = y - yv
                    if dvx * dvx + dvy * dvy <= vb * vb { tis = .bone; lb = 0 }
                    let dcy = y - canalY
                    if x * x + dcy * dcy <= 49 { tis = .csf; lb = 0 }
                    else if abs(x) < 4, y < canalY - 5, y > -bi - wall * 0.3 { tis = .bone; lb = 0 }
                    else if abs(x) < vb + 12, abs(y - (canalY + 2)) < 4, abs(x) > 8, t < an.thoraxEnd + 0.1 {
                        tis = .bone; lb = 0  // transverse processes
                    }
                }
                tissue[p] = tis
                labels[p] = lb
            }
        }
        // IMAT: a few small fat inclusions in muscle, on a minority of slices.
        if rng.uniform() < an.imatRate {
            var musclePixels: [Int] = []
            for p in 0..<(size * size) where [ESM, SM, PSM, QLM, RAM, PEM].contains(labels[p]) { musclePixels.append(p) }
            if !musclePixels.isEmpty {
                let count = 1 + rng.below(3)
                for _ in 0..<count {
                    let c = musclePixels[rng.below(musclePixels.count)]
                    let ci = c % size, cj = c / size
                    let r = max(2.5, 0.6 * sp) + 2 * rng.uniform()
                    let rp = Int((r / sp).rounded(.up))
                    for dj in -rp...rp {
                        for di in -rp...rp {
                            let ii = ci + di, jj = cj + dj
                            guard ii >= 0, ii < size, jj >= 0, jj < size else { continue }
                            let q = jj * size + ii
                            let d = (Double(di * di + dj * dj)).squareRoot() * sp
                            if (d <= r || q == c), tissue[q] == .muscle { tissue[q] = .fat; labels[q] = IMAT }
                        }
                    }
                }
            }
        }
    }

    static func cavity(x: Double, y: Double, t: Double, an: Anatomy, ai: Double, bi: Double, thorax: Bool,
                       abdomen: Bool, yv: Double, vb: Double, liverS: Double,
                       vatThreshold: Double) -> (Tissue, UInt8) {
        // Aorta: left-anterior of the vertebral body, all levels.
        let ax = x + 14, ay = y - (yv + vb + 10)
        if ax * ax + ay * ay <= 110 { return (.blood, 0) }
        if !abdomen {
            let hx = (x + 0.15 * ai) / (0.34 * ai), hy = (y - 0.25 * bi) / (0.42 * bi)
            if t > 0.22, hx * hx + hy * hy <= 1 { return (.heart, 0) }
            let lx = (abs(x) - 0.48 * ai) / (0.42 * ai), ly = (y + 0.02 * bi) / (0.78 * bi)
            if lx * lx + ly * ly <= 1 { return (.lung, 0) }
            return (.soft, 0)  // mediastinum
        }
        if liverS > 0 {
            let lx = (x - 0.35 * ai) / (0.5 * ai * liverS), ly = (y - 0.05 * bi) / (0.62 * bi * liverS)
            if lx * lx + ly * ly <= 1 { return (.liver, 0) }
        }
        if t > 0.56, t < 0.88 {
            let kx = (abs(x) - (vb + 38)) / 20, ky = (y - yv) / 27
            if kx * kx + ky * ky <= 1 { return (.kidney, 0) }
        }
        // Bowel versus visceral fat from a smooth per-case field: more fat with a higher fat fraction.
        var f = 0.0
        for w in an.field { f += cos(w.kx * x + w.ky * y + w.kz * t + w.p) }
        f /= Double(an.field.count).squareRoot()
        if f < vatThreshold { return (.vat, VAT) }
        return (f > 1.6 ? .gas : .bowel, 0)
    }
}
