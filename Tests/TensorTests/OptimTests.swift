import XCTest
@testable import Tensor

final class OptimTests: XCTestCase {
    /// Two AdamW steps against the PyTorch update rule evaluated here in Double.
    func testAdamWTwoStepsMatchReference() {
        let p0: [Double] = [0.5, -1.25, 2.0, 0.0, 3e-3]
        let g1: [Double] = [0.1, -0.4, 1e-3, 2.0, -7.0]
        let g2: [Double] = [-0.3, 0.2, 5e-4, 1.0, 0.0]
        let lrs = [1e-2, 5e-3]
        let (b1, b2, eps, wd) = (0.9, 0.999, 1e-8, 0.05)

        var p = p0, m = [Double](repeating: 0, count: 5), v = m
        for (t, (g, lr)) in zip([g1, g2], lrs).enumerated() {
            let step = Double(t + 1)
            for i in 0 ..< 5 {
                p[i] *= 1 - lr * wd
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                let mhat = m[i] / (1 - pow(b1, step)), vhat = v[i] / (1 - pow(b2, step))
                p[i] -= lr * mhat / (vhat.squareRoot() + eps)
            }
        }

        let opt = AdamW(count: 5, beta1: b1, beta2: b2, eps: eps, weightDecay: wd)
        var params = p0.map { Float($0) }
        opt.step(params: &params, grads: g1.map { Float($0) }, lr: lrs[0])
        opt.step(params: &params, grads: g2.map { Float($0) }, lr: lrs[1])
        XCTAssertEqual(opt.t, 2)
        for i in 0 ..< 5 {
            XCTAssertEqual(Double(params[i]), p[i], accuracy: 1e-6 * max(1, abs(p[i])), "param \(i)")
            XCTAssertEqual(Double(opt.m[i]), m[i], accuracy: 1e-6 * max(1, abs(m[i])))
            XCTAssertEqual(Double(opt.v[i]), v[i], accuracy: 1e-6 * max(1e-3, abs(v[i])))
        }
        // First step of Adam moves each parameter with a nonzero gradient by ≈ lr against the gradient's sign.
        XCTAssertNotEqual(params[0], Float(p0[0]))
    }

    /// The vector AdamW (CKernels) equals the scalar loop bit for bit over several steps, with a length that leaves
    /// a partial last vector, gradients of all magnitudes and zeros.
    func testVectorAdamWEqualsScalar() throws {
        guard ConvGEMM.kernelsAvailable else { throw XCTSkip("no AVX-512 here: the scalar loop is the only one") }
        defer { AdamW.useKernel = ConvGEMM.kernelsAvailable }
        let n = 1000 + 13
        var runs: [[Float]] = []
        for kernel in [true, false] {
            AdamW.useKernel = kernel
            let opt = AdamW(count: n, weightDecay: 0.03)
            var p = (0..<n).map { Float(sin(Double($0))) }
            for step in 0..<4 {
                let g: [Float] = (0..<n).map { (i: Int) -> Float in
                    if i % 17 == 0 { return 0 }
                    let magnitude: Double = pow(10.0, Double(i % 9 - 5))
                    return Float(cos(Double(i * (step + 3))) * magnitude)
                }
                opt.step(params: &p, grads: g, lr: 1e-3 * Double(step + 1))
            }
            runs.append(p + opt.m + opt.v)
        }
        XCTAssertTrue(zip(runs[0], runs[1]).allSatisfy { $0.bitPattern == $1.bitPattern }, "vector and scalar AdamW differ")
    }

    func testZeroGradientOnlyDecays() {
        let opt = AdamW(count: 2, weightDecay: 0.1)
        var params: [Float] = [2, -4]
        opt.step(params: &params, grads: [0, 0], lr: 0.5)
        XCTAssertEqual(params[0], 2 * (1 - 0.05), accuracy: 1e-6)
        XCTAssertEqual(params[1], -4 * (1 - 0.05), accuracy: 1e-6)
    }

    func testMultiStepSchedule() {
        let s = LRSchedule.multiStep(milestones: [2, 4], gamma: 0.1)
        let expected: [Double] = [1, 1, 0.1, 0.1, 0.01, 0.01]
        for (at, e) in expected.enumerated() { XCTAssertEqual(s.lr(base: 1, at: at), e, accuracy: 1e-15, "at \(at)") }
        XCTAssertEqual(LRSchedule.constant.lr(base: 3e-4, at: 1000), 3e-4)
        // Repeated milestone applies γ twice (PyTorch counts milestones with multiplicity).
        XCTAssertEqual(LRSchedule.multiStep(milestones: [3, 3], gamma: 0.5).lr(base: 1, at: 3), 0.25)
    }

    func testScheduleCodable() throws {
        for s in [LRSchedule.constant, .multiStep(milestones: [10, 20], gamma: 0.2)] {
            let data = try JSONEncoder().encode(s)
            XCTAssertEqual(try JSONDecoder().decode(LRSchedule.self, from: data), s)
        }
        let json = #"{"kind": "multiStep", "milestones": [5], "gamma": 0.5}"#
        XCTAssertEqual(try JSONDecoder().decode(LRSchedule.self, from: Data(json.utf8)), .multiStep(milestones: [5], gamma: 0.5))
        XCTAssertThrowsError(try JSONDecoder().decode(LRSchedule.self, from: Data(#"{"kind": "cosine"}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("cosine"), "\($0)")
        }
        XCTAssertThrowsError(try JSONDecoder().decode(LRSchedule.self,
                                                      from: Data(#"{"kind": "multiStep", "milestones": [1], "gamma": -1}"#.utf8)))
    }

    // MARK: AtomicFile

    private func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("taux-atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func testAtomicWriteReplacesAndLeavesNoTemp() throws {
        let dir = try tempDir()
        let f = dir.appendingPathComponent("a.bin")
        try AtomicFile.write(Data("old".utf8), to: f)
        try AtomicFile.write(Data("new content".utf8), to: f)
        XCTAssertEqual(try Data(contentsOf: f), Data("new content".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["a.bin"])
    }

    func testAtomicWriteFailureKeepsOldFile() throws {
        struct Boom: Error {}
        let dir = try tempDir()
        let f = dir.appendingPathComponent("a.bin")
        try AtomicFile.write(Data("old".utf8), to: f)
        XCTAssertThrowsError(try AtomicFile.write(to: f) { w in
            try w.write(Data("partial".utf8))
            throw Boom()
        })
        XCTAssertEqual(try Data(contentsOf: f), Data("old".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["a.bin"])
    }

    func testAtomicWriteIntoMissingDirectoryNamesPath() throws {
        let f = try tempDir().appendingPathComponent("nope/x.bin")
        XCTAssertThrowsError(try AtomicFile.write(Data([1]), to: f)) { XCTAssertTrue("\($0)".contains("nope/x.bin"), "\($0)") }
    }
}
