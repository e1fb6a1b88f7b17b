import Foundation

/// Exact Euclidean distance transform (Felzenszwalb & Huttenlocher 2012, "Distance Transforms of Sampled
/// Functions"): the squared distance is separable, so three 1D lower-envelope-of-parabolas passes (x, y, z) give the
/// exact result in O(voxels), with the voxel spacing entering each pass as the parabola's width.
public enum EuclideanDistance {
    /// Squared distance (in spacing units², e.g. mm²) from every voxel to the nearest voxel with `features[i] == true`;
    /// +inf everywhere if there is no feature voxel. Layout x fastest: i = x + nx·(y + ny·z).
    /// Equals `scipy.ndimage.distance_transform_edt(~features, sampling=spacing)²`.
    public static func squaredTransform(features: [Bool], dims: (Int, Int, Int), spacing: (Double, Double, Double)) -> [Double] {
        let (nx, ny, nz) = dims
        precondition(features.count == nx * ny * nz, "EuclideanDistance: \(features.count) voxels for dims \(dims)")
        var g = features.map { $0 ? 0.0 : Double.infinity }
        if g.isEmpty { return g }
        let longest = max(nx, ny, nz)
        var line = [Double](repeating: 0, count: longest)
        var out = [Double](repeating: 0, count: longest)
        var v = [Int](repeating: 0, count: longest)
        var z = [Double](repeating: 0, count: longest + 1)
        // Unsafe buffers: the passes are the hot loop of scoring, and array exclusivity/bounds checks dominate otherwise.
        g.withUnsafeMutableBufferPointer { gp in
            line.withUnsafeMutableBufferPointer { lp in
                out.withUnsafeMutableBufferPointer { op in
                    v.withUnsafeMutableBufferPointer { vp in
                        z.withUnsafeMutableBufferPointer { zp in
                            // One pass along an axis of length n with the given stride, for every line start.
                            func pass(n: Int, stride: Int, w: Double, lines: Int, start: (Int) -> Int) {
                                for l in 0..<lines {
                                    let s = start(l)
                                    var any = false
                                    for i in 0..<n { let x = gp[s + i * stride]; lp[i] = x; any = any || x.isFinite }
                                    guard any else { continue }   // all +inf stays +inf
                                    transform1D(lp, n: n, w2: w * w, out: op, v: vp, z: zp)
                                    for i in 0..<n { gp[s + i * stride] = op[i] }
                                }
                            }
                            pass(n: nx, stride: 1, w: spacing.0, lines: ny * nz) { $0 * nx }
                            pass(n: ny, stride: nx, w: spacing.1, lines: nx * nz) { l in (l % nx) + nx * ny * (l / nx) }
                            pass(n: nz, stride: nx * ny, w: spacing.2, lines: nx * ny) { $0 }
                        }
                    }
                }
            }
        }
        return g
    }

    /// Distances (not squared); see `squaredTransform`.
    public static func transform(features: [Bool], dims: (Int, Int, Int), spacing: (Double, Double, Double)) -> [Double] {
        squaredTransform(features: features, dims: dims, spacing: spacing).map { $0.squareRoot() }
    }

    /// out[q] = min_p (w2·(q−p)² + f[p]) over finite f[p]; +inf if none is finite.
    static func transform1D(_ f: UnsafeMutableBufferPointer<Double>, n: Int, w2: Double, out: UnsafeMutableBufferPointer<Double>,
                            v: UnsafeMutableBufferPointer<Int>, z: UnsafeMutableBufferPointer<Double>) {
        var k = -1
        for q in 0..<n where f[q].isFinite {
            let fq = f[q] + w2 * Double(q * q)
            if k < 0 {
                k = 0; v[0] = q; z[0] = -.infinity; z[1] = .infinity
                continue
            }
            var s: Double
            while true {
                let p = v[k]
                // Abscissa where the parabola from q overtakes the one from p.
                s = (fq - (f[p] + w2 * Double(p * p))) / (2 * w2 * Double(q - p))
                if s <= z[k] && k > 0 { k -= 1 } else { break }
            }
            if s <= z[k] {
                // k == 0 and q's parabola dominates from −inf: it replaces v[0].
                v[0] = q; z[0] = -.infinity; z[1] = .infinity
                continue
            }
            k += 1; v[k] = q; z[k] = s; z[k + 1] = .infinity
        }
        guard k >= 0 else {
            for q in 0..<n { out[q] = .infinity }
            return
        }
        var j = 0
        for q in 0..<n {
            while z[j + 1] < Double(q) { j += 1 }
            let d = Double(q - v[j])
            out[q] = w2 * d * d + f[v[j]]
        }
    }
}
