import Foundation

public struct MetricsError: Error, LocalizedError, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// How the two directed surface-distance sets become one HD95.
public enum HD95Convention: String, Codable, Sendable, CaseIterable {
    /// medpy `hd95` (default): the 95th percentile of the pooled distances A→B and B→A.
    case pooled
    /// MONAI `compute_hausdorff_distance(percentile=95)`: max of the two directed 95th percentiles.
    case maxOfDirected
}

/// Dice of class `c`: 2|P∩R| / (|P|+|R|); nil when both masks are empty. Voxels whose reference label is
/// `ignoreLabel` are left out of both masks (nnU-Net's ignore convention). Exactly one empty gives 0.
public func dice(pred: UnsafePointer<UInt8>, ref: UnsafePointer<UInt8>, count: Int, class c: UInt8,
                 ignoreLabel: UInt8? = nil) -> Double? {
    var inter = 0, p = 0, r = 0
    for i in 0..<count {
        let rv = ref[i]
        if let ig = ignoreLabel, rv == ig { continue }
        let inP = pred[i] == c, inR = rv == c
        if inP { p += 1 }
        if inR { r += 1 }
        if inP && inR { inter += 1 }
    }
    if p + r == 0 { return nil }
    return 2 * Double(inter) / Double(p + r)
}

public func dice(pred: [UInt8], ref: [UInt8], class c: UInt8, ignoreLabel: UInt8? = nil) -> Double? {
    precondition(pred.count == ref.count, "dice: pred has \(pred.count) voxels, ref \(ref.count)")
    return pred.withUnsafeBufferPointer { pp in
        ref.withUnsafeBufferPointer { rp -> Double? in
            guard let pb = pp.baseAddress, let rb = rp.baseAddress else { return nil }
            return dice(pred: pb, ref: rb, count: pred.count, class: c, ignoreLabel: ignoreLabel)
        }
    }
}

/// Surface voxels of a binary mask: voxels of the mask with a 6-neighbour outside the mask or lying on the
/// volume border (as medpy: mask XOR its erosion by the 6-connected cross, border treated as outside).
public func surface(of mask: [Bool], dims: (Int, Int, Int)) -> [Bool] {
    let (nx, ny, nz) = dims
    precondition(mask.count == nx * ny * nz, "surface: \(mask.count) voxels for dims \(dims)")
    var out = [Bool](repeating: false, count: mask.count)
    let sy = nx, sz = nx * ny
    for z in 0..<nz {
        for y in 0..<ny {
            for x in 0..<nx {
                let i = x + sy * y + sz * z
                guard mask[i] else { continue }
                if x == 0 || y == 0 || z == 0 || x == nx - 1 || y == ny - 1 || z == nz - 1 { out[i] = true; continue }
                out[i] = !(mask[i - 1] && mask[i + 1] && mask[i - sy] && mask[i + sy] && mask[i - sz] && mask[i + sz])
            }
        }
    }
    return out
}

/// Distances from every surface voxel of `a` to the nearest surface voxel of `b` (spacing units, order of the
/// surface voxels of `a` in memory). Empty if `a` is empty; all +inf if `b` is empty.
public func directedSurfaceDistances(from a: [Bool], to b: [Bool], dims: (Int, Int, Int),
                                     spacing: (Double, Double, Double)) -> [Double] {
    let sa = surface(of: a, dims: dims), sb = surface(of: b, dims: dims)
    let d2 = EuclideanDistance.squaredTransform(features: sb, dims: dims, spacing: spacing)
    var out: [Double] = []
    for i in 0..<sa.count where sa[i] { out.append(d2[i].squareRoot()) }
    return out
}

/// numpy.percentile with the default linear interpolation: h = (n−1)·q/100 between the neighbouring order statistics.
public func percentile(sorted values: [Double], _ q: Double) -> Double {
    guard let first = values.first else { return .nan }
    if values.count == 1 { return first }
    let h = Double(values.count - 1) * q / 100
    let lo = Int(h.rounded(.down))
    let hi = min(lo + 1, values.count - 1)
    return values[lo] + (h - Double(lo)) * (values[hi] - values[lo])
}

/// Symmetric 95th-percentile Hausdorff distance between binary masks, in spacing units (mm): surface distances
/// A→B and B→A from an exact EDT with anisotropic spacing, combined by `convention` (default medpy's pooled
/// percentile). NaN when both masks are empty, +inf when exactly one is. Layout x fastest.
public func hd95(maskA a: [Bool], maskB b: [Bool], dims: (Int, Int, Int), spacing: (Double, Double, Double),
                 convention: HD95Convention = .pooled) -> Double {
    precondition(a.count == b.count, "hd95: masks have \(a.count) and \(b.count) voxels")
    let (nx, ny, nz) = dims
    precondition(a.count == nx * ny * nz, "hd95: \(a.count) voxels for dims \(dims)")
    // Bounding box of A ∪ B: every surface voxel lies in it, so an EDT restricted to it is exact there. Surfaces are
    // found on the full volume first, because the volume border (not the box border) counts as outside.
    var lo = (nx, ny, nz), hi = (-1, -1, -1)
    var anyA = false, anyB = false
    for z in 0..<nz {
        for y in 0..<ny {
            let row = nx * (y + ny * z)
            for x in 0..<nx {
                let inA = a[row + x], inB = b[row + x]
                guard inA || inB else { continue }
                anyA = anyA || inA
                anyB = anyB || inB
                lo = (min(lo.0, x), min(lo.1, y), min(lo.2, z))
                hi = (max(hi.0, x), max(hi.1, y), max(hi.2, z))
            }
        }
    }
    if !anyA && !anyB { return .nan }
    if anyA != anyB { return .infinity }
    let cd = (hi.0 - lo.0 + 1, hi.1 - lo.1 + 1, hi.2 - lo.2 + 1)
    var ca = [Bool](repeating: false, count: cd.0 * cd.1 * cd.2)
    var cb = ca
    let sy = nx, sz = nx * ny
    // Surface test against the full volume: a voxel on the volume border is surface, the box border is not special.
    @inline(__always) func isSurface(_ m: [Bool], _ i: Int, _ x: Int, _ y: Int, _ z: Int) -> Bool {
        if x == 0 || y == 0 || z == 0 || x == nx - 1 || y == ny - 1 || z == nz - 1 { return true }
        return !(m[i - 1] && m[i + 1] && m[i - sy] && m[i + sy] && m[i - sz] && m[i + sz])
    }
    for z in 0..<cd.2 {
        for y in 0..<cd.1 {
            let src = lo.0 + nx * ((y + lo.1) + ny * (z + lo.2))
            let dst = cd.0 * (y + cd.1 * z)
            for x in 0..<cd.0 {
                let i = src + x
                if a[i] { ca[dst + x] = isSurface(a, i, x + lo.0, y + lo.1, z + lo.2) }
                if b[i] { cb[dst + x] = isSurface(b, i, x + lo.0, y + lo.1, z + lo.2) }
            }
        }
    }
    let dtA = EuclideanDistance.squaredTransform(features: ca, dims: cd, spacing: spacing)
    let dtB = EuclideanDistance.squaredTransform(features: cb, dims: cd, spacing: spacing)
    var ab: [Double] = [], ba: [Double] = []
    for i in 0..<ca.count {
        if ca[i] { ab.append(dtB[i].squareRoot()) }
        if cb[i] { ba.append(dtA[i].squareRoot()) }
    }
    switch convention {
    case .pooled:
        return percentile(sorted: (ab + ba).sorted(), 95)
    case .maxOfDirected:
        return max(percentile(sorted: ab.sorted(), 95), percentile(sorted: ba.sorted(), 95))
    }
}

/// HD95 of class `c` between label maps (x fastest). Voxels whose reference is `ignoreLabel` are left out of the
/// prediction mask (they are never in the reference mask).
public func hd95(pred: [UInt8], ref: [UInt8], dims: (Int, Int, Int), spacing: (Double, Double, Double), class c: UInt8,
                 ignoreLabel: UInt8? = nil, convention: HD95Convention = .pooled) -> Double {
    precondition(pred.count == ref.count, "hd95: pred has \(pred.count) voxels, ref \(ref.count)")
    var a = [Bool](repeating: false, count: pred.count), b = a
    for i in 0..<pred.count {
        if let ig = ignoreLabel, ref[i] == ig { continue }
        a[i] = pred[i] == c
        b[i] = ref[i] == c
    }
    return hd95(maskA: a, maskB: b, dims: dims, spacing: spacing, convention: convention)
}
