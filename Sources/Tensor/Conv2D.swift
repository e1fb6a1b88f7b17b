import CKernels
import Dispatch
import Foundation

/// im2col for a 3×3 kernel, padding 1, stride 1 or 2: row r = (c·3 + kh)·3 + kw of `col` (row stride `ld`) holds
/// x[c, oh·s + kh − 1, ow·s + kw − 1] (0 outside) for all (oh, ow), laid out oh-major.
/// Only output rows rowStart..<rowStart+rowCount are produced (rowCount nil = all), at column (oh − rowStart)·wo + ow:
/// the L2-tiled path builds one band of rows at a time.
/// On AVX-512 CPUs the CKernels version does the same copy with masked vector loads (no per-row memmove call, no
/// scalar stride-2 gather): im2col and its row copies were ~11 % of a 128² step.
@inline(__always)
func im2col3x3(_ x: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int, stride s: Int,
               col: UnsafeMutablePointer<Float>, ld: Int, rowStart: Int = 0, rowCount: Int? = nil) {
    let ho = (h - 1) / s + 1
    if Im2col.useKernel {
        ek_im2col3x3(x, Int32(channels), Int32(h), Int32(w), Int32(s), col, Int32(ld), Int32(rowStart), Int32(rowCount ?? ho))
    } else {
        im2col3x3Portable(x, channels: channels, height: h, width: w, stride: s, col: col, ld: ld, rowStart: rowStart, rowCount: rowCount)
    }
}

enum Im2col {
    /// The vector im2col and col2im (bit-identical to the portable ones either way); tests switch them off to compare.
    nonisolated(unsafe) static var useKernel = ConvGEMM.kernelsAvailable
    /// The implicit im2col of the stride-1 large-plane layers (ImplicitIm2col); tests switch it off to compare.
    nonisolated(unsafe) static var useImplicit = true
}

/// The reference im2col (any CPU).
func im2col3x3Portable(_ x: UnsafePointer<Float>, channels: Int, height h: Int, width w: Int, stride s: Int,
                       col: UnsafeMutablePointer<Float>, ld: Int, rowStart: Int = 0, rowCount: Int? = nil) {
    let ho = (h - 1) / s + 1, wo = (w - 1) / s + 1
    let r0 = rowStart, r1 = rowStart + (rowCount ?? ho)
    for c in 0..<channels {
        let xc = x + c * h * w
        for kh in 0..<3 {
            for kw in 0..<3 {
                let row = col + ((c * 3 + kh) * 3 + kw) * ld
                let dx = kw - 1
                // Valid output columns: 0 <= ow·s + dx < w.
                let owLo = dx < 0 ? 1 : 0
                let owHi = w - 1 - dx < 0 ? 0 : min(wo, (w - 1 - dx) / s + 1)
                for oh in r0..<r1 {
                    let ih = oh * s + kh - 1
                    let dst = row + (oh - r0) * wo
                    if ih < 0 || ih >= h { zeroFill(dst, wo); continue }
                    let src = xc + ih * w
                    for ow in 0..<owLo { dst[ow] = 0 }
                    if s == 1 {
                        if owHi > owLo { (dst + owLo).update(from: src + owLo + dx, count: owHi - owLo) }
                    } else {
                        for ow in owLo..<max(owLo, owHi) { dst[ow] = src[ow * s + dx] }
                    }
                    for ow in max(owLo, owHi)..<wo { dst[ow] = 0 }
                }
            }
        }
    }
}

/// The adjoint of im2col3x3: dx[c, ih, iw] += dcol[row, oh, ow] for every (row, oh, ow) that im2col read from it.
/// On AVX-512 CPUs the CKernels version (same additions in the same order: bit-identical; the stride-2 scatter was
/// scalar, ~1.4 % of a 128² step).
@inline(__always)
func col2im3x3(_ dcol: UnsafePointer<Float>, ld: Int, channels: Int, height h: Int, width w: Int, stride s: Int,
               dx: UnsafeMutablePointer<Float>, rowStart: Int = 0, rowCount: Int? = nil) {
    if Im2col.useKernel {
        ek_col2im3x3(dcol, Int32(ld), Int32(channels), Int32(h), Int32(w), Int32(s), dx, Int32(rowStart), Int32(rowCount ?? ((h - 1) / s + 1)))
    } else {
        col2im3x3Portable(dcol, ld: ld, channels: channels, height: h, width: w, stride: s, dx: dx, rowStart: rowStart, rowCount: rowCount)
    }
}

/// The reference col2im (any CPU).
func col2im3x3Portable(_ dcol: UnsafePointer<Float>, ld: Int, channels: Int, height h: Int, width w: Int, stride s: Int,
                       dx: UnsafeMutablePointer<Float>, rowStart: Int = 0, rowCount: Int? = nil) {
    let ho = (h - 1) / s + 1, wo = (w - 1) / s + 1
    let r0 = rowStart, r1 = rowStart + (rowCount ?? ho)
    for c in 0..<channels {
        let xc = dx + c * h * w
        for kh in 0..<3 {
            for kw in 0..<3 {
                let row = dcol + ((c * 3 + kh) * 3 + kw) * ld
                let ddx = kw - 1
                let owLo = ddx < 0 ? 1 : 0
                let owHi = w - 1 - ddx < 0 ? 0 : min(wo, (w - 1 - ddx) / s + 1)
                if owHi <= owLo { continue }
                for oh in r0..<r1 {
                    let ih = oh * s + kh - 1
                    if ih < 0 || ih >= h { continue }
                    let src = row + (oh - r0) * wo
                    let dst = xc + ih * w
                    if s == 1 {
                        let d = dst + ddx
                        for ow in owLo..<owHi { d[ow] += src[ow] }
                    } else {
                        for ow in owLo..<owHi { dst[ow * s + ddx] += src[ow] }
                    }
                }
            }
        }
    }
}

/// y[c, p] += bias[c] over one sample's [channels, plane] output.
@inline(__always)
func addChannelBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, channels: Int, plane: Int) {
    for c in 0..<channels { let b = bias[c], r = y + c * plane; for p in 0..<plane { r[p] += b } }
}

/// db[c] += Σ_p dy[c, p] over one [channels, plane] block (its adjoint: the bias gradient). SIMD, fixed order.
@inline(__always)
func addChannelSums(_ db: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, channels: Int, plane: Int) {
    for c in 0..<channels { db[c] += Float(planeSum(dy + c * plane, plane)) }
}

/// Scratch shared by all convolutions of one workspace: the column matrix, its gradient and a group output.
/// Large-plane layers run one sample per worker thread (BLAS single-threaded inside), so im2col/col2im and the
/// bias loops are parallel too; each worker has its own column buffers and dW/db partial sums.
final class ConvScratch {
    let col: FloatBuffer
    let dcol: FloatBuffer
    let tmp: FloatBuffer
    let workers: Int
    let workerCol: [FloatBuffer]
    let workerDcol: [FloatBuffer]
    let workerDW: [FloatBuffer]
    /// Flipped, transposed weights of the layer being back-propagated (stride-1 input gradient as a convolution).
    /// Grown on first use for a layer shape, then reused: steady-state steps do not allocate.
    private(set) var flipped: FloatBuffer?
    func flippedWeights(count: Int) -> UnsafeMutablePointer<Float> {
        if let f = flipped, f.count >= count { return f.pointer }
        let f = FloatBuffer(count: count)
        flipped = f
        return f.pointer
    }
    /// Per-worker row-offset tables of the implicit-im2col GEMM (one Int32 per row of K); grown on first use.
    private var offsets: [UnsafeMutablePointer<Int32>?]
    private var offsetCapacity: [Int]
    func rowOffsets(worker: Int, count: Int) -> UnsafeMutablePointer<Int32> {
        if let o = offsets[worker], offsetCapacity[worker] >= count { return o }
        offsets[worker]?.deallocate()
        let o = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        offsets[worker] = o
        offsetCapacity[worker] = count
        return o
    }
    deinit { for o in offsets { o?.deallocate() } }

    init(colCount: Int, tmpCount: Int, workers: Int = 1, workerColCount: Int = 0, workerDWCount: Int = 0) {
        offsets = Array(repeating: nil, count: max(1, workers))
        offsetCapacity = Array(repeating: 0, count: max(1, workers))
        col = FloatBuffer(count: colCount)
        dcol = FloatBuffer(count: colCount)
        tmp = FloatBuffer(count: tmpCount)
        self.workers = max(1, workers)
        workerCol = (0..<self.workers).map { _ in FloatBuffer(count: workerColCount) }
        workerDcol = (0..<self.workers).map { _ in FloatBuffer(count: workerColCount) }
        workerDW = (0..<self.workers).map { _ in FloatBuffer(count: workerDWCount) }
    }

    /// Worker threads to use: the BLAS thread count (one sample per core instead of one GEMM over two cores).
    static func defaultWorkers() -> Int { max(1, min(8, BLASInfo.threads)) }
}

/// Runs body(0..<n) on n threads with BLAS single-threaded meanwhile (restored afterwards).
func parallelWorkers(_ n: Int, _ body: (Int) -> Void) {
    if n <= 1 { body(0); return }
    let saved = BLASInfo.threads
    BLASInfo.setThreads(1)
    DispatchQueue.concurrentPerform(iterations: n, execute: body)
    BLASInfo.setThreads(saved)
}

/// Implicit im2col for a stride-1 3×3 conv (padding 1) over a band of output rows: the input rows the band reads,
/// r0 − 1 ..< r0 + rc + 1, are copied with a zero border into `band` as [channels, rows + 2, w + 2] (channel stride
/// `cs`); im2col row (c, kh, kw) is then the shifted view band + c·cs + kh·(w + 2) + kw of length (rc − 1)·(w + 2) + w,
/// over "padded-width" output positions p′ = r·(w + 2) + j (j ≥ w are junk columns, dropped by `scatterBand`). The GEMM
/// reads those views in place (ek_sgemm_nn_rows): ~9× less copying than writing the column matrix, whose stores were
/// ~9 % of a 128² step for the Cout 32/64 layers.
enum ImplicitIm2col {
    /// Layer passes (forward or backward) that took the implicit path: tests check theirs did.
    nonisolated(unsafe) static var passes = 0

    /// Target size of a padded input band (tests lower it to get several bands and a partial last one).
    nonisolated(unsafe) static var bandFloats = 128 * 1024

    /// Output rows per band: the padded input band of `channels` about `bandFloats` (half of L2), at most `ho`.
    static func bandRows(ho: Int, w: Int, channels: Int) -> Int {
        // A small plane is one band even if somewhat larger: the weight-gradient GEMM's inner dimension is the band's
        // columns and it got slow on short ones (32² planes: 1 band of 1 086 columns instead of 3 of ~370).
        if channels * (ho + 2) * (w + 2) <= 4 * bandFloats { return ho }
        return balanced(ho: ho, rows: max(1, min(ho, bandFloats / max(1, channels * (w + 2)) - 2)))
    }

    /// The fewest bands of at most `rows` rows over `ho`, of near-equal height: the rows per band.
    static func balanced(ho: Int, rows r: Int) -> Int {
        let nb = (ho + r - 1) / r
        return (ho + nb - 1) / nb
    }

    static func padBand(_ x: UnsafePointer<Float>, channels: Int, h: Int, w: Int, r0: Int, rc: Int,
                        band: UnsafeMutablePointer<Float>, cs: Int) {
        let wp = w + 2
        for c in 0..<channels {
            let xc = x + c * h * w, bc = band + c * cs
            for br in 0..<(rc + 2) {
                let ih = r0 - 1 + br, row = bc + br * wp
                if ih < 0 || ih >= h { zeroFill(row, wp); continue }
                row[0] = 0
                (row + 1).update(from: xc + ih * w, count: w)
                row[w + 1] = 0
            }
        }
    }

    static func fillOffsets(_ off: UnsafeMutablePointer<Int32>, channels: Int, cs: Int, w: Int) {
        let wp = w + 2
        for c in 0..<channels { for kh in 0..<3 { for kw in 0..<3 { off[(c * 3 + kh) * 3 + kw] = Int32(c * cs + kh * wp + kw) } } }
    }

    /// Columns of the band GEMM: up to the last valid output of the band's last row.
    static func columns(rc: Int, w: Int) -> Int { (rc - 1) * (w + 2) + w }

    // Stride 2. Output rows r0 ..< r0 + rc read input rows 2·r0 − 1 … 2·(r0 + rc) − 1. Each channel's rows are split
    // into four phase planes, (even rows, even columns), (even, odd), (odd, even), (odd, odd), each (rc + 1) × (wo + 1)
    // with pitch wo + 1, where odd phases start one row (column) early: their index 0 is input row (column) −1, zero.
    // Tap (kh, kw) of output (i, j) is element (i + [kh = 2], j + [kw = 2]) of phase ([kh ≠ 1], [kw ≠ 1]): a shifted
    // view again, so the row-offset kernels run stride-2 layers without a column matrix (~9× less copying; the
    // stride-2 convs were ~10 % of a 128² step at 55–65 GFLOP/s). Output positions are p′ = i·(wo + 1) + j; j = wo is junk.

    /// Floats per phase plane of a band of at most `rows` output rows.
    static func phasePlane(rows: Int, wo: Int) -> Int { (rows + 1) * (wo + 1) }

    /// x [channels, h, w] → the band's phase planes: channel c's four at band + c·4·ps, phase q at + q·ps.
    static func padPhaseBand(_ x: UnsafePointer<Float>, channels: Int, h: Int, w: Int, wo: Int, r0: Int, rc: Int,
                             band: UnsafeMutablePointer<Float>, ps: Int) {
        let wp = wo + 1
        for c in 0..<channels {
            let xc = x + c * h * w
            for ro in 0..<2 {
                let even = band + (c * 4 + 2 * ro) * ps, odd = even + ps
                for t in 0...rc {
                    let ih = 2 * (r0 + t) - ro, off = t * wp
                    if ih < 0 || ih >= h { zeroFill(even + off, wp); zeroFill(odd + off, wp); continue }
                    ek_phase_row(xc + ih * w, Int32(w), even + off, odd + off, Int32(wp))
                }
            }
        }
    }

    /// Row offsets of the stride-2 band GEMM: tap (c, kh, kw) → its phase plane, shifted.
    static func fillPhaseOffsets(_ off: UnsafeMutablePointer<Int32>, channels: Int, ps: Int, wo: Int) {
        let wp = wo + 1
        for c in 0..<channels {
            for kh in 0..<3 {
                for kw in 0..<3 {
                    let q = (kh == 1 ? 0 : 2) + (kw == 1 ? 0 : 1)
                    off[(c * 3 + kh) * 3 + kw] = Int32((c * 4 + q) * ps + (kh == 2 ? wp : 0) + (kw == 2 ? 1 : 0))
                }
            }
        }
    }

    /// Columns of the stride-2 band GEMM.
    static func phaseColumns(rc: Int, wo: Int) -> Int { (rc - 1) * (wo + 1) + wo }

    /// Band rows of a stride-2 layer that fit the worker buffers, or nil: `col` holds the phase band, and later the
    /// band's dcol = Wᵀ·dy (cin·9 × rc·wo) for col2im; `dcol` holds dy′ (cout × rc·(wo + 1)) and dy′ᵀ.
    static func fittingPhaseRows(ho: Int, wo: Int, cin: Int, cout: Int, colCapacity: Int, dcolCapacity: Int) -> Int? {
        var r = min(ho, max(1, bandFloats / max(1, 4 * cin * (wo + 1)) - 1))
        func fits(_ r: Int) -> Bool {
            max(4 * cin * phasePlane(rows: r, wo: wo), 9 * cin * r * wo) <= colCapacity
                && phaseDcolLayout(rows: r, wo: wo, cout: cout).total <= dcolCapacity
        }
        while r >= 1 && !fits(r) { r -= 1 }
        guard r >= 1 else { return nil }
        return balanced(ho: ho, rows: r)
    }

    /// Offsets in a stride-2 backward worker's `dcol` buffer: dy′ and its transpose [columns, cout] (64-byte aligned).
    static func phaseDcolLayout(rows r: Int, wo: Int, cout: Int) -> (dyT: Int, total: Int) {
        let dyT = (cout * r * (wo + 1) + 15) / 16 * 16
        return (dyT, dyT + cout * r * (wo + 1))
    }

    /// out [channels, rc·pitch] (padded width; pitch w + 2 for stride 1, w + 1 for stride 2) → rows r0 ..< r0 + rc
    /// of dst [channels, h, w], written or added.
    static func scatterBand(_ out: UnsafePointer<Float>, channels: Int, h: Int, w: Int, r0: Int, rc: Int, pitch: Int? = nil,
                            into dst: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let wp = pitch ?? w + 2, ld = rc * wp
        for c in 0..<channels {
            for r in 0..<rc {
                let src = out + c * ld + r * wp, d = dst + c * h * w + (r0 + r) * w
                if accumulate { addInPlace(d, src, w) } else { d.update(from: src, count: w) }
            }
        }
    }

    /// Band rows of both passes, in the worker's column buffers: the x band in `col`; the dy band, the input-gradient
    /// band and dy′ᵀ in `dcol` (the forward's output band fits where those do); nil when even one row does not fit.
    static func fittingRows(ho: Int, w: Int, cin: Int, cout: Int, colCapacity: Int, dcolCapacity: Int) -> Int? {
        let wp = w + 2
        var r = bandRows(ho: ho, w: w, channels: cin)
        while r >= 1 && (cin * (r + 2) * wp > colCapacity || dcolLayout(rows: r, w: w, cin: cin, cout: cout).total > dcolCapacity) { r -= 1 }
        guard r >= 1 else { return nil }
        return balanced(ho: ho, rows: r)
    }

    /// Offsets (floats) in a backward worker's `dcol` buffer: the dy band, the input-gradient band, and dy′ transposed
    /// to [columns, cout] (64-byte aligned: it is the NN kernel's streamed operand).
    static func dcolLayout(rows r: Int, w: Int, cin: Int, cout: Int) -> (out: Int, dyT: Int, total: Int) {
        let wp = w + 2, out = cout * (r + 2) * wp
        let dyT = (out + cin * r * wp + 15) / 16 * 16
        return (out, dyT, dyT + cout * r * wp)
    }

    /// Layers up to this Cout take the implicit path on any plane (the 128² and 64² networks' stride-1 layers from
    /// 32² planes up, and the 64² network's 16² ones); wider ones only on planes at least `wideMinWidth` wide, and
    /// otherwise keep the grouped column path, where OpenBLAS's NT product serves their weight gradient.
    nonisolated(unsafe) static var maxCout = Conv3x3.envInt("EPISODIC_IMPLICIT_MAX_COUT") ?? 128

    /// Planes from which Cout > maxCout layers take the implicit path too. At 32² (the 256² network's Cout-256
    /// level) the grouped path kept a 151 MB column matrix per conv and its forward ran at a quarter of the implicit
    /// one's speed; at 16² (the 128² network's Cout-256 level) the implicit backward lost more than its forward gained.
    /// Benchmark knob: EPISODIC_IMPLICIT_WIDE_WIDTH.
    nonisolated(unsafe) static var wideMinWidth = Conv3x3.envInt("EPISODIC_IMPLICIT_WIDE_WIDTH") ?? 32

    /// Stride-2 layers take the implicit path too (phase planes); tests and benchmarks switch it off to compare.
    /// Benchmark knob: EPISODIC_IMPLICIT_STRIDE2=0.
    nonisolated(unsafe) static var stride2 = getenv("EPISODIC_IMPLICIT_STRIDE2").map { String(cString: $0) != "0" } ?? true

    /// Whether the implicit form can run: the project's kernels on this CPU. Any M: the row-offset kernels have no
    /// OpenBLAS counterpart (the largest the U-Net routes here is M = 512, the 512→256 decoder conv's dx at 256²).
    static func usable() -> Bool { ConvGEMM.useKernels && Im2col.useImplicit }

    /// Planes at least this wide run one sample per GEMM in the implicit form even where the column path would group
    /// samples: the grouped column matrix it replaces (75 MB for the 256→128 decoder conv at 128², batch 8; 19 MB at
    /// 16² in the 64² network) went through memory twice and was kept for backward. At 16² a per-sample GEMM still has
    /// 288 columns; moving the 64² network's 16² layers here cut their time 0.115 → 0.086 s per step (1 rank, batch 8).
    /// Benchmark knob: EPISODIC_IMPLICIT_MIN_WIDTH (read once, before any workspace is sized).
    nonisolated(unsafe) static var minGroupedWidth = Conv3x3.envInt("EPISODIC_IMPLICIT_MIN_WIDTH") ?? 16
}

/// 3×3 convolution, padding 1, stride 1 or 2, with bias. Weight [cout, cin, 3, 3] at `weight` in the arena, bias
/// [cout] at `bias`. Per group of g samples: col = im2col (K = cin·9 rows, g·HWo columns), Y = W·col (+ b).
/// Small spatial sizes use g > 1 so the GEMM is not a sliver (one GEMM over several samples).
struct Conv3x3 {
    let cin: Int
    let cout: Int
    let stride: Int
    let weight: Int
    let bias: Int

    var k: Int { cin * 9 }

    func outputSize(_ h: Int, _ w: Int) -> (Int, Int) { ((h - 1) / stride + 1, (w - 1) / stride + 1) }

    /// Samples per GEMM: enough columns (~2048) to keep the GEMM efficient at tiny planes.
    static func groupSize(batch: Int, outPlane: Int) -> Int { max(1, min(batch, groupColumns / max(1, outPlane))) }

    /// Grouped layers up to this Cout take their stride-1 input gradient as a convolution with the flipped kernel;
    /// wider ones (the 480-channel levels) as dcol = Wᵀ·dy and col2im. The flipped form exists for the GEMM's inner
    /// dimension (Cout·9 instead of Cout), which no longer matters at Cout 480, while its weight flip costs a pass
    /// over the largest weights every step: 64² backward of those levels 0.097 / 0.090 → 0.088 / 0.080 s (1 rank,
    /// batch 8, two profile pairs); with the 256-channel level as well it was no better. Benchmark knob:
    /// EPISODIC_GROUPED_FLIP_MAX_COUT.
    nonisolated(unsafe) static var groupedFlipMaxCout = Conv3x3.envInt("EPISODIC_GROUPED_FLIP_MAX_COUT") ?? 256

    /// Target GEMM width in columns when grouping samples (tests lower it to 1 to exercise the per-sample path).
    nonisolated(unsafe) static var groupColumns = Conv3x3.envInt("EPISODIC_CONV_GROUP_COLUMNS") ?? 2048

    /// The forward runs implicit im2col at this shape (the backward too when its bands fit the scratch).
    /// `width` is the output plane's (stride 2: the phase planes' width).
    func implicitApplies(width w: Int) -> Bool {
        (stride == 1 || (stride == 2 && ImplicitIm2col.stride2)) && cin > 1
            && (cout <= ImplicitIm2col.maxCout || w >= ImplicitIm2col.wideMinWidth) && ImplicitIm2col.usable()
    }

    /// Band rows of the implicit path for this layer in this scratch, or nil for the column path.
    func implicitRows(ho: Int, wo: Int, scratch: ConvScratch) -> Int? {
        guard implicitApplies(width: wo) else { return nil }
        if stride == 2 {
            return ImplicitIm2col.fittingPhaseRows(ho: ho, wo: wo, cin: cin, cout: cout, colCapacity: scratch.workerCol[0].count,
                                                   dcolCapacity: scratch.workerDcol[0].count)
        }
        return ImplicitIm2col.fittingRows(ho: ho, w: wo, cin: cin, cout: cout, colCapacity: scratch.workerCol[0].count,
                                          dcolCapacity: scratch.workerDcol[0].count)
    }

    /// The workspace was sized for this grouping; a knob changed since would overrun it.
    private func checkGroupedScratch(g: Int, plane: Int, _ scratch: ConvScratch) {
        precondition(k * g * plane <= scratch.col.count && cout * g * plane <= scratch.tmp.count,
                     "Conv3x3 \(cin)→\(cout): scratch sized for another grouping (knobs changed after the workspace was made)")
    }

    /// Samples per GEMM for this layer at this shape: 1 on the implicit path from 16-wide planes up, else groupSize.
    /// Workspaces are sized from it, so it must not change between sizing and use (the knobs are set before).
    func samplesPerGEMM(batch: Int, outH ho: Int, outW wo: Int) -> Int {
        if wo >= ImplicitIm2col.minGroupedWidth && implicitApplies(width: wo) { return 1 }
        return Conv3x3.groupSize(batch: batch, outPlane: ho * wo)
    }

    /// Column-matrix size (floats) above which one sample's im2col no longer fits L2: build it in bands of output
    /// rows of about `tileFloats` and run one GEMM per band while the band is cache-resident (PERF-NOTES: 1.6–1.8×
    /// for the Cout 32/64 layers at 64²–128²).
    nonisolated(unsafe) static var tileThreshold = 512 * 1024
    nonisolated(unsafe) static var tileFloats = Conv3x3.envInt("EPISODIC_CONV_TILE_FLOATS") ?? 256 * 1024

    /// Benchmark knob (documented in docs/performance.md): a positive integer from the environment, else nil.
    static func envInt(_ name: String) -> Int? {
        guard let c = getenv(name), let v = Int(String(cString: c)), v > 0 else { return nil }
        return v
    }

    /// Output rows per band, or nil for the untiled path. Only large planes are tiled: deep layers (huge K, tiny
    /// plane) use the grouped path instead, and a band keeps at least ~256 columns so each GEMM stays efficient.
    func bandRows(batch: Int, outH ho: Int, outW wo: Int) -> Int? {
        guard k * ho * wo > Conv3x3.tileThreshold, samplesPerGEMM(batch: batch, outH: ho, outW: wo) == 1 else { return nil }
        let rows = max(1, min(ho, Conv3x3.tileFloats / (k * wo), ho))
        guard rows < ho else { return nil }
        return max(rows, min(ho, (255 + wo) / wo))
    }

    /// Scratch sizes needed for this layer at a shape: (shared col and dcol count, tmp count, per-worker col count,
    /// per-worker dW+db count). Layers with one sample per GEMM use the per-worker buffers.
    func scratchNeeds(batch: Int, h: Int, w: Int) -> (Int, Int, Int, Int) {
        let (ho, wo) = outputSize(h, w)
        if winogradApplies(batch: batch, h: h, w: w) {
            let (c, t) = winogradScratch(batch: batch, h: h, w: w)
            return (c, t, 0, 0)
        }
        let g = samplesPerGEMM(batch: batch, outH: ho, outW: wo)
        if g == 1 {
            let rows = bandRows(batch: batch, outH: ho, outW: wo) ?? ho
            return (0, 0, k * rows * wo, cout * k + cout)
        }
        return (k * g * ho * wo, cout * g * ho * wo, 0, 0)
    }

    /// Floats a training forward keeps for backward's dW: the grouped path's whole column matrix, K × batch·plane
    /// (0 for the per-sample path, which rebuilds its L2-sized bands instead). Rebuilding it was ~6 % of a 64² step;
    /// at 128² batch 8 it costs ~285 MB over all layers.
    func savedColumnsCount(batch: Int, h: Int, w: Int) -> Int {
        if winogradApplies(batch: batch, h: h, w: w) { return winogradSavedCount(batch: batch, h: h, w: w) }
        let (ho, wo) = outputSize(h, w)
        return samplesPerGEMM(batch: batch, outH: ho, outW: wo) > 1 ? k * batch * ho * wo : 0
    }

    /// `saveColumns` (savedColumnsCount floats, grouped path only): build the column matrix there, group after group,
    /// so backward can reuse it. `addBias` false leaves the bias out: for a conv feeding an InstanceNorm, which
    /// subtracts each plane's mean, y + b and y normalise to the same output (the U-Net's case; it saves a pass over
    /// y, and backward already gives that bias its exact gradient 0).
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, h: Int, w: Int,
                 params: UnsafePointer<Float>, scratch: ConvScratch, saveColumns: UnsafeMutablePointer<Float>? = nil,
                 addBias: Bool = true) {
        if winogradApplies(batch: batch, h: h, w: w) {
            forwardWinograd(x: x, y: y, batch: batch, h: h, w: w, params: params, scratch: scratch, saveColumns: saveColumns,
                            addBias: addBias)
            return
        }
        let (ho, wo) = outputSize(h, w)
        let plane = ho * wo
        let g = samplesPerGEMM(batch: batch, outH: ho, outW: wo)
        let col = scratch.col.pointer
        let wp = params + weight, bp = params + bias
        if g == 1 {
            if let ir = implicitRows(ho: ho, wo: wo, scratch: scratch) {
                forwardImplicit(x: x, y: y, batch: batch, h: h, w: w, rows: ir, params: params, scratch: scratch, addBias: addBias)
                return
            }
            // One sample per worker; bands of output rows when a sample's column matrix exceeds L2.
            let rows = bandRows(batch: batch, outH: ho, outW: wo) ?? ho
            let nw = min(scratch.workers, batch)
            parallelWorkers(nw) { wi in
                let col = scratch.workerCol[wi].pointer
                var n = wi
                while n < batch {
                    let xn = x + n * cin * h * w, yn = y + n * cout * plane
                    var r0 = 0
                    while r0 < ho {
                        let rc = min(rows, ho - r0), pb = rc * wo
                        im2col3x3(xn, channels: cin, height: h, width: w, stride: stride, col: col, ld: pb, rowStart: r0, rowCount: rc)
                        convGEMM(m: cout, n: pb, k: k, a: wp, lda: k, b: col, ldb: pb, beta: 0, c: yn + r0 * wo, ldc: plane)
                        r0 += rc
                    }
                    if addBias { addChannelBias(yn, bp, channels: cout, plane: plane) }
                    n += nw
                }
            }
            return
        }
        checkGroupedScratch(g: g, plane: plane, scratch)
        var n0 = 0
        while n0 < batch {
            let gn = min(g, batch - n0)
            let ld = gn * plane
            let col = saveColumns.map { $0 + k * n0 * plane } ?? col
            let tA = Profiler.start()
            for i in 0..<gn {
                im2col3x3(x + (n0 + i) * cin * h * w, channels: cin, height: h, width: w, stride: stride, col: col + i * plane, ld: ld)
            }
            Profiler.stop(tA, "  conv fwd im2col (grouped)")
            let tB = Profiler.start()
            defer { Profiler.stop(tB, "  conv fwd gemm+out (grouped)") }
            if gn == 1 {
                let yn = y + n0 * cout * plane
                convGEMM(m: cout, n: plane, k: k, a: wp, lda: k, b: col, ldb: ld, beta: 0, c: yn, ldc: plane)
                if addBias { addChannelBias(yn, bp, channels: cout, plane: plane) }
            } else {
                let t = scratch.tmp.pointer
                convGEMM(m: cout, n: ld, k: k, a: wp, lda: k, b: col, ldb: ld, beta: 0, c: t, ldc: ld)
                // [cout, g, plane] → [g, cout, plane] with the bias.
                for i in 0..<gn {
                    for co in 0..<cout {
                        let b = bp[co], src = t + co * ld + i * plane, dst = y + ((n0 + i) * cout + co) * plane
                        if addBias { for p in 0..<plane { dst[p] = src[p] + b } } else { dst.update(from: src, count: plane) }
                    }
                }
            }
            n0 += gn
        }
    }

    /// dW and db are written (not accumulated); dx is written, or added to when `accumulate` (skip gradients).
    /// dx = nil skips the input gradient (first layer).
    /// `biasGradient` false writes db = 0 without summing dy (a bias feeding an InstanceNorm has exact gradient 0).
    func backward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, accumulate: Bool,
                  batch: Int, h: Int, w: Int, params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>,
                  scratch: ConvScratch, biasGradient: Bool = true, savedColumns: UnsafePointer<Float>? = nil) {
        if winogradApplies(batch: batch, h: h, w: w) {
            backwardWinograd(x: x, dy: dy, dx: dx, accumulate: accumulate, batch: batch, h: h, w: w, params: params,
                             grads: grads, scratch: scratch, biasGradient: biasGradient, saved: savedColumns)
            return
        }
        let (ho, wo) = outputSize(h, w)
        let plane = ho * wo
        let g = samplesPerGEMM(batch: batch, outH: ho, outW: wo)
        let col = scratch.col.pointer, dcol = scratch.dcol.pointer
        let wp = params + weight
        let dw = grads + weight, db = grads + bias
        zeroFill(db, cout)
        // Stride 1, one sample per GEMM: dx is the convolution of dy with the flipped, transposed kernel,
        // dx = W̃·im2col(dy) with W̃ [cin, cout·9], so the GEMM's inner dimension is cout·9 instead of cout and no
        // col2im is needed (the dcol GEMM with K = cout is memory-bound at 128², Cout 32). Needs cout ≤ cin so
        // im2col(dy) fits the worker's dcol buffer.
        // The grouped path uses the same form up to groupedFlipMaxCout: its dcol GEMM (inner dimension cout, a
        // 9·cin-row output) and col2im were ~45 % of the step at 64² (layers at 32² and below, Cout 32–480).
        let flipDX = dx != nil && stride == 1 && cout <= cin && (g == 1 || cout <= Conv3x3.groupedFlipMaxCout)
        if let dx = dx, !accumulate, !flipDX { zeroFill(dx, batch * cin * h * w) }
        let kf = cout * 9
        var wfp: UnsafePointer<Float>? = nil
        if flipDX {
            let wf = scratch.flippedWeights(count: cin * kf)
            // wf[ci, co·9 + (2 − kh)·3 + (2 − kw)] = W[co, ci, kh, kw], written in order (ek_flip3x3 says why).
            ek_flip3x3(Int32(cout), Int32(cin), wp, wf)
            wfp = UnsafePointer(wf)
        }
        if g == 1 {
            let rows = bandRows(batch: batch, outH: ho, outW: wo) ?? ho
            let nw = min(scratch.workers, batch)
            let kw = cout * k
            if stride == 2, let ir = implicitRows(ho: ho, wo: wo, scratch: scratch) {
                backwardImplicitStride2(x: x, dy: dy, dx: dx, batch: batch, h: h, w: w, rows: ir, dw: dw, db: db,
                                        params: params, scratch: scratch, biasGradient: biasGradient)
                return
            }
            if stride == 1, dx == nil || wfp != nil, let ir = implicitRows(ho: ho, wo: wo, scratch: scratch) {
                backwardImplicit(x: x, dy: dy, dx: dx, accumulate: accumulate, batch: batch, h: h, w: w, rows: ir, wf: wfp,
                                 dw: dw, db: db, scratch: scratch, biasGradient: biasGradient)
                return
            }
            parallelWorkers(nw) { wi in
                let col = scratch.workerCol[wi].pointer, dcol = scratch.workerDcol[wi].pointer
                let dwW = scratch.workerDW[wi].pointer, dbW = dwW + kw
                zeroFill(dwW, kw + cout)
                var first = true
                var n = wi
                while n < batch {
                    let xn = x + n * cin * h * w, dyn = dy + n * cout * plane
                    if biasGradient { addChannelSums(dbW, dyn, channels: cout, plane: plane) }
                    var r0 = 0
                    while r0 < ho {
                        let rc = min(rows, ho - r0), pb = rc * wo
                        let dyb = dyn + r0 * wo
                        im2col3x3(xn, channels: cin, height: h, width: w, stride: stride, col: col, ld: pb, rowStart: r0, rowCount: rc)
                        convGEMM(transB: true, m: cout, n: k, k: pb, a: dyb, lda: plane, b: col, ldb: pb, beta: first ? 0 : 1, c: dwW, ldc: k)
                        first = false
                        if let dx = dx, let wf = wfp {
                            im2col3x3(dyn, channels: cout, height: h, width: w, stride: 1, col: dcol, ld: pb, rowStart: r0, rowCount: rc)
                            convGEMM(m: cin, n: pb, k: kf, a: wf, lda: kf, b: dcol, ldb: pb, beta: accumulate ? 1 : 0,
                                  c: dx + n * cin * h * w + r0 * w, ldc: h * w)
                        } else if let dx = dx {
                            sgemm(transA: true, m: k, n: pb, k: cout, a: wp, lda: k, b: dyb, ldb: plane, beta: 0, c: dcol, ldc: pb)
                            col2im3x3(dcol, ld: pb, channels: cin, height: h, width: w, stride: stride, dx: dx + n * cin * h * w,
                                      rowStart: r0, rowCount: rc)
                        }
                        r0 += rc
                    }
                    n += nw
                }
            }
            // Sum the workers' partial dW, db (fixed order: deterministic).
            (dw).update(from: scratch.workerDW[0].pointer, count: kw)
            db.update(from: scratch.workerDW[0].pointer + kw, count: cout)
            for wi in 1..<max(1, nw) {
                addInPlace(dw, scratch.workerDW[wi].pointer, kw)
                addInPlace(db, scratch.workerDW[wi].pointer + kw, cout)
            }
            return
        }
        checkGroupedScratch(g: g, plane: plane, scratch)
        var n0 = 0
        while n0 < batch {
            let gn = min(g, batch - n0)
            let ld = gn * plane
            // The forward's columns when it kept them (same layout: group after group), else rebuilt here.
            let colg: UnsafePointer<Float>
            if let saved = savedColumns {
                colg = saved + k * n0 * plane
            } else {
                let tA = Profiler.start()
                for i in 0..<gn {
                    im2col3x3(x + (n0 + i) * cin * h * w, channels: cin, height: h, width: w, stride: stride, col: col + i * plane, ld: ld)
                }
                Profiler.stop(tA, "  conv bwd im2col")
                colg = UnsafePointer(col)
            }
            let dyg: UnsafePointer<Float>
            if gn == 1 {
                dyg = dy + n0 * cout * plane
            } else {
                let t = scratch.tmp.pointer
                gatherSamples(dy + n0 * cout * plane, sampleStride: cout * plane, into: t, channels: cout, samples: gn, plane: plane)
                dyg = UnsafePointer(t)
            }
            if biasGradient { addChannelSums(db, dyg, channels: cout, plane: ld) }
            let tB = Profiler.start()
            convGEMM(transB: true, m: cout, n: k, k: ld, a: dyg, lda: ld, b: colg, ldb: ld, beta: n0 == 0 ? 0 : 1, c: dw, ldc: k)
            Profiler.stop(tB, "  conv bwd gemm dW")
            if let dx = dx, let wf = wfp {
                // dx = W̃·im2col(dy) for the whole group ([cin, g·plane], into `col`, free after the dW GEMM), then
                // each sample's [cin, plane] block is written (or added) to its place in dx.
                let tC = Profiler.start()
                for i in 0..<gn {
                    im2col3x3(dy + (n0 + i) * cout * plane, channels: cout, height: h, width: w, stride: 1, col: dcol + i * plane, ld: ld)
                }
                convGEMM(m: cin, n: ld, k: kf, a: wf, lda: kf, b: dcol, ldb: ld, beta: 0, c: col, ldc: ld)
                Profiler.stop(tC, "  conv bwd gemm dx (flipped)")
                scatterSamples(col, into: dx + n0 * cin * plane, sampleStride: cin * plane, channels: cin, samples: gn,
                               plane: plane, accumulate: accumulate)
            } else if let dx = dx {
                let tC = Profiler.start()
                sgemm(transA: true, m: k, n: ld, k: cout, a: wp, lda: k, b: dyg, ldb: ld, beta: 0, c: dcol, ldc: ld)
                Profiler.stop(tC, "  conv bwd gemm dcol")
                let tD = Profiler.start()
                defer { Profiler.stop(tD, "  conv bwd col2im") }
                for i in 0..<gn {
                    col2im3x3(dcol + i * plane, ld: ld, channels: cin, height: h, width: w, stride: stride,
                              dx: dx + (n0 + i) * cin * h * w)
                }
            }
            n0 += gn
        }
    }

    /// Forward of a stride-1, one-sample-per-GEMM layer without a column matrix: per band of `rows` output rows the
    /// input band is padded once and Y = W·X̃ runs over its shifted rows (NN kernel, padded-width output, scattered).
    /// Stride 2 likewise over the band's phase planes (pitch wo + 1).
    private func forwardImplicit(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, h: Int, w: Int,
                                 rows: Int, params: UnsafePointer<Float>, scratch: ConvScratch, addBias: Bool) {
        let (ho, wo) = outputSize(h, w)
        let plane = ho * wo, wp = stride == 1 ? w + 2 : wo + 1
        let cs = (rows + 2) * wp, ps = ImplicitIm2col.phasePlane(rows: rows, wo: wo)
        let nw = min(scratch.workers, batch)
        ImplicitIm2col.passes += 1
        parallelWorkers(nw) { wi in
            let xb = scratch.workerCol[wi].pointer, out = scratch.workerDcol[wi].pointer
            let off = scratch.rowOffsets(worker: wi, count: k)
            if stride == 1 {
                ImplicitIm2col.fillOffsets(off, channels: cin, cs: cs, w: w)
            } else {
                ImplicitIm2col.fillPhaseOffsets(off, channels: cin, ps: ps, wo: wo)
            }
            var n = wi
            while n < batch {
                let xn = x + n * cin * h * w, yn = y + n * cout * plane
                var r0 = 0
                while r0 < ho {
                    let rc = min(rows, ho - r0)
                    let cols: Int
                    if stride == 1 {
                        ImplicitIm2col.padBand(xn, channels: cin, h: h, w: w, r0: r0, rc: rc, band: xb, cs: cs)
                        cols = ImplicitIm2col.columns(rc: rc, w: w)
                    } else {
                        ImplicitIm2col.padPhaseBand(xn, channels: cin, h: h, w: w, wo: wo, r0: r0, rc: rc, band: xb, ps: ps)
                        cols = ImplicitIm2col.phaseColumns(rc: rc, wo: wo)
                    }
                    ek_sgemm_nn_rows(Int32(cout), Int32(cols), Int32(k), params + weight, Int32(k), xb, off, 0, out, Int32(rc * wp))
                    ImplicitIm2col.scatterBand(out, channels: cout, h: ho, w: wo, r0: r0, rc: rc, pitch: wp, into: yn, accumulate: false)
                    r0 += rc
                }
                if addBias { addChannelBias(yn, params + bias, channels: cout, plane: plane) }
                n += nw
            }
        }
    }

    /// Backward of a stride-2, one-sample-per-GEMM layer: per band, dWᵀ += X̃·dy′ᵀ over the x band's phase planes
    /// (dy′: dy in the phase layout's pitch, zero in the junk column), and dx by dcol = Wᵀ·dy (OpenBLAS, the band's
    /// rows of dy read in place) and col2im, which adds (dx is zeroed or holds the skip gradient to add to).
    private func backwardImplicitStride2(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                                         batch: Int, h: Int, w: Int, rows: Int, dw: UnsafeMutablePointer<Float>,
                                         db: UnsafeMutablePointer<Float>, params: UnsafePointer<Float>, scratch: ConvScratch,
                                         biasGradient: Bool) {
        let (ho, wo) = outputSize(h, w)
        let plane = ho * wo, wp = wo + 1, kw = cout * k
        let ps = ImplicitIm2col.phasePlane(rows: rows, wo: wo)
        let layout = ImplicitIm2col.phaseDcolLayout(rows: rows, wo: wo, cout: cout)
        let nw = min(scratch.workers, batch)
        ImplicitIm2col.passes += 1
        parallelWorkers(nw) { wi in
            let xb = scratch.workerCol[wi].pointer, dyb = scratch.workerDcol[wi].pointer, dyT = dyb + layout.dyT
            let off = scratch.rowOffsets(worker: wi, count: k)
            ImplicitIm2col.fillPhaseOffsets(off, channels: cin, ps: ps, wo: wo)
            let dwW = scratch.workerDW[wi].pointer, dbW = dwW + kw
            zeroFill(dwW, kw + cout)
            var first = true
            var n = wi
            while n < batch {
                let xn = x + n * cin * h * w, dyn = dy + n * cout * plane
                if biasGradient { addChannelSums(dbW, dyn, channels: cout, plane: plane) }
                var r0 = 0
                while r0 < ho {
                    let rc = min(rows, ho - r0), cols = ImplicitIm2col.phaseColumns(rc: rc, wo: wo)
                    ImplicitIm2col.padPhaseBand(xn, channels: cin, h: h, w: w, wo: wo, r0: r0, rc: rc, band: xb, ps: ps)
                    for co in 0..<cout {
                        for r in 0..<rc {
                            let d = dyb + co * rc * wp + r * wp
                            d.update(from: dyn + co * plane + (r0 + r) * wo, count: wo)
                            d[wo] = 0
                        }
                    }
                    ek_transpose(Int32(cout), Int32(cols), dyb, Int32(rc * wp), dyT, Int32(cout))
                    ek_sgemm_nn_arows(Int32(k), Int32(cout), Int32(cols), xb, off, dyT, Int32(cout), first ? 0 : 1, dwW, Int32(cout))
                    first = false
                    if let dx {
                        // The phase band is spent: its buffer takes this band's dcol [k, rc·wo].
                        sgemm(transA: true, m: k, n: rc * wo, k: cout, a: params + weight, lda: k, b: dyn + r0 * wo, ldb: plane,
                              beta: 0, c: xb, ldc: rc * wo)
                        col2im3x3(xb, ld: rc * wo, channels: cin, height: h, width: w, stride: 2, dx: dx + n * cin * h * w,
                                  rowStart: r0, rowCount: rc)
                    }
                    r0 += rc
                }
                n += nw
            }
        }
        reduceTransposedWorkerGradients(workers: nw, dw: dw, db: db, scratch: scratch)
    }

    /// Backward of a stride-1, one-sample-per-GEMM layer without column matrices: per band of `rows` output rows the
    /// x band and the dy band are padded once; dWᵀ += X̃·dy′ᵀ (X̃'s rows are shifted views of the x band, dy′ the dy band
    /// in padded-width layout, zero in the junk columns) and dx = W̃·D̃ (NN over the dy band's shifted rows).
    private func backwardImplicit(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                                  accumulate: Bool, batch: Int, h: Int, w: Int, rows: Int, wf: UnsafePointer<Float>?,
                                  dw: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>, scratch: ConvScratch,
                                  biasGradient: Bool) {
        let plane = h * w, wp = w + 2, kf = cout * 9, kw = cout * k
        let cs = (rows + 2) * wp
        let nw = min(scratch.workers, batch)
        ImplicitIm2col.passes += 1
        parallelWorkers(nw) { wi in
            let layout = ImplicitIm2col.dcolLayout(rows: rows, w: w, cin: cin, cout: cout)
            let xb = scratch.workerCol[wi].pointer, dyb = scratch.workerDcol[wi].pointer
            let out = dyb + layout.out, dyT = dyb + layout.dyT
            let off = scratch.rowOffsets(worker: wi, count: k + kf), offDY = off + k
            ImplicitIm2col.fillOffsets(off, channels: cin, cs: cs, w: w)
            ImplicitIm2col.fillOffsets(offDY, channels: cout, cs: cs, w: w)
            let dwW = scratch.workerDW[wi].pointer, dbW = dwW + kw
            zeroFill(dwW, kw + cout)
            var first = true
            var n = wi
            while n < batch {
                let xn = x + n * cin * plane, dyn = dy + n * cout * plane
                if biasGradient { addChannelSums(dbW, dyn, channels: cout, plane: plane) }
                var r0 = 0
                while r0 < h {
                    let rc = min(rows, h - r0), cols = ImplicitIm2col.columns(rc: rc, w: w)
                    ImplicitIm2col.padBand(xn, channels: cin, h: h, w: w, r0: r0, rc: rc, band: xb, cs: cs)
                    ImplicitIm2col.padBand(dyn, channels: cout, h: h, w: w, r0: r0, rc: rc, band: dyb, cs: cs)
                    // dy′ starts at padded row 1, column 1 of the dy band: its junk columns are the zero borders.
                    let tA = nw == 1 ? Profiler.start() : 0
                    // dWᵀ [k, cout] += X̃·dy′ᵀ: the NN kernel broadcasts X̃'s shifted rows in place and streams dy′ᵀ
                    // (1.15–1.4× the NT kernel over the same rows, which has to copy every row tile).
                    ek_transpose(Int32(cout), Int32(cols), dyb + wp + 1, Int32(cs), dyT, Int32(cout))
                    ek_sgemm_nn_arows(Int32(k), Int32(cout), Int32(cols), xb, off, dyT, Int32(cout), first ? 0 : 1, dwW, Int32(cout))
                    if nw == 1 { Profiler.stop(tA, "  conv bwd implicit dW") }
                    first = false
                    if let dx, let wf {
                        let tB = nw == 1 ? Profiler.start() : 0
                        ek_sgemm_nn_rows(Int32(cin), Int32(cols), Int32(kf), wf, Int32(kf), dyb, offDY, 0, out, Int32(rc * wp))
                        if nw == 1 { Profiler.stop(tB, "  conv bwd implicit dx") }
                        ImplicitIm2col.scatterBand(out, channels: cin, h: h, w: w, r0: r0, rc: rc, into: dx + n * cin * plane,
                                                   accumulate: accumulate)
                    }
                    r0 += rc
                }
                n += nw
            }
        }
        reduceTransposedWorkerGradients(workers: nw, dw: dw, db: db, scratch: scratch)
    }

    /// The implicit backwards' epilogue: the workers' partial dWᵀ [k, cout] and db summed in a fixed order
    /// (deterministic), then dW = (dWᵀ)ᵀ.
    private func reduceTransposedWorkerGradients(workers nw: Int, dw: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
                                                 scratch: ConvScratch) {
        let kw = cout * k, w0 = scratch.workerDW[0].pointer
        for wi in 1..<max(1, nw) { addInPlace(w0, scratch.workerDW[wi].pointer, kw + cout) }
        ek_transpose(Int32(k), Int32(cout), w0, Int32(cout), dw, Int32(k))
        db.update(from: w0 + kw, count: cout)
    }
}

/// 1×1 convolution with bias (the segmentation head): Y_n = W·X_n + b, no im2col.
struct Conv1x1 {
    let cin: Int
    let cout: Int
    let weight: Int
    let bias: Int

    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, batch: Int, plane: Int, params: UnsafePointer<Float>) {
        for n in 0..<batch {
            let yn = y + n * cout * plane
            sgemm(m: cout, n: plane, k: cin, a: params + weight, lda: cin, b: x + n * cin * plane, ldb: plane, beta: 0, c: yn, ldc: plane)
            addChannelBias(yn, params + bias, channels: cout, plane: plane)
        }
    }

    func backward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, batch: Int, plane: Int,
                  params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        let db = grads + bias
        zeroFill(db, cout)
        for n in 0..<batch {
            let dyn = dy + n * cout * plane
            addChannelSums(db, dyn, channels: cout, plane: plane)
            sgemm(transB: true, m: cout, n: cin, k: plane, a: dyn, lda: plane, b: x + n * cin * plane, ldb: plane,
                  beta: n == 0 ? 0 : 1, c: grads + weight, ldc: cin)
            if let dx = dx {
                sgemm(transA: true, m: cin, n: plane, k: cout, a: params + weight, lda: cin, b: dyn, ldb: plane, beta: 0,
                      c: dx + n * cin * plane, ldc: plane)
            }
        }
    }
}
