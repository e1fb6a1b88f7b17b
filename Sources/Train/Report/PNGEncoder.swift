import Foundation

/// A minimal PNG writer (8-bit grey or RGB, no interlace) for the report's embedded rasters. The zlib stream uses
/// STORED deflate blocks only, so no compression library is needed; the images are small enough.
public enum PNGEncoder {
    public enum ColorType: UInt8, Sendable {
        case grey = 0
        case rgb = 2
        var channels: Int { self == .grey ? 1 : 3 }
    }

    public static func encode(width: Int, height: Int, colorType: ColorType, pixels: [UInt8]) throws -> Data {
        guard width > 0, height > 0, width <= 1 << 24, height <= 1 << 24 else {
            throw ConfigError("PNG: invalid size \(width)×\(height)")
        }
        let rowBytes = width * colorType.channels
        guard pixels.count == rowBytes * height else {
            throw ConfigError("PNG: \(pixels.count) bytes of pixels for \(width)×\(height) with \(colorType.channels) channel(s), expected \(rowBytes * height)")
        }
        // Scanlines, each led by filter type 0 (none).
        var raw = [UInt8]()
        raw.reserveCapacity((rowBytes + 1) * height)
        for y in 0..<height {
            raw.append(0)
            raw.append(contentsOf: pixels[(y * rowBytes)..<((y + 1) * rowBytes)])
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var ihdr = [UInt8]()
        ihdr += be32(UInt32(width)) + be32(UInt32(height))
        ihdr += [8, colorType.rawValue, 0, 0, 0] // bit depth, colour type, compression, filter, interlace
        chunk(&png, "IHDR", ihdr)
        chunk(&png, "IDAT", zlibStored(raw))
        chunk(&png, "IEND", [])
        return Data(png)
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ out: inout [UInt8], _ type: String, _ data: [UInt8]) {
        let t = Array(type.utf8)
        out += be32(UInt32(data.count))
        out += t
        out += data
        out += be32(crc32(t + data))
    }

    /// zlib (RFC 1950) around STORED deflate blocks (RFC 1951 §3.2.4) of at most 65,535 bytes, then Adler-32.
    static func zlibStored(_ raw: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01] // CM 8, 32K window, FCHECK so that 0x7801 % 31 == 0, no dictionary
        var pos = 0
        repeat {
            let n = min(65_535, raw.count - pos)
            let final: UInt8 = pos + n == raw.count ? 1 : 0
            out.append(final) // BFINAL in bit 0, BTYPE 00 (stored); the rest of the byte is padding
            out += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += raw[pos..<(pos + n)]
            pos += n
        } while pos < raw.count
        out += be32(adler32(raw))
        return out
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        // 5552 is the longest run before b can overflow 32 bits, so the modulo can wait until then.
        var i = 0
        while i < bytes.count {
            let end = min(i + 5552, bytes.count)
            while i < end { a &+= UInt32(bytes[i]); b &+= a; i += 1 }
            a %= 65_521; b %= 65_521
        }
        return (b << 16) | a
    }

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// An 8-bit indexed-colour PNG (colour type 3): one byte per pixel, a third of RGB's size with stored blocks.
    public static func encodeIndexed(width: Int, height: Int, palette: [(UInt8, UInt8, UInt8)], indices: [UInt8]) throws -> Data {
        guard width > 0, height > 0, width <= 1 << 24, height <= 1 << 24 else {
            throw ConfigError("PNG: invalid size \(width)×\(height)")
        }
        guard !palette.isEmpty, palette.count <= 256 else { throw ConfigError("PNG: a palette needs 1...256 entries, got \(palette.count)") }
        guard indices.count == width * height else {
            throw ConfigError("PNG: \(indices.count) palette indices for \(width)×\(height), expected \(width * height)")
        }
        if let bad = indices.first(where: { Int($0) >= palette.count }) {
            throw ConfigError("PNG: palette index \(bad) outside the \(palette.count)-entry palette")
        }
        var raw = [UInt8]()
        raw.reserveCapacity((width + 1) * height)
        for y in 0..<height {
            raw.append(0)
            raw.append(contentsOf: indices[(y * width)..<((y + 1) * width)])
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        chunk(&png, "IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, 3, 0, 0, 0])
        chunk(&png, "PLTE", palette.flatMap { [$0.0, $0.1, $0.2] })
        chunk(&png, "IDAT", zlibStored(raw))
        chunk(&png, "IEND", [])
        return Data(png)
    }

    /// `data:image/png;base64,...` for an <img> or SVG <image>.
    public static func dataURI(_ png: Data) -> String { "data:image/png;base64," + png.base64EncodedString() }
}
