import XCTest
@testable import Tensor

/// Deterministic test data from CounterRNG.
func randomArray(_ n: Int, key: UInt64, scale: Float = 1) -> [Float] {
    (0..<n).map { Float(CounterRNG.uniform(key: key, counter: UInt64($0)) * 2 - 1) * scale }
}

/// Σ out·r in Double: the scalar loss whose gradient w.r.t. out is r.
func dot(_ out: UnsafeBufferPointer<Float>, _ r: [Float]) -> Double {
    var s = 0.0
    for i in 0..<r.count { s += Double(out[i]) * Double(r[i]) }
    return s
}

/// Central finite differences of `loss` w.r.t. array[i] at a few indices, compared with `analytic` by relative
/// error |num − ana| / max(|num|, |ana|, floor).
func checkFD(_ label: String, _ array: inout [Float], indices: [Int], analytic: [Float], eps: Float = 1e-2,
             tol: Double = 1e-2, floor: Double = 1e-2, loss: (inout [Float]) -> Double,
             file: StaticString = #filePath, line: UInt = #line) {
    var worst = 0.0
    for i in indices {
        let orig = array[i]
        array[i] = orig + eps
        let lp = loss(&array)
        array[i] = orig - eps
        let lm = loss(&array)
        array[i] = orig
        // The perturbation actually applied in Float.
        let h = Double(orig + eps) - Double(orig - eps)
        let num = (lp - lm) / h
        let ana = Double(analytic[i])
        let rel = abs(num - ana) / max(abs(num), abs(ana), floor)
        worst = max(worst, rel)
        XCTAssertLessThan(rel, tol, "\(label)[\(i)]: finite difference \(num) vs analytic \(ana)", file: file, line: line)
    }
    XCTAssertTrue(worst.isFinite, "\(label): non-finite relative error", file: file, line: line)
}

func sampleIndices(_ n: Int, count: Int, key: UInt64) -> [Int] {
    if n <= count { return Array(0..<n) }
    return (0..<count).map { Int(CounterRNG.bits(key: key, counter: UInt64($0)) % UInt64(n)) }
}

final class GradientCheckTests: XCTestCase {
    override func tearDown() {
        Conv3x3.groupColumns = 2048
        Conv3x3.tileThreshold = 512 * 1024
        Conv3x3.tileFloats = 256 * 1024
        Conv3x3.groupedFlipMaxCout = 256
        Winograd.minTiles = 32
    }

    func runConv3x3(stride: Int, groupColumns: Int, batch: Int = 3, cin: Int = 3, cout: Int = 4, h: Int = 7, w: Int = 6,
                    expectFlip: Bool? = nil) {
        Conv3x3.groupColumns = groupColumns
        let conv = Conv3x3(cin: cin, cout: cout, stride: stride, weight: 0, bias: cout * cin * 9)
        let (ho, wo) = conv.outputSize(h, w)
        var params = randomArray(cout * cin * 9 + cout, key: 1, scale: 0.5)
        var x = randomArray(batch * cin * h * w, key: 2)
        let r = randomArray(batch * cout * ho * wo, key: 3)
        let need = conv.scratchNeeds(batch: batch, h: h, w: w)
        // Two workers exercise the per-sample parallel path and its dW/db reduction.
        let scratch = ConvScratch(colCount: need.0, tmpCount: need.1, workers: 2, workerColCount: need.2, workerDWCount: need.3)
        var y = [Float](repeating: 0, count: r.count)
        func loss(_ x: [Float], _ p: [Float]) -> Double {
            x.withUnsafeBufferPointer { xp in p.withUnsafeBufferPointer { pp in y.withUnsafeMutableBufferPointer { yp in
                conv.forward(x: xp.baseAddress!, y: yp.baseAddress!, batch: batch, h: h, w: w, params: pp.baseAddress!, scratch: scratch)
            } } }
            return y.withUnsafeBufferPointer { dot($0, r) }
        }
        _ = loss(x, params)
        var grads = [Float](repeating: .nan, count: params.count)
        var dx = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in r.withUnsafeBufferPointer { rp in
            grads.withUnsafeMutableBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in
                conv.backward(x: xp.baseAddress!, dy: rp.baseAddress!, dx: dxp.baseAddress!, accumulate: false, batch: batch, h: h, w: w,
                              params: pp.baseAddress!, grads: gp.baseAddress!, scratch: scratch)
            } }
        } } }
        if let expectFlip { XCTAssertEqual(scratch.flipped != nil, expectFlip, "the input gradient's path") }
        let p0 = params
        checkFD("conv s\(stride) g\(groupColumns) dx", &x, indices: sampleIndices(x.count, count: 40, key: 4), analytic: dx) { loss($0, p0) }
        let x0 = x
        checkFD("conv s\(stride) g\(groupColumns) dW,db", &params, indices: sampleIndices(params.count, count: 40, key: 5) + Array((params.count - cout)..<params.count),
                analytic: grads) { loss(x0, $0) }
    }

    func testConv3x3Stride1PerSample() { runConv3x3(stride: 1, groupColumns: 1) }
    func testConv3x3Stride1Grouped() { runConv3x3(stride: 1, groupColumns: 2048) }
    // cout ≤ cin: the stride-1 input gradient is computed as a convolution with the flipped kernel.
    func testConv3x3Stride1FlippedPerSample() { runConv3x3(stride: 1, groupColumns: 1, cin: 5, cout: 3) }
    func testConv3x3Stride1FlippedGrouped() { runConv3x3(stride: 1, groupColumns: 2048, cin: 5, cout: 3, expectFlip: true) }
    func testConv3x3Stride1FlippedGroupedPartialGroup() { runConv3x3(stride: 1, groupColumns: 84, batch: 3, cin: 4, cout: 4) }
    // A grouped layer wider than groupedFlipMaxCout takes dcol + col2im even with cout ≤ cin (the 480-channel levels).
    func testConv3x3Stride1GroupedAboveFlipLimit() {
        Conv3x3.groupedFlipMaxCout = 2
        runConv3x3(stride: 1, groupColumns: 2048, cin: 5, cout: 3, expectFlip: false)
    }

    // The Winograd path (even planes, grouped): one group, and groups of 2 with a partial last one and Cin > Cout.
    func testConv3x3Stride1Winograd() {
        Winograd.minTiles = 1
        let before = Winograd.passes
        runConv3x3(stride: 1, groupColumns: 2048, h: 6, w: 4)
        runConv3x3(stride: 1, groupColumns: 48, batch: 3, cin: 6, cout: 3, h: 4, w: 6)
        XCTAssertGreaterThanOrEqual(Winograd.passes - before, 4, "both layers ran in the Winograd domain")
    }

    /// accumulate: true adds the input gradient to what dx holds, on every path (per sample, grouped, flipped or not).
    func testConv3x3AccumulateAddsToDx() {
        let batch = 3, h = 6, w = 5
        for (stride, groupColumns, cin, cout) in [(1, 1, 5, 3), (1, 2048, 5, 3), (1, 2048, 3, 4), (2, 2048, 3, 4), (2, 1, 4, 4)] {
            Conv3x3.groupColumns = groupColumns
            let conv = Conv3x3(cin: cin, cout: cout, stride: stride, weight: 0, bias: cout * cin * 9)
            let (ho, wo) = conv.outputSize(h, w)
            let params = randomArray(cout * cin * 9 + cout, key: 21)
            let x = randomArray(batch * cin * h * w, key: 22)
            let dy = randomArray(batch * cout * ho * wo, key: 23)
            let prior = randomArray(x.count, key: 24)
            let need = conv.scratchNeeds(batch: batch, h: h, w: w)
            let scratch = ConvScratch(colCount: need.0, tmpCount: need.1, workers: 2, workerColCount: need.2, workerDWCount: need.3)
            var grads = [Float](repeating: 0, count: params.count)
            func run(_ dx: inout [Float], accumulate: Bool) {
                x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in dy.withUnsafeBufferPointer { dyp in
                    grads.withUnsafeMutableBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in
                        conv.backward(x: xp.baseAddress!, dy: dyp.baseAddress!, dx: dxp.baseAddress!, accumulate: accumulate, batch: batch,
                                      h: h, w: w, params: pp.baseAddress!, grads: gp.baseAddress!, scratch: scratch)
                    } }
                } } }
            }
            var fresh = [Float](repeating: .nan, count: x.count)
            run(&fresh, accumulate: false)
            var added = prior
            run(&added, accumulate: true)
            for i in 0..<x.count {
                XCTAssertEqual(added[i], prior[i] + fresh[i], accuracy: 1e-5, "stride \(stride) group \(groupColumns) \(cin)→\(cout) at \(i)")
            }
        }
    }

    func testConv3x3Stride2PerSample() { runConv3x3(stride: 2, groupColumns: 1) }
    func testConv3x3Stride2GroupedOddSize() { runConv3x3(stride: 2, groupColumns: 30, h: 7, w: 5) }

    /// The L2-tiled path (bands of output rows; here 2 rows of a 7-row output, so the last band is partial).
    func testConv3x3TiledBands() {
        Conv3x3.tileThreshold = 0
        Conv3x3.tileFloats = 3 * 9 * 6 * 2
        runConv3x3(stride: 1, groupColumns: 1, h: 7, w: 6)
        Conv3x3.tileFloats = 3 * 9 * 3 * 2
        runConv3x3(stride: 2, groupColumns: 1, h: 7, w: 6)
    }

    func testConv3x3MatchesDirectConvolution() {
        // Independent reference: the textbook 7-loop convolution, for the per-sample, grouped and tiled paths.
        let cin = 2, cout = 3, h = 5, w = 4, batch = 2
        for (stride, mode) in [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2)] {
            Conv3x3.groupColumns = mode == 1 ? 2048 : 1
            Conv3x3.tileThreshold = mode == 2 ? 0 : 512 * 1024
            Conv3x3.tileFloats = cin * 9 * 4 * 2
            let conv = Conv3x3(cin: cin, cout: cout, stride: stride, weight: 0, bias: cout * cin * 9)
            let (ho, wo) = conv.outputSize(h, w)
            let params = randomArray(cout * cin * 9 + cout, key: 11)
            let x = randomArray(batch * cin * h * w, key: 12)
            let need = conv.scratchNeeds(batch: batch, h: h, w: w)
            let scratch = ConvScratch(colCount: need.0, tmpCount: need.1, workers: 2, workerColCount: need.2, workerDWCount: need.3)
            var y = [Float](repeating: 0, count: batch * cout * ho * wo)
            x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in y.withUnsafeMutableBufferPointer { yp in
                conv.forward(x: xp.baseAddress!, y: yp.baseAddress!, batch: batch, h: h, w: w, params: pp.baseAddress!, scratch: scratch)
            } } }
            for n in 0..<batch { for co in 0..<cout { for oh in 0..<ho { for ow in 0..<wo {
                var s = Double(params[cout * cin * 9 + co])
                for ci in 0..<cin { for kh in 0..<3 { for kw in 0..<3 {
                    let ih = oh * stride + kh - 1, iw = ow * stride + kw - 1
                    if ih >= 0 && ih < h && iw >= 0 && iw < w {
                        s += Double(params[((co * cin + ci) * 3 + kh) * 3 + kw]) * Double(x[((n * cin + ci) * h + ih) * w + iw])
                    }
                } } }
                XCTAssertEqual(Double(y[((n * cout + co) * ho + oh) * wo + ow]), s, accuracy: 1e-5)
            } } } }
        }
    }

    func testConv1x1() {
        let cin = 5, cout = 3, batch = 2, plane = 12
        let conv = Conv1x1(cin: cin, cout: cout, weight: 0, bias: cin * cout)
        var params = randomArray(cin * cout + cout, key: 21)
        var x = randomArray(batch * cin * plane, key: 22)
        let r = randomArray(batch * cout * plane, key: 23)
        var y = [Float](repeating: 0, count: r.count)
        func loss(_ x: [Float], _ p: [Float]) -> Double {
            x.withUnsafeBufferPointer { xp in p.withUnsafeBufferPointer { pp in y.withUnsafeMutableBufferPointer { yp in
                conv.forward(x: xp.baseAddress!, y: yp.baseAddress!, batch: batch, plane: plane, params: pp.baseAddress!)
            } } }
            return y.withUnsafeBufferPointer { dot($0, r) }
        }
        var grads = [Float](repeating: .nan, count: params.count), dx = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in r.withUnsafeBufferPointer { rp in
            grads.withUnsafeMutableBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in
                conv.backward(x: xp.baseAddress!, dy: rp.baseAddress!, dx: dxp.baseAddress!, batch: batch, plane: plane,
                              params: pp.baseAddress!, grads: gp.baseAddress!)
            } }
        } } }
        let p0 = params
        checkFD("1x1 dx", &x, indices: Array(0..<x.count), analytic: dx) { loss($0, p0) }
        let x0 = x
        checkFD("1x1 dW,db", &params, indices: Array(0..<params.count), analytic: grads) { loss(x0, $0) }
    }

    /// Per sample, in groups of 2 samples with a partial last group, and all 3 samples in one GEMM.
    func testConvTranspose2x2() {
        for groupColumns in [1, 24, 2048] {
            Conv3x3.groupColumns = groupColumns
            runConvTranspose2x2()
        }
        Conv3x3.groupColumns = 2048
    }

    func runConvTranspose2x2() {
        let cin = 3, cout = 2, batch = 3, h = 3, w = 4
        let ct = ConvTranspose2x2(cin: cin, cout: cout, weight: 0, bias: cin * cout * 4)
        var params = randomArray(cin * cout * 4 + cout, key: 31)
        var x = randomArray(batch * cin * h * w, key: 32)
        // Output written with a larger sample stride (as into the concat buffer): the extra half must stay untouched.
        let outPer = cout * 4 * h * w, stride = 2 * outPer
        let r = randomArray(batch * stride, key: 33)
        var y = [Float](repeating: 7, count: batch * stride)
        var tmp = [Float](repeating: 0, count: ct.tmpCount(batch: batch, h: h, w: w))
        func loss(_ x: [Float], _ p: [Float]) -> Double {
            x.withUnsafeBufferPointer { xp in p.withUnsafeBufferPointer { pp in y.withUnsafeMutableBufferPointer { yp in
                tmp.withUnsafeMutableBufferPointer { tp in
                    ct.forward(x: xp.baseAddress!, y: yp.baseAddress!, yBatchStride: stride, batch: batch, h: h, w: w,
                               params: pp.baseAddress!, tmp: tp.baseAddress!)
                }
            } } }
            return y.withUnsafeBufferPointer { dot($0, r) }
        }
        _ = loss(x, params)
        for n in 0..<batch { for i in outPer..<stride { XCTAssertEqual(y[n * stride + i], 7) } }
        // Direct definition: y[co, 2i+a, 2j+b] = b[co] + Σ_ci x[ci, i, j]·W[ci, co, a, b].
        for n in 0..<batch { for co in 0..<cout { for oy in 0..<(2 * h) { for ox in 0..<(2 * w) {
            var s = Double(params[cin * cout * 4 + co])
            for ci in 0..<cin {
                s += Double(x[((n * cin + ci) * h + oy / 2) * w + ox / 2]) * Double(params[((ci * cout + co) * 2 + oy % 2) * 2 + ox % 2])
            }
            XCTAssertEqual(Double(y[n * stride + (co * 2 * h + oy) * 2 * w + ox]), s, accuracy: 1e-5)
        } } } }
        var grads = [Float](repeating: .nan, count: params.count), dx = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in params.withUnsafeBufferPointer { pp in r.withUnsafeBufferPointer { rp in
            grads.withUnsafeMutableBufferPointer { gp in dx.withUnsafeMutableBufferPointer { dxp in tmp.withUnsafeMutableBufferPointer { tp in
                ct.backward(x: xp.baseAddress!, dy: rp.baseAddress!, dyBatchStride: stride, dx: dxp.baseAddress!, batch: batch, h: h, w: w,
                            params: pp.baseAddress!, grads: gp.baseAddress!, tmp: tp.baseAddress!)
            } } }
        } } }
        let p0 = params
        checkFD("transp dx", &x, indices: Array(0..<x.count), analytic: dx) { loss($0, p0) }
        let x0 = x
        checkFD("transp dW,db", &params, indices: Array(0..<params.count), analytic: grads) { loss(x0, $0) }
    }

    func testInstanceNormLeakyReLU() {
        let c = 3, batch = 2, plane = 37 // odd plane exercises the SIMD tail
        let layer = InstanceNormLeakyReLU(channels: c, gamma: 0, beta: c, eps: 1e-5, slope: 0.01)
        var params = randomArray(2 * c, key: 41).enumerated().map { $0.offset < c ? 1 + 0.5 * $0.element : 0.3 * $0.element }
        var x = randomArray(batch * c * plane, key: 42, scale: 2).enumerated().map { $0.element + Float($0.offset / plane) }
        let r = randomArray(batch * c * plane, key: 43)
        var a = [Float](repeating: 0, count: x.count), stats = [Float](repeating: 0, count: 2 * batch * c)
        func loss(_ x: [Float], _ p: [Float]) -> Double {
            x.withUnsafeBufferPointer { xp in p.withUnsafeBufferPointer { pp in a.withUnsafeMutableBufferPointer { ap in
                stats.withUnsafeMutableBufferPointer { sp in
                    layer.forward(y: xp.baseAddress!, a: ap.baseAddress!, batch: batch, plane: plane, params: pp.baseAddress!, stats: sp.baseAddress!,
                                  workers: 2)
                }
            } } }
            return a.withUnsafeBufferPointer { dot($0, r) }
        }
        _ = loss(x, params)
        // Normalised output before the activation has zero mean and (biased) unit variance per plane when γ=1, β=0.
        var grads = [Float](repeating: .nan, count: params.count)
        var dy = x
        dy.withUnsafeMutableBufferPointer { yp in params.withUnsafeBufferPointer { pp in r.withUnsafeBufferPointer { rp in
            grads.withUnsafeMutableBufferPointer { gp in stats.withUnsafeBufferPointer { sp in
                layer.backward(y: yp.baseAddress!, da: rp.baseAddress!, batch: batch, plane: plane, params: pp.baseAddress!,
                               grads: gp.baseAddress!, stats: sp.baseAddress!, workers: 2)
            } }
        } } }
        let p0 = params
        checkFD("norm dx", &x, indices: sampleIndices(x.count, count: 60, key: 44), analytic: dy, eps: 1e-3, tol: 2e-2, floor: 5e-2) { loss($0, p0) }
        let x0 = x
        checkFD("norm dgamma,dbeta", &params, indices: Array(0..<params.count), analytic: grads, eps: 1e-3, tol: 1e-2) { loss(x0, $0) }
    }

    func testInstanceNormStatisticsMatchPyTorchDefinition() {
        let plane = 50
        let layer = InstanceNormLeakyReLU(channels: 1, gamma: 0, beta: 1, eps: 1e-5, slope: 0.01)
        let params: [Float] = [1, 0]
        let x = randomArray(plane, key: 45, scale: 3).map { $0 + 5 }
        var a = [Float](repeating: 0, count: plane), stats = [Float](repeating: 0, count: 2)
        layer.forward(y: x, a: &a, batch: 1, plane: plane, params: params, stats: &stats)
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(plane)
        let varB = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(plane) // biased
        for i in 0..<plane {
            let z = (Double(x[i]) - mean) / (varB + 1e-5).squareRoot()
            XCTAssertEqual(Double(a[i]), z > 0 ? z : 0.01 * z, accuracy: 1e-5)
        }
    }

    func testDropoutWithFixedMask() {
        let c = 4, batch = 3, plane = 5
        let drop = Dropout2D(channels: c, p: 0.5, layerID: 3)
        var mask = [Float](repeating: -1, count: batch * c)
        let key = DropoutKey(seed: 9, step: 2, firstGlobalSample: 0)
        XCTAssertTrue(drop.makeMask(&mask, batch: batch, key: key, training: true))
        XCTAssertTrue(mask.allSatisfy { $0 == 0 || $0 == 2 }, "mask values must be 0 or 1/(1-p)")
        XCTAssertTrue(mask.contains(0) && mask.contains(2), "p = 0.5 over 12 channels should drop some and keep some")
        XCTAssertFalse(drop.makeMask(&mask, batch: batch, key: key, training: false))
        XCTAssertFalse(Dropout2D(channels: c, p: 0, layerID: 3).makeMask(&mask, batch: batch, key: key, training: true))
        var x = randomArray(batch * c * plane, key: 51)
        let r = randomArray(x.count, key: 52)
        func loss(_ x: inout [Float]) -> Double {
            var y = x
            Dropout2D.apply(&y, mask: mask, batch: batch, channels: c, plane: plane)
            return y.withUnsafeBufferPointer { dot($0, r) }
        }
        var dx = r
        Dropout2D.apply(&dx, mask: mask, batch: batch, channels: c, plane: plane)
        checkFD("dropout dx", &x, indices: Array(0..<x.count), analytic: dx, loss: loss)
    }

    func testConcatAndSplitAreAdjoint() {
        // cat = [up, skip]; the skip half's gradient is the matching half of dcat.
        let batch = 2, f = 3, plane = 4
        var skip = randomArray(batch * f * plane, key: 61)
        let r = randomArray(batch * 2 * f * plane, key: 62)
        func loss(_ s: inout [Float]) -> Double {
            var cat = [Float](repeating: 0, count: batch * 2 * f * plane)
            s.withUnsafeBufferPointer { sp in cat.withUnsafeMutableBufferPointer { cp in
                copyChannels(from: sp.baseAddress!, fromStride: f * plane, to: cp.baseAddress! + f * plane, toStride: 2 * f * plane,
                             count: f * plane, batch: batch)
            } }
            return cat.withUnsafeBufferPointer { dot($0, r) }
        }
        var dskip = [Float](repeating: .nan, count: skip.count)
        r.withUnsafeBufferPointer { rp in dskip.withUnsafeMutableBufferPointer { dp in
            copyChannels(from: rp.baseAddress! + f * plane, fromStride: 2 * f * plane, to: dp.baseAddress!, toStride: f * plane,
                         count: f * plane, batch: batch)
        } }
        checkFD("concat dskip", &skip, indices: Array(0..<skip.count), analytic: dskip, loss: loss)
    }

    /// Whole tiny U-Net (3 stages, 4/8/16 features, 16×16, batch 2, dropout active with a fixed key) under
    /// L = Σ logits·R. LeakyReLU's kink makes finite differences of a deep net meaningless (thousands of
    /// pre-activations sit within eps of 0 after InstanceNorm; even float64 FD converges only like O(eps)), so the
    /// whole-net check runs with negativeSlope = 1 (smooth); the 0.01 slope is checked layer by layer above.
    func testTinyUNetGradients() throws {
        let cfg = UNetConfig(inputChannels: 1, numClasses: 3, features: [4, 8, 16], decoderDropout: 0.2, negativeSlope: 1)
        let net = try UNet(config: cfg, seed: 7)
        let batch = 2, h = 16, w = 16
        let input = randomArray(batch * h * w, key: 71)
        let r = randomArray(batch * cfg.numClasses * h * w, key: 72)
        let key = DropoutKey(seed: 3, step: 5, firstGlobalSample: 4)
        func loss(_ p: inout [Float]) -> Double {
            net.parameters.values = p
            guard let out = try? net.forward(input: input, batch: batch, height: h, width: w, training: true, dropout: key) else {
                XCTFail("forward failed"); return .nan
            }
            return dot(out, r)
        }
        var p = net.parameters.values
        _ = loss(&p)
        var ranges: [Range<Int>] = []
        net.parameters.grads = [Float](repeating: .nan, count: p.count)
        net.backward(dLogits: r) { ranges.append($0) }
        let grads = net.parameters.grads
        XCTAssertTrue(grads.allSatisfy { $0.isFinite }, "backward must write every gradient")
        // Buckets cover the arena exactly once, head first.
        XCTAssertEqual(ranges.first, net.headRange)
        XCTAssertEqual(ranges.map(\.count).reduce(0, +), p.count)
        XCTAssertEqual(Set(ranges.flatMap { Array($0) }).count, p.count)
        let gmax = grads.map { abs($0) }.max() ?? 0
        var idx: [Int] = []
        for (e, entry) in net.parameters.entries.enumerated() {
            if entry.name.hasSuffix("conv.bias") {
                // A bias right before InstanceNorm is removed by the mean subtraction: its gradient is exactly 0.
                for i in entry.range { XCTAssertLessThan(abs(grads[i]), 1e-4 * gmax, "\(entry.name) gradient should vanish") }
                continue
            }
            idx += sampleIndices(entry.count, count: 3, key: 100 + UInt64(e)).map { entry.offset + $0 }
        }
        checkFD("unet params", &p, indices: idx, analytic: grads, eps: 1e-2, tol: 1e-2, floor: 1e-1, loss: loss)
    }
}
