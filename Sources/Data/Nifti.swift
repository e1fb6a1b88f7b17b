import CNIfTI
import Foundation

/// What a NIfTI header says, before any voxel is read.
public struct NiftiHeaderInfo: Codable, Equatable, Sendable {
    /// Stored (not reoriented) dimensions, dim[1...ndim].
    public var dims: [Int]
    public var pixdim: [Double]
    public var datatype: Int32
    public var datatypeName: String
    public var bytesPerVoxel: Int
    public var sclSlope: Double
    public var sclInter: Double
    public var qformCode: Int32
    public var sformCode: Int32
    /// Row-major 4×4 voxel → world (RAS+ mm) matrices as nifticlib computes them.
    public var qform: [Double]
    public var sform: [Double]
    public var byteSwapped: Bool

    /// The matrix used for orientation: sform when sform_code > 0, else qform (pixdim diagonal when qform_code is 0).
    public var affine: [Double] { sformCode > 0 ? sform : qform }
    public var voxelCount: Int { dims.reduce(1, *) }
    /// Whether slope/intercept change the stored values (NIfTI: slope 0 means no scaling).
    public var isScaled: Bool { sclSlope.isFinite && sclSlope != 0 && !(sclSlope == 1 && sclInter == 0) }
}

/// How a stored volume maps onto its RAS grid, plus everything needed to write a volume back in the input geometry.
public struct NiftiGeometry: Codable, Equatable, Sendable {
    /// Stored dimensions (nx, ny, nz) of the file.
    public var storedDims: [Int]
    /// RAS axis w (0 = x/R, 1 = y/A, 2 = z/S) comes from stored axis `permutation[w]`, reversed when `flips[w]`.
    public var permutation: [Int]
    public var flips: [Bool]
    /// Orientation code of the stored voxel axes, e.g. "LPS" (nibabel's aff2axcodes convention).
    public var orientation: String
    public var pixdim: [Double]
    public var qformCode: Int32
    public var qform: [Double]
    public var sformCode: Int32
    public var sform: [Double]

    /// Dimensions after reorientation.
    public var rasDims: [Int] { permutation.map { storedDims[$0] } }
}

/// A 3D volume read through nifticlib, scaled by scl_slope/scl_inter and reoriented to RAS.
public struct NiftiVolume: Sendable {
    /// RAS dimensions [nx, ny, nz].
    public var dims: [Int]
    /// Voxel size in mm along the RAS axes x, y, z.
    public var spacing: [Double]
    /// Row-major 4×4 RAS-voxel → world matrix.
    public var affine: [Double]
    /// Voxels, x fastest, then y, then z (RAS).
    public var data: [Float]
    public var geometry: NiftiGeometry
    public var header: NiftiHeaderInfo

    public var nx: Int { dims[0] }
    public var ny: Int { dims[1] }
    public var nz: Int { dims[2] }

    /// Default cap on the memory one volume may need (stored bytes or Float32 copy, whichever is larger): 4 GiB.
    public static let defaultMemoryCap = 4 << 30

    // MARK: reading

    public static func readHeader(_ url: URL) throws -> NiftiHeaderInfo {
        var h = cnifti_header()
        var err = [CChar](repeating: 0, count: 512)
        if cnifti_read_header(url.path, &h, &err, err.count) != 0 {
            throw DataError("\(url.path): \(String(cString: err))")
        }
        return headerInfo(h)
    }

    /// Reads a volume. The header is checked (3D, supported datatype, memory needed ≤ `memoryCap`) before any voxel
    /// memory is allocated; with `rejectNonFinite` a NaN or infinite voxel is an error.
    public static func read(_ url: URL, memoryCap: Int = defaultMemoryCap, rejectNonFinite: Bool = true) throws -> NiftiVolume {
        let info = try readHeader(url)
        let dims = info.dims
        guard dims.count >= 1, dims.count <= 7, dims.allSatisfy({ $0 >= 1 }) else {
            throw DataError("\(url.path): invalid dimensions \(dims) in the header")
        }
        guard dims.dropFirst(3).allSatisfy({ $0 == 1 }) else {
            throw DataError("\(url.path): \(dims.count)D volume \(dims) — only 3D volumes (one channel) are supported")
        }
        guard cnifti_datatype_supported(info.datatype) != 0 else {
            throw DataError("\(url.path): unsupported datatype \(info.datatypeName) (code \(info.datatype)); "
                + "use an integer or float32/float64 type")
        }
        // Overflow-safe size check before nifticlib allocates anything.
        var voxels = 1
        for d in dims {
            let (p, o) = voxels.multipliedReportingOverflow(by: d)
            if o { throw DataError("\(url.path): header dimensions \(dims) overflow") }
            voxels = p
        }
        let (need, o) = voxels.multipliedReportingOverflow(by: max(info.bytesPerVoxel, 4))
        if o || need > memoryCap {
            throw DataError("\(url.path): header dimensions \(dims) × \(info.bytesPerVoxel) bytes need "
                + "\(o ? "more than Int.max" : "\(need)") bytes, over the memory cap of \(memoryCap) bytes")
        }
        var stored = [Float](repeating: 0, count: voxels)
        var h = cnifti_header()
        var err = [CChar](repeating: 0, count: 512)
        let rc = stored.withUnsafeMutableBufferPointer { buf in
            cnifti_read_float(url.path, buf.baseAddress, voxels, &h, &err, err.count)
        }
        if rc != 0 { throw DataError("\(url.path): \(String(cString: err))") }
        if rejectNonFinite {
            if let bad = stored.firstIndex(where: { !$0.isFinite }) {
                let n = stored.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
                throw DataError("\(url.path): \(n) NaN/infinite voxel(s), first at stored index \(bad)")
            }
        }
        let dims3 = [dims[0], dims.count > 1 ? dims[1] : 1, dims.count > 2 ? dims[2] : 1]
        let ras = try Orientation.toRAS(affine: info.affine, dims: dims3, file: url.path)
        let geometry = NiftiGeometry(storedDims: dims3, permutation: ras.permutation, flips: ras.flips,
                                     orientation: ras.code, pixdim: Array(info.pixdim.prefix(3)),
                                     qformCode: info.qformCode, qform: info.qform,
                                     sformCode: info.sformCode, sform: info.sform)
        let data = Orientation.reorient(stored, geometry: geometry)
        return NiftiVolume(dims: geometry.rasDims, spacing: Orientation.columnNorms(ras.affine), affine: ras.affine,
                           data: data, geometry: geometry, header: info)
    }

    // MARK: writing

    public enum Voxels {
        case uint8([UInt8])
        case int16([Int16])
        case float32([Float])
    }

    /// Writes a stored-order volume (x fastest) with the given voxel → world matrix as both sform and qform
    /// (codes 1 = scanner). Atomic: a temporary file in the same directory is renamed over `url`.
    public static func write(_ voxels: Voxels, dims: [Int], affine: [Double], to url: URL,
                             sclSlope: Float = 1, sclInter: Float = 0,
                             qformCode: Int32 = 1, sformCode: Int32 = 1) throws {
        try writeRaw(voxels, dims: dims, pixdim: Orientation.columnNorms(affine), qformCode: qformCode, qform: affine,
                     sformCode: sformCode, sform: affine, sclSlope: sclSlope, sclInter: sclInter, to: url)
    }

    /// Writes a label map given on the RAS grid of `geometry` back in the stored geometry of the original file
    /// (inverse reorientation; same dims, pixdim, qform and sform with their codes). `labels` is x fastest (RAS).
    public static func writeLabelVolume(like geometry: NiftiGeometry, labels: [UInt8], to url: URL) throws {
        let n = geometry.rasDims.reduce(1, *)
        guard labels.count == n else {
            throw DataError("\(url.path): label map has \(labels.count) voxels, the geometry needs \(n) "
                + "(RAS dims \(geometry.rasDims))")
        }
        let stored = Orientation.unreorient(labels, geometry: geometry)
        try writeRaw(.uint8(stored), dims: geometry.storedDims, pixdim: geometry.pixdim,
                     qformCode: geometry.qformCode, qform: geometry.qform,
                     sformCode: geometry.sformCode, sform: geometry.sform, sclSlope: 1, sclInter: 0, to: url)
    }

    public static func writeLabelVolume(like volume: NiftiVolume, labels: [UInt8], to url: URL) throws {
        try writeLabelVolume(like: volume.geometry, labels: labels, to: url)
    }

    static func writeRaw(_ voxels: Voxels, dims: [Int], pixdim: [Double], qformCode: Int32, qform: [Double],
                         sformCode: Int32, sform: [Double], sclSlope: Float, sclInter: Float, to url: URL) throws {
        guard dims.count == 3, pixdim.count >= 3, qform.count == 16, sform.count == 16 else {
            throw DataError("\(url.path): internal error: bad geometry for writing")
        }
        let name = url.lastPathComponent
        let ext = name.hasSuffix(".nii.gz") ? ".nii.gz" : name.hasSuffix(".nii") ? ".nii" : ""
        guard !ext.isEmpty else { throw DataError("\(url.path): NIfTI file names must end in .nii or .nii.gz") }
        let base = String(name.dropLast(ext.count))
        // The temporary name keeps the extension so nifticlib picks the same file type (and gzip).
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(base + ".tmp-\(ProcessInfo.processInfo.processIdentifier)" + ext)
        let d64 = dims.map { Int64($0) }
        let pd = pixdim.prefix(3).map { Float($0) }
        var err = [CChar](repeating: 0, count: 512)
        let count = dims.reduce(1, *)
        func go(_ dt: Int32, _ p: UnsafeRawPointer?, _ n: Int) -> Int32 {
            guard n == count else { return -2 }
            return cnifti_write(tmp.path, d64, dt, p, pd, qformCode, qform, sformCode, sform, sclSlope, sclInter,
                                &err, err.count)
        }
        let rc: Int32
        switch voxels {
        case .uint8(let a): rc = a.withUnsafeBytes { go(Int32(CNIFTI_TYPE_UINT8), $0.baseAddress, a.count) }
        case .int16(let a): rc = a.withUnsafeBytes { go(Int32(CNIFTI_TYPE_INT16), $0.baseAddress, a.count) }
        case .float32(let a): rc = a.withUnsafeBytes { go(Int32(CNIFTI_TYPE_FLOAT32), $0.baseAddress, a.count) }
        }
        if rc == -2 { throw DataError("\(url.path): voxel count does not match dims \(dims)") }
        if rc != 0 {
            try? FileManager.default.removeItem(at: tmp)
            throw DataError("\(url.path): \(String(cString: err))")
        }
        if rename(tmp.path, url.path) != 0 {
            let msg = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw DataError("\(url.path): cannot rename the temporary file into place (\(msg))")
        }
    }

    static func headerInfo(_ h: cnifti_header) -> NiftiHeaderInfo {
        var hh = h
        let nd = Int(max(0, min(7, h.ndim)))
        let dims: [Int] = withUnsafeBytes(of: &hh.dim) { Array($0.bindMemory(to: Int64.self).prefix(8)) }
            .dropFirst().prefix(nd).map { Int($0) }
        let pix: [Double] = withUnsafeBytes(of: &hh.pixdim) { Array($0.bindMemory(to: Float.self).prefix(8)) }
            .dropFirst().prefix(max(3, nd)).map { Double($0) }
        let q: [Double] = withUnsafeBytes(of: &hh.qform) { Array($0.bindMemory(to: Double.self).prefix(16)) }
        let s: [Double] = withUnsafeBytes(of: &hh.sform) { Array($0.bindMemory(to: Double.self).prefix(16)) }
        let name = cnifti_datatype_name(h.datatype).map { String(cString: $0) } ?? "unknown"
        return NiftiHeaderInfo(dims: dims, pixdim: pix, datatype: h.datatype, datatypeName: name,
                               bytesPerVoxel: Int(h.nbyper), sclSlope: Double(h.scl_slope),
                               sclInter: Double(h.scl_inter), qformCode: h.qform_code, sformCode: h.sform_code,
                               qform: q, sform: s, byteSwapped: h.swapped != 0)
    }
}

/// Reorientation to RAS: nearest-axis permutation and flips from the affine's direction cosines.
public enum Orientation {
    public struct Result: Equatable, Sendable {
        public var permutation: [Int]
        public var flips: [Bool]
        public var code: String
        /// The RAS-voxel → world matrix after permuting/flipping.
        public var affine: [Double]
    }

    /// Norms of the first three columns of a row-major 4×4 (voxel sizes along the voxel axes).
    public static func columnNorms(_ a: [Double]) -> [Double] {
        var n = [Double](repeating: 0, count: 3)
        for c in 0..<3 {
            var s = 0.0
            for r in 0..<3 { s += a[r * 4 + c] * a[r * 4 + c] }
            n[c] = s.squareRoot()
        }
        return n
    }

    public static func toRAS(affine a: [Double], dims: [Int], file: String = "") throws -> Result {
        guard a.count == 16, a.allSatisfy({ $0.isFinite }) else {
            throw DataError("\(file): the voxel-to-world matrix is not finite")
        }
        let norms = columnNorms(a)
        guard norms.allSatisfy({ $0 > 1e-12 }) else {
            throw DataError("\(file): the voxel-to-world matrix is singular (a zero column); cannot orient")
        }
        // cos[voxelAxis][worldAxis]: direction cosine of voxel axis along world axis.
        var cosines = [[Double]](repeating: [0, 0, 0], count: 3)
        for v in 0..<3 { for w in 0..<3 { cosines[v][w] = a[w * 4 + v] / norms[v] } }
        // Greedy: take the largest |cosine| among unassigned pairs, so each voxel axis gets a distinct world axis.
        var perm = [-1, -1, -1]
        var flips = [false, false, false]
        var usedV = Set<Int>(), usedW = Set<Int>()
        for _ in 0..<3 {
            var best = (-1.0, 0, 0)
            for v in 0..<3 where !usedV.contains(v) {
                for w in 0..<3 where !usedW.contains(w) && abs(cosines[v][w]) > best.0 {
                    best = (abs(cosines[v][w]), v, w)
                }
            }
            let (_, v, w) = best
            perm[w] = v
            flips[w] = cosines[v][w] < 0
            usedV.insert(v); usedW.insert(w)
        }
        var code = Array("???")
        for w in 0..<3 { code[perm[w]] = flips[w] ? Array("LPI")[w] : Array("RAS")[w] }
        // New voxel n maps to stored voxel o with o[perm[w]] = flips[w] ? dims-1-n[w] : n[w]; new = A·M.
        var m = [Double](repeating: 0, count: 16)
        m[15] = 1
        for w in 0..<3 {
            let o = perm[w]
            m[o * 4 + w] = flips[w] ? -1 : 1
            if flips[w] { m[o * 4 + 3] = Double(dims[o] - 1) }
        }
        var out = [Double](repeating: 0, count: 16)
        for r in 0..<4 {
            for c in 0..<4 {
                var s = 0.0
                for k in 0..<4 { s += a[r * 4 + k] * m[k * 4 + c] }
                out[r * 4 + c] = s
            }
        }
        return Result(permutation: perm, flips: flips, code: String(code), affine: out)
    }

    /// For each RAS voxel (x fastest) the offset of the stored voxel: base + Σ n_w·step_w.
    static func steps(_ g: NiftiGeometry) -> (base: Int, step: [Int]) {
        let d = g.storedDims
        let stride = [1, d[0], d[0] * d[1]]
        var base = 0
        var step = [0, 0, 0]
        for w in 0..<3 {
            let o = g.permutation[w]
            step[w] = g.flips[w] ? -stride[o] : stride[o]
            if g.flips[w] { base += (d[o] - 1) * stride[o] }
        }
        return (base, step)
    }

    public static func reorient<T>(_ stored: [T], geometry g: NiftiGeometry) -> [T] {
        let rd = g.rasDims
        let (base, step) = steps(g)
        var out = [T]()
        out.reserveCapacity(stored.count)
        for z in 0..<rd[2] {
            for y in 0..<rd[1] {
                var o = base + z * step[2] + y * step[1]
                for _ in 0..<rd[0] { out.append(stored[o]); o += step[0] }
            }
        }
        return out
    }

    public static func unreorient<T>(_ ras: [T], geometry g: NiftiGeometry) -> [T] {
        guard var out = ras.first.map({ [T](repeating: $0, count: ras.count) }) else { return [] }
        let rd = g.rasDims
        let (base, step) = steps(g)
        var i = 0
        for z in 0..<rd[2] {
            for y in 0..<rd[1] {
                var o = base + z * step[2] + y * step[1]
                for _ in 0..<rd[0] { out[o] = ras[i]; o += step[0]; i += 1 }
            }
        }
        return out
    }
}
