import XCTest
@testable import Tensor

/// Agreement with PyTorch's PlainConvUNet (dynamic-network-architectures) on the fixture written by
/// scripts/make_torch_fixture.py: 3 stages, features [8, 16, 32], 4 classes, input [2, 1, 32, 32], a target with
/// ignored pixels, randomised weights (norm γ/β and all biases too), reference computed in float64.
final class TorchAgreementTests: XCTestCase {
    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/torch_unet_small.safetensors")
    static let scriptURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/make_torch_fixture.py")
    static let config = UNetConfig(inputChannels: 1, numClasses: 4, features: [8, 16, 32], convsPerStage: 2, decoderDropout: 0)
    static let lr = 1e-3, weightDecay = 1e-2
    static let tolerance = 1e-4

    private func fixture() throws -> [String: NamedTensor] {
        try SafeTensors.read(Self.fixtureURL).tensors
    }

    private func tensor(_ t: [String: NamedTensor], _ name: String) throws -> NamedTensor {
        guard let v = t[name] else { throw SafeTensorsError("fixture has no tensor \(name)") }
        return v
    }

    /// Norm-wise relative error ‖a − b‖ / ‖b‖.
    private func relError<A: Collection, B: Collection>(_ a: A, _ b: B) -> Double where A.Element == Float, B.Element == Float {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / max(den, 1e-300)).squareRoot()
    }

    private func norm<C: Collection>(_ a: C) -> Double where C.Element == Float {
        a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }

    /// Convolution biases directly followed by InstanceNorm have a mathematically zero gradient (the per-channel
    /// mean subtraction cancels them): PyTorch's float64 reference is ~1e-17, so a relative comparison is
    /// meaningless there. For those we check the gradient is round-off small instead.
    private func isPreNormConvBias(_ name: String) -> Bool { name.hasSuffix(".conv.bias") }

    private func makeNet(_ fx: [String: NamedTensor]) throws -> UNet {
        let net = try UNet(config: Self.config, seed: 1)
        let weights = fx.filter { net.parameters.entry(named: $0.key) != nil }
        try net.load(weights)
        XCTAssertEqual(net.stateTensors().map(\.name), net.parameters.entries.map(\.name))
        return net
    }

    func testFixtureNamesAndShapesMatchOurNetworkAndCheckpoint() throws {
        let fx = try fixture()
        let net = try UNet(config: Self.config, seed: 1)
        let weightNames = Set(fx.keys.filter { !$0.hasPrefix("grad.") && !$0.hasPrefix("adamw.") })
            .subtracting(["input", "target", "logits", "loss"])
        XCTAssertEqual(Set(net.parameters.entries.map(\.name)), weightNames)
        for e in net.parameters.entries { XCTAssertEqual(fx[e.name]?.shape, e.shape, e.name) }
        // Our checkpoint file carries exactly these names and shapes, so load_state_dict(strict=False) loads all.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("taux-torch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Checkpoint.save(arena: net.parameters, optimizer: AdamW(count: net.parameterCount), directory: dir)
        let (written, _) = try SafeTensors.read(dir.appendingPathComponent(Checkpoint.modelFileName))
        XCTAssertEqual(Set(written.keys), weightNames)
        for (k, v) in written { XCTAssertEqual(v.shape, fx[k]?.shape, k) }
    }

    func testFixtureRefusedByDifferentlyConfiguredNetwork() throws {
        let fx = try fixture()
        var cfg = Self.config
        cfg.features = [8, 16, 48]
        cfg.numClasses = 3
        let net = try UNet(config: cfg, seed: 1)
        let before = net.parameters.values
        XCTAssertThrowsError(try net.load(fx.filter { !$0.key.hasPrefix("grad.") && !$0.key.hasPrefix("adamw.") })) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("encoder.stages.2.0.convs.0.conv.weight has shape [32, 16, 3, 3], the network expects [48, 16, 3, 3]"), m)
            XCTAssertTrue(m.contains("decoder.seg_layers.1.bias has shape [4], the network expects [3]"), m)
            XCTAssertTrue(m.contains("unexpected tensor input"), m)
        }
        XCTAssertEqual(net.parameters.values, before)
    }

    override func tearDown() {
        Im2col.useImplicit = true
        Winograd.minTiles = 32
    }

    func testForwardLossBackwardAdamWMatchPyTorch() throws { try checkAgainstPyTorch() }

    /// The same fixture with every stride-1 conv on the grouped path and in the Winograd domain (the 32², 16² and 8²
    /// planes of the fixture's network, forward, weight and input gradients).
    func testWinogradPathMatchesPyTorch() throws {
        Im2col.useImplicit = false
        Winograd.minTiles = 1
        let before = Winograd.passes
        try checkAgainstPyTorch()
        // 2 stride-1 convs per encoder stage except the first's Cin-1 conv and the strided ones (3), 2 per decoder
        // stage (4): 7 layers, forward and backward.
        XCTAssertEqual(Winograd.passes - before, 14, "layers that ran in the Winograd domain")
    }

    private func checkAgainstPyTorch() throws {
        let fx = try fixture()
        let net = try makeNet(fx)
        let input = try tensor(fx, "input"), target = try tensor(fx, "target")
        XCTAssertEqual(input.shape, [2, 1, 32, 32])
        let (B, H, W) = (input.shape[0], input.shape[2], input.shape[3])
        let labels = target.values.map { UInt8($0) }

        let logits = try Array(net.forward(input: input.values, batch: B, height: H, width: W, training: true,
                                           dropout: DropoutKey(seed: 0, step: 0, firstGlobalSample: 0)))
        let refLogits = try tensor(fx, "logits")
        let logitErr = relError(logits, refLogits.values)
        XCTAssertLessThanOrEqual(logitErr, Self.tolerance, "logits relative error \(logitErr)")

        let loss = SegmentationLoss(numClasses: 4)
        let sums = try loss.partialSums(logits: logits, labels: labels, batch: B, pixels: H * W)
        let value = loss.value(global: sums)
        let refLoss = try tensor(fx, "loss").values
        for (i, (ours, ref)) in zip([value.total, value.ce, value.dice], refLoss).enumerated() {
            XCTAssertEqual(ours, Double(ref), accuracy: Self.tolerance * abs(Double(ref)), "loss component \(i)")
        }
        var dLogits = [Float](repeating: 0, count: logits.count)
        loss.gradient(global: sums, into: &dLogits)
        net.backward(dLogits: dLogits)

        var report: [String] = []
        var worstGrad = (0.0, ""), worstAdam = (0.0, "")
        let grads = net.parameters.grads
        for e in net.parameters.entries {
            let ours = grads[e.range], ref = try tensor(fx, "grad." + e.name).values
            if isPreNormConvBias(e.name) {
                // Round-off small relative to the gradient of the same conv's weight.
                let weightGrad = try tensor(fx, "grad." + e.name.replacingOccurrences(of: ".bias", with: ".weight")).values
                let ratio = norm(ours) / norm(weightGrad)
                if ratio > 1e-4 { report.append("\(e.name): pre-norm bias gradient not ~0 (‖g‖/‖g_w‖ = \(ratio))") }
                continue
            }
            let err = relError(ours, ref)
            if err > worstGrad.0 { worstGrad = (err, e.name) }
            if err > Self.tolerance { report.append("\(e.name): gradient relative error \(err)") }
        }

        // AdamW fed with PyTorch's own gradients: must reproduce torch.optim.AdamW for every tensor.
        let fixtureGrads = try net.parameters.entries.flatMap { try tensor(fx, "grad." + $0.name).values }
        var p1 = net.parameters.values
        AdamW(count: p1.count, weightDecay: Self.weightDecay).step(params: &p1, grads: fixtureGrads, lr: Self.lr)
        // AdamW fed with our gradients: the whole training step.
        var p2 = net.parameters.values
        AdamW(count: p2.count, weightDecay: Self.weightDecay).step(params: &p2, grads: grads, lr: Self.lr)
        for e in net.parameters.entries {
            let ref = try tensor(fx, "adamw." + e.name).values
            let err1 = relError(p1[e.range], ref)
            if err1 > Self.tolerance { report.append("\(e.name): AdamW (torch grads) relative error \(err1)") }
            if isPreNormConvBias(e.name) {
                // Adam normalises the round-off gradient, so the step is arbitrary in [−lr, lr] per element.
                let before = net.parameters.values[e.range]
                for (a, b) in zip(p2[e.range], before) where abs(Double(a) - Double(b) * (1 - Self.lr * Self.weightDecay)) > 1.01 * Self.lr {
                    report.append("\(e.name): AdamW step larger than lr"); break
                }
                continue
            }
            let err2 = relError(p2[e.range], ref)
            if max(err1, err2) > worstAdam.0 { worstAdam = (max(err1, err2), e.name) }
            if err2 > Self.tolerance { report.append("\(e.name): AdamW (our grads) relative error \(err2)") }
        }
        print("torch agreement (Winograd passes \(Winograd.passes)): logits \(logitErr), loss \(value.total) vs \(refLoss[0]), worst gradient \(worstGrad), "
            + "worst AdamW \(worstAdam)")
        XCTAssertTrue(report.isEmpty, "disagreements with PyTorch:\n" + report.joined(separator: "\n"))
    }

    /// The other direction: PyTorch loads a checkpoint written by our code (after one training step) and
    /// reproduces our logits. Needs the torch venv; skipped without it.
    func testPyTorchLoadsOurCheckpoint() throws {
        let python = "/opt/torchvenv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python),
              FileManager.default.fileExists(atPath: Self.scriptURL.path) else {
            throw XCTSkip("no PyTorch venv at \(python); the Swift-side name/shape check still runs")
        }
        let fx = try fixture()
        let net = try makeNet(fx)
        let input = try tensor(fx, "input"), labels = try tensor(fx, "target").values.map { UInt8($0) }
        let key = DropoutKey(seed: 0, step: 0, firstGlobalSample: 0)
        let logits = try Array(net.forward(input: input.values, batch: 2, height: 32, width: 32, training: true, dropout: key))
        let loss = SegmentationLoss(numClasses: 4)
        let sums = try loss.partialSums(logits: logits, labels: labels, batch: 2, pixels: 1024)
        var d = [Float](repeating: 0, count: logits.count)
        loss.gradient(global: sums, into: &d)
        net.backward(dLogits: d)
        let opt = AdamW(count: net.parameterCount, weightDecay: Self.weightDecay)
        opt.step(params: &net.parameters.values, grads: net.parameters.grads, lr: Self.lr)
        let after = try Array(net.forward(input: input.values, batch: 2, height: 32, width: 32, training: true, dropout: key))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("taux-torchrt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Checkpoint.save(arena: net.parameters, optimizer: opt, directory: dir)
        let logitsURL = dir.appendingPathComponent("logits.safetensors")
        try SafeTensors.write([NamedTensor(name: "logits", shape: [2, 4, 32, 32], values: after)], to: logitsURL)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [Self.scriptURL.path, "check", dir.appendingPathComponent(Checkpoint.modelFileName).path,
                       "--logits", logitsURL.path, "--fixture", Self.fixtureURL.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "PyTorch check failed:\n\(text)")
    }
}
