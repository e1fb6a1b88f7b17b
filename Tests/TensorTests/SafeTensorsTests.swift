import XCTest
@testable import Tensor

final class SafeTensorsTests: XCTestCase {
    private func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("taux-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    private let sample: [NamedTensor] = [
        NamedTensor(name: "encoder.stages.0.0.convs.0.conv.weight", shape: [2, 1, 3, 3], values: (0 ..< 18).map { Float($0) * 0.25 - 2 }),
        NamedTensor(name: "bias \"quoted\"\\name", shape: [3], values: [1, -2, .greatestFiniteMagnitude]),
        NamedTensor(name: "scalar", shape: [], values: [42]),
        NamedTensor(name: "empty", shape: [0, 4], values: []),
    ]

    func testRoundTripWithMetadata() throws {
        let f = try tempDir().appendingPathComponent("t.safetensors")
        let meta = ["config": #"{"features":[8,16]}"#, "step": "12"]
        try SafeTensors.write(sample, metadata: meta, to: f)
        let (t, m) = try SafeTensors.read(f)
        XCTAssertEqual(m, meta)
        XCTAssertEqual(t.count, sample.count)
        for s in sample { XCTAssertEqual(t[s.name], s) }
        // Header length is a multiple of 8 so the data section is aligned.
        let bytes = try Data(contentsOf: f)
        let n = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(bytes.count, 8 + Int(n) + 4 * (18 + 3 + 1))
    }

    /// A file laid out by hand the way other writers may do it (other dtypes, key order, no metadata).
    private func handMade(_ header: String, _ data: [UInt8]) -> Data {
        var d = Data()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
        d.append(Data(header.utf8))
        d.append(contentsOf: data)
        return d
    }

    private func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    func testReadsOtherDtypes() throws {
        let header = #"{"b":{"dtype":"I64","shape":[2],"data_offsets":[8,24]},"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"# +
            #""h":{"dtype":"BF16","shape":[1],"data_offsets":[24,26]},"f":{"dtype":"F16","shape":[1],"data_offsets":[26,28]}}  "#
        let data = bytes([1.5]) + bytes([Int64(-3), Int64(7)]) + bytes([UInt16(0x3FC0)]) + bytes([UInt16(0xC500)])
        let (t, m) = try SafeTensors.parse(handMade(header, data), file: "x.safetensors")
        XCTAssertTrue(m.isEmpty)
        XCTAssertEqual(t["a"]?.values, [1.5])
        XCTAssertEqual(t["b"]?.values, [-3, 7])
        XCTAssertEqual(t["h"]?.values, [1.5])   // bf16 0x3FC0 = 1.5
        XCTAssertEqual(t["f"]?.values, [-5])    // f16 0xC500 = -5
    }

    private func assertFails(_ data: Data, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensors.parse(data, file: "bad.safetensors"), file: file, line: line) { err in
            let msg = "\(err)"
            XCTAssertTrue(msg.contains("bad.safetensors"), "error does not name the file: \(msg)", file: file, line: line)
            XCTAssertTrue(msg.contains(needle), "expected '\(needle)' in: \(msg)", file: file, line: line)
        }
    }

    func testTruncatedFiles() throws {
        let full = try SafeTensors.serialize(sample, metadata: ["k": "v"])
        assertFails(full.prefix(5), "truncated")
        assertFails(full.prefix(40), "header length")       // header cut
        assertFails(full.prefix(full.count - 3), "truncated")  // data cut
        // On disk too: the error names the path.
        let f = try tempDir().appendingPathComponent("cut.safetensors")
        try full.prefix(full.count - 4).write(to: f)
        XCTAssertThrowsError(try SafeTensors.read(f)) { XCTAssertTrue("\($0)".contains(f.path), "\($0)") }
        XCTAssertThrowsError(try SafeTensors.read(f.deletingLastPathComponent().appendingPathComponent("missing.safetensors"))) {
            XCTAssertTrue("\($0)".contains("missing.safetensors"), "\($0)")
        }
    }

    func testRejectsInvalidHeaders() {
        let four = bytes([Float(1), 2, 3, 4])
        assertFails(handMade(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#, four), "needs 12 bytes")
        assertFails(handMade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, four + [0, 0, 0, 0]),
                    "overlap")
        assertFails(handMade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, four), "gap")
        assertFails(handMade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, four), "trailing")
        assertFails(handMade(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}"#, four), "not valid JSON")
        assertFails(handMade(#"[1,2]"#, four), "not a JSON object")
        assertFails(handMade(#"{"a":{"dtype":"Q8","shape":[4],"data_offsets":[0,16]}}"#, four), "unsupported dtype Q8")
        assertFails(handMade(#"{"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#, four), "invalid dimension")
        assertFails(handMade(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0]}}"#, four), "data_offsets")
        assertFails(handMade(#"{"__metadata__":{"x":1},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, four), "not a string")
        var huge = Data(repeating: 0xFF, count: 8); huge.append(contentsOf: four)
        assertFails(huge, "exceeds")
    }

    func testWriteRejectsBadTensors() throws {
        let f = try tempDir().appendingPathComponent("w.safetensors")
        XCTAssertThrowsError(try SafeTensors.write([NamedTensor(name: "a", shape: [2, 2], values: [1, 2, 3])], to: f)) {
            XCTAssertTrue("\($0)".contains("shape [2, 2]"), "\($0)")
        }
        XCTAssertThrowsError(try SafeTensors.write([NamedTensor(name: "a", shape: [1], values: [1]),
                                                    NamedTensor(name: "a", shape: [1], values: [2])], to: f))
        XCTAssertFalse(FileManager.default.fileExists(atPath: f.path), "no partial file after a failed write")
    }

    // MARK: Checkpoint

    private func makeArena() -> ParameterArena {
        var b = ParameterArena.Builder()
        _ = b.add("encoder.stages.0.0.convs.0.conv.weight", [4, 1, 3, 3])
        _ = b.add("encoder.stages.0.0.convs.0.conv.bias", [4])
        _ = b.add("decoder.seg_layers.0.weight", [3, 4, 1, 1])
        let a = ParameterArena(entries: b.entries)
        for i in a.values.indices { a.values[i] = Float(CounterRNG.normal(key: 11, counter: UInt64(i))) }
        return a
    }

    func testCheckpointRoundTrip() throws {
        let dir = try tempDir().appendingPathComponent("ckpt")
        let a = makeArena()
        let opt = AdamW(count: a.count, weightDecay: 0.01)
        for i in a.grads.indices { a.grads[i] = Float(i % 7) - 3 }
        opt.step(params: &a.values, grads: a.grads, lr: 1e-3)
        opt.step(params: &a.values, grads: a.grads, lr: 1e-3)
        try Checkpoint.save(arena: a, optimizer: opt, metadata: ["config": "x"], directory: dir)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)),
                       [Checkpoint.modelFileName, Checkpoint.optimizerFileName])

        let b = makeArena()
        b.values = [Float](repeating: 0, count: b.count)
        let opt2 = AdamW(count: b.count, weightDecay: 0.01)
        let info = try Checkpoint.load(directory: dir, arena: b, optimizer: opt2)
        XCTAssertEqual(info.step, 2)
        XCTAssertEqual(info.metadata["config"], "x")
        XCTAssertEqual(b.values, a.values)
        XCTAssertEqual(opt2.m, opt.m)
        XCTAssertEqual(opt2.v, opt.v)
        XCTAssertEqual(opt2.t, 2)
        // Names in the model file are exactly the arena's names.
        let (t, _) = try SafeTensors.read(dir.appendingPathComponent(Checkpoint.modelFileName))
        XCTAssertEqual(Set(t.keys), Set(a.entries.map(\.name)))
        // The next step after resuming equals the next step without stopping.
        opt.step(params: &a.values, grads: a.grads, lr: 1e-3)
        opt2.step(params: &b.values, grads: a.grads, lr: 1e-3)
        XCTAssertEqual(b.values, a.values)
    }

    func testCheckpointWrongShapeAndMissingTensor() throws {
        let dir = try tempDir()
        let a = makeArena()
        var tensors = Checkpoint.tensors(of: a)
        tensors[1] = NamedTensor(name: tensors[1].name, shape: [5], values: [1, 2, 3, 4, 5])
        let wrong = dir.appendingPathComponent("wrong.safetensors")
        try SafeTensors.write(tensors, to: wrong)
        let before = a.values
        XCTAssertThrowsError(try Checkpoint.loadModel(into: a, from: wrong)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("wrong.safetensors") && m.contains("encoder.stages.0.0.convs.0.conv.bias")
                          && m.contains("[5]") && m.contains("[4]"), m)
        }
        XCTAssertEqual(a.values, before, "nothing loaded on mismatch")

        let missing = dir.appendingPathComponent("missing.safetensors")
        try SafeTensors.write(Array(Checkpoint.tensors(of: a).dropLast()) + [NamedTensor(name: "extra", shape: [1], values: [0])], to: missing)
        XCTAssertThrowsError(try Checkpoint.loadModel(into: a, from: missing)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("missing tensor decoder.seg_layers.0.weight") && m.contains("unexpected tensor extra"), m)
        }
    }

    func testCheckpointTruncatedAndInconsistent() throws {
        let dir = try tempDir()
        let a = makeArena()
        let opt = AdamW(count: a.count)
        opt.step(params: &a.values, grads: a.grads, lr: 1e-3)
        try Checkpoint.save(arena: a, optimizer: opt, directory: dir)
        let model = dir.appendingPathComponent(Checkpoint.modelFileName)
        let good = try Data(contentsOf: model)
        try good.prefix(good.count - 10).write(to: model)
        XCTAssertThrowsError(try Checkpoint.load(directory: dir, arena: a, optimizer: opt)) {
            XCTAssertTrue("\($0)".contains("truncated") && "\($0)".contains(model.path), "\($0)")
        }
        // Model file from a later step than the optimiser file (crash between the two renames).
        try good.write(to: model)
        let opt3 = AdamW(count: a.count)
        opt3.t = 5
        try SafeTensors.write(Checkpoint.tensors(of: a), metadata: ["step": "5"], to: model)
        XCTAssertThrowsError(try Checkpoint.load(directory: dir, arena: a, optimizer: opt3)) {
            XCTAssertTrue("\($0)".contains("inconsistent"), "\($0)")
        }
    }
}
