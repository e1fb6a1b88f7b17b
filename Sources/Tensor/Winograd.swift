import CKernels
import Foundation

/// Winograd F(2×2, 3×3) for the grouped small-plane convs (stride 1, even planes): each 4×4 input tile and each
/// filter are transformed once, and the convolution becomes 16 GEMMs with inner dimension cin (or cout) over the
/// tiles: 2.25× fewer multiply-adds than im2col's cin·9. Forward, weight and input gradient all run in the
/// transformed domain (the backward is the exact adjoint of the forward). The transforms are C (ek_winograd.c,
/// AVX-512 where the CPU has it); the GEMMs are convGEMM's (our kernels where they win, else OpenBLAS; OpenBLAS only
/// under EPISODIC_GEMM=blas).
enum Winograd {
    /// Benchmark knob and test switch: EPISODIC_WINOGRAD=0 keeps every layer on im2col + GEMM.
    nonisolated(unsafe) static var enabled = getenv("EPISODIC_WINOGRAD").map { String(cString: $0) != "0" } ?? true

    /// Fewest tiles per GEMM (samples per group × plane / 4) for the transformed path. Its filter transform and the
    /// transformed weights (16/9 the size, read and written again in backward) cost memory traffic in proportion to
    /// cout·cin, which only enough tiles amortise. 32 takes in the 4² planes at batch 8 (the 480-channel level of the
    /// 64² network: its steps faster in 5 of 6 rounds run side by side, once their input gradient stopped transposing U);
    /// 2² planes (8 tiles) lose. Benchmark knob: EPISODIC_WINOGRAD_MIN_TILES.
    nonisolated(unsafe) static var minTiles = Conv3x3.envInt("EPISODIC_WINOGRAD_MIN_TILES") ?? 32

    /// Planes up to this width move from the implicit path to the Winograd one as well. Benchmark knob:
    /// EPISODIC_WINOGRAD_IMPLICIT_WIDTH.
    nonisolated(unsafe) static var maxImplicitWidth = Conv3x3.envInt("EPISODIC_WINOGRAD_IMPLICIT_WIDTH") ?? 16

    /// Layer passes (forward or backward) that ran in the Winograd domain: tests check theirs did.
    nonisolated(unsafe) static var passes = 0

    /// What a workspace was sized for (a workspace sized under other settings is not reused).
    static var fingerprint: Int { enabled ? minTiles &* 4096 &+ maxImplicitWidth : 0 }
}

extension Conv3x3 {
    /// The layer runs in the Winograd domain at this shape: stride 1, the grouped path (several samples per GEMM),
    /// even planes from 4×4, and at least Winograd.minTiles tiles per group.
    func winogradApplies(batch: Int, h: Int, w: Int) -> Bool {
        guard Winograd.enabled, stride == 1, cin > 1, h >= 4, w >= 4, h % 2 == 0, w % 2 == 0 else { return false }
        let g = winogradGroup(batch: batch, h: h, w: w)
        let grouped = samplesPerGEMM(batch: batch, outH: h, outW: w) > 1 || w <= Winograd.maxImplicitWidth
        return grouped && g > 1 && g * (h / 2) * (w / 2) >= Winograd.minTiles
    }

    /// Samples per group of the Winograd path: the grouped path's count.
    func winogradGroup(batch: Int, h: Int, w: Int) -> Int { Conv3x3.groupSize(batch: batch, outPlane: h * w) }

    /// Stride (floats) between the 16 matrices of a transformed operand of `rows`×`cols`: 16 floats over the
    /// matrix, so the transforms' 16 output streams do not share cache sets (a power-of-two matrix size made them
    /// collide) and every matrix stays 64-byte aligned.
    static func winogradStride(rows: Int, cols: Int) -> Int { rows * cols + 16 }

    /// Floats of the transformed filter U_t [cout][cin], t = 0..<16.
    var winogradFilterCount: Int { 16 * Conv3x3.winogradStride(rows: cout, cols: cin) }

    /// Floats of one group's transformed input V_t [cin][tiles].
    func winogradInputCount(tiles: Int) -> Int { 16 * Conv3x3.winogradStride(rows: cin, cols: tiles) }

    /// What a training forward keeps for backward: U, then each group's V (full groups of g samples, then the rest).
    func winogradSavedCount(batch: Int, h: Int, w: Int) -> Int {
        let g = winogradGroup(batch: batch, h: h, w: w), q = h * w / 4
        return winogradFilterCount + (batch / g) * winogradInputCount(tiles: g * q)
            + (batch % g > 0 ? winogradInputCount(tiles: (batch % g) * q) : 0)
    }

    /// Shared scratch (col/dcol count, tmp count) for one group: V in col, M and dM in dcol, dV in tmp.
    func winogradScratch(batch: Int, h: Int, w: Int) -> (Int, Int) {
        let g = winogradGroup(batch: batch, h: h, w: w), tiles = g * h * w / 4
        let vCount = winogradInputCount(tiles: tiles), mCount = 16 * Conv3x3.winogradStride(rows: cout, cols: tiles)
        return (max(k * g * h * w, vCount, mCount), max(cout * g * h * w, vCount))
    }

    /// Worker wi's share of 0..<n when n is split in nw contiguous parts.
    static func part(_ n: Int, _ nw: Int, _ wi: Int) -> Range<Int> { (n * wi / nw)..<(n * (wi + 1) / nw) }

    /// U_t = G·g·Gᵀ of this layer's weights into `u` (stride `su`), output channels split over the workers.
    private func transformFilter(_ wp: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>, su: Int, workers nw: Int) {
        parallelWorkers(nw) { wi in
            let o = Conv3x3.part(cout, nw, wi)
            if !o.isEmpty { ek_wino_filter(Int32(o.count), Int32(cin), wp + o.lowerBound * cin * 9, u + o.lowerBound * cin, su) }
        }
    }

    /// V_t = Bᵀ·d·B of a group of gn samples (xg, planes h × w) into `v` (stride `sv`), channels split over the workers.
    private func transformInput(_ xg: UnsafePointer<Float>, samples gn: Int, h: Int, w: Int, into v: UnsafeMutablePointer<Float>,
                                tiles: Int, sv: Int, workers nw: Int) {
        parallelWorkers(nw) { wi in
            let c = Conv3x3.part(cin, nw, wi)
            if !c.isEmpty {
                ek_wino_input(Int32(gn), Int32(c.count), Int32(h), Int32(w), xg + c.lowerBound * h * w, cin * h * w,
                              v + c.lowerBound * tiles, tiles, sv)
            }
        }
    }

    /// With several workers (a rank with several BLAS threads) every stage splits: the transforms by channel, the
    /// 16 GEMMs by t. Each value is computed by one worker in the same order whatever their number.
    func forwardWinograd(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, h: Int, w: Int,
                         params: UnsafePointer<Float>, scratch: ConvScratch, saveColumns: UnsafeMutablePointer<Float>?,
                         addBias: Bool) {
        let plane = h * w, g = winogradGroup(batch: batch, h: h, w: w), uCount = winogradFilterCount
        let su = Conv3x3.winogradStride(rows: cout, cols: cin), nw = scratch.workers
        let u = saveColumns ?? scratch.flippedWeights(count: 2 * uCount)
        let wp = params + weight, bp: UnsafePointer<Float>? = addBias ? params + bias : nil
        Winograd.passes += 1
        let tF = Profiler.start()
        transformFilter(wp, into: u, su: su, workers: nw)
        Profiler.stop(tF, "  conv winograd filter")
        var n0 = 0, vOffset = uCount
        while n0 < batch {
            let gn = min(g, batch - n0), tiles = gn * plane / 4
            let sv = Conv3x3.winogradStride(rows: cin, cols: tiles), sm = Conv3x3.winogradStride(rows: cout, cols: tiles)
            let v = saveColumns.map { $0 + vOffset } ?? scratch.col.pointer
            let m = scratch.dcol.pointer
            let xg = x + n0 * cin * plane, yg = y + n0 * cout * plane
            let tI = Profiler.start()
            transformInput(xg, samples: gn, h: h, w: w, into: v, tiles: tiles, sv: sv, workers: nw)
            Profiler.stop(tI, "  conv winograd input")
            let tG = Profiler.start()
            parallelWorkers(nw) { wi in
                for t in Conv3x3.part(16, nw, wi) {
                    convGEMM(m: cout, n: tiles, k: cin, a: u + t * su, lda: cin, b: v + t * sv, ldb: tiles, beta: 0,
                             c: m + t * sm, ldc: tiles)
                }
            }
            Profiler.stop(tG, "  conv winograd gemm fwd")
            let tO = Profiler.start()
            parallelWorkers(nw) { wi in
                let o = Conv3x3.part(cout, nw, wi)
                if !o.isEmpty {
                    ek_wino_output(Int32(gn), Int32(o.count), Int32(h), Int32(w), m + o.lowerBound * tiles, tiles, sm,
                                   bp.map { $0 + o.lowerBound }, yg + o.lowerBound * plane, cout * plane)
                }
            }
            Profiler.stop(tO, "  conv winograd output")
            n0 += gn
            vOffset += winogradInputCount(tiles: tiles)
        }
    }

    /// dW and db written; dx written, or added to when `accumulate`; `saved` is the training forward's U and V.
    func backwardWinograd(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                          accumulate: Bool, batch: Int, h: Int, w: Int, params: UnsafePointer<Float>,
                          grads: UnsafeMutablePointer<Float>, scratch: ConvScratch, biasGradient: Bool,
                          saved: UnsafePointer<Float>?) {
        let plane = h * w, g = winogradGroup(batch: batch, h: h, w: w), uCount = winogradFilterCount
        let su = Conv3x3.winogradStride(rows: cout, cols: cin), nw = scratch.workers
        let db = grads + bias, wp = params + weight
        zeroFill(db, cout)
        Winograd.passes += 1
        // U (unless saved), dU, and per worker one U_tᵀ at a time for the input gradient's GEMM.
        let buf = scratch.flippedWeights(count: (saved == nil ? 2 : 1) * uCount + nw * cin * cout)
        let u: UnsafePointer<Float>, du: UnsafeMutablePointer<Float>
        if let saved = saved {
            u = saved
            du = buf
        } else {
            transformFilter(wp, into: buf, su: su, workers: nw)
            u = UnsafePointer(buf)
            du = buf + uCount
        }
        let ut = du + uCount
        // Our NT kernel beats OpenBLAS here up to Cout 128 (123 vs 102 GFLOP/s at 128×128, 512 tiles); above, OpenBLAS.
        let ntKernel = ConvGEMM.useKernels && cout <= 128
        var n0 = 0, vOffset = uCount
        while n0 < batch {
            let gn = min(g, batch - n0), tiles = gn * plane / 4
            let sv = Conv3x3.winogradStride(rows: cin, cols: tiles), sm = Conv3x3.winogradStride(rows: cout, cols: tiles)
            let xg = x + n0 * cin * plane, dyg = dy + n0 * cout * plane
            let v: UnsafePointer<Float>
            if let saved = saved {
                v = saved + vOffset
            } else {
                let col = scratch.col.pointer
                transformInput(xg, samples: gn, h: h, w: w, into: col, tiles: tiles, sv: sv, workers: nw)
                v = UnsafePointer(col)
            }
            let dm = scratch.dcol.pointer
            let tO = Profiler.start()
            parallelWorkers(nw) { wi in
                let o = Conv3x3.part(cout, nw, wi)
                if !o.isEmpty {
                    ek_wino_output_adjoint(Int32(gn), Int32(o.count), Int32(h), Int32(w), dyg + o.lowerBound * plane,
                                           cout * plane, dm + o.lowerBound * tiles, tiles, sm)
                }
            }
            Profiler.stop(tO, "  conv winograd output adjoint")
            if biasGradient {
                for i in 0..<gn { addChannelSums(db, dyg + i * cout * plane, channels: cout, plane: plane) }
            }
            let tW = Profiler.start()
            parallelWorkers(nw) { wi in
                for t in Conv3x3.part(16, nw, wi) {
                    let (a, b, c) = (dm + t * sm, v + t * sv, du + t * su)
                    if ntKernel {
                        ConvGEMM.kernel(transB: true, m: cout, n: cin, k: tiles, a: a, lda: tiles, b: b, ldb: tiles,
                                        beta: n0 == 0 ? 0 : 1, c: c, ldc: cin)
                    } else {
                        convGEMM(transB: true, m: cout, n: cin, k: tiles, a: a, lda: tiles, b: b, ldb: tiles,
                                 beta: n0 == 0 ? 0 : 1, c: c, ldc: cin)
                    }
                }
            }
            Profiler.stop(tW, "  conv winograd gemm dU")
            if let dx = dx {
                let dv = scratch.tmp.pointer, dxg = dx + n0 * cin * plane
                let tX = Profiler.start()
                // Few tiles against wide weights (the 4² planes): transpose dM_t and the result instead of U_t,
                // dV_tᵀ = dM_tᵀ·U_t, moving (cout + cin)·tiles floats instead of cout·cin.
                let transposeActivations = (cout + cin) * tiles < cout * cin
                parallelWorkers(nw) { wi in
                    let utw = ut + wi * cin * cout
                    for t in Conv3x3.part(16, nw, wi) {
                        if ConvGEMM.useKernels && transposeActivations {
                            let dvT = utw + tiles * cout
                            ek_transpose(Int32(cout), Int32(tiles), dm + t * sm, Int32(tiles), utw, Int32(cout))
                            convGEMM(m: tiles, n: cin, k: cout, a: utw, lda: cout, b: u + t * su, ldb: cin, beta: 0,
                                     c: dvT, ldc: cin)
                            ek_transpose(Int32(tiles), Int32(cin), dvT, Int32(cin), dv + t * sv, Int32(tiles))
                        } else if ConvGEMM.useKernels {
                            // U_tᵀ, then the NN product: 150–160 GFLOP/s against OpenBLAS's 116 for Uᵀ·dM in place
                            // (256×256, 128 tiles; the transpose is a seventh of the product's time).
                            ek_transpose(Int32(cout), Int32(cin), u + t * su, Int32(cin), utw, Int32(cout))
                            convGEMM(m: cin, n: tiles, k: cout, a: utw, lda: cout, b: dm + t * sm, ldb: tiles, beta: 0,
                                     c: dv + t * sv, ldc: tiles)
                        } else {
                            sgemm(transA: true, m: cin, n: tiles, k: cout, a: u + t * su, lda: cin, b: dm + t * sm,
                                  ldb: tiles, beta: 0, c: dv + t * sv, ldc: tiles)
                        }
                    }
                }
                Profiler.stop(tX, "  conv winograd gemm dV")
                let tI = Profiler.start()
                parallelWorkers(nw) { wi in
                    let c = Conv3x3.part(cin, nw, wi)
                    if !c.isEmpty {
                        ek_wino_input_adjoint(Int32(gn), Int32(c.count), Int32(h), Int32(w), dv + c.lowerBound * tiles, tiles,
                                              sv, dxg + c.lowerBound * plane, cin * plane, accumulate ? 1 : 0)
                    }
                }
                Profiler.stop(tI, "  conv winograd input adjoint")
            }
            n0 += gn
            vOffset += winogradInputCount(tiles: tiles)
        }
        let tF = Profiler.start()
        parallelWorkers(nw) { wi in
            let o = Conv3x3.part(cout, nw, wi)
            if !o.isEmpty {
                ek_wino_filter_adjoint(Int32(o.count), Int32(cin), du + o.lowerBound * cin, su, grads + weight + o.lowerBound * cin * 9)
            }
        }
        Profiler.stop(tF, "  conv winograd filter adjoint")
    }
}
