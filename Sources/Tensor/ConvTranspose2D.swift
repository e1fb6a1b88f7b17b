/// 2×2 stride-2 transposed convolution with bias. Weight [cin, cout, 2, 2] (PyTorch layout) viewed as a
/// [cin, cout·4] matrix. The kernel tiles the output without overlap, so forward is one GEMM per sample,
/// T = Wᵀ·X_n ([cout·4, HW_in]), followed by a scatter y[co, 2i+a, 2j+b] = T[co·4 + 2a + b, i·w + j] + b[co].
struct ConvTranspose2x2 {
    let cin: Int
    let cout: Int
    let weight: Int
    let bias: Int

    /// tmp needs cout·4·h·w floats (h, w = input size).
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, yBatchStride: Int, batch: Int, h: Int, w: Int,
                 params: UnsafePointer<Float>, tmp: UnsafeMutablePointer<Float>) {
        let pin = h * w, wo = 2 * w
        let m = cout * 4
        for n in 0..<batch {
            sgemm(transA: true, m: m, n: pin, k: cin, a: params + weight, lda: m, b: x + n * cin * pin, ldb: pin, beta: 0, c: tmp, ldc: pin)
            let yn = y + n * yBatchStride
            for co in 0..<cout {
                let b = params[bias + co]
                let dst = yn + co * 4 * pin
                for a in 0..<2 {
                    for bb in 0..<2 {
                        let src = tmp + (co * 4 + a * 2 + bb) * pin
                        for i in 0..<h {
                            let s = src + i * w, d = dst + (2 * i + a) * wo + bb
                            for j in 0..<w { d[2 * j] = s[j] + b }
                        }
                    }
                }
            }
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
        for n in 0..<batch {
            let dyn = dy + n * dyBatchStride
            for co in 0..<cout {
                let src = dyn + co * 4 * pin
                var s: Float = 0
                for p in 0..<(4 * pin) { s += src[p] }
                db[co] += s
                for a in 0..<2 {
                    for bb in 0..<2 {
                        let dst = tmp + (co * 4 + a * 2 + bb) * pin
                        for i in 0..<h {
                            let sr = src + (2 * i + a) * wo + bb, d = dst + i * w
                            for j in 0..<w { d[j] = sr[2 * j] }
                        }
                    }
                }
            }
            // dW [cin, m] += X_n [cin, pin] · dTᵀ;  dX_n [cin, pin] = W [cin, m] · dT [m, pin].
            sgemm(transB: true, m: cin, n: m, k: pin, a: x + n * cin * pin, lda: pin, b: tmp, ldb: pin,
                  beta: n == 0 ? 0 : 1, c: grads + weight, ldc: m)
            if let dx = dx {
                sgemm(m: cin, n: pin, k: m, a: params + weight, lda: m, b: tmp, ldb: pin, beta: 0, c: dx + n * cin * pin, ldc: pin)
            }
        }
    }
}
