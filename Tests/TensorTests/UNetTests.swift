import XCTest
@testable import Tensor

final class UNetTests: XCTestCase {
    func testDefaultParameterCountNamesAndFLOPs() throws {
        let net = try UNet(config: UNetConfig(), seed: 1)
        XCTAssertEqual(net.parameterCount, 18_669_162)
        let e = net.parameters.entries
        XCTAssertEqual(e.count, 4 * 2 * (6 + 5) + 2 * 5 + 2) // convs+norms, transposed convs, one head
        XCTAssertEqual(e.first?.name, "encoder.stages.0.0.convs.0.conv.weight")
        XCTAssertEqual(e.first?.shape, [32, 1, 3, 3])
        XCTAssertEqual(e[2].name, "encoder.stages.0.0.convs.0.norm.weight")
        XCTAssertEqual(net.parameters.entry(named: "encoder.stages.1.0.convs.0.conv.weight")?.shape, [64, 32, 3, 3])
        XCTAssertEqual(net.parameters.entry(named: "decoder.stages.0.convs.0.conv.weight")?.shape, [480, 960, 3, 3])
        XCTAssertEqual(net.parameters.entry(named: "decoder.transpconvs.0.weight")?.shape, [480, 480, 2, 2])
        XCTAssertEqual(net.parameters.entry(named: "decoder.transpconvs.4.weight")?.shape, [64, 32, 2, 2])
        XCTAssertEqual(e[e.count - 2].name, "decoder.seg_layers.4.weight")
        XCTAssertEqual(e[e.count - 2].shape, [10, 32, 1, 1])
        XCTAssertEqual(e.last?.name, "decoder.seg_layers.4.bias")
        XCTAssertEqual(e.last?.shape, [10])
        // Entries tile the arena contiguously in order.
        var next = 0
        for x in e { XCTAssertEqual(x.offset, next); XCTAssertEqual(x.count, x.shape.reduce(1, *)); next += x.count }
        XCTAssertEqual(next, net.parameters.values.count)
        XCTAssertEqual(net.parameters.grads.count, net.parameters.values.count)
        // 6.93 GFLOP per 128² image (issue 2 / PERF-NOTES).
        XCTAssertEqual(net.forwardFLOPs(height: 128, width: 128) / 1e9, 6.93, accuracy: 0.005)
        XCTAssertEqual(net.forwardFLOPs(height: 256, width: 256) / net.forwardFLOPs(height: 128, width: 128), 4, accuracy: 1e-9)
    }

    func testHeInitStatisticsAndDeterminism() throws {
        let cfg = UNetConfig(features: [8, 16, 32])
        let a = try UNet(config: cfg, seed: 42), b = try UNet(config: cfg, seed: 42), c = try UNet(config: cfg, seed: 43)
        XCTAssertEqual(a.parameters.values, b.parameters.values)
        XCTAssertNotEqual(a.parameters.values, c.parameters.values)
        let gain = (2.0 / (1.0 + 0.01 * 0.01)).squareRoot()
        for (name, fanIn) in [("encoder.stages.2.0.convs.1.conv.weight", 32 * 9), ("decoder.transpconvs.0.weight", 16 * 4)] {
            guard let e = a.parameters.entry(named: name) else { return XCTFail("missing \(name)") }
            let v = a.parameters.values[e.range].map(Double.init)
            let mean = v.reduce(0, +) / Double(v.count)
            let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
            let expected = gain / Double(fanIn).squareRoot()
            XCTAssertEqual(std / expected, 1, accuracy: 0.05, name)
            XCTAssertEqual(mean / expected, 0, accuracy: 0.05, name)
        }
        for e in a.parameters.entries {
            let v = a.parameters.values[e.range]
            if e.name.hasSuffix("norm.weight") { XCTAssertTrue(v.allSatisfy { $0 == 1 }, e.name) }
            if e.name.hasSuffix("bias") { XCTAssertTrue(v.allSatisfy { $0 == 0 }, e.name) }
        }
    }

    func testInvalidShapesAreRejected() throws {
        let net = try UNet(config: UNetConfig(features: [4, 8, 16]), seed: 0)
        let x = [Float](repeating: 0, count: 2 * 18 * 18)
        let key = DropoutKey(seed: 0, step: 0, firstGlobalSample: 0)
        XCTAssertThrowsError(try net.forward(input: x, batch: 1, height: 18, width: 18, training: false, dropout: key)) {
            XCTAssertTrue("\($0)".contains("divisible"), "\($0)")
        }
        XCTAssertThrowsError(try net.forward(input: x, batch: 0, height: 16, width: 16, training: false, dropout: key))
        XCTAssertThrowsError(try UNet(config: UNetConfig(features: [4]), seed: 0))
        XCTAssertThrowsError(try UNet(config: UNetConfig(decoderDropout: 1), seed: 0))
        XCTAssertNoThrow(try UNetConfig().validate(height: 512, width: 96))
        XCTAssertThrowsError(try UNetConfig().validate(height: 100, width: 96))
    }

    /// Sample 5 of a batch of 8 on one rank equals sample 1 of the second half (firstGlobalSample 4) on another:
    /// dropout masks and InstanceNorm are per sample, so logits do not depend on how the batch is split.
    func testDropoutAndLogitsIndependentOfBatchSplit() throws {
        let cfg = UNetConfig(numClasses: 3, features: [4, 8, 16], decoderDropout: 0.5)
        let net = try UNet(config: cfg, seed: 5)
        let h = 16, w = 16, plane = h * w
        let input = randomArray(8 * plane, key: 81)
        let key = DropoutKey(seed: 11, step: 3, firstGlobalSample: 0)
        let full = Array(try net.forward(input: input, batch: 8, height: h, width: w, training: true, dropout: key))
        let maskFull = Array(UnsafeBufferPointer(start: net.workspaces.last!.dec[1][0].mask.pointer, count: 8 * 4))
        let half = Array(input[(4 * plane)...])
        let second = Array(try net.forward(input: half, batch: 4, height: h, width: w, training: true,
                                           dropout: DropoutKey(seed: 11, step: 3, firstGlobalSample: 4)))
        let maskHalf = Array(UnsafeBufferPointer(start: net.workspaces.last!.dec[1][0].mask.pointer, count: 4 * 4))
        XCTAssertEqual(Array(maskFull[(5 * 4)..<(6 * 4)]), Array(maskHalf[4..<8]))
        let per = cfg.numClasses * plane
        for i in 0..<per { XCTAssertEqual(full[5 * per + i], second[1 * per + i], accuracy: 1e-5) }
        // p = 0.5 actually drops something, and another step gives other masks.
        XCTAssertTrue(maskFull.contains(0))
        _ = try net.forward(input: input, batch: 8, height: h, width: w, training: true, dropout: DropoutKey(seed: 11, step: 4, firstGlobalSample: 0))
        let maskNext = Array(UnsafeBufferPointer(start: net.workspaces.last!.dec[1][0].mask.pointer, count: 8 * 4))
        XCTAssertNotEqual(maskNext, maskFull)
        // Inference ignores dropout: logits equal those of a net with p = 0.
        let evalOut = Array(try net.forward(input: input, batch: 8, height: h, width: w, training: false, dropout: key))
        var cfg0 = cfg; cfg0.decoderDropout = 0
        let net0 = try UNet(config: cfg0, seed: 5)
        let out0 = Array(try net0.forward(input: input, batch: 8, height: h, width: w, training: true, dropout: key))
        XCTAssertEqual(evalOut, out0)
    }

    /// Backward reuses the im2col columns a training forward kept (grouped small-plane layers): its gradients equal
    /// those computed with the columns rebuilt, and an inference forward in between is never paired with them.
    func testSavedColumnsGiveTheSameGradients() throws {
        let cfg = UNetConfig(numClasses: 3, features: [4, 8, 16], decoderDropout: 0)
        let net = try UNet(config: cfg, seed: 7)
        let h = 16, w = 16, batch = 3
        let a = randomArray(batch * h * w, key: 61), b = randomArray(batch * h * w, key: 62)
        let key = DropoutKey(seed: 1, step: 1, firstGlobalSample: 0)
        let dLogits = randomArray(batch * cfg.numClasses * h * w, key: 63)
        func grads(_ run: () throws -> Void) rethrows -> [Float] {
            try run()
            dLogits.withUnsafeBufferPointer { net.backward(dLogits: $0.baseAddress!) }
            return net.parameters.grads
        }
        XCTAssertTrue(net.workspaces.isEmpty)
        let kept = try grads { _ = try net.forward(input: a, batch: batch, height: h, width: w, training: true, dropout: key) }
        XCTAssertNotNil(net.workspaces.last?.enc[2][1].cols, "a 4×4 layer takes the grouped path and keeps its columns")
        let rebuilt = try grads { _ = try net.forward(input: a, batch: batch, height: h, width: w, training: false, dropout: key) }
        XCTAssertEqual(kept, rebuilt)
        // Training forward on b, inference forward on a, backward: the gradients of a (not b's kept columns).
        let mixed = try grads {
            _ = try net.forward(input: b, batch: batch, height: h, width: w, training: true, dropout: key)
            _ = try net.forward(input: a, batch: batch, height: h, width: w, training: false, dropout: key)
        }
        XCTAssertEqual(mixed, rebuilt)
        XCTAssertTrue(kept.contains { $0 != 0 })
        // An inference-only workspace (another batch size, as validation uses) never allocates columns.
        _ = try net.forward(input: Array(a[0..<(2 * h * w)]), batch: 2, height: h, width: w, training: false, dropout: key)
        XCTAssertEqual(net.workspaces.last?.batch, 2)
        XCTAssertGreaterThan(net.workspaces.last?.enc[2][1].colsCount ?? 0, 0, "the 4×4 layer still takes the grouped path")
        XCTAssertNil(net.workspaces.last?.enc[2][1].cols)
    }

    func testBucketOrderAndWorkspaceReuse() throws {
        let net = try UNet(config: UNetConfig(numClasses: 2, features: [4, 8]), seed: 1)
        let x = randomArray(2 * 64, key: 91)
        let key = DropoutKey(seed: 0, step: 0, firstGlobalSample: 0)
        let y1 = Array(try net.forward(input: x, batch: 2, height: 8, width: 8, training: false, dropout: key))
        let ws = net.workspaces.last.map(ObjectIdentifier.init)
        var order: [Range<Int>] = []
        net.backward(dLogits: randomArray(y1.count, key: 92)) { order.append($0) }
        XCTAssertEqual(order, [net.headRange, net.decRange[0], net.transpRange[0], net.encRange[1], net.encRange[0]])
        let y2 = Array(try net.forward(input: x, batch: 2, height: 8, width: 8, training: false, dropout: key))
        XCTAssertEqual(y1, y2)
        XCTAssertEqual(net.workspaces.last.map(ObjectIdentifier.init), ws, "same shape must reuse the workspace")
        // A different batch gets its own workspace; going back reuses the first.
        _ = try net.forward(input: x, batch: 1, height: 8, width: 8, training: false, dropout: key)
        _ = try net.forward(input: x, batch: 2, height: 8, width: 8, training: false, dropout: key)
        XCTAssertEqual(net.workspaces.last.map(ObjectIdentifier.init), ws)
    }

    func testCounterRNG() {
        // Pure function of (key, counter); uniform in [0, 1); normal has mean 0, variance 1.
        XCTAssertEqual(CounterRNG.bits(key: 7, counter: 3), CounterRNG.bits(key: 7, counter: 3))
        XCTAssertNotEqual(CounterRNG.mixKey(1, 2), CounterRNG.mixKey(2, 1))
        XCTAssertEqual(CounterRNG.mixKey(1, 2, 3), CounterRNG.mixKey([1, 2, 3]))
        let k = CounterRNG.mixKey(123, 456)
        var s = 0.0, s2 = 0.0, u = 0.0
        let n = 20000
        for i in 0..<n {
            let x = CounterRNG.normal(key: k, counter: UInt64(i))
            s += x; s2 += x * x
            let v = CounterRNG.uniform(key: k, counter: UInt64(i))
            XCTAssertTrue(v >= 0 && v < 1)
            u += v
        }
        XCTAssertEqual(s / Double(n), 0, accuracy: 0.03)
        XCTAssertEqual(s2 / Double(n), 1, accuracy: 0.04)
        XCTAssertEqual(u / Double(n), 0.5, accuracy: 0.01)
        // The dropout stream key is mixKey(seed, "DROP", step, sample, layer) without allocation.
        let dk = DropoutKey(seed: 9, step: 4, firstGlobalSample: 0)
        XCTAssertEqual(Dropout2D.streamKey(dk, sample: 6, layer: 2), CounterRNG.mixKey(9, Dropout2D.purpose, 4, 6, 2))
    }

    func testBLASSelfCheckAndWarning() throws {
        XCTAssertNoThrow(try BLASInfo.selfCheck())
        XCTAssertFalse(BLASInfo.coreName.isEmpty)
        XCTAssertGreaterThanOrEqual(BLASInfo.threads, 1)
        XCTAssertNotNil(BLASInfo.genericKernelWarning(coreName: "Prescott", cpuFlags: ["sse3", "avx2", "avx512f"]))
        XCTAssertTrue(BLASInfo.genericKernelWarning(coreName: "Prescott", cpuFlags: ["avx512f"])?.contains("SkylakeX") ?? false)
        XCTAssertTrue(BLASInfo.genericKernelWarning(coreName: "Prescott", cpuFlags: ["avx2"])?.contains("Haswell") ?? false)
        XCTAssertNil(BLASInfo.genericKernelWarning(coreName: "SkylakeX", cpuFlags: ["avx512f"]))
        XCTAssertNil(BLASInfo.genericKernelWarning(coreName: "Prescott", cpuFlags: ["sse3"]))
    }
}
