import Foundation

/// A command-line error: the message names the option and what is wrong; main prints it and exits 2.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Minimal `--key value` / `--flag` parser. Options a command does not consume are an error (typos are refused).
struct Args {
    private var values: [String: [String]] = [:]
    private var flags: Set<String> = []
    private(set) var positional: [String] = []
    private var used: Set<String> = []

    /// `flagNames` lists options that take no value.
    init(_ argv: [String], flagNames: Set<String> = []) throws {
        var i = 0
        while i < argv.count {
            let a = argv[i]
            if a.hasPrefix("-") && a.count > 1 && Double(a) == nil {
                var key = a.drop(while: { $0 == "-" }).description
                if let eq = key.firstIndex(of: "=") {
                    values[String(key[..<eq]), default: []].append(String(key[key.index(after: eq)...]))
                    i += 1; continue
                }
                key = key.isEmpty ? a : key
                if flagNames.contains(key) {
                    flags.insert(key)
                } else {
                    guard i + 1 < argv.count else { throw UsageError("option \(a) needs a value") }
                    values[key, default: []].append(argv[i + 1])
                    i += 1
                }
            } else {
                positional.append(a)
            }
            i += 1
        }
    }

    mutating func flag(_ name: String) -> Bool { used.insert(name); return flags.contains(name) }

    mutating func string(_ name: String) -> String? { used.insert(name); return values[name]?.last }

    mutating func strings(_ name: String) -> [String] { used.insert(name); return values[name] ?? [] }

    mutating func required(_ name: String) throws -> String {
        guard let v = string(name) else { throw UsageError("missing required option --\(name)") }
        return v
    }

    mutating func int(_ name: String, default d: Int? = nil, min: Int? = nil) throws -> Int? {
        guard let s = string(name) else { return d }
        guard let v = Int(s) else { throw UsageError("option --\(name): '\(s)' is not an integer") }
        if let m = min, v < m { throw UsageError("option --\(name): \(v) is below the minimum \(m)") }
        return v
    }

    mutating func double(_ name: String, default d: Double? = nil) throws -> Double? {
        guard let s = string(name) else { return d }
        guard let v = Double(s), v.isFinite else { throw UsageError("option --\(name): '\(s)' is not a number") }
        return v
    }

    /// Refuses options nobody asked for, so a misspelt option is an error rather than silently ignored.
    func checkAllUsed() throws {
        let unknown = Set(values.keys).union(flags).subtracting(used).sorted()
        if !unknown.isEmpty { throw UsageError("unknown option(s): " + unknown.map { "--\($0)" }.joined(separator: ", ")) }
    }
}

/// Writes to standard error (progress and diagnostics; stdout is for results).
func eprint(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8) ?? Data())
}
