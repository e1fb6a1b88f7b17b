import XCTest
@testable import Tensor

/// Regression: every 3×3 conv feeds an InstanceNorm, which removes its bias, so the bias gradient is exactly 0.
/// Computed naively it is round-off noise that AdamW turns into lr-sized random steps, and 1-rank and 2-rank
/// training then ended with different biases (the MPI invariance test failed on final weights at 3.6e-4).
final class PreNormBiasTests: XCTestCase {
    func testPreNormConvBiasGradientsAreExactlyZero() throws {
        let net = try UNet(config: UNetConfig(numClasses: 4, features: [4, 8, 16], decoderDropout: 0.3), seed: 5)
        let b = 2, h = 16, w = 16
        let x = (0..<(b * h * w)).map { Float(CounterRNG.normal(key: 9, counter: UInt64($0))) }
        let logits = try x.withUnsafeBufferPointer {
            try net.forward(input: $0.baseAddress!, batch: b, height: h, width: w, training: true,
                            dropout: DropoutKey(seed: 1, step: 2, firstGlobalSample: 0))
        }
        let dy = (0..<logits.count).map { Float(CounterRNG.normal(key: 10, counter: UInt64($0))) }
        dy.withUnsafeBufferPointer { net.backward(dLogits: $0.baseAddress!) }
        var sawOtherBias = false
        for e in net.parameters.entries where e.name.hasSuffix("conv.bias") {
            XCTAssertTrue(net.parameters.grads[e.range].allSatisfy { $0 == 0 }, e.name)
        }
        for e in net.parameters.entries where e.name.hasSuffix("norm.bias") || e.name.hasPrefix("decoder.transpconvs") || e.name.hasPrefix("decoder.seg_layers") {
            if net.parameters.grads[e.range].contains(where: { $0 != 0 }) { sawOtherBias = true }
        }
        XCTAssertTrue(sawOtherBias, "the other parameters still get gradients")
    }
}
