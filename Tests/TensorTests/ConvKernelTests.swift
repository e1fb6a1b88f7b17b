import CKernels
import XCTest
@testable import Tensor

/// The AVX-512 conv kernels (CKernels): element-wise against a double-precision reference, bit-reproducible, and a
/// whole Conv3x3 forward/backward agrees with the OpenBLAS-only path.
final class ConvKernelTests: XCTestCase {
    override func setUpWithError() throws {
        guard ConvGEMM.kernelsAvailable else { throw XCTSkip("this CPU has no AVX-512: the kernels are never used here") }
    }

    override func tearDown() {
        ConvGEMM.useKernels = ConvGEMM.kernelsAvailable && ConvGEMM.environmentAllows()
        Conv3x3.tileThreshold = 512 * 1024
        Conv3x3.tileFloats = 256 * 1024
        Conv3x3.groupColumns = 2048
        Im2col.useKernel = ConvGEMM.kernelsAvailable
        Im2col.useImplicit = true
        ImplicitIm2col.bandFloats = 128 * 1024
        ImplicitIm2col.maxCout = 128
        ImplicitIm2col.wideMinWidth = 32
        ImplicitIm2col.minGroupedWidth = 16
        ImplicitIm2col.stride2 = true
        InstanceNormLeakyReLU.useKernel = ConvGEMM.kernelsAvailable
    }

    /// The vector InstanceNorm+LeakyReLU kernels give the portable loops' bits: activations, saved statistics, the
    /// input gradient and dγ/dβ, over plane sizes around the 16-lane width and a plane large enough to go through
    /// several lanes' worth of elements; negative and positive pre-activations both occur.
    func testVectorInstanceNormEqualsPortable() {
        for (batch, channels, plane) in [(2, 3, 1), (1, 2, 15), (2, 2, 16), (3, 2, 17), (2, 3, 33), (1, 2, 100), (2, 2, 4096 + 5)] {
            let norm = InstanceNormLeakyReLU(channels: channels, gamma: 0, beta: channels, eps: 1e-5, slope: 0.01)
            var params = randomArray(2 * channels, key: 61, scale: 0.5)
            for c in 0..<channels { params[c] += 1 }
            let y0 = randomArray(batch * channels * plane, key: 62), da = randomArray(y0.count, key: 63)
            func run(kernel: Bool) -> ([Float], [Float], [Float], [Float]) {
                InstanceNormLeakyReLU.useKernel = kernel
                var y = y0, a = [Float](repeating: .nan, count: y0.count)
                var stats = [Float](repeating: .nan, count: 2 * batch * channels), grads = [Float](repeating: .nan, count: 2 * channels)
                y.withUnsafeMutableBufferPointer { yp in a.withUnsafeMutableBufferPointer { ap in params.withUnsafeBufferPointer { pp in
                    stats.withUnsafeMutableBufferPointer { sp in grads.withUnsafeMutableBufferPointer { gp in da.withUnsafeBufferPointer { dp in
                        norm.forward(y: yp.baseAddress!, a: ap.baseAddress!, batch: batch, plane: plane, params: pp.baseAddress!, stats: sp.baseAddress!)
                        norm.backward(y: yp.baseAddress!, da: dp.baseAddress!, batch: batch, plane: plane, params: pp.baseAddress!,
                                      grads: gp.baseAddress!, stats: sp.baseAddress!)
                    } } }
                } } }
                return (a, stats, y, grads)
            }
            let v = run(kernel: true), p = run(kernel: false)
            XCTAssertTrue(v.0.contains { $0 < 0 } && v.0.contains { $0 > 0 }, "both LeakyReLU branches")
            for (name, u, w) in [("a", v.0, p.0), ("stats", v.1, p.1), ("dy", v.2, p.2), ("dγ,dβ", v.3, p.3)] {
                XCTAssertTrue(zip(u, w).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(name) differs at \(batch)×\(channels)×\(plane)")
            }
        }
    }

    /// Which layers take the implicit path: Cout ≤ maxCout from minGroupedWidth-wide planes up (narrower ones group
    /// samples on the column path), wider Couts only from wideMinWidth; stride 2 likewise (unless switched off), Cin = 1 never. A wide-Cout layer
    /// on the implicit path gives the column path's y bit for bit.
    func testImplicitPathSelection() {
        ImplicitIm2col.maxCout = 8
        let narrow = Conv3x3(cin: 8, cout: 8, stride: 1, weight: 0, bias: 8 * 8 * 9)
        let wide = Conv3x3(cin: 16, cout: 16, stride: 1, weight: 0, bias: 16 * 16 * 9)
        XCTAssertEqual(narrow.samplesPerGEMM(batch: 4, outH: 16, outW: 16), 1)
        XCTAssertGreaterThan(narrow.samplesPerGEMM(batch: 4, outH: 8, outW: 8), 1, "8-wide planes group samples")
        XCTAssertTrue(wide.implicitApplies(width: 32))
        XCTAssertFalse(wide.implicitApplies(width: 31), "Cout above maxCout below wideMinWidth")
        XCTAssertGreaterThan(wide.samplesPerGEMM(batch: 4, outH: 16, outW: 16), 1)
        XCTAssertTrue(Conv3x3(cin: 8, cout: 8, stride: 2, weight: 0, bias: 0).implicitApplies(width: 64))
        ImplicitIm2col.stride2 = false
        XCTAssertFalse(Conv3x3(cin: 8, cout: 8, stride: 2, weight: 0, bias: 0).implicitApplies(width: 64))
        ImplicitIm2col.stride2 = true
        XCTAssertFalse(Conv3x3(cin: 1, cout: 8, stride: 1, weight: 0, bias: 0).implicitApplies(width: 64))

        let (batch, h, w) = (2, 5, 33)
        let params = randomArray(16 * 16 * 9 + 16, key: 51, scale: 0.2), x = randomArray(batch * 16 * h * w, key: 52)
        func forward(implicit: Bool) -> [Float] {
            Im2col.useImplicit = implicit
            let need = wide.scratchNeeds(batch: batch, h: h, w: w)  // the grouping depends on the path
            let scratch = ConvScratch(colCount: need.0, tmpCount: need.1, workers: 1, workerColCount: need.2, workerDWCount: need.3)
            var y = [Float](repeating: .nan, count: batch * 16 * h * w)
            x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in y.withUnsafeMutableBufferPointer { yp in
                wide.forward(x: xp.baseAddress!, y: yp.baseAddress!, batch: batch, h: h, w: w, params: pp.baseAddress!, scratch: scratch)
            } } }
            return y
        }
        let before = ImplicitIm2col.passes
        let y1 = forward(implicit: true)
        XCTAssertEqual(ImplicitIm2col.passes, before + 1, "the Cout-16 layer on a 33-wide plane took the implicit path")
        let y0 = forward(implicit: false)
        XCTAssertTrue(zip(y1, y0).allSatisfy { $0.bitPattern == $1.bitPattern }, "y differs between the paths")
    }

    /// Stride 2 on the implicit path (phase planes read in place) against the column path: y bit-identical (same taps
    /// in the same order), dW and dx within float rounding (dW's dot products run over the padded-width positions).
    /// Even and odd planes (an odd one leaves the last phase row and column outside the input), several bands with a
    /// partial last one, Cout > Cin (the encoder's downsampling convs) and Cout < Cin, skip-gradient accumulation.
    func testImplicitStride2MatchesColumnPath() {
        for (cin, cout, h, w, band) in [(8, 16, 26, 34, 4 * 8 * 18 * 4), (6, 4, 13, 21, 4 * 6 * 12 * 3), (4, 8, 9, 40, 1 << 20)] {
            let conv = Conv3x3(cin: cin, cout: cout, stride: 2, weight: 0, bias: cout * cin * 9)
            comparePaths(conv, batch: 3, h: h, w: w, bandFloats: band, keys: 45, dxExact: false) { ImplicitIm2col.stride2 = $0 }
        }
    }

    /// One forward and backward of `conv` on scratch sized for the current knobs, from dx = NaN (written) or dx0
    /// (accumulated): (y, dW‖db, dx).
    private func forwardBackward(_ conv: Conv3x3, batch: Int, h: Int, w: Int, params: [Float], x: [Float], dy: [Float],
                                 dx0: [Float]?) -> ([Float], [Float], [Float]) {
        let need = conv.scratchNeeds(batch: batch, h: h, w: w)  // the grouping depends on the path
        let scratch = ConvScratch(colCount: need.0, tmpCount: need.1, workers: 1, workerColCount: need.2, workerDWCount: need.3)
        var y = [Float](repeating: .nan, count: dy.count), g = [Float](repeating: .nan, count: params.count)
        var dx = dx0 ?? [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in dy.withUnsafeBufferPointer { dyp in
            y.withUnsafeMutableBufferPointer { yp in g.withUnsafeMutableBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in
                conv.forward(x: xp.baseAddress!, y: yp.baseAddress!, batch: batch, h: h, w: w, params: pp.baseAddress!, scratch: scratch)
                conv.backward(x: xp.baseAddress!, dy: dyp.baseAddress!, dx: dxp.baseAddress!, accumulate: dx0 != nil, batch: batch,
                              h: h, w: w, params: pp.baseAddress!, grads: gp.baseAddress!, scratch: scratch)
            } } }
        } } }
        return (y, g, dx)
    }

    /// `conv` with the implicit path switched on and off by `implicit`, written and accumulated dx: both passes take
    /// the implicit path in the first run and neither in the second; y bit-identical, a written dx too when `dxExact`,
    /// dW, db and dx within float rounding. One sample per GEMM, column bands of 3 rows, implicit bands of
    /// `bandFloats` (the tests' knobs; tearDown restores them).
    private func comparePaths(_ conv: Conv3x3, batch: Int, h: Int, w: Int, bandFloats: Int, keys: UInt64, dxExact: Bool,
                              implicit: (Bool) -> Void, file: StaticString = #filePath, line: UInt = #line) {
        Conv3x3.groupColumns = 1
        Conv3x3.tileThreshold = 0
        Conv3x3.tileFloats = conv.k * w * 3
        ImplicitIm2col.bandFloats = bandFloats
        let (ho, wo) = conv.outputSize(h, w)
        let params = randomArray(conv.cout * conv.k + conv.cout, key: keys, scale: 0.2)
        let x = randomArray(batch * conv.cin * h * w, key: keys + 1), dy = randomArray(batch * conv.cout * ho * wo, key: keys + 2)
        let dx0 = randomArray(x.count, key: keys + 3)
        for accumulate in [false, true] {
            let before = ImplicitIm2col.passes
            implicit(true)
            let (y1, g1, dx1) = forwardBackward(conv, batch: batch, h: h, w: w, params: params, x: x, dy: dy, dx0: accumulate ? dx0 : nil)
            XCTAssertEqual(ImplicitIm2col.passes, before + 2, "forward and backward took the implicit path", file: file, line: line)
            implicit(false)
            let (y0, g0, dxc) = forwardBackward(conv, batch: batch, h: h, w: w, params: params, x: x, dy: dy, dx0: accumulate ? dx0 : nil)
            implicit(true)
            XCTAssertEqual(ImplicitIm2col.passes, before + 2, "the column path ran without it", file: file, line: line)
            let what = "\(conv.cin)→\(conv.cout) stride \(conv.stride) @\(h)×\(w), accumulate \(accumulate)"
            XCTAssertTrue(zip(y1, y0).allSatisfy { $0.bitPattern == $1.bitPattern }, "y differs: \(what)", file: file, line: line)
            if dxExact && !accumulate {
                XCTAssertTrue(zip(dx1, dxc).allSatisfy { $0.bitPattern == $1.bitPattern }, "dx differs: \(what)", file: file, line: line)
            }
            // Accumulating, the column path adds inside the GEMM (dx + Σ…), the implicit one after it (Σ… + dx).
            for (name, u, v) in [("dW,db", g1, g0), ("dx", dx1, dxc)] {
                let scale = v.map { abs($0) }.max() ?? 1
                let worst = zip(u, v).map { abs($0 - $1) }.max() ?? .nan
                XCTAssertLessThan(worst, 1e-5 * max(scale, 1), "\(name) \(what): max diff \(worst)", file: file, line: line)
            }
        }
    }

    /// The implicit-im2col path (padded bands read in place by the row-offset kernels) against the column-matrix
    /// path with the same kernels: y and a written dx bit-identical (same NN summation order), dW, db and an accumulated dx
    /// within float rounding
    /// (the NT dot products run over the padded-width positions, so their lanes differ). Odd, non-square planes,
    /// several bands with a partial last one, Cin > Cout (the decoder's concat convs), skip-gradient accumulation.
    func testImplicitIm2colMatchesColumnPath() {
        for (cin, cout, h, w, band) in [(8, 8, 13, 21, 8 * 23 * 6), (16, 8, 17, 33, 16 * 35 * 5), (6, 6, 5, 47, 1 << 20)] {
            let conv = Conv3x3(cin: cin, cout: cout, stride: 1, weight: 0, bias: cout * cin * 9)
            comparePaths(conv, batch: 3, h: h, w: w, bandFloats: band, keys: 41, dxExact: true) { Im2col.useImplicit = $0 }
        }
    }

    /// The vector im2col is the portable one's exact copy: every width remainder of the 16-lane vectors (both edges),
    /// stride 1 and 2, bands of rows, row strides wider than the band; NaN-filled destinations show unwritten floats,
    /// and the floats beyond each row's width stay untouched.
    func testVectorIm2colAndCol2imEqualPortable() {
        var key: UInt64 = 900
        for (h, w) in [(1, 1), (2, 3), (5, 16), (4, 17), (7, 31), (3, 32), (6, 33), (9, 47), (8, 64), (5, 130)] {
            for s in [1, 2] {
                let ho = (h - 1) / s + 1, wo = (w - 1) / s + 1, c = 3
                for (r0, rc) in [(0, ho), (ho / 2, ho - ho / 2), (0, 1)] where rc > 0 {
                    let ld = rc * wo + Int(key % 5)
                    let x = randomArray(c * h * w, key: key)
                    var want = [Float](repeating: .nan, count: c * 9 * ld), got = want
                    x.withUnsafeBufferPointer { px in
                        want.withUnsafeMutableBufferPointer { im2col3x3Portable(px.baseAddress!, channels: c, height: h, width: w, stride: s, col: $0.baseAddress!, ld: ld, rowStart: r0, rowCount: rc) }
                        got.withUnsafeMutableBufferPointer { ek_im2col3x3(px.baseAddress!, Int32(c), Int32(h), Int32(w), Int32(s), $0.baseAddress!, Int32(ld), Int32(r0), Int32(rc)) }
                    }
                    let same = zip(want, got).allSatisfy { $0.bitPattern == $1.bitPattern }
                    XCTAssertTrue(same, "im2col h=\(h) w=\(w) stride=\(s) rows \(r0)+\(rc) ld=\(ld)")
                    // col2im, its adjoint, accumulates into a prefilled dx: the same sums, bit for bit.
                    let dcol = randomArray(c * 9 * ld, key: key + 1), dx0 = randomArray(c * h * w, key: key + 2)
                    var wantDX = dx0, gotDX = dx0
                    dcol.withUnsafeBufferPointer { pc in
                        wantDX.withUnsafeMutableBufferPointer { col2im3x3Portable(pc.baseAddress!, ld: ld, channels: c, height: h, width: w, stride: s, dx: $0.baseAddress!, rowStart: r0, rowCount: rc) }
                        gotDX.withUnsafeMutableBufferPointer { ek_col2im3x3(pc.baseAddress!, Int32(ld), Int32(c), Int32(h), Int32(w), Int32(s), $0.baseAddress!, Int32(r0), Int32(rc)) }
                    }
                    XCTAssertTrue(zip(wantDX, gotDX).allSatisfy { $0.bitPattern == $1.bitPattern }, "col2im h=\(h) w=\(w) stride=\(s) rows \(r0)+\(rc)")
                    key += 3
                }
            }
        }
    }

    /// One kernel call on random data with padded leading dimensions; C starts as NaN when beta = 0.
    private func check(nt: Bool, m: Int, n: Int, k: Int, beta: Float, key: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let lda = k + Int(key % 3), ldb = (nt ? k : n) + Int(key % 5), ldc = n + Int(key % 2)
        let a = randomArray(m * lda, key: key), b = randomArray((nt ? n : k) * ldb, key: key + 1)
        var c = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : randomArray(m * ldc, key: key + 2)
        let c0 = c
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            ConvGEMM.kernel(transB: nt, m: m, n: n, k: k, a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb,
                            beta: beta, c: pc.baseAddress!, ldc: ldc)
        } } }
        let bad = BLASInfo.compare(a: a, b: b, c0: c0, c: c, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                                   transA: false, transB: nt, alpha: 1, beta: beta)
        XCTAssertNil(bad, "\(nt ? "NT" : "NN") m=\(m) n=\(n) k=\(k) beta=\(beta)", file: file, line: line)
        // Padding columns of C (beyond n) are not written.
        for i in 0..<m { for j in n..<ldc where !(c[i * ldc + j].isNaN && c0[i * ldc + j].isNaN) {
            XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j], "padding of C written at [\(i),\(j)]", file: file, line: line)
        } }
    }

    func testKernelsMatchReferenceOnEdgeAndConvShapes() {
        var key: UInt64 = 100
        // Every remainder of the 8-row × 48-column NN tile and the 4×4 NT tile, and K around the 16-lane vectors.
        for m in [1, 3, 8, 9, 17] { for n in [1, 15, 16, 47, 49, 97] { for k in [1, 15, 17, 130] {
            for nt in [false, true] { for beta: Float in [0, 1] { check(nt: nt, m: m, n: n, k: k, beta: beta, key: key); key += 7 } }
        } } }
        // The shapes the U-Net routes to them (scaled down in N where that changes nothing but time).
        for (m, n, k) in [(32, 896, 288), (64, 455, 576), (32, 1000, 64), (128, 100, 1152)] {
            for beta: Float in [0, 1] { check(nt: false, m: m, n: n, k: k, beta: beta, key: key); key += 7 }
        }
        for (m, n, k) in [(32, 288, 910), (32, 70, 3000), (64, 70, 2048)] {
            for beta: Float in [0, 1] { check(nt: true, m: m, n: n, k: k, beta: beta, key: key); key += 7 }
        }
    }

    /// Switching the kernels off between steps of one network rebuilds its workspace (the implicit path groups
    /// samples and sizes scratch differently): no overrun, and the gradients agree within rounding.
    func testKernelSwitchRebuildsTheWorkspace() throws {
        let cfg = UNetConfig(numClasses: 3, features: [4, 8], decoderDropout: 0)
        let net = try UNet(config: cfg, seed: 5)
        let h = 32, w = 32, batch = 3  // 32-wide planes: implicit one-sample GEMMs with the kernels, grouped without
        let x = randomArray(batch * h * w, key: 71), dLogits = randomArray(batch * cfg.numClasses * h * w, key: 72)
        let key = DropoutKey(seed: 1, step: 1, firstGlobalSample: 0)
        func grads() throws -> [Float] {
            _ = try net.forward(input: x, batch: batch, height: h, width: w, training: true, dropout: key)
            dLogits.withUnsafeBufferPointer { net.backward(dLogits: $0.baseAddress!) }
            return net.parameters.grads
        }
        let before = ImplicitIm2col.passes
        let on = try grads()
        XCTAssertGreaterThan(ImplicitIm2col.passes, before)
        ConvGEMM.useKernels = false
        let off = try grads()
        XCTAssertEqual(net.workspaces.count, 1, "the workspace sized for the implicit path was dropped")
        XCTAssertFalse(net.workspaces[0].implicitIm2col)
        let scale = off.map { abs($0) }.max() ?? 1
        let worst = zip(on, off).map { abs($0 - $1) }.max() ?? .nan
        XCTAssertLessThan(worst, 1e-4 * max(scale, 1), "gradients with and without the kernels: max diff \(worst)")
    }

    /// The row-offset kernels equal ek_sgemm_nn on the explicit matrix their offsets describe, bit for bit (same
    /// summation order), with overlapping rows as implicit im2col has; ek_transpose is exact.
    func testRowOffsetKernelsEqualTheExplicitProduct() {
        for (m, n, k) in [(5, 37, 19), (32, 300, 288), (9, 50, 130)] {
            let pool = randomArray(4096, key: UInt64(m * n + k))
            let off = (0..<max(m, k)).map { Int32(($0 * 37) % (4096 - n - k)) }  // overlapping views into one buffer
            func run(_ f: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void, count: Int) -> [Float] {
                var c = [Float](repeating: .nan, count: count)
                pool.withUnsafeBufferPointer { p in c.withUnsafeMutableBufferPointer { f(p.baseAddress!, $0.baseAddress!) } }
                return c
            }
            // B rows at offsets: explicit B[k][n] = pool[off[k] + n].
            let a = randomArray(m * k, key: 7), bx = (0..<k).flatMap { r in (0..<n).map { pool[Int(off[r]) + $0] } }
            let want = run({ _, c in ek_sgemm_nn(Int32(m), Int32(n), Int32(k), a, Int32(k), bx, Int32(n), 0, c, Int32(n)) }, count: m * n)
            let got = run({ p, c in off.withUnsafeBufferPointer { ek_sgemm_nn_rows(Int32(m), Int32(n), Int32(k), a, Int32(k), p, $0.baseAddress!, 0, c, Int32(n)) } }, count: m * n)
            XCTAssertTrue(zip(want, got).allSatisfy { $0.bitPattern == $1.bitPattern }, "nn_rows \(m)×\(n)×\(k)")
            // A rows at offsets: explicit A[i][k] = pool[off[i] + k].
            let ax = (0..<m).flatMap { r in (0..<k).map { pool[Int(off[r]) + $0] } }, b = randomArray(k * n, key: 8)
            let wantA = run({ _, c in ek_sgemm_nn(Int32(m), Int32(n), Int32(k), ax, Int32(k), b, Int32(n), 0, c, Int32(n)) }, count: m * n)
            let gotA = run({ p, c in off.withUnsafeBufferPointer { ek_sgemm_nn_arows(Int32(m), Int32(n), Int32(k), p, $0.baseAddress!, b, Int32(n), 0, c, Int32(n)) } }, count: m * n)
            XCTAssertTrue(zip(wantA, gotA).allSatisfy { $0.bitPattern == $1.bitPattern }, "nn_arows \(m)×\(n)×\(k)")
            var t = [Float](repeating: .nan, count: m * k)
            ek_transpose(Int32(m), Int32(k), ax, Int32(k), &t, Int32(m))
            XCTAssertTrue((0..<m).allSatisfy { i in (0..<k).allSatisfy { t[$0 * m + i] == ax[i * k + $0] } }, "transpose \(m)×\(k)")
        }
    }

    func testKernelsAreBitReproducibleAcrossBufferOffsets() {
        // The summation order depends only on the shape: the same values at another address give the same bits
        // (1-rank and 2-rank runs, and a resumed run, allocate their buffers differently).
        let m = 32, n = 300, k = 288
        let a = randomArray(m * k, key: 5), b = randomArray(k * n, key: 6)
        var results: [[Float]] = []
        for shift in 0..<3 {
            let pa = UnsafeMutablePointer<Float>.allocate(capacity: m * k + 3), pb = UnsafeMutablePointer<Float>.allocate(capacity: k * n + 3)
            let pc = UnsafeMutablePointer<Float>.allocate(capacity: m * n + 3)
            defer { pa.deallocate(); pb.deallocate(); pc.deallocate() }
            (pa + shift).update(from: a, count: a.count)
            (pb + shift).update(from: b, count: b.count)
            ek_sgemm_nn(Int32(m), Int32(n), Int32(k), pa + shift, Int32(k), pb + shift, Int32(n), 0, pc + shift, Int32(n))
            results.append(Array(UnsafeBufferPointer(start: pc + shift, count: m * n)))
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertEqual(results[0], results[2])
    }

    /// ek_transpose is an exact copy for every edge case of its 16 × 16 register blocks (rows and columns 1–40, padded
    /// leading dimensions, unaligned bases), and writes nothing outside the transposed block.
    func testTransposeIsExact() {
        for rows in [1, 2, 15, 16, 17, 31, 33, 40] {
            for cols in [1, 3, 16, 17, 32, 39] {
                for pad in 0..<2 {
                    let lds = cols + 5 * pad, ldd = rows + 3 * pad, shift = pad
                    let src = (0..<(rows * lds + shift)).map { Float($0) * 0.25 - 7 }
                    var got = [Float](repeating: -1e9, count: cols * ldd + shift + 16), want = got
                    for r in 0..<rows { for c in 0..<cols { want[shift + c * ldd + r] = src[shift + r * lds + c] } }
                    src.withUnsafeBufferPointer { sp in got.withUnsafeMutableBufferPointer { gp in
                        ek_transpose(Int32(rows), Int32(cols), sp.baseAddress! + shift, Int32(lds), gp.baseAddress! + shift, Int32(ldd))
                    } }
                    XCTAssertEqual(got, want, "\(rows)×\(cols), pad \(pad)")
                }
            }
        }
    }

    /// Which products convGEMM gives the kernels: NN with M ≤ 128 or N ≤ 256, NT with M ≤ 32, or ≤ 64 on aligned rows.
    func testConvGEMMRouting() {
        // (transB, m, n, k, aligned rows, kernel)
        let cases: [(Bool, Int, Int, Int, Bool, Bool)] = [
            (false, 32, 131_072, 288, false, true),   // a Cout-32 forward band
            (false, 128, 2048, 1152, false, true),
            (false, 256, 512, 2304, false, false),    // 8² Cout-256 layer, 8 samples: OpenBLAS
            (false, 480, 128, 4320, false, true),     // 4² Cout-480 layer, 8 samples
            (false, 480, 32, 4320, false, true),      // 2²
            (false, 480, 257, 4320, false, false),
            (false, 480, 128, 0, false, false),       // nothing to multiply
            (true, 32, 288, 65_536, false, true),
            (true, 64, 576, 4096, false, false),
            (true, 64, 576, 4096, true, true),
            (true, 256, 2304, 512, true, false),
            (true, 480, 64, 4320, true, false),       // NT never by N
        ]
        for (t, m, n, k, al, want) in cases {
            XCTAssertEqual(ConvGEMM.kernelWins(transB: t, m: m, n: n, k: k, alignedRows: al), want, "transB \(t) m \(m) n \(n) k \(k) aligned \(al)")
        }
    }

    /// A Cout-32 conv over bands (the 128² layers' path) and grouped ones: kernels on vs OpenBLAS only.
    func testConv3x3WithKernelsAgreesWithOpenBLASPath() {
        // The fourth case's dW is an aligned M = 64 NT product (ld = 2·8² = 128), which also goes to the kernel; the
        // last one's forward is an M = 160 product over N = 2·4² = 32 columns (the kernel takes NN with N ≤ 256 at
        // any M), in 12-row tiles with a remainder.
        for (cin, cout, h, grouped) in [(32, 32, 24, false), (64, 32, 16, false), (32, 32, 8, true), (64, 64, 8, true), (24, 160, 4, true)] {
            Conv3x3.groupColumns = grouped ? 2048 : 1
            Conv3x3.tileThreshold = grouped ? 512 * 1024 : 0
            Conv3x3.tileFloats = cin * 9 * h * 5 // bands of 5 rows: a partial last band
            let batch = 2, w = h
            let conv = Conv3x3(cin: cin, cout: cout, stride: 1, weight: 0, bias: cout * cin * 9)
            let params = randomArray(cout * cin * 9 + cout, key: 31, scale: 0.2)
            let x = randomArray(batch * cin * h * w, key: 32), dy = randomArray(batch * cout * h * w, key: 33)
            let need = conv.scratchNeeds(batch: batch, h: h, w: w)
            func run(kernels: Bool) -> ([Float], [Float], [Float]) {
                ConvGEMM.useKernels = kernels
                let scratch = ConvScratch(colCount: need.0, tmpCount: need.1, workers: 2, workerColCount: need.2, workerDWCount: need.3)
                var y = [Float](repeating: .nan, count: dy.count), g = [Float](repeating: .nan, count: params.count)
                var dx = [Float](repeating: .nan, count: x.count)
                x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in dy.withUnsafeBufferPointer { dyp in
                    y.withUnsafeMutableBufferPointer { yp in g.withUnsafeMutableBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in
                        conv.forward(x: xp.baseAddress!, y: yp.baseAddress!, batch: batch, h: h, w: w, params: pp.baseAddress!, scratch: scratch)
                        conv.backward(x: xp.baseAddress!, dy: dyp.baseAddress!, dx: dxp.baseAddress!, accumulate: false, batch: batch, h: h, w: w,
                                      params: pp.baseAddress!, grads: gp.baseAddress!, scratch: scratch)
                    } } }
                } } }
                return (y, g, dx)
            }
            let (y1, g1, dx1) = run(kernels: true), (y0, g0, dx0) = run(kernels: false)
            for (name, u, v) in [("y", y1, y0), ("dW,db", g1, g0), ("dx", dx1, dx0)] {
                let scale = v.map { abs($0) }.max() ?? 1
                let worst = zip(u, v).map { abs($0 - $1) }.max() ?? .nan
                XCTAssertLessThan(worst, 1e-5 * max(scale, 1), "\(name) \(cin)→\(cout) @\(h)² grouped \(grouped): max diff \(worst)")
            }
        }
    }
}
