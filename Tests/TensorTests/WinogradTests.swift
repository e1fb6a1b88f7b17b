import CKernels
import XCTest
@testable import Tensor

/// The Winograd F(2×2, 3×3) path of the grouped small-plane convs: its transforms are exact adjoints of each other,
/// it computes the same convolution and gradients as im2col + GEMM, and it is chosen exactly where it should be.
/// (GradientCheckTests checks its gradients against finite differences; TorchAgreementTests runs a whole U-Net on it.)
final class WinogradTests: XCTestCase {
    override func tearDown() {
        Winograd.enabled = true
        Winograd.minTiles = 32
        Conv3x3.groupColumns = 2048
        ek_wino_use_vector(-1)
        Im2col.useImplicit = true
    }

    /// The FLOPs the Winograd layers skip, which the benchmark subtracts for its "executed" rate: 5/9 of the direct
    /// convolution's FLOPs of exactly the layers on that path (here every stride-1 conv with Cin > 1), 0 without it.
    func testSkippedFLOPsCountTheWinogradLayers() throws {
        let net = try UNet(config: UNetConfig(inputChannels: 1, numClasses: 4, features: [8, 16, 32], convsPerStage: 2,
                                              decoderDropout: 0), seed: 1)
        Im2col.useImplicit = false
        Winograd.minTiles = 1
        let macs = 8 * 8 * 1024 + 16 * 16 * 256 + 32 * 32 * 64  // enc0.1, enc1.1, enc2.1
            + 16 * 32 * 256 + 16 * 16 * 256 + 8 * 16 * 1024 + 8 * 8 * 1024  // the decoder's two stages
        XCTAssertEqual(net.winogradSkippedFLOPs(height: 32, width: 32, batch: 2), 2.0 * 9 * Double(macs) * 5 / 9, accuracy: 1)
        Winograd.enabled = false
        XCTAssertEqual(net.winogradSkippedFLOPs(height: 32, width: 32, batch: 2), 0)
    }

    private func dotD(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }

    private func assertAdjoint(_ fa: [Float], _ b: [Float], _ a: [Float], _ ftb: [Float], _ what: String) {
        let l = dotD(fa, b), r = dotD(a, ftb)
        XCTAssertEqual(l, r, accuracy: 1e-5 * max(abs(l), 1), "\(what): <F a, b> = \(l) but <a, Fᵀ b> = \(r)")
    }

    /// ⟨F a, b⟩ = ⟨a, Fᵀ b⟩ for the filter, input and output transforms (random a, b, padded matrix strides, two
    /// samples, a non-square plane), and the input adjoint's accumulate adds exactly what it would write.
    func testTransformsAndAdjointsAreTransposes() {
        let (nb, co, ci, h, w) = (2, 3, 5, 6, 4)
        let tiles = nb * h * w / 4, su = co * ci + 16, sv = ci * tiles + 16, sm = co * tiles + 16
        let wt = randomArray(co * ci * 9, key: 301), du = randomArray(16 * su, key: 302)
        var u = [Float](repeating: 0, count: 16 * su), dw = [Float](repeating: .nan, count: wt.count)
        ek_wino_filter(Int32(co), Int32(ci), wt, &u, su)
        ek_wino_filter_adjoint(Int32(co), Int32(ci), du, su, &dw)
        var duLive = du  // only the 16 matrices, not the padding between them
        for t in 0..<16 { for i in (co * ci)..<su { duLive[t * su + i] = 0 } }
        assertAdjoint(u, duLive, wt, dw, "filter")

        let x = randomArray(nb * ci * h * w, key: 303), dv = randomArray(16 * sv, key: 304)
        var v = [Float](repeating: 0, count: 16 * sv), dx = [Float](repeating: .nan, count: x.count)
        ek_wino_input(Int32(nb), Int32(ci), Int32(h), Int32(w), x, ci * h * w, &v, tiles, sv)
        ek_wino_input_adjoint(Int32(nb), Int32(ci), Int32(h), Int32(w), dv, tiles, sv, &dx, ci * h * w, 0)
        var dvLive = dv
        for t in 0..<16 { for i in (ci * tiles)..<sv { dvLive[t * sv + i] = 0 } }
        assertAdjoint(v, dvLive, x, dx, "input")
        let prior = randomArray(x.count, key: 305)
        var acc = prior
        ek_wino_input_adjoint(Int32(nb), Int32(ci), Int32(h), Int32(w), dv, tiles, sv, &acc, ci * h * w, 1)
        for i in 0..<x.count { XCTAssertEqual(acc[i], prior[i] + dx[i], "accumulated input adjoint at \(i)") }

        let m = randomArray(16 * sm, key: 306), dy = randomArray(nb * co * h * w, key: 307)
        var y = [Float](repeating: .nan, count: dy.count), dm = [Float](repeating: 0, count: 16 * sm)
        ek_wino_output(Int32(nb), Int32(co), Int32(h), Int32(w), m, tiles, sm, nil, &y, co * h * w)
        ek_wino_output_adjoint(Int32(nb), Int32(co), Int32(h), Int32(w), dy, co * h * w, &dm, tiles, sm)
        var mLive = m
        for t in 0..<16 { for i in (co * tiles)..<sm { mLive[t * sm + i] = 0 } }
        assertAdjoint(y, dy, mLive, dm, "output")
    }

    /// The AVX-512 transforms (filter ones too) give the portable loops' values (the same operations in the same order) on planes from
    /// 4 to 30 wide (one and two vectors per padded row, tile rows of 2 to 15 tiles), written and accumulated.
    func testVectorTransformsEqualPortable() throws {
        guard ConvGEMM.kernelsAvailable else { throw XCTSkip("no AVX-512 on this CPU: only the portable loops run") }
        for (c, h, w, nb) in [(3, 6, 4, 2), (5, 4, 4, 3), (4, 8, 8, 2), (3, 16, 16, 2), (2, 30, 30, 1), (3, 12, 30, 2), (2, 4, 14, 2)] {
            let tiles = nb * h * w / 4, sv = c * tiles + 16, count = nb * c * h * w
            let x = randomArray(count, key: 321), v = randomArray(16 * sv, key: 322), prior = randomArray(count, key: 323)
            let bias = randomArray(c, key: 324)
            func transforms(vector: Int32) -> [[Float]] {
                ek_wino_use_vector(vector)
                var tv = [Float](repeating: 0, count: 16 * sv), dx = [Float](repeating: .nan, count: count), acc = prior
                var y = [Float](repeating: .nan, count: count), dm = [Float](repeating: 0, count: 16 * sv)
                ek_wino_input(Int32(nb), Int32(c), Int32(h), Int32(w), x, c * h * w, &tv, tiles, sv)
                ek_wino_input_adjoint(Int32(nb), Int32(c), Int32(h), Int32(w), v, tiles, sv, &dx, c * h * w, 0)
                ek_wino_input_adjoint(Int32(nb), Int32(c), Int32(h), Int32(w), v, tiles, sv, &acc, c * h * w, 1)
                ek_wino_output(Int32(nb), Int32(c), Int32(h), Int32(w), v, tiles, sv, bias, &y, c * h * w)
                ek_wino_output_adjoint(Int32(nb), Int32(c), Int32(h), Int32(w), x, c * h * w, &dm, tiles, sv)
                return [tv, dx, acc, y, dm]
            }
            // The filter pair over a Cin that is not a multiple of 16 (a partial lane group) and one that is.
            let (co, ci) = (3, c * 7 + 16), su = co * ci + 16
            let wt = randomArray(co * ci * 9, key: 325), du = randomArray(16 * su, key: 326)
            func filters(vector: Int32) -> [Float] {
                ek_wino_use_vector(vector)
                var u = [Float](repeating: 0, count: 16 * su), dw = [Float](repeating: .nan, count: wt.count)
                ek_wino_filter(Int32(co), Int32(ci), wt, &u, su)
                ek_wino_filter_adjoint(Int32(co), Int32(ci), du, su, &dw)
                return u + dw
            }
            XCTAssertTrue(filters(vector: 0) == filters(vector: 1), "filter transforms differ at \(co)×\(ci)")
            let p = transforms(vector: 0), q = transforms(vector: 1)
            let names = ["input", "input adjoint", "accumulated input adjoint", "output", "output adjoint"]
            for i in 0..<names.count {
                let name = names[i]
                XCTAssertTrue(p[i] == q[i], "\(name) differs at \(c)×\(h)×\(w), \(nb) samples")
            }
        }
    }

    /// Forward and backward of one conv: (y, dW‖db, dx) on scratch sized for the current settings; `training` keeps
    /// the forward's saved operands for backward, as the U-Net does.
    private func run(_ conv: Conv3x3, batch: Int, h: Int, w: Int, params: [Float], x: [Float], dy: [Float],
                     dx0: [Float]?, training: Bool, workers: Int = 1) -> ([Float], [Float], [Float]) {
        let need = conv.scratchNeeds(batch: batch, h: h, w: w)
        let scratch = ConvScratch(colCount: need.0, tmpCount: need.1, workers: workers, workerColCount: need.2, workerDWCount: need.3)
        let savedCount = conv.savedColumnsCount(batch: batch, h: h, w: w)
        var saved = [Float](repeating: .nan, count: training ? savedCount : 0)
        var y = [Float](repeating: .nan, count: dy.count), g = [Float](repeating: .nan, count: params.count)
        var dx = dx0 ?? [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in dy.withUnsafeBufferPointer { dyp in
            y.withUnsafeMutableBufferPointer { yp in g.withUnsafeMutableBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in
                saved.withUnsafeMutableBufferPointer { sp in
                    let s = training && savedCount > 0 ? sp.baseAddress : nil
                    conv.forward(x: xp.baseAddress!, y: yp.baseAddress!, batch: batch, h: h, w: w, params: pp.baseAddress!,
                                 scratch: scratch, saveColumns: s)
                    conv.backward(x: xp.baseAddress!, dy: dyp.baseAddress!, dx: dxp.baseAddress!, accumulate: dx0 != nil,
                                  batch: batch, h: h, w: w, params: pp.baseAddress!, grads: gp.baseAddress!, scratch: scratch,
                                  savedColumns: s.map { UnsafePointer($0) })
                }
            } } }
        } } }
        return (y, g, dx)
    }

    /// The Winograd path against im2col + GEMM (the same layer with Winograd switched off): y, dW, db and dx within
    /// float rounding, written and accumulated dx, with and without the training forward's saved operands. Shapes:
    /// Cin > Cout (the decoder's concat convs) and Cin < Cout, a non-square plane, several groups with a partial
    /// last one (3 samples in groups of 2), 4×4 planes (every tile on the border; 40→24 over 8 tiles has its input
    /// gradient transpose dM rather than U). Split over 3 workers it gives the same bits as on one.
    func testWinogradMatchesIm2colPath() {
        Winograd.minTiles = 1
        for (cin, cout, h, w, batch, groupColumns) in [(10, 4, 6, 8, 3, 96), (3, 8, 8, 8, 2, 2048), (16, 16, 4, 4, 3, 2048),
                                                       (40, 24, 4, 4, 2, 2048)] {
            Conv3x3.groupColumns = groupColumns
            let conv = Conv3x3(cin: cin, cout: cout, stride: 1, weight: 0, bias: cout * cin * 9)
            Winograd.enabled = true
            XCTAssertTrue(conv.winogradApplies(batch: batch, h: h, w: w), "\(cin)→\(cout) @\(h)×\(w)")
            let params = randomArray(cout * conv.k + cout, key: 311, scale: 0.3)
            let x = randomArray(batch * cin * h * w, key: 312), dy = randomArray(batch * cout * h * w, key: 313)
            let dx0 = randomArray(x.count, key: 314)
            for accumulate in [false, true] {
                for training in [false, true] {
                    Winograd.enabled = true
                    let before = Winograd.passes
                    let a = run(conv, batch: batch, h: h, w: w, params: params, x: x, dy: dy, dx0: accumulate ? dx0 : nil, training: training)
                    XCTAssertEqual(Winograd.passes, before + 2, "forward and backward ran in the Winograd domain")
                    // Split over 3 workers (channels and the 16 GEMMs in uneven parts): the same bits.
                    let par = run(conv, batch: batch, h: h, w: w, params: params, x: x, dy: dy, dx0: accumulate ? dx0 : nil,
                                  training: training, workers: 3)
                    for (name, u, v) in [("y", par.0, a.0), ("dW,db", par.1, a.1), ("dx", par.2, a.2)] {
                        XCTAssertTrue(zip(u, v).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(name) differs with 3 workers")
                    }
                    Winograd.enabled = false
                    let b = run(conv, batch: batch, h: h, w: w, params: params, x: x, dy: dy, dx0: accumulate ? dx0 : nil, training: training)
                    XCTAssertEqual(Winograd.passes, before + 4, "the im2col path ran without it")
                    let what = "\(cin)→\(cout) @\(h)×\(w) batch \(batch), accumulate \(accumulate), training \(training)"
                    for (name, u, v) in [("y", a.0, b.0), ("dW,db", a.1, b.1), ("dx", a.2, b.2)] {
                        let scale = v.map { abs($0) }.max() ?? 1
                        let worst = zip(u, v).map { abs($0 - $1) }.max() ?? .nan
                        XCTAssertLessThan(worst, 2e-5 * max(scale, 1), "\(name) \(what): max diff \(worst) (scale \(scale))")
                    }
                }
            }
        }
    }

    /// Where the path applies: stride 1, Cin > 1, even planes from 4×4, the grouped path, enough tiles per group;
    /// and its switch.
    func testWinogradSelection() {
        let conv = Conv3x3(cin: 16, cout: 16, stride: 1, weight: 0, bias: 16 * 16 * 9)
        XCTAssertTrue(conv.winogradApplies(batch: 8, h: 8, w: 8), "8 samples × 16 tiles")
        XCTAssertTrue(conv.winogradApplies(batch: 2, h: 8, w: 8), "32 tiles per group, the default minimum")
        XCTAssertFalse(conv.winogradApplies(batch: 2, h: 4, w: 4), "8 tiles per group")
        XCTAssertFalse(conv.winogradApplies(batch: 8, h: 2, w: 2), "2×2 planes")
        XCTAssertFalse(conv.winogradApplies(batch: 8, h: 8, w: 7), "odd width")
        XCTAssertFalse(Conv3x3(cin: 16, cout: 16, stride: 2, weight: 0, bias: 0).winogradApplies(batch: 8, h: 8, w: 8))
        XCTAssertFalse(Conv3x3(cin: 1, cout: 16, stride: 1, weight: 0, bias: 0).winogradApplies(batch: 8, h: 8, w: 8))
        Conv3x3.groupColumns = 1
        XCTAssertFalse(conv.winogradApplies(batch: 8, h: 8, w: 8), "one sample per GEMM: the per-sample paths")
        Conv3x3.groupColumns = 2048
        Winograd.enabled = false
        XCTAssertFalse(conv.winogradApplies(batch: 8, h: 8, w: 8))
        Winograd.enabled = true
        Winograd.minTiles = 1
        XCTAssertTrue(conv.winogradApplies(batch: 2, h: 4, w: 4))
    }
}
