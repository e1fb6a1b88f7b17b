import Foundation

/// Learning-rate schedule. `at` is counted in the budget's unit (epochs or iterations, chosen by the caller).
/// JSON form: `{"kind": "constant"}` or `{"kind": "multiStep", "milestones": [100, 150], "gamma": 0.1}`.
public enum LRSchedule: Codable, Sendable, Equatable {
    case constant
    /// PyTorch MultiStepLR: lr = base · γ^(number of milestones ≤ at); a repeated milestone counts twice.
    case multiStep(milestones: [Int], gamma: Double)

    public func lr(base: Double, at: Int) -> Double {
        switch self {
        case .constant:
            return base
        case let .multiStep(milestones, gamma):
            let passed = milestones.reduce(0) { $0 + ($1 <= at ? 1 : 0) }
            return base * Foundation.pow(gamma, Double(passed))
        }
    }

    /// Throws a message naming the bad field when the schedule cannot be used.
    public func validate() throws {
        if case let .multiStep(milestones, gamma) = self {
            guard gamma.isFinite, gamma > 0 else {
                throw LRScheduleError("lr schedule multiStep: gamma must be a finite positive number, got \(gamma)")
            }
            if let bad = milestones.first(where: { $0 < 0 }) {
                throw LRScheduleError("lr schedule multiStep: milestones must be ≥ 0, got \(bad)")
            }
        }
    }

    private enum CodingKeys: String, CodingKey { case kind, milestones, gamma }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try c.decode(String.self, forKey: .kind)
        switch kind {
        case "constant":
            self = .constant
        case "multiStep":
            self = .multiStep(milestones: try c.decode([Int].self, forKey: .milestones),
                              gamma: try c.decode(Double.self, forKey: .gamma))
            try validate()
        default:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c,
                debugDescription: "unknown lr schedule kind \"\(kind)\" (expected \"constant\" or \"multiStep\")")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .constant:
            try c.encode("constant", forKey: .kind)
        case let .multiStep(milestones, gamma):
            try c.encode("multiStep", forKey: .kind)
            try c.encode(milestones, forKey: .milestones)
            try c.encode(gamma, forKey: .gamma)
        }
    }
}

public struct LRScheduleError: LocalizedError, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var errorDescription: String? { message }
    public var description: String { message }
}
