import CKernels
import Dispatch

/// InstanceNorm2d (affine, biased variance like PyTorch) fused with LeakyReLU:
/// a = lrelu(γ·(y − μ)/√(σ² + eps) + β) per (sample, channel) plane. Saves μ and 1/√(σ²+eps) per plane; backward
/// recomputes x̂ and the pre-activation from y, so only y (the norm input) has to be kept.
struct InstanceNormLeakyReLU {
    let channels: Int
    let gamma: Int
    let beta: Int
    let eps: Float
    let slope: Float

    /// The per-plane loops run as 16-lane AVX-512 kernels (CKernels ek_inorm_*) on CPUs that have it; the Swift
    /// loops below are the portable form of the same operations in the same order (bit-identical; a test checks).
    /// Compiled for baseline x86-64 they are 4-wide SSE: 3.5 % of a 64² step.
    nonisolated(unsafe) static var useKernel = ConvGEMM.kernelsAvailable

    /// stats holds 2·batch·channels floats: mean then rstd.
    /// `workers` > 1 splits the planes over threads (planes are independent).
    func forward(y: UnsafePointer<Float>, a: UnsafeMutablePointer<Float>, batch: Int, plane: Int,
                 params: UnsafePointer<Float>, stats: UnsafeMutablePointer<Float>, workers: Int = 1) {
        let nc = batch * channels
        let nw = max(1, min(workers, nc))
        if nw > 1 {
            DispatchQueue.concurrentPerform(iterations: nw) { wi in
                forwardPlanes(y: y, a: a, nc: nc, range: (wi * nc / nw)..<((wi + 1) * nc / nw), plane: plane, params: params, stats: stats)
            }
        } else {
            forwardPlanes(y: y, a: a, nc: nc, range: 0..<nc, plane: plane, params: params, stats: stats)
        }
    }

    private func forwardPlanes(y: UnsafePointer<Float>, a: UnsafeMutablePointer<Float>, nc: Int, range: Range<Int>, plane: Int,
                               params: UnsafePointer<Float>, stats: UnsafeMutablePointer<Float>) {
        for idx in range {
            let c = idx % channels
            let src = y + idx * plane, dst = a + idx * plane
            let mean = planeSum(src, plane) / Double(plane)
            let mf = Float(mean)
            let v = planeSqDev(src, plane, mf) / Double(plane)
            let rstd = Float(1.0 / (v + Double(eps)).squareRoot())
            stats[idx] = mf
            stats[nc + idx] = rstd
            let g = params[gamma + c] * rstd
            let b = params[beta + c] - mf * g
            let sl = slope
            if InstanceNormLeakyReLU.useKernel { ek_inorm_apply(plane, src, dst, g, b, sl); continue }
            for i in 0..<plane {
                let z = src[i] * g + b
                dst[i] = z > 0 ? z : z * sl
            }
        }
    }

    /// Overwrites y with dL/dy (y is not needed afterwards). dγ, dβ written. With `workers` > 1 each thread owns a
    /// subset of channels (over all samples), so the per-channel dγ/dβ sums never race.
    func backward(y: UnsafeMutablePointer<Float>, da: UnsafePointer<Float>, batch: Int, plane: Int,
                  params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>, stats: UnsafePointer<Float>, workers: Int = 1) {
        zeroFill(grads + gamma, channels)
        zeroFill(grads + beta, channels)
        let nw = max(1, min(workers, channels))
        if nw > 1 {
            DispatchQueue.concurrentPerform(iterations: nw) { wi in
                backwardChannels((wi * channels / nw)..<((wi + 1) * channels / nw), y: y, da: da, batch: batch, plane: plane,
                                 params: params, grads: grads, stats: stats)
            }
        } else {
            backwardChannels(0..<channels, y: y, da: da, batch: batch, plane: plane, params: params, grads: grads, stats: stats)
        }
    }

    private func backwardChannels(_ chans: Range<Int>, y: UnsafeMutablePointer<Float>, da: UnsafePointer<Float>, batch: Int,
                                  plane: Int, params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>,
                                  stats: UnsafePointer<Float>) {
        let nc = batch * channels
        let inv = 1.0 / Double(plane)
        for n in 0..<batch { for c in chans {
            let idx = n * channels + c
            let buf = y + idx * plane, d = da + idx * plane
            let mf = stats[idx], rstd = stats[nc + idx]
            let gam = params[gamma + c], bet = params[beta + c]
            let sl = slope
            // Pass 1: Σ dz and Σ dz·x̂, dz = da·lrelu'(z): 16 float lanes (element i in lane i % 16), the lanes then
            // added in order in Double, the tail in Double (the kernel's order).
            var sumDz = 0.0, sumDzX = 0.0
            if InstanceNormLeakyReLU.useKernel {
                ek_inorm_bwd_sums(plane, buf, d, mf, rstd, gam, bet, sl, &sumDz, &sumDzX)
            } else {
                var sdz = SIMD16<Float>(), sdzx = SIMD16<Float>()
                var i = 0
                while i + 16 <= plane {
                    let yv = UnsafeRawPointer(buf + i).loadUnaligned(as: SIMD16<Float>.self)
                    let dv = UnsafeRawPointer(d + i).loadUnaligned(as: SIMD16<Float>.self)
                    let xh = (yv - mf) * rstd
                    let z = xh * gam + bet
                    let dz = dv.replacing(with: dv * sl, where: .!(z .> 0))
                    sdz += dz
                    sdzx += dz * xh
                    i += 16
                }
                for l in 0..<16 { sumDz += Double(sdz[l]); sumDzX += Double(sdzx[l]) }
                while i < plane {
                    let xh = (buf[i] - mf) * rstd
                    let z = xh * gam + bet
                    let dz = z > 0 ? d[i] : d[i] * sl
                    sumDz += Double(dz); sumDzX += Double(dz * xh)
                    i += 1
                }
            }
            grads[gamma + c] += Float(sumDzX)
            grads[beta + c] += Float(sumDz)
            // Pass 2: dy = γ·rstd·(dz − mean(dz) − x̂·mean(dz·x̂)).
            let k = gam * rstd
            let mdz = Float(sumDz * inv), mdzx = Float(sumDzX * inv)
            if InstanceNormLeakyReLU.useKernel { ek_inorm_bwd_apply(plane, buf, d, mf, rstd, gam, bet, sl, k, mdz, mdzx); continue }
            for j in 0..<plane {
                let xh = (buf[j] - mf) * rstd
                let z = xh * gam + bet
                let dz = z > 0 ? d[j] : d[j] * sl
                buf[j] = k * (dz - mdz - xh * mdzx)
            }
        } }
    }
}

/// Σ x in Float SIMD lanes, combined in Double (planes up to 512² stay accurate).
@inline(__always)
func planeSum(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    var acc = SIMD16<Float>()
    var total = 0.0
    var i = 0
    while i + 16 <= n {
        acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        i += 16
        if i & 4095 == 0 { total += Double(acc.sum()); acc = SIMD16<Float>() }
    }
    total += Double(acc.sum())
    while i < n { total += Double(x[i]); i += 1 }
    return total
}

@inline(__always)
func planeSqDev(_ x: UnsafePointer<Float>, _ n: Int, _ mean: Float) -> Double {
    var acc = SIMD16<Float>()
    var total = 0.0
    var i = 0
    while i + 16 <= n {
        let d = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - mean
        acc += d * d
        i += 16
        if i & 4095 == 0 { total += Double(acc.sum()); acc = SIMD16<Float>() }
    }
    total += Double(acc.sum())
    while i < n { let d = x[i] - mean; total += Double(d * d); i += 1 }
    return total
}
