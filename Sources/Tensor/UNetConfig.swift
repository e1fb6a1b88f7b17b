import Foundation

/// Shape errors (sizes, batch) with a message naming what is wrong.
public struct TensorShapeError: Error, CustomStringConvertible, LocalizedError {
    public let description: String
    public init(_ message: String) { description = message }
    public var errorDescription: String? { description }
}

/// nnU-Net PlainConvUNet 2D configuration (defaults: nnU-Net v1 "generic" 2D limits).
public struct UNetConfig: Codable, Sendable, Equatable {
    public var inputChannels: Int
    public var numClasses: Int
    public var features: [Int]
    public var convsPerStage: Int
    /// Dropout2d probability in the decoder conv blocks only (0 disables).
    public var decoderDropout: Double
    public var negativeSlope: Float
    public var normEps: Float

    public init(inputChannels: Int = 1, numClasses: Int = 10, features: [Int] = [32, 64, 128, 256, 480, 480],
                convsPerStage: Int = 2, decoderDropout: Double = 0.1, negativeSlope: Float = 0.01, normEps: Float = 1e-5) {
        self.inputChannels = inputChannels
        self.numClasses = numClasses
        self.features = features
        self.convsPerStage = convsPerStage
        self.decoderDropout = decoderDropout
        self.negativeSlope = negativeSlope
        self.normEps = normEps
    }

    public var stages: Int { features.count }

    /// Checks the configuration itself (channel counts, dropout range).
    public func validate() throws {
        guard inputChannels > 0 else { throw TensorShapeError("UNetConfig.inputChannels must be > 0, got \(inputChannels)") }
        guard numClasses > 0 else { throw TensorShapeError("UNetConfig.numClasses must be > 0, got \(numClasses)") }
        guard features.count >= 2 else { throw TensorShapeError("UNetConfig.features needs at least 2 stages, got \(features)") }
        guard features.allSatisfy({ $0 > 0 }) else { throw TensorShapeError("UNetConfig.features must all be > 0, got \(features)") }
        guard convsPerStage >= 1 else { throw TensorShapeError("UNetConfig.convsPerStage must be >= 1, got \(convsPerStage)") }
        guard decoderDropout >= 0 && decoderDropout < 1 else {
            throw TensorShapeError("UNetConfig.decoderDropout must be in [0, 1), got \(decoderDropout)")
        }
    }

    /// Image sizes must be positive and divisible by 2^(stages-1) (every stride-2 conv halves exactly).
    public func validate(height: Int, width: Int) throws {
        try validate()
        let d = 1 << (stages - 1)
        guard height > 0, width > 0 else { throw TensorShapeError("image size \(height)×\(width) must be positive") }
        guard height % d == 0, width % d == 0 else {
            throw TensorShapeError("image size \(height)×\(width) is not divisible by 2^(stages-1) = \(d) for \(stages) stages")
        }
    }
}
