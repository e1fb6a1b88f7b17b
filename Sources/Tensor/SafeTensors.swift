import Foundation

/// A named Float32 tensor (row-major, PyTorch order), as stored in a safetensors file.
public struct NamedTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }

    public var count: Int { values.count }
}

public struct SafeTensorsError: LocalizedError, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var errorDescription: String? { message }
    public var description: String { message }
}

#if _endian(big)
#error("SafeTensors I/O assumes a little-endian host (the format is little-endian)")
#endif

/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
/// N bytes of JSON `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`
/// (space-padded so the data starts 8-byte aligned), then the raw little-endian tensor bytes, offsets relative to
/// the start of the data. We write F32; we read F32, and convert F64/F16/BF16/I64/I32 to Float.
public enum SafeTensors {
    /// Headers larger than this are refused (the reference implementation uses the same 100 MB limit).
    public static let maxHeaderBytes = 100_000_000

    /// Writes `tensors` (in this order) atomically to `url`.
    public static func write(_ tensors: [NamedTensor], metadata: [String: String] = [:], to url: URL) throws {
        let header = try makeHeader(tensors, metadata: metadata, file: url.path)
        try AtomicFile.write(to: url) { w in
            var len = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &len) { try w.write($0) }
            try w.write(header)
            for t in tensors { try w.write(t.values) }
        }
    }

    /// The whole file as bytes (for small files and tests).
    public static func serialize(_ tensors: [NamedTensor], metadata: [String: String] = [:]) throws -> Data {
        let header = try makeHeader(tensors, metadata: metadata, file: "<memory>")
        var out = Data()
        var len = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(header)
        for t in tensors { t.values.withUnsafeBytes { out.append(contentsOf: $0) } }
        return out
    }

    static func makeHeader(_ tensors: [NamedTensor], metadata: [String: String], file: String) throws -> Data {
        var seen = Set<String>()
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(quote($0)):\(quote(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for t in tensors {
            guard !t.name.isEmpty, t.name != "__metadata__" else {
                throw SafeTensorsError("\(file): invalid tensor name \"\(t.name)\"")
            }
            guard seen.insert(t.name).inserted else { throw SafeTensorsError("\(file): duplicate tensor name \(t.name)") }
            guard t.shape.allSatisfy({ $0 >= 0 }), t.shape.reduce(1, *) == t.values.count else {
                throw SafeTensorsError("\(file): tensor \(t.name) has shape \(t.shape) but \(t.values.count) values")
            }
            let end = offset + 4 * t.values.count
            if !first { json += "," }
            first = false
            json += "\(quote(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                + "\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var bytes = Data(json.utf8)
        // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
        let pad = (8 - (8 + bytes.count) % 8) % 8
        bytes.append(contentsOf: [UInt8](repeating: 0x20, count: pad))
        return bytes
    }

    private static func quote(_ s: String) -> String {
        var r = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\r": r += "\\r"
            case "\t": r += "\\t"
            default:
                if u.value < 0x20 { r += String(format: "\\u%04x", u.value) } else { r.unicodeScalars.append(u) }
            }
        }
        return r + "\""
    }

    public static func read(_ url: URL) throws -> (tensors: [String: NamedTensor], metadata: [String: String]) {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafeTensorsError("cannot read safetensors file \(url.path): \(error.localizedDescription)")
        }
        return try parse(data, file: url.path)
    }

    private static let dtypeSizes: [String: Int] = ["F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4]

    /// Parses and validates a whole safetensors file held in memory; `file` names it in errors.
    public static func parse(_ data: Data, file: String) throws -> (tensors: [String: NamedTensor], metadata: [String: String]) {
        func fail(_ what: String) -> SafeTensorsError { SafeTensorsError("\(file): \(what)") }
        let size = data.count
        guard size >= 8 else { throw fail("truncated safetensors file (\(size) bytes; the header length alone needs 8)") }
        let n64: UInt64 = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self) }.littleEndian
        guard n64 <= UInt64(maxHeaderBytes) else { throw fail("header length \(n64) exceeds the \(maxHeaderBytes)-byte limit") }
        let n = Int(n64)
        guard n <= size - 8 else {
            throw fail("truncated safetensors file: header length \(n) runs past the end of the file (\(size) bytes)")
        }
        let headerBytes = data.subdata(in: data.startIndex + 8 ..< data.startIndex + 8 + n)
        guard headerBytes.first == UInt8(ascii: "{") else { throw fail("header is not a JSON object (does not start with '{')") }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw fail("header is not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = parsed as? [String: Any] else { throw fail("header is not a JSON object") }
        let dataStart = 8 + n
        let dataLength = size - dataStart

        var metadata: [String: String] = [:]
        if let meta = dict["__metadata__"] {
            guard let m = meta as? [String: Any] else { throw fail("__metadata__ is not an object of strings") }
            for (k, v) in m {
                guard let s = v as? String else { throw fail("__metadata__ value for \"\(k)\" is not a string") }
                metadata[k] = s
            }
        }

        struct Spec { let name: String; let dtype: String; let shape: [Int]; let begin: Int; let end: Int }
        func nonNegativeInt(_ v: Any) -> Int? {
            // JSON numbers arrive as NSNumber; accept only exact non-negative integers below 2^53.
            guard let num = v as? NSNumber else { return nil }
            let d = num.doubleValue
            guard d >= 0, d == d.rounded(), d < 0x1p53 else { return nil }
            return Int(d)
        }
        var specs: [Spec] = []
        for (name, value) in dict where name != "__metadata__" {
            guard let t = value as? [String: Any] else { throw fail("entry for tensor \(name) is not an object") }
            guard let dtype = t["dtype"] as? String else { throw fail("tensor \(name) has no dtype string") }
            guard let elem = dtypeSizes[dtype] else {
                throw fail("tensor \(name) has unsupported dtype \(dtype) (supported: \(dtypeSizes.keys.sorted().joined(separator: ", ")))")
            }
            guard let shapeAny = t["shape"] as? [Any] else { throw fail("tensor \(name) has no shape array") }
            var shape: [Int] = []
            for d in shapeAny {
                guard let i = nonNegativeInt(d) else { throw fail("tensor \(name) has an invalid dimension \(d) in its shape") }
                shape.append(i)
            }
            guard let offs = t["data_offsets"] as? [Any], offs.count == 2,
                  let begin = nonNegativeInt(offs[0]), let end = nonNegativeInt(offs[1]) else {
                throw fail("tensor \(name) needs data_offsets [begin, end] of non-negative integers")
            }
            guard begin <= end else { throw fail("tensor \(name) has data_offsets [\(begin), \(end)] with begin > end") }
            var elements = 1
            for d in shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw fail("tensor \(name) shape \(shape) overflows") }
                elements = p
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: elem)
            guard !o, bytes == end - begin else {
                throw fail("tensor \(name): shape \(shape) × \(dtype) needs \(elements * elem) bytes but data_offsets "
                    + "[\(begin), \(end)] span \(end - begin)")
            }
            specs.append(Spec(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        // The tensors must tile the data section exactly: no overlap, no hole, nothing past the end.
        specs.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        for s in specs {
            if s.begin < cursor { throw fail("tensor \(s.name) data_offsets [\(s.begin), \(s.end)] overlap the previous tensor (ends at \(cursor))") }
            if s.begin > cursor { throw fail("gap in the data section before tensor \(s.name) (bytes \(cursor)..<\(s.begin) unused)") }
            cursor = s.end
        }
        if cursor > dataLength {
            let culprit = specs.first { $0.end > dataLength }?.name ?? "?"
            throw fail("truncated safetensors file: tensors need \(cursor) data bytes but only \(dataLength) follow the header "
                + "(tensor \(culprit) is cut off)")
        }
        if cursor < dataLength { throw fail("\(dataLength - cursor) unexpected trailing bytes after the last tensor") }

        var tensors: [String: NamedTensor] = [:]
        tensors.reserveCapacity(specs.count)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            for s in specs {
                let base = raw.baseAddress! + dataStart + s.begin
                let count = (s.end - s.begin) / dtypeSizes[s.dtype]!
                let values = [Float](unsafeUninitializedCapacity: count) { buf, initialized in
                    switch s.dtype {
                    case "F32":
                        if count > 0 { memcpy(buf.baseAddress!, base, count * 4) }
                    case "F64":
                        for i in 0 ..< count { buf[i] = Float(base.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
                    case "I64":
                        for i in 0 ..< count { buf[i] = Float(base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
                    case "I32":
                        for i in 0 ..< count { buf[i] = Float(base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
                    case "BF16":
                        for i in 0 ..< count {
                            let b = base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                            buf[i] = Float(bitPattern: UInt32(b) << 16)
                        }
                    default: // F16
                        for i in 0 ..< count { buf[i] = halfToFloat(base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
                    }
                    initialized = count
                }
                tensors[s.name] = NamedTensor(name: s.name, shape: s.shape, values: values)
            }
        }
        return (tensors, metadata)
    }

    /// IEEE 754 binary16 → Float (done by hand: Float16 is not available on every platform).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign: Float = (h & 0x8000) != 0 ? -1 : 1
        let exp = Int((h >> 10) & 0x1F)
        let frac = Float(h & 0x3FF)
        if exp == 0 { return sign * frac * 0x1p-24 }
        if exp == 31 { return frac == 0 ? sign * .infinity : .nan }
        return sign * (1 + frac / 1024) * Float(sign: .plus, exponent: exp - 15, significand: 1)
    }
}
