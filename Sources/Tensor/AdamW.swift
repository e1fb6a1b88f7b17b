import CKernels
import Foundation

/// AdamW with PyTorch's semantics (torch.optim.AdamW, amsgrad=False, maximize=False), over one flat parameter
/// buffer. Per element, at step t (1-based):
///   p ← p·(1 − lr·wd)                      (decoupled weight decay, applied before the moment update)
///   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
///   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)   (ε added after the square root of v̂)
public final class AdamW {
    public let count: Int
    public let beta1: Double
    public let beta2: Double
    public let eps: Double
    public let weightDecay: Double
    /// First and second moment estimates, one per parameter (checkpointed).
    public var m: [Float]
    public var v: [Float]
    /// Number of steps taken so far (checkpointed; the next step uses t + 1).
    public var t: Int

    public init(count: Int, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 1e-2) {
        precondition(count >= 0)
        self.count = count
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        m = [Float](repeating: 0, count: count)
        v = [Float](repeating: 0, count: count)
        t = 0
    }

    /// The AVX-512 loop (CKernels), bit-identical to the scalar one below; tests switch it off to compare.
    nonisolated(unsafe) static var useKernel = ConvGEMM.kernelsAvailable

    /// One optimiser step over `count` parameters.
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Double) {
        t += 1
        let decay = Float(1 - lr * weightDecay)
        let b1 = Float(beta1), b2 = Float(beta2)
        let a1 = Float(1 - beta1), a2 = Float(1 - beta2)
        let stepSize = Float(lr / (1 - Foundation.pow(beta1, Double(t))))
        let invBC2Sqrt = Float(1 / (1 - Foundation.pow(beta2, Double(t))).squareRoot())
        let e = Float(eps)
        let n = count
        m.withUnsafeMutableBufferPointer { mb in
        v.withUnsafeMutableBufferPointer { vb in
            let mp = mb.baseAddress!, vp = vb.baseAddress!
            if AdamW.useKernel {
                // Swift leaves the loop below scalar (it cannot rule out aliasing): it was ~9 % of a 64² step.
                ek_adamw(n, params, grads, mp, vp, b1, a1, b2, a2, decay, stepSize, invBC2Sqrt, e)
                return
            }
            for i in 0 ..< n {
                let g = grads[i]
                let mi = b1 * mp[i] + a1 * g
                let vi = b2 * vp[i] + a2 * g * g
                mp[i] = mi
                vp[i] = vi
                let denom = vi.squareRoot() * invBC2Sqrt + e
                params[i] = params[i] * decay - stepSize * mi / denom
            }
        }}
    }

    public func step(params: inout [Float], grads: [Float], lr: Double) {
        precondition(params.count == count && grads.count == count,
                     "AdamW.step: \(params.count) params / \(grads.count) grads for an optimiser of \(count)")
        params.withUnsafeMutableBufferPointer { p in
            grads.withUnsafeBufferPointer { g in step(params: p.baseAddress!, grads: g.baseAddress!, lr: lr) }
        }
    }
}
