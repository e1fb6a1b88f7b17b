import Foundation

/// Activations of one conv block at one shape: conv output y (overwritten by its gradient in backward), the block
/// output a = lrelu(norm(dropout(y))), its gradient da, the norm statistics and the dropout mask.
final class BlockBuffers {
    let y: FloatBuffer
    let a: FloatBuffer
    let da: FloatBuffer
    let stats: FloatBuffer
    let mask: FloatBuffer
    var dropped = false
    /// What a training forward keeps for the conv's dW in backward: the grouped small-plane layers' im2col columns, or
    /// the Winograd layers' U and V (Conv3x3.savedColumnsCount floats); nil where backward rebuilds them, and until the first training
    /// forward at this shape (an inference-only workspace, e.g. validation's, never allocates them).
    private(set) var cols: FloatBuffer?
    let colsCount: Int
    init(count: Int, planes: Int, colsCount: Int = 0) {
        y = FloatBuffer(count: count)
        a = FloatBuffer(count: count)
        da = FloatBuffer(count: count)
        stats = FloatBuffer(count: 2 * planes)
        mask = FloatBuffer(count: planes)
        self.colsCount = colsCount
    }

    /// Where a training forward builds its columns (allocated on first use, then reused every step).
    func columnsForTraining() -> UnsafeMutablePointer<Float>? {
        guard colsCount > 0 else { return nil }
        if cols == nil { cols = FloatBuffer(count: colsCount) }
        return cols?.pointer
    }
}

/// Everything a forward/backward pass needs at one (batch, H, W): allocated once, reused every step.
final class Workspace {
    let batch: Int, height: Int, width: Int
    let input: FloatBuffer
    let enc: [[BlockBuffers]]
    let dec: [[BlockBuffers]]
    let cat: [FloatBuffer]
    let dcat: [FloatBuffer]
    let logits: FloatBuffer
    /// True after a training forward (the blocks' saved columns belong to it); an inference forward clears it, so a
    /// backward can never pair one forward's activations with another's columns.
    var columnsSaved = false
    let scratch: ConvScratch
    let ttmp: FloatBuffer
    /// The conv paths the buffers were sized for (implicit im2col on or off: it changes the grouping and scratch).
    let implicitIm2col: Bool
    /// And the Winograd settings (they change which layers keep transformed tiles instead of columns).
    let winograd: Int

    init(net: UNet, batch: Int, height: Int, width: Int) {
        self.batch = batch; self.height = height; self.width = width
        implicitIm2col = ImplicitIm2col.usable()
        winograd = Winograd.fingerprint
        let cfg = net.config
        let S = cfg.stages
        func plane(_ s: Int) -> Int { (height >> s) * (width >> s) }
        input = FloatBuffer(count: batch * cfg.inputChannels * height * width)
        enc = (0..<S).map { s in
            (0..<cfg.convsPerStage).map { j in
                let inS = (j == 0 && s > 0) ? s - 1 : s
                return BlockBuffers(count: batch * cfg.features[s] * plane(s), planes: batch * cfg.features[s],
                                    colsCount: net.encConv[s][j].savedColumnsCount(batch: batch, h: height >> inS, w: width >> inS))
            }
        }
        var dec: [[BlockBuffers]] = [], cat: [FloatBuffer] = [], dcat: [FloatBuffer] = []
        var ttmpCount = 0
        for d in 0..<(S - 1) {
            let s = S - 2 - d, f = cfg.features[s]
            dec.append((0..<cfg.convsPerStage).map { j in
                BlockBuffers(count: batch * f * plane(s), planes: batch * f,
                             colsCount: net.decConv[d][j].savedColumnsCount(batch: batch, h: height >> s, w: width >> s))
            })
            cat.append(FloatBuffer(count: batch * 2 * f * plane(s)))
            dcat.append(FloatBuffer(count: batch * 2 * f * plane(s)))
            ttmpCount = max(ttmpCount, net.transp[d].tmpCount(batch: batch, h: height >> (s + 1), w: width >> (s + 1)))
        }
        self.dec = dec; self.cat = cat; self.dcat = dcat
        logits = FloatBuffer(count: batch * cfg.numClasses * height * width)
        var colCount = 0, tmpCount = 0, wColCount = 0, wDWCount = 0
        func need(_ n: (Int, Int, Int, Int)) {
            colCount = max(colCount, n.0); tmpCount = max(tmpCount, n.1); wColCount = max(wColCount, n.2); wDWCount = max(wDWCount, n.3)
        }
        for (conv, h, w) in net.conv3x3Layers(height: height, width: width) { need(conv.scratchNeeds(batch: batch, h: h, w: w)) }
        scratch = ConvScratch(colCount: colCount, tmpCount: tmpCount, workers: ConvScratch.defaultWorkers(),
                              workerColCount: wColCount, workerDWCount: wDWCount)
        ttmp = FloatBuffer(count: ttmpCount)
    }
}

/// nnU-Net PlainConvUNet (2D) with explicit forward/backward (no autograd). Parameter names, shapes and order are
/// those of dynamic_network_architectures' `PlainConvUNet.named_parameters()` with a single head
/// (`decoder.seg_layers.<stages-2>`; the deep-supervision heads are not built).
public final class UNet {
    public let config: UNetConfig
    public let parameters: ParameterArena
    public var parameterCount: Int { parameters.count }

    let encConv: [[Conv3x3]]
    let encNorm: [[InstanceNormLeakyReLU]]
    let decConv: [[Conv3x3]]
    let decNorm: [[InstanceNormLeakyReLU]]
    let decDrop: [[Dropout2D]]
    let transp: [ConvTranspose2x2]
    let head: Conv1x1
    /// Arena ranges per module, reported to onBucketReady as soon as their gradients are final.
    let encRange: [Range<Int>]
    let decRange: [Range<Int>]
    let transpRange: [Range<Int>]
    let headRange: Range<Int>

    /// Most recently used workspaces (at most two shapes: e.g. training and a smaller last validation batch).
    var workspaces: [Workspace] = []
    var current: Workspace?

    /// Purpose tag of the initialisation stream.
    static let initPurpose: UInt64 = 0x494E_4954 // "INIT"

    public init(config: UNetConfig = UNetConfig(), seed: UInt64) throws {
        try config.validate()
        self.config = config
        let S = config.stages, f = config.features, cps = config.convsPerStage
        var b = ParameterArena.Builder()
        func norm(_ prefix: String, _ c: Int) -> InstanceNormLeakyReLU {
            InstanceNormLeakyReLU(channels: c, gamma: b.add(prefix + ".norm.weight", [c]), beta: b.add(prefix + ".norm.bias", [c]),
                                  eps: config.normEps, slope: config.negativeSlope)
        }
        var encConv: [[Conv3x3]] = [], encNorm: [[InstanceNormLeakyReLU]] = [], encRange: [Range<Int>] = []
        for s in 0..<S {
            let start = b.next
            var convs: [Conv3x3] = [], norms: [InstanceNormLeakyReLU] = []
            for j in 0..<cps {
                let cin = j == 0 ? (s == 0 ? config.inputChannels : f[s - 1]) : f[s]
                let p = "encoder.stages.\(s).0.convs.\(j)"
                convs.append(Conv3x3(cin: cin, cout: f[s], stride: (j == 0 && s > 0) ? 2 : 1,
                                     weight: b.add(p + ".conv.weight", [f[s], cin, 3, 3]), bias: b.add(p + ".conv.bias", [f[s]])))
                norms.append(norm(p, f[s]))
            }
            encConv.append(convs); encNorm.append(norms); encRange.append(start..<b.next)
        }
        var decConv: [[Conv3x3]] = [], decNorm: [[InstanceNormLeakyReLU]] = [], decDrop: [[Dropout2D]] = []
        var decRange: [Range<Int>] = []
        for d in 0..<(S - 1) {
            let start = b.next, fs = f[S - 2 - d]
            var convs: [Conv3x3] = [], norms: [InstanceNormLeakyReLU] = [], drops: [Dropout2D] = []
            for j in 0..<cps {
                let cin = j == 0 ? 2 * fs : fs
                let p = "decoder.stages.\(d).convs.\(j)"
                convs.append(Conv3x3(cin: cin, cout: fs, stride: 1,
                                     weight: b.add(p + ".conv.weight", [fs, cin, 3, 3]), bias: b.add(p + ".conv.bias", [fs])))
                norms.append(norm(p, fs))
                drops.append(Dropout2D(channels: fs, p: config.decoderDropout, layerID: UInt64(d * cps + j)))
            }
            decConv.append(convs); decNorm.append(norms); decDrop.append(drops); decRange.append(start..<b.next)
        }
        var transp: [ConvTranspose2x2] = [], transpRange: [Range<Int>] = []
        for d in 0..<(S - 1) {
            let start = b.next, below = f[S - 1 - d], skip = f[S - 2 - d]
            transp.append(ConvTranspose2x2(cin: below, cout: skip, weight: b.add("decoder.transpconvs.\(d).weight", [below, skip, 2, 2]),
                                           bias: b.add("decoder.transpconvs.\(d).bias", [skip])))
            transpRange.append(start..<b.next)
        }
        let headStart = b.next
        head = Conv1x1(cin: f[0], cout: config.numClasses,
                       weight: b.add("decoder.seg_layers.\(S - 2).weight", [config.numClasses, f[0], 1, 1]),
                       bias: b.add("decoder.seg_layers.\(S - 2).bias", [config.numClasses]))
        headRange = headStart..<b.next
        self.encConv = encConv; self.encNorm = encNorm; self.decConv = decConv; self.decNorm = decNorm
        self.decDrop = decDrop; self.transp = transp
        self.encRange = encRange; self.decRange = decRange; self.transpRange = transpRange
        parameters = ParameterArena(entries: b.entries)
        initialize(seed: seed)
    }

    /// He init (kaiming normal, a = negativeSlope, fan-in = shape[1]·kernel area, as PyTorch computes it, so a
    /// transposed conv [in, out, k, k] uses out·k·k); biases 0, norm γ = 1, β = 0. Element i of entry e is draw i of
    /// the stream mixKey(seed, "INIT", e): deterministic in the seed.
    func initialize(seed: UInt64) {
        let a = Double(config.negativeSlope)
        let gain = (2.0 / (1.0 + a * a)).squareRoot()
        let entries = parameters.entries
        parameters.values.withUnsafeMutableBufferPointer { v in
            for (e, entry) in entries.enumerated() {
                let p = v.baseAddress! + entry.offset
                if entry.name.hasSuffix("norm.weight") {
                    p.update(repeating: 1, count: entry.count)
                } else if entry.shape.count == 4 {
                    let fanIn = entry.shape[1] * entry.shape[2] * entry.shape[3]
                    let std = gain / Double(fanIn).squareRoot()
                    let key = CounterRNG.mixKey(seed, UNet.initPurpose, UInt64(e))
                    for i in 0..<entry.count { p[i] = Float(CounterRNG.normal(key: key, counter: UInt64(i)) * std) }
                } else {
                    p.update(repeating: 0, count: entry.count)
                }
            }
        }
    }

    /// The forward FLOPs per image that the Winograd layers do not multiply at this per-rank batch: 5/9 of theirs
    /// (16 products per 2×2 output tile instead of 36). Their backward GEMMs save the same fraction, so a step
    /// executes 3·(forwardFLOPs − this) multiply-add FLOPs. Throughput figures count forwardFLOPs, the direct
    /// convolution's work (as PyTorch's FLOP counts do); this gives what the GEMMs really did.
    public func winogradSkippedFLOPs(height: Int, width: Int, batch: Int) -> Double {
        // Winograd layers are stride 1: their output plane is their input's.
        var macs = 0.0
        for (c, h, w) in conv3x3Layers(height: height, width: width) where c.winogradApplies(batch: batch, h: h, w: w) {
            macs += Double(c.cout * c.cin * 9 * h * w)
        }
        return 2 * macs * 5 / 9
    }

    /// Every 3×3 conv with its input plane at this input size: the encoder's (a stage's first conv reads the plane
    /// above it, except in stage 0), then the decoder's.
    func conv3x3Layers(height: Int, width: Int) -> [(conv: Conv3x3, h: Int, w: Int)] {
        let S = config.stages
        var layers: [(conv: Conv3x3, h: Int, w: Int)] = []
        for s in 0..<S {
            for (j, c) in encConv[s].enumerated() {
                let inS = (j == 0 && s > 0) ? s - 1 : s
                layers.append((c, height >> inS, width >> inS))
            }
        }
        for d in 0..<(S - 1) {
            let s = S - 2 - d
            for c in decConv[d] { layers.append((c, height >> s, width >> s)) }
        }
        return layers
    }

    /// Analytic forward FLOPs per image (2·MACs of every conv, transposed conv and the head).
    public func forwardFLOPs(height: Int, width: Int) -> Double {
        var macs = 0.0
        let S = config.stages
        for s in 0..<S {
            let p = Double((height >> s) * (width >> s))
            for c in encConv[s] { macs += Double(c.cout * c.cin * 9) * p }
        }
        for d in 0..<(S - 1) {
            let s = S - 2 - d, p = Double((height >> s) * (width >> s))
            for c in decConv[d] { macs += Double(c.cout * c.cin * 9) * p }
            macs += Double(transp[d].cin * transp[d].cout * 4) * Double((height >> (s + 1)) * (width >> (s + 1)))
        }
        macs += Double(head.cin * head.cout * height * width)
        return 2 * macs
    }

    func workspace(batch: Int, height: Int, width: Int) -> Workspace {
        // A workspace sized for other conv paths (a kernel switch flipped since) is not reused.
        workspaces.removeAll { $0.implicitIm2col != ImplicitIm2col.usable() || $0.winograd != Winograd.fingerprint }
        if let i = workspaces.firstIndex(where: { $0.batch == batch && $0.height == height && $0.width == width }) {
            let w = workspaces.remove(at: i)
            workspaces.append(w)
            return w
        }
        if workspaces.count >= 2 { workspaces.removeFirst() }
        current = nil
        let w = Workspace(net: self, batch: batch, height: height, width: width)
        workspaces.append(w)
        return w
    }

    /// Logits [batch, numClasses, height, width]; the buffer stays valid until the next forward.
    public func forward(input: UnsafePointer<Float>, batch: Int, height: Int, width: Int, training: Bool,
                        dropout: DropoutKey) throws -> UnsafeBufferPointer<Float> {
        guard batch > 0 else { throw TensorShapeError("UNet.forward: batch must be > 0, got \(batch)") }
        try config.validate(height: height, width: width)
        let ws = workspace(batch: batch, height: height, width: width)
        current = ws
        let S = config.stages, cps = config.convsPerStage
        ws.input.pointer.update(from: input, count: ws.input.count)
        ws.columnsSaved = training
        parameters.values.withUnsafeBufferPointer { pv in
            let params = pv.baseAddress!
            var x = UnsafePointer(ws.input.pointer)
            var h = height, w = width
            for s in 0..<S {
                for j in 0..<cps {
                    let conv = encConv[s][j], bb = ws.enc[s][j]
                    let tp1 = Profiler.start()
                    // Every conv feeds an InstanceNorm, which removes a per-channel constant: its bias is not added.
                    conv.forward(x: x, y: bb.y.pointer, batch: batch, h: h, w: w, params: params, scratch: ws.scratch,
                                 saveColumns: training ? bb.columnsForTraining() : nil, addBias: false)
                    Profiler.stop(tp1, "enc\(s).\(j) conv fwd")
                    (h, w) = conv.outputSize(h, w)
                    let tp2 = Profiler.start()
                    encNorm[s][j].forward(y: bb.y.pointer, a: bb.a.pointer, batch: batch, plane: h * w, params: params, stats: bb.stats.pointer, workers: ws.scratch.workers)
                    Profiler.stop(tp2, "enc\(s).\(j) norm fwd")
                    x = UnsafePointer(bb.a.pointer)
                }
            }
            for d in 0..<(S - 1) {
                let s = S - 2 - d, f = config.features[s]
                let hs = height >> s, wsz = width >> s, plane = hs * wsz
                let cat = ws.cat[d].pointer
                let tp3 = Profiler.start()
                transp[d].forward(x: x, y: cat, yBatchStride: 2 * f * plane, batch: batch, h: hs / 2, w: wsz / 2,
                                  params: params, tmp: ws.ttmp.pointer)
                Profiler.stop(tp3, "transp\(d) fwd")
                let skip = ws.enc[s][cps - 1].a.pointer
                copyChannels(from: skip, fromStride: f * plane, to: cat + f * plane, toStride: 2 * f * plane, count: f * plane, batch: batch)
                x = UnsafePointer(cat)
                for j in 0..<cps {
                    let bb = ws.dec[d][j]
                    let tp4 = Profiler.start()
                    decConv[d][j].forward(x: x, y: bb.y.pointer, batch: batch, h: hs, w: wsz, params: params, scratch: ws.scratch,
                                          saveColumns: training ? bb.columnsForTraining() : nil, addBias: false)
                    Profiler.stop(tp4, "dec\(d).\(j) conv fwd")
                    bb.dropped = decDrop[d][j].makeMask(bb.mask.pointer, batch: batch, key: dropout, training: training)
                    if bb.dropped { Dropout2D.apply(bb.y.pointer, mask: bb.mask.pointer, batch: batch, channels: f, plane: plane) }
                    let tp5 = Profiler.start()
                    decNorm[d][j].forward(y: bb.y.pointer, a: bb.a.pointer, batch: batch, plane: plane, params: params, stats: bb.stats.pointer, workers: ws.scratch.workers)
                    Profiler.stop(tp5, "dec\(d).\(j) norm fwd")
                    x = UnsafePointer(bb.a.pointer)
                }
            }
            let tp6 = Profiler.start()
            head.forward(x: x, y: ws.logits.pointer, batch: batch, plane: height * width, params: params)
            Profiler.stop(tp6, "head fwd")
        }
        return UnsafeBufferPointer(start: ws.logits.pointer, count: ws.logits.count)
    }

    /// Gradients of the last forward's logits → `parameters.grads` (written, not accumulated). `onBucketReady` gets
    /// arena ranges whose gradients are final, head and decoder first. Destroys the saved activations' y buffers,
    /// so call it once per forward.
    /// The gradient arena while `backward` runs (nil otherwise). `onBucketReady` callbacks use it to start reducing
    /// finished ranges in place: touching `parameters.grads` itself there would overlap backward's own access.
    public private(set) var backwardGradients: UnsafeMutableBufferPointer<Float>?

    public func backward(dLogits: UnsafePointer<Float>, onBucketReady: ((Range<Int>) -> Void)? = nil) {
        guard let ws = current else { preconditionFailure("UNet.backward called without a preceding forward") }
        current = nil
        let S = config.stages, cps = config.convsPerStage
        let batch = ws.batch, height = ws.height, width = ws.width
        parameters.values.withUnsafeBufferPointer { pv in
            parameters.grads.withUnsafeMutableBufferPointer { pg in
                let params = pv.baseAddress!, grads = pg.baseAddress!
                backwardGradients = pg
                defer { backwardGradients = nil }
                let last = ws.dec[S - 2][cps - 1]
                let tp7 = Profiler.start()
                head.backward(x: last.a.pointer, dy: dLogits, dx: last.da.pointer, batch: batch, plane: height * width,
                              params: params, grads: grads)
                Profiler.stop(tp7, "head bwd")
                onBucketReady?(headRange)
                for d in (0..<(S - 1)).reversed() {
                    let s = S - 2 - d, f = config.features[s]
                    let hs = height >> s, wsz = width >> s, plane = hs * wsz
                    for j in (0..<cps).reversed() {
                        let bb = ws.dec[d][j]
                        let tp8 = Profiler.start()
                        decNorm[d][j].backward(y: bb.y.pointer, da: bb.da.pointer, batch: batch, plane: plane, params: params,
                                               grads: grads, stats: bb.stats.pointer, workers: ws.scratch.workers)
                        Profiler.stop(tp8, "dec\(d).\(j) norm bwd")
                        if bb.dropped { Dropout2D.apply(bb.y.pointer, mask: bb.mask.pointer, batch: batch, channels: f, plane: plane) }
                        let xin = j == 0 ? ws.cat[d].pointer : ws.dec[d][j - 1].a.pointer
                        let dx = j == 0 ? ws.dcat[d].pointer : ws.dec[d][j - 1].da.pointer
                        let tp9 = Profiler.start()
                        decConv[d][j].backward(x: xin, dy: bb.y.pointer, dx: dx, accumulate: false, batch: batch, h: hs, w: wsz,
                                               params: params, grads: grads, scratch: ws.scratch, biasGradient: false,
                                               savedColumns: ws.columnsSaved ? bb.cols.map { UnsafePointer($0.pointer) } : nil)
                        // The bias feeds an InstanceNorm that removes it: its exact gradient is 0 (computing it gives round-off
                        // noise that Adam would turn into full-size random steps, different on every world size).
                        zeroFill(grads + decConv[d][j].bias, decConv[d][j].cout)
                        Profiler.stop(tp9, "dec\(d).\(j) conv bwd")
                    }
                    onBucketReady?(decRange[d])
                    let dcat = ws.dcat[d].pointer
                    let dskip = ws.enc[s][cps - 1].da.pointer
                    copyChannels(from: dcat + f * plane, fromStride: 2 * f * plane, to: dskip, toStride: f * plane, count: f * plane, batch: batch)
                    let below = d == 0 ? ws.enc[S - 1][cps - 1] : ws.dec[d - 1][cps - 1]
                    let tp10 = Profiler.start()
                    transp[d].backward(x: below.a.pointer, dy: dcat, dyBatchStride: 2 * f * plane, dx: below.da.pointer,
                                       batch: batch, h: hs / 2, w: wsz / 2, params: params, grads: grads, tmp: ws.ttmp.pointer)
                    Profiler.stop(tp10, "transp\(d) bwd")
                    onBucketReady?(transpRange[d])
                }
                for s in (0..<S).reversed() {
                    let hs = height >> s, wsz = width >> s
                    for j in (0..<cps).reversed() {
                        let bb = ws.enc[s][j], conv = encConv[s][j]
                        let tp11 = Profiler.start()
                        encNorm[s][j].backward(y: bb.y.pointer, da: bb.da.pointer, batch: batch, plane: hs * wsz, params: params,
                                               grads: grads, stats: bb.stats.pointer, workers: ws.scratch.workers)
                        Profiler.stop(tp11, "enc\(s).\(j) norm bwd")
                        let xin: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?
                        let ih = (j == 0 && s > 0) ? hs * 2 : hs, iw = (j == 0 && s > 0) ? wsz * 2 : wsz
                        if j > 0 { xin = ws.enc[s][j - 1].a.pointer; dx = ws.enc[s][j - 1].da.pointer }
                        else if s > 0 { xin = ws.enc[s - 1][cps - 1].a.pointer; dx = ws.enc[s - 1][cps - 1].da.pointer }
                        else { xin = ws.input.pointer; dx = nil }
                        // The last block of stage s-1 already holds its skip gradient: add to it.
                        let tp12 = Profiler.start()
                        conv.backward(x: xin, dy: bb.y.pointer, dx: dx, accumulate: j == 0 && s > 0, batch: batch, h: ih, w: iw,
                                      params: params, grads: grads, scratch: ws.scratch, biasGradient: false,
                                      savedColumns: ws.columnsSaved ? bb.cols.map { UnsafePointer($0.pointer) } : nil)
                        zeroFill(grads + conv.bias, conv.cout)  // exact 0: see the decoder
                        Profiler.stop(tp12, "enc\(s).\(j) conv bwd")
                    }
                    onBucketReady?(encRange[s])
                }
            }
        }
    }
}

/// Copies `count` floats per sample between buffers with different sample strides: concat along channels
/// ([up, skip] → the skip half) and its adjoint (splitting the concat gradient).
func copyChannels(from src: UnsafePointer<Float>, fromStride: Int, to dst: UnsafeMutablePointer<Float>, toStride: Int,
                  count: Int, batch: Int) {
    for n in 0..<batch { (dst + n * toStride).update(from: src + n * fromStride, count: count) }
}
