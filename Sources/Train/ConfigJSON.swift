import Foundation

/// A configuration error: names the file or key and what is wrong.
public struct ConfigError: Error, LocalizedError, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
    public var errorDescription: String? { description }
}

/// JSON configs are read by deep-merging the user's object over the encoded defaults, so every field has a documented
/// default, a misspelt key is refused (it does not exist in the defaults) and `--set a.b=value` overrides work on any field.
public enum ConfigJSON {
    static func object(from data: Data, source: String) throws -> [String: Any] {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw ConfigError("\(source): not valid JSON (\(error.localizedDescription))")
        }
        guard let obj = any as? [String: Any] else { throw ConfigError("\(source): the top level must be a JSON object") }
        return obj
    }

    static func encodeToObject<T: Encodable>(_ value: T) throws -> [String: Any] {
        let data = try JSONEncoder().encode(value)
        return try object(from: data, source: "defaults")
    }

    /// Merges `over` into `base`; keys absent from `base` are errors, except under paths in `openPaths` (free-form maps).
    static func merge(_ base: [String: Any], _ over: [String: Any], path: String = "", source: String,
                      openPaths: Set<String> = []) throws -> [String: Any] {
        var out = base
        for (k, v) in over {
            let p = path.isEmpty ? k : path + "." + k
            guard let b = base[k] else {
                if openPaths.contains(path) || openPaths.contains(p) { out[k] = v; continue }
                let known = base.keys.sorted().joined(separator: ", ")
                throw ConfigError("\(source): unknown key '\(p)' (known keys here: \(known))")
            }
            if let bo = b as? [String: Any], let vo = v as? [String: Any] {
                out[k] = try merge(bo, vo, path: p, source: source, openPaths: openPaths)
            } else {
                out[k] = v
            }
        }
        return out
    }

    /// Applies `key.path=value`; the value is parsed as JSON when it can be (numbers, arrays, true/false), else a string.
    static func applyOverride(_ obj: inout [String: Any], _ assignment: String) throws {
        guard let eq = assignment.firstIndex(of: "=") else {
            throw ConfigError("--set \(assignment): expected key=value")
        }
        let key = String(assignment[..<eq])
        let raw = String(assignment[assignment.index(after: eq)...])
        let parts = key.split(separator: ".").map(String.init)
        guard !parts.isEmpty else { throw ConfigError("--set \(assignment): empty key") }
        let value: Any = (try? JSONSerialization.jsonObject(with: Data(raw.utf8), options: [.fragmentsAllowed])) ?? raw
        func set(_ o: inout [String: Any], _ i: Int) throws {
            let k = parts[i]
            guard let cur = o[k] else {
                throw ConfigError("--set \(key): unknown key '\(parts[0...i].joined(separator: "."))'")
            }
            if i == parts.count - 1 { o[k] = value; return }
            guard var sub = cur as? [String: Any] else {
                throw ConfigError("--set \(key): '\(parts[0...i].joined(separator: "."))' is not an object")
            }
            try set(&sub, i + 1)
            o[k] = sub
        }
        try set(&obj, 0)
    }

    static func decode<T: Decodable>(_ type: T.Type, from obj: [String: Any], source: String) throws -> T {
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
        do { return try JSONDecoder().decode(T.self, from: data) } catch let e as DecodingError {
            throw ConfigError("\(source): \(describe(e))")
        }
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: [CodingKey]) -> String { c.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        switch e {
        case let .typeMismatch(t, ctx): return "key '\(path(ctx.codingPath))': expected \(t) (\(ctx.debugDescription))"
        case let .valueNotFound(t, ctx): return "key '\(path(ctx.codingPath))': missing \(t)"
        case let .keyNotFound(k, ctx): return "key '\(path(ctx.codingPath + [k]))' is missing"
        case let .dataCorrupted(ctx): return "key '\(path(ctx.codingPath))': \(ctx.debugDescription)"
        @unknown default: return "\(e)"
        }
    }

    /// Results may hold NaN (a class absent from every validation case) and inf (HD95 with one empty mask):
    /// written as the strings "nan"/"inf", which Python's float() and pandas read back.
    public static func prettyData<T: Encodable>(_ value: T) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(value)
    }

    public static func decoder() -> JSONDecoder {
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return dec
    }
}
