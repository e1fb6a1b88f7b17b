/// 2×2 stride-2 transposed convolution with bias. Weight [cin, cout, 2, 2] (PyTorch layout) viewed as a
/// [cin, cout·4] matrix. The kernel tiles the output without overlap, so forward is one GEMM per group of samples,
/// T = Wᵀ·X ([cout·4, g·HW_in]), followed by a scatter y[co, 2i+a, 2j+b] = T[co·4 + 2a + b, i·w + j] + b[co].
/// Small input planes put several samples side by side in one GEMM (as Conv3x3's grouped path): per sample, the
/// deepest one at 64² is a 1920 × 4 × 480 product that re-read its 3.7 MB of weights for every sample.
struct ConvTranspose2x2 {
    let cin: Int
    let cout: Int
    let weight: Int
    let bias: Int

    /// Samples per GEMM at an input plane of `pin` pixels (Conv3x3's target width).
    func groupSize(batch: Int, pin: Int) -> Int { Conv3x3.groupSize(batch: batch, outPlane: pin) }

    /// Floats of `tmp` that forward and backward need: T (cout·4 rows) and, for groups, the gathered input or input
    /// gradient (cin rows), g·HW_in columns each.
    func tmpCount(batch: Int, h: Int, w: Int) -> Int {
        let pin = h * w, g = groupSize(batch: batch, pin: pin)
        return cout * 4 * g * pin + (g > 1 ? cin * g * pin : 0)
    }

    /// tmp needs tmpCount(batch:h:w:) floats (h, w = input size).
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, yBatchStride: Int, batch: Int, h: Int, w: Int,
                 params: UnsafePointer<Float>, tmp: UnsafeMutablePointer<Float>) {
        let pin = h * w, wo = 2 * w
        let m = cout * 4
        let g = groupSize(batch: batch, pin: pin)
        var n0 = 0
        while n0 < batch {
            let gn = min(g, batch - n0), ld = gn * pin
            var xg = x + n0 * cin * pin
            if gn > 1 {
                let buf = tmp + m * ld
                gatherSamples(xg, sampleStride: cin * pin, into: buf, channels: cin, samples: gn, plane: pin)
                xg = UnsafePointer(buf)
            }
            sgemm(transA: true, m: m, n: ld, k: cin, a: params + weight, lda: m, b: xg, ldb: ld, beta: 0, c: tmp, ldc: ld)
            for i in 0..<gn {
                let yn = y + (n0 + i) * yBatchStride
                for co in 0..<cout {
                    let b = params[bias + co]
                    let dst = yn + co * 4 * pin
                    for a in 0..<2 {
                        for bb in 0..<2 {
                            let src = tmp + (co * 4 + a * 2 + bb) * ld + i * pin
                            for r in 0..<h {
                                let s = src + r * w, d = dst + (2 * r + a) * wo + bb
                                for j in 0..<w { d[2 * j] = s[j] + b }
                            }
                        }
                    }
                }
            }
            n0 += gn
        }
    }

    /// dy has sample stride `dyBatchStride` (it may be the first channels of a concat gradient). dW, db written.
    func backward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dyBatchStride: Int, dx: UnsafeMutablePointer<Float>?,
                  batch: Int, h: Int, w: Int, params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>,
                  tmp: UnsafeMutablePointer<Float>) {
        let pin = h * w, wo = 2 * w
        let m = cout * 4
        let db = grads + bias
        zeroFill(db, cout)
        let g = groupSize(batch: batch, pin: pin)
        var n0 = 0
        while n0 < batch {
            let gn = min(g, batch - n0), ld = gn * pin
            // dT [m, g·pin]: the output gradient gathered back to the GEMM's layout; db from the same pass.
            for i in 0..<gn {
                let dyn = dy + (n0 + i) * dyBatchStride
                for co in 0..<cout {
                    let src = dyn + co * 4 * pin
                    db[co] += Float(planeSum(src, 4 * pin))  // SIMD, fixed order (a serial sum was ~0.5% of a 64² step)
                    for a in 0..<2 {
                        for bb in 0..<2 {
                            let dst = tmp + (co * 4 + a * 2 + bb) * ld + i * pin
                            for r in 0..<h {
                                let sr = src + (2 * r + a) * wo + bb, d = dst + r * w
                                for j in 0..<w { d[j] = sr[2 * j] }
                            }
                        }
                    }
                }
            }
            var xg = x + n0 * cin * pin
            let buf = tmp + m * ld
            if gn > 1 {
                gatherSamples(xg, sampleStride: cin * pin, into: buf, channels: cin, samples: gn, plane: pin)
                xg = UnsafePointer(buf)
            }
            // dW [cin, m] += X [cin, g·pin] · dTᵀ;  dX [cin, g·pin] = W [cin, m] · dT [m, g·pin].
            sgemm(transB: true, m: cin, n: m, k: ld, a: xg, lda: ld, b: tmp, ldb: ld,
                  beta: n0 == 0 ? 0 : 1, c: grads + weight, ldc: m)
            if let dx = dx {
                let dxn = dx + n0 * cin * pin
                if gn == 1 {
                    sgemm(m: cin, n: pin, k: m, a: params + weight, lda: m, b: tmp, ldb: pin, beta: 0, c: dxn, ldc: pin)
                } else {
                    sgemm(m: cin, n: ld, k: m, a: params + weight, lda: m, b: tmp, ldb: ld, beta: 0, c: buf, ldc: ld)
                    scatterSamples(buf, into: dxn, sampleStride: cin * pin, channels: cin, samples: gn, plane: pin)
                }
            }
            n0 += gn
        }
    }
}
