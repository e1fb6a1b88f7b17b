import Foundation

public struct CheckpointError: LocalizedError, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var errorDescription: String? { message }
    public var description: String { message }
}

/// What `Checkpoint.load` restored besides the tensors.
public struct CheckpointInfo: Equatable, Sendable {
    /// Optimiser step count (AdamW.t) at save time.
    public var step: Int
    /// The model file's metadata (caller's keys plus "step").
    public var metadata: [String: String]
}

/// Model weights and optimiser state as safetensors with PyTorch PlainConvUNet names, so
/// `PlainConvUNet(...).load_state_dict(load_file("model.safetensors"), strict=False)` loads every weight.
/// A checkpoint directory holds `model.safetensors` (weights) and `optimizer.safetensors`
/// (`optimizer.m.<name>`, `optimizer.v.<name>`; step and hyper-parameters in its metadata). Each file is
/// replaced atomically; both carry the step, and loading refuses a pair whose steps disagree (a crash between
/// the two renames).
public enum Checkpoint {
    public static let modelFileName = "model.safetensors"
    public static let optimizerFileName = "optimizer.safetensors"

    /// The arena's parameters as named tensors in `named_parameters()` order.
    public static func tensors(of arena: ParameterArena) -> [NamedTensor] {
        arena.values.withUnsafeBufferPointer { v in
            arena.entries.map { e in NamedTensor(name: e.name, shape: e.shape, values: Array(v[e.range])) }
        }
    }

    /// Checks that `tensors` has exactly the arena's names and shapes; returns the problems (empty = match).
    public static func mismatches(_ tensors: [String: NamedTensor], expected entries: [ParameterEntry],
                                  prefix: String = "") -> [String] {
        var problems: [String] = []
        var expectedNames = Set<String>()
        for e in entries {
            let name = prefix + e.name
            expectedNames.insert(name)
            guard let t = tensors[name] else { problems.append("missing tensor \(name) \(e.shape)"); continue }
            if t.shape != e.shape { problems.append("tensor \(name) has shape \(t.shape), the network expects \(e.shape)") }
        }
        for name in tensors.keys.sorted() where !expectedNames.contains(name) {
            problems.append("unexpected tensor \(name) \(tensors[name]!.shape)")
        }
        return problems
    }

    static func describe(_ problems: [String], file: String, limit: Int = 12) -> String {
        var s = "\(file) does not match the configured network (\(problems.count) problem\(problems.count == 1 ? "" : "s")):"
        for p in problems.prefix(limit) { s += "\n  - " + p }
        if problems.count > limit { s += "\n  - ... and \(problems.count - limit) more" }
        return s
    }

    /// Copies `tensors` into the arena after checking every name and shape; nothing is copied on mismatch.
    public static func load(_ tensors: [String: NamedTensor], into arena: ParameterArena, file: String = "checkpoint") throws {
        let problems = mismatches(tensors, expected: arena.entries)
        guard problems.isEmpty else { throw CheckpointError(describe(problems, file: file)) }
        arena.values.withUnsafeMutableBufferPointer { v in
            for e in arena.entries {
                let src = tensors[e.name]!.values
                src.withUnsafeBufferPointer { s in
                    _ = UnsafeMutableBufferPointer(rebasing: v[e.range]).initialize(from: s)
                }
            }
        }
    }

    public static func saveModel(_ arena: ParameterArena, metadata: [String: String] = [:], to url: URL) throws {
        try SafeTensors.write(tensors(of: arena), metadata: metadata, to: url)
    }

    /// Loads weights from one safetensors file; returns its metadata.
    @discardableResult
    public static func loadModel(into arena: ParameterArena, from url: URL) throws -> [String: String] {
        let (t, meta) = try SafeTensors.read(url)
        try load(t, into: arena, file: url.path)
        return meta
    }

    /// Writes `<directory>/model.safetensors` and `<directory>/optimizer.safetensors` (creating the directory).
    public static func save(arena: ParameterArena, optimizer: AdamW, metadata: [String: String] = [:],
                            directory: URL) throws {
        guard optimizer.count == arena.count else {
            throw CheckpointError("checkpoint \(directory.path): optimiser holds \(optimizer.count) values, the network \(arena.count)")
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError("cannot create checkpoint directory \(directory.path): \(error.localizedDescription)")
        }
        let step = String(optimizer.t)
        var optTensors: [NamedTensor] = []
        optTensors.reserveCapacity(2 * arena.entries.count)
        for e in arena.entries {
            optTensors.append(NamedTensor(name: "optimizer.m.\(e.name)", shape: e.shape, values: Array(optimizer.m[e.range])))
        }
        for e in arena.entries {
            optTensors.append(NamedTensor(name: "optimizer.v.\(e.name)", shape: e.shape, values: Array(optimizer.v[e.range])))
        }
        let optMeta = ["format": "episodic-adamw-1", "step": step, "beta1": "\(optimizer.beta1)",
                       "beta2": "\(optimizer.beta2)", "eps": "\(optimizer.eps)", "weight_decay": "\(optimizer.weightDecay)"]
        // Optimiser first, model last: the model file is the one people copy; both carry the step.
        try SafeTensors.write(optTensors, metadata: optMeta, to: directory.appendingPathComponent(optimizerFileName))
        var meta = metadata
        meta["step"] = step
        try saveModel(arena, metadata: meta, to: directory.appendingPathComponent(modelFileName))
    }

    /// Restores weights and optimiser state written by `save`. Everything is validated before anything is changed.
    public static func load(directory: URL, arena: ParameterArena, optimizer: AdamW) throws -> CheckpointInfo {
        let modelURL = directory.appendingPathComponent(modelFileName)
        let optURL = directory.appendingPathComponent(optimizerFileName)
        let (mt, meta) = try SafeTensors.read(modelURL)
        let problems = mismatches(mt, expected: arena.entries)
        guard problems.isEmpty else { throw CheckpointError(describe(problems, file: modelURL.path)) }
        let (ot, ometa) = try SafeTensors.read(optURL)
        let optProblems = mismatches(ot, expected: arena.entries.map {
            ParameterEntry(name: "optimizer.m." + $0.name, shape: $0.shape, offset: $0.offset, count: $0.count)
        } + arena.entries.map {
            ParameterEntry(name: "optimizer.v." + $0.name, shape: $0.shape, offset: $0.offset, count: $0.count)
        })
        guard optProblems.isEmpty else { throw CheckpointError(describe(optProblems, file: optURL.path)) }
        guard let stepString = ometa["step"], let step = Int(stepString), step >= 0 else {
            throw CheckpointError("\(optURL.path): metadata has no valid \"step\" (got \(ometa["step"] ?? "nothing"))")
        }
        if let ms = meta["step"], ms != stepString {
            throw CheckpointError("checkpoint \(directory.path) is inconsistent: \(modelFileName) is at step \(ms) but "
                + "\(optimizerFileName) at step \(stepString) (interrupted save?)")
        }
        guard optimizer.count == arena.count else {
            throw CheckpointError("checkpoint \(directory.path): optimiser holds \(optimizer.count) values, the network \(arena.count)")
        }
        try load(mt, into: arena, file: modelURL.path)
        for e in arena.entries {
            optimizer.m.replaceSubrange(e.range, with: ot["optimizer.m." + e.name]!.values)
            optimizer.v.replaceSubrange(e.range, with: ot["optimizer.v." + e.name]!.values)
        }
        optimizer.t = step
        return CheckpointInfo(step: step, metadata: meta)
    }
}

// The contract's UNet-level entry points (docs/INTERFACES.md "Tensor"); they live here, beside the checkpoint
// code, rather than in UNet.swift.
extension UNet {
    /// Weights as named tensors with PyTorch PlainConvUNet names and shapes, in named_parameters() order.
    public func stateTensors() -> [NamedTensor] { Checkpoint.tensors(of: parameters) }

    /// Loads weights by name; every name and shape must match the configured network (the error lists the
    /// mismatches) and nothing is changed on error.
    public func load(_ tensors: [String: NamedTensor]) throws { try Checkpoint.load(tensors, into: parameters) }
}
