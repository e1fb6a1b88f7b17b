/// One named parameter tensor inside the arena (PyTorch name and shape).
public struct ParameterEntry: Sendable, Equatable, Codable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public let count: Int
    public var range: Range<Int> { offset..<(offset + count) }
}

/// All parameters in ONE contiguous buffer and all gradients in another, so data-parallel all-reduce and the
/// optimiser see a few large flat arrays. `entries` follow PyTorch `named_parameters()` order.
public final class ParameterArena {
    public var values: [Float]
    public var grads: [Float]
    public private(set) var entries: [ParameterEntry]

    public var count: Int { values.count }

    init(entries: [ParameterEntry]) {
        self.entries = entries
        let n = entries.last.map { $0.offset + $0.count } ?? 0
        values = [Float](repeating: 0, count: n)
        grads = [Float](repeating: 0, count: n)
    }

    public func entry(named name: String) -> ParameterEntry? { entries.first { $0.name == name } }

    /// Builds entries in order; `add` returns the offset of the new tensor.
    struct Builder {
        var entries: [ParameterEntry] = []
        var next = 0
        mutating func add(_ name: String, _ shape: [Int]) -> Int {
            let c = shape.reduce(1, *)
            entries.append(ParameterEntry(name: name, shape: shape, offset: next, count: c))
            next += c
            return next - c
        }
    }
}
