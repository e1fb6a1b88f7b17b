import Foundation

/// Settings of the slice cache. Everything except `memoryCapBytes` is part of the cache key.
public struct PreprocessSettings: Codable, Equatable, Sendable {
    /// In-plane size S of every record (S×S), or nil to keep the native size (all cases must then agree).
    /// Images are resized bilinearly and labels by nearest neighbour, both with pixel-centre alignment
    /// (source coordinate = (dst + 0.5)·in/out − 0.5, PyTorch's align_corners=false); windowing happens first.
    public var size: Int?
    /// HU window (PROTOCOL.md: level 40, width 400 → [−160, 240] → [0, 1]).
    public var windowLevel: Double
    public var windowWidth: Double
    /// Optional axial crop: inclusive [first, last] RAS slice indices (z), clamped to each volume.
    public var zRange: [Int]?
    /// Largest memory one volume may need; checked from the header before reading voxels.
    public var memoryCapBytes: Int
    /// Image and label affines must agree entry-wise within this tolerance (mm, plus 1e-4 relative).
    public var affineTolerance: Double

    public init(size: Int? = nil, windowLevel: Double = 40, windowWidth: Double = 400, zRange: [Int]? = nil,
                memoryCapBytes: Int = NiftiVolume.defaultMemoryCap, affineTolerance: Double = 1e-3) {
        self.size = size
        self.windowLevel = windowLevel
        self.windowWidth = windowWidth
        self.zRange = zRange
        self.memoryCapBytes = memoryCapBytes
        self.affineTolerance = affineTolerance
    }

    public func validate() throws {
        if let s = size, s < 1 || s > 8192 { throw DataError("--size \(s): must be in 1...8192") }
        guard windowWidth > 0, windowWidth.isFinite, windowLevel.isFinite else {
            throw DataError("window level/width \(windowLevel)/\(windowWidth): width must be positive and finite")
        }
        if let z = zRange, z.count != 2 || z[0] > z[1] || z[0] < 0 {
            throw DataError("axial crop \(z): expected [first, last] slice indices with 0 ≤ first ≤ last")
        }
    }

    /// The settings that change the cache content, as a canonical string.
    var keyString: String {
        "size=\(size.map(String.init) ?? "native");wl=\(windowLevel);ww=\(windowWidth);"
            + "z=\(zRange.map { "\($0)" } ?? "all");tol=\(affineTolerance)"
    }
}

/// Image and label of one case, checked against each other and the dataset description, in RAS.
public struct LoadedCase {
    public var files: CaseFiles
    public var image: NiftiVolume
    /// Label per voxel (RAS, x fastest); the dataset's ignore value is mapped to `SliceStore.ignoreLabel` (255).
    public var labels: [UInt8]

    public static func load(_ files: CaseFiles, description: DatasetDescription,
                            settings: PreprocessSettings) throws -> LoadedCase {
        let img = try NiftiVolume.read(files.image, memoryCap: settings.memoryCapBytes)
        let lab = try NiftiVolume.read(files.label, memoryCap: settings.memoryCapBytes)
        guard img.dims == lab.dims else {
            throw DataError("case \(files.id): shape mismatch: image \(files.image.path) has RAS dims \(img.dims), "
                + "label \(files.label.path) has \(lab.dims)")
        }
        let tol = settings.affineTolerance
        for i in 0..<12 where abs(img.affine[i] - lab.affine[i]) > tol + 1e-4 * abs(img.affine[i]) {
            throw DataError("case \(files.id): affine mismatch between image \(files.image.path) and label "
                + "\(files.label.path) (entry [\(i / 4)][\(i % 4)]: \(img.affine[i]) vs \(lab.affine[i]))")
        }
        let k = description.numClasses
        let ignore = description.ignoreLabel.map { Float($0) }
        var out = [UInt8](repeating: 0, count: lab.data.count)
        var bad: Set<Float> = []
        for (i, v) in lab.data.enumerated() {
            if v == ignore { out[i] = SliceStore.ignoreLabel; continue }
            if v >= 0, v < Float(k), v == v.rounded() { out[i] = UInt8(v) } else { bad.insert(v) }
        }
        if !bad.isEmpty {
            let shown = bad.sorted().prefix(8).map { v in v == v.rounded() ? String(Int(v)) : String(v) }
            throw DataError("case \(files.id): label \(files.label.path) contains value(s) "
                + "\(shown.joined(separator: ", "))\(bad.count > 8 ? ", ..." : "") absent from dataset.json "
                + "(classes 0..<\(k)\(description.ignoreLabel.map { ", ignore \($0)" } ?? ""))")
        }
        return LoadedCase(files: files, image: img, labels: out)
    }
}

/// Slice-level preprocessing.
public enum Preprocess {
    /// HU → [0, 1]: clamp to [level − width/2, level + width/2], then scale linearly.
    public static func window(_ hu: Float, level: Double, width: Double) -> Float {
        let lo = Float(level - width / 2), w = Float(width)
        return min(max((hu - lo) / w, 0), 1)
    }

    /// Bilinear resize of a w×h image (x fastest) to ow×oh, pixel-centre aligned, edges clamped.
    public static func resizeBilinear(_ src: [Float], width w: Int, height h: Int, toWidth ow: Int, height oh: Int) -> [Float] {
        if w == ow && h == oh { return src }
        var out = [Float](repeating: 0, count: ow * oh)
        let sx = Double(w) / Double(ow), sy = Double(h) / Double(oh)
        for y in 0..<oh {
            let fy = max(0, min(Double(h - 1), (Double(y) + 0.5) * sy - 0.5))
            let y0 = Int(fy), y1 = min(y0 + 1, h - 1)
            let ty = Float(fy - Double(y0))
            for x in 0..<ow {
                let fx = max(0, min(Double(w - 1), (Double(x) + 0.5) * sx - 0.5))
                let x0 = Int(fx), x1 = min(x0 + 1, w - 1)
                let tx = Float(fx - Double(x0))
                let a = src[y0 * w + x0] * (1 - tx) + src[y0 * w + x1] * tx
                let b = src[y1 * w + x0] * (1 - tx) + src[y1 * w + x1] * tx
                out[y * ow + x] = a * (1 - ty) + b * ty
            }
        }
        return out
    }

    /// Nearest-neighbour resize (labels): source pixel floor((dst + 0.5)·in/out). Also maps predictions back to the
    /// native grid (call with the sizes swapped).
    public static func resizeNearest<T>(_ src: [T], width w: Int, height h: Int, toWidth ow: Int, height oh: Int) -> [T] {
        if w == ow && h == oh { return src }
        let xs = (0..<ow).map { min(w - 1, Int((Double($0) + 0.5) * Double(w) / Double(ow))) }
        var out: [T] = []
        out.reserveCapacity(ow * oh)
        for y in 0..<oh {
            let sy = min(h - 1, Int((Double(y) + 0.5) * Double(h) / Double(oh)))
            for x in 0..<ow { out.append(src[sy * w + xs[x]]) }
        }
        return out
    }
}

extension Preprocess {
    /// One axial slice (RAS z) of a volume exactly as the cache stores it: windowed, then resized to `size`×`size`
    /// (or native when nil). For inference on every slice of a volume (the cache drops all-ignore slices).
    public static func imageSlice(_ volume: NiftiVolume, z: Int, settings: PreprocessSettings) -> [Float] {
        let plane = volume.nx * volume.ny
        let img = volume.data[(z * plane)..<((z + 1) * plane)].map {
            window($0, level: settings.windowLevel, width: settings.windowWidth)
        }
        guard let s = settings.size, s != volume.nx || s != volume.ny else { return img }
        return resizeBilinear(img, width: volume.nx, height: volume.ny, toWidth: s, height: s)
    }

    /// Per-slice predictions (`size`×`size` each, z = 0..<nz) back to a label volume on the RAS grid of `volume`
    /// (nearest neighbour), ready for `NiftiVolume.writeLabelVolume(like:labels:to:)`.
    public static func labelVolume(fromSlices slices: [[UInt8]], size: Int, like volume: NiftiVolume) throws -> [UInt8] {
        guard slices.count == volume.nz, slices.allSatisfy({ $0.count == size * size }) else {
            throw DataError("prediction: expected \(volume.nz) slices of \(size)×\(size) labels")
        }
        var out: [UInt8] = []
        out.reserveCapacity(volume.data.count)
        for s in slices { out += resizeNearest(s, width: size, height: size, toWidth: volume.nx, height: volume.ny) }
        return out
    }
}
