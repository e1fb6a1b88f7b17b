import CBLAS
import CKernels
import Foundation

/// Row-major single-precision GEMM: C = alpha·op(A)·op(B) + beta·C, with op(A) M×K and op(B) K×N.
/// lda/ldb/ldc are the row strides of the matrices as stored (before transposition).
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The conv layers' skinny products: the project's AVX-512 kernels (CKernels) where they beat OpenBLAS 0.3.21 —
/// measured (docs/performance.md): NN with M ≤ 128 rows (1.5–2× at M = 32, 1.1–1.4× at 64, 1.0–1.1× at 128: the
/// im2col bands of the Cout 32–128 layers and the flipped-kernel input gradients) and NT with M ≤ 32 (the dW of the
/// Cout 32 layers, 1.4–1.8×) or M ≤ 64 on 64-byte-aligned rows (the grouped layers' dW, 1.02–1.26×); NN of any M
/// with N ≤ 256 (the 4² and 2² layers' forwards over a group of samples, M 480: OpenBLAS packs all of A for a few
/// columns; 1.05–1.3×); OpenBLAS elsewhere.
/// The kernels are used only when the CPU has AVX-512 and `EPISODIC_GEMM` is not `blas` (or `useKernels` is off).
public enum ConvGEMM {
    public static let kernelsAvailable = ek_avx512_available() != 0
    nonisolated(unsafe) public static var useKernels = kernelsAvailable && ConvGEMM.environmentAllows()
    static let nnMaxRows = 128
    /// NN products this narrow take the kernel whatever their M.
    static let nnAnyRowsMaxColumns = 256
    static let ntMaxRows = 32
    /// NT with M ≤ 64 wins only on 64-byte-aligned rows (1.02–1.26× vs 0.93× when it has to copy misaligned tiles).
    static let ntAlignedMaxRows = 64

    /// Every row of a row-major operand with leading dimension `ld` starts on a 64-byte boundary.
    @inline(__always)
    static func aligned(_ p: UnsafePointer<Float>, _ ld: Int) -> Bool { ld % 16 == 0 && UInt(bitPattern: p) % 64 == 0 }

    static func environmentAllows() -> Bool {
        guard let v = getenv("EPISODIC_GEMM") else { return true }
        return String(cString: v).lowercased() != "blas"
    }

    /// "avx512 kernels + OpenBLAS" or "OpenBLAS", for logs and benchmark output.
    public static var description: String {
        guard useKernels else { return "OpenBLAS only" }
        return "episodic AVX-512 kernels (NN M ≤ 128 or N ≤ 256, NT M ≤ 32, or ≤ 64 aligned; implicit im2col for stride-1" +
            (ImplicitIm2col.stride2 ? " and stride-2" : "") + " convs on planes ≥ \(ImplicitIm2col.minGroupedWidth) wide with Cout ≤ \(ImplicitIm2col.maxCout), any Cout from \(ImplicitIm2col.wideMinWidth) wide" + (Im2col.useImplicit ? "" : ": off") + "; Winograd F(2×2,3×3) for stride-1 even planes ≥ 4 wide, grouped or ≤ \(Winograd.maxImplicitWidth) wide, ≥ \(Winograd.minTiles) tiles per group" + (Winograd.enabled ? "" : ": off") + ") + OpenBLAS"
    }
}

extension ConvGEMM {
    /// Whether convGEMM gives this product to the kernel (given `useKernels`); `alignedRows`: both operands' rows
    /// start on 64-byte boundaries (matters for NT only).
    static func kernelWins(transB: Bool, m: Int, n: Int, k: Int, alignedRows: Bool) -> Bool {
        guard k > 0 else { return false }
        if transB { return m <= ntMaxRows || (alignedRows && m <= ntAlignedMaxRows) }
        return m <= nnMaxRows || n <= nnAnyRowsMaxColumns
    }

    /// The AVX-512 kernel itself, no routing: C = A·B, or A·Bᵀ when `transB` (beta 0 or 1). Only when kernelsAvailable.
    static func kernel(transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
                       ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let f = transB ? ek_sgemm_nt : ek_sgemm_nn
        f(Int32(m), Int32(n), Int32(k), a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// C[m×n] = A[m×k]·B[k×n] (or A·Bᵀ with B [n×k] when `transB`) + beta·C, beta 0 or 1, row-major: a conv's forward,
/// flipped-kernel input gradient, or (transB) weight gradient dW = dy·colᵀ. The kernel where it wins, else OpenBLAS.
@inline(__always)
func convGEMM(transB: Bool = false, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
              ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if ConvGEMM.useKernels && ConvGEMM.kernelWins(transB: transB, m: m, n: n, k: k,
                                                  alignedRows: transB && ConvGEMM.aligned(a, lda) && ConvGEMM.aligned(b, ldb)) {
        ConvGEMM.kernel(transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    } else {
        sgemm(transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

/// An sgemm self-check found a wrong result: the BLAS kernel is not trustworthy on this CPU.
public struct BLASCheckError: Error, CustomStringConvertible, LocalizedError {
    public let description: String
    public var errorDescription: String? { description }
}

/// Facts about (and control of) the OpenBLAS library in use.
public enum BLASInfo {
    /// OpenBLAS's kernel name (e.g. "SkylakeX", "Haswell", or the generic "Prescott").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// Compares sgemm against a double-precision naive product on a few shapes (all transpose combinations,
    /// padded leading dimensions, alpha/beta ≠ trivial, C prefilled with NaN where beta = 0 must ignore it).
    /// Throws when any element is off by more than 1e-4·√K relative to the magnitude of the terms.
    public static func selfCheck() throws {
        // (m, n, k): small odd sizes, a skinny im2col-like shape, a deep-layer-like one and odd sizes past the kernel blocks.
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (7, 5, 3), (33, 65, 17), (32, 200, 96), (48, 16, 480), (65, 33, 130)]
        var counter: UInt64 = 0
        let key = CounterRNG.mixKey(0x424C_4153) // "BLAS"
        for (m, n, k) in shapes {
            for transA in [false, true] {
                for transB in [false, true] {
                    for (alpha, beta) in [(Float(1), Float(0)), (Float(-0.5), Float(0.3))] {
                        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2
                        let rowsA = transA ? k : m, rowsB = transB ? n : k
                        let (a, b, c0) = checkOperands(a: rowsA * lda, b: rowsB * ldb, c: m * ldc, nanC: beta == 0, key: key, counter: &counter)
                        var c = c0
                        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: lda,
                                  b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                        } } }
                        if let msg = compare(a: a, b: b, c0: c0, c: c, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                                             transA: transA, transB: transB, alpha: alpha, beta: beta) {
                            throw BLASCheckError(description: "BLAS self-check failed: OpenBLAS sgemm (core \(coreName), " +
                                "\(threads) thread(s)) \(msg) for m=\(m) n=\(n) k=\(k) transA=\(transA) transB=\(transB) " +
                                "alpha=\(alpha) beta=\(beta); refusing to train on wrong numbers (try another " +
                                "OPENBLAS_CORETYPE, e.g. Haswell, or unset it)")
                        }
                    }
                }
            }
        }
        try selfCheckConvKernels()
    }

    /// The same check for the conv kernels actually in use (ConvGEMM), on the skinny shapes they are routed.
    public static func selfCheckConvKernels() throws {
        guard ConvGEMM.useKernels else { return }
        // n = 64 and 128: the NN kernels' 64-column strips (6-row tiles), with row remainders.
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (8, 48, 128), (32, 97, 288), (64, 130, 65), (31, 289, 300), (5, 17, 1000),
                                         (37, 64, 200), (13, 128, 77)]
        var counter: UInt64 = 0
        let key = CounterRNG.mixKey(0x4B45_524E) // "KERN"
        for (m, n, k) in shapes {
            for transB in [false, true] {
                for beta in [Float(0), Float(1)] {
                    let lda = k + 3, ldb = (transB ? k : n) + 1, ldc = n + 2
                    let (a, b, c0) = checkOperands(a: m * lda, b: (transB ? n : k) * ldb, c: m * ldc, nanC: beta == 0, key: key, counter: &counter)
                    // NN also through the row-offset variants of implicit im2col (offsets describing the same matrices).
                    let boff = (0..<k).map { Int32($0 * ldb) }, aoff = (0..<m).map { Int32($0 * lda) }
                    for (variant, name) in (transB ? [(0, "ek_sgemm_nt")] : [(0, "ek_sgemm_nn"), (1, "ek_sgemm_nn_rows"), (2, "ek_sgemm_nn_arows")]) {
                        var c = c0
                        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                            let pa = pa.baseAddress!, pb = pb.baseAddress!, pc = pc.baseAddress!
                            switch variant {
                            case 1: ek_sgemm_nn_rows(Int32(m), Int32(n), Int32(k), pa, Int32(lda), pb, boff, beta, pc, Int32(ldc))
                            case 2: ek_sgemm_nn_arows(Int32(m), Int32(n), Int32(k), pa, aoff, pb, Int32(ldb), beta, pc, Int32(ldc))
                            default: ConvGEMM.kernel(transB: transB, m: m, n: n, k: k, a: pa, lda: lda, b: pb, ldb: ldb, beta: beta, c: pc, ldc: ldc)
                            }
                        } } }
                        if let msg = compare(a: a, b: b, c0: c0, c: c, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                                             transA: false, transB: transB, alpha: 1, beta: beta) {
                            throw BLASCheckError(description: "self-check failed: the AVX-512 conv kernel \(name) " +
                                "\(msg) for m=\(m) n=\(n) k=\(k) beta=\(beta); set EPISODIC_GEMM=blas to use OpenBLAS only")
                        }
                    }
                }
            }
        }
    }

    /// Self-check operands: A and B uniform in [-1, 1), C uniform in [0, 1) or all NaN (beta = 0 must ignore it).
    static func checkOperands(a na: Int, b nb: Int, c nc: Int, nanC: Bool, key: UInt64, counter: inout UInt64) -> ([Float], [Float], [Float]) {
        func draw(_ n: Int, _ f: (Double) -> Float) -> [Float] {
            let v = (0..<n).map { i in f(CounterRNG.uniform(key: key, counter: counter + UInt64(i))) }
            counter += UInt64(n)
            return v
        }
        let a = draw(na) { Float($0 * 2 - 1) }, b = draw(nb) { Float($0 * 2 - 1) }
        let c = draw(nc) { nanC ? .nan : Float($0) }
        return (a, b, c)
    }

    /// Double-precision reference of one sgemm call; returns a description of the first bad element, if any.
    static func compare(a: [Float], b: [Float], c0: [Float], c: [Float], m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int,
                        transA: Bool, transB: Bool, alpha: Float, beta: Float) -> String? {
        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c0.withUnsafeBufferPointer { c0 in c.withUnsafeBufferPointer { c in
            for i in 0..<m {
                for j in 0..<n {
                    var ref = 0.0, mag = 0.0
                    for p in 0..<k {
                        let t = Double(transA ? a[p * lda + i] : a[i * lda + p]) * Double(transB ? b[j * ldb + p] : b[p * ldb + j])
                        ref += t; mag += abs(t)
                    }
                    ref *= Double(alpha); mag *= Double(abs(alpha))
                    if beta != 0 { let t = Double(beta) * Double(c0[i * ldc + j]); ref += t; mag += abs(t) }
                    let got = Double(c[i * ldc + j])
                    if !got.isFinite || abs(got - ref) > 1e-4 * Double(k).squareRoot() * max(mag, 1e-6) {
                        return "gave \(got) instead of \(ref) at [\(i),\(j)]"
                    }
                }
            }
            return nil
        } } } }
    }

    /// Achieved sgemm GFLOP/s on a deep-layer-like shape (M 480, N 1024, K 4320), best of `repeats`: the yardstick
    /// a training step's FLOP rate is compared against (and a quick read of how loaded the machine is).
    public static func sgemmRate(repeats: Int = 3) -> Double {
        let m = 480, n = 1024, k = 4320
        let a = FloatBuffer(count: m * k), b = FloatBuffer(count: k * n), c = FloatBuffer(count: m * n)
        for i in 0..<(m * k) { a.pointer[i] = Float(i % 7) * 0.1 }
        for i in 0..<(k * n) { b.pointer[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            sgemm(m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: n, beta: 0, c: c.pointer, ldc: n)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        return 2 * Double(m * n * k) / best / 1e9
    }

    /// Non-nil when OpenBLAS runs a generic kernel although the CPU has AVX2/AVX-512 (≈5× slower sgemm).
    public static func genericKernelWarning() -> String? {
        genericKernelWarning(coreName: coreName, cpuFlags: cpuFlags())
    }

    /// The OPENBLAS_CORETYPE a launcher should set: non-nil only when the library chose a generic kernel and the
    /// CPU can run a better one (AVX-512 → SkylakeX, AVX2 → Haswell).
    public static func suggestedCoreType() -> String? {
        guard genericKernelWarning() != nil else { return nil }
        let flags = cpuFlags()
        return flags.contains("avx512f") ? "SkylakeX" : (flags.contains("avx2") ? "Haswell" : nil)
    }

    static func genericKernelWarning(coreName: String, cpuFlags: Set<String>) -> String? {
        let generic = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "coppermine",
                       "northwood", "banias", "generic", "unknown"]
        let name = coreName.lowercased()
        guard generic.contains(where: { name.hasPrefix($0) }) || name.isEmpty else { return nil }
        let suggestion: String
        if cpuFlags.contains("avx512f") { suggestion = "SkylakeX" } else if cpuFlags.contains("avx2") { suggestion = "Haswell" } else { return nil }
        return "warning: OpenBLAS selected its generic '\(coreName)' kernel although this CPU supports " +
            "\(suggestion == "SkylakeX" ? "AVX-512" : "AVX2"); sgemm will be several times slower. " +
            "Set OPENBLAS_CORETYPE=\(suggestion) in the environment before starting episodic."
    }

    /// CPU feature flags of the first processor in /proc/cpuinfo (empty where that file does not exist).
    static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }
}
