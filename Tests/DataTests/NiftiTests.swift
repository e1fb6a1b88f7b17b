import Foundation
import XCTest
@testable import Data

func fixtureDir() throws -> URL {
    let base = try XCTUnwrap(Bundle.module.resourceURL)
    return base.appendingPathComponent("Fixtures").appendingPathComponent("nifti")
}

func tempDir(_ name: String) throws -> URL {
    let d = FileManager.default.temporaryDirectory
        .appendingPathComponent("episodic-data-tests-\(ProcessInfo.processInfo.processIdentifier)-\(name)")
    try? FileManager.default.removeItem(at: d)
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

func assertThrows(_ body: () throws -> Void, contains parts: [String], file: StaticString = #filePath,
                  line: UInt = #line) {
    do {
        try body()
        XCTFail("expected an error containing \(parts)", file: file, line: line)
    } catch {
        let msg = "\(error)"
        for p in parts { XCTAssertTrue(msg.contains(p), "error '\(msg)' lacks '\(p)'", file: file, line: line) }
    }
}

struct Expected: Decodable {
    var orientation: String
    var rasDims: [Int]
    var spacing: [Double]
    var rasAffine: [Double]
    var data: [Double]
    var sformCode: Int
    var qformCode: Int
}

final class NiftiTests: XCTestCase {
    func loadExpected() throws -> [String: Expected] {
        let url = try fixtureDir().appendingPathComponent("expected.json")
        return try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: url))
    }

    /// Every fixture (LPS, LAS, RAS, a permuted AIR, big-endian, scaled, sform-only, qform-only, sform-over-qform,
    /// oblique, float32 .nii) reads to the RAS array, spacing, orientation and affine nibabel computes.
    func testFixturesMatchNibabel() throws {
        let exp = try loadExpected()
        XCTAssertGreaterThanOrEqual(exp.count, 11)
        for (name, e) in exp.sorted(by: { $0.key < $1.key }) {
            let v = try NiftiVolume.read(try fixtureDir().appendingPathComponent(name))
            XCTAssertEqual(v.dims, e.rasDims, name)
            XCTAssertEqual(v.geometry.orientation, e.orientation, name)
            XCTAssertEqual(Int(v.header.sformCode), e.sformCode, name)
            XCTAssertEqual(Int(v.header.qformCode), e.qformCode, name)
            for (a, b) in zip(v.spacing, e.spacing) { XCTAssertEqual(a, b, accuracy: 1e-5, name) }
            for (a, b) in zip(v.affine, e.rasAffine) { XCTAssertEqual(a, b, accuracy: 1e-4, name) }
            XCTAssertEqual(v.data.count, e.data.count, name)
            XCTAssertEqual(v.data.map(Double.init), e.data, name)
        }
        let be = try NiftiVolume.read(try fixtureDir().appendingPathComponent("las_bigendian.nii.gz"))
        XCTAssertTrue(be.header.byteSwapped)
        let sc = try NiftiVolume.read(try fixtureDir().appendingPathComponent("ras_scaled.nii.gz"))
        XCTAssertEqual(sc.header.sclSlope, 0.5)
        XCTAssertEqual(sc.header.sclInter, -10)
    }

    /// A label map written with `writeLabelVolume(like:)` lands in the input's stored geometry and reads back to
    /// the same RAS array.
    func testWriteLabelVolumeRoundTrip() throws {
        let dir = try tempDir("roundtrip")
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["lps.nii.gz", "las.nii.gz", "air.nii.gz", "ras.nii.gz", "lps_sform_only.nii.gz",
                     "las_qform_only.nii.gz", "lps_oblique.nii.gz"] {
            let src = try NiftiVolume.read(try fixtureDir().appendingPathComponent(name))
            let labels = src.data.map { UInt8(Int($0) % 7) }
            let out = dir.appendingPathComponent("pred_" + name)
            try NiftiVolume.writeLabelVolume(like: src, labels: labels, to: out)
            let back = try NiftiVolume.read(out)
            XCTAssertEqual(back.header.dims, src.header.dims, name)
            XCTAssertEqual(back.geometry.orientation, src.geometry.orientation, name)
            XCTAssertEqual(back.header.datatypeName, "UINT8", name)
            XCTAssertEqual(back.dims, src.dims, name)
            for (a, b) in zip(back.affine, src.affine) { XCTAssertEqual(a, b, accuracy: 1e-3, name) }
            XCTAssertEqual(back.data, labels.map(Float.init), name)
            // Stored order is the input's: the raw stored arrays agree too.
            XCTAssertEqual(Orientation.unreorient(back.data, geometry: back.geometry),
                           Orientation.unreorient(labels.map(Float.init), geometry: src.geometry), name)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
    }

    func testReorientInverts() throws {
        let dims = [3, 4, 2]
        let data = (0..<24).map { Float($0) }
        for perm in [[0, 1, 2], [1, 2, 0], [2, 0, 1], [1, 0, 2]] {
            for mask in 0..<8 {
                let flips = (0..<3).map { mask & (1 << $0) != 0 }
                var storedDims = [0, 0, 0]
                for w in 0..<3 { storedDims[perm[w]] = dims[w] }
                let g = NiftiGeometry(storedDims: storedDims, permutation: perm, flips: flips, orientation: "",
                                      pixdim: [1, 1, 1], qformCode: 0, qform: [], sformCode: 0, sform: [])
                XCTAssertEqual(g.rasDims, dims)
                let s = Orientation.unreorient(data, geometry: g)
                XCTAssertEqual(Orientation.reorient(s, geometry: g), data, "perm \(perm) flips \(flips)")
                if perm != [0, 1, 2] || mask != 0 { XCTAssertNotEqual(s, data) }
            }
        }
    }

    func testBadFiles() throws {
        let d = try fixtureDir()
        assertThrows({ _ = try NiftiVolume.read(d.appendingPathComponent("bad_complex.nii.gz")) },
                     contains: ["bad_complex.nii.gz", "unsupported datatype"])
        assertThrows({ _ = try NiftiVolume.read(d.appendingPathComponent("bad_nan.nii.gz")) },
                     contains: ["bad_nan.nii.gz", "NaN"])
        assertThrows({ _ = try NiftiVolume.read(d.appendingPathComponent("bad_huge_header.nii")) },
                     contains: ["bad_huge_header.nii", "memory cap"])
        // A small cap refuses even a valid file, from the header alone.
        assertThrows({ _ = try NiftiVolume.read(d.appendingPathComponent("ras.nii.gz"), memoryCap: 100) },
                     contains: ["ras.nii.gz", "memory cap"])
        assertThrows({ _ = try NiftiVolume.read(d.appendingPathComponent("bad_truncated.nii.gz")) },
                     contains: ["bad_truncated.nii.gz", "truncated"])
        assertThrows({ _ = try NiftiVolume.read(d.appendingPathComponent("does_not_exist.nii.gz")) },
                     contains: ["does_not_exist.nii.gz", "does not exist"])
        let dir = try tempDir("badfiles")
        defer { try? FileManager.default.removeItem(at: dir) }
        let junk = dir.appendingPathComponent("junk.nii.gz")
        try Data("not a nifti file at all".utf8).write(to: junk)
        assertThrows({ _ = try NiftiVolume.read(junk) }, contains: ["junk.nii.gz"])
        let unreadable = dir.appendingPathComponent("locked.nii.gz")
        try FileManager.default.copyItem(at: d.appendingPathComponent("ras.nii.gz"), to: unreadable)
        chmod(unreadable.path, 0)
        if getuid() != 0 {  // root reads anything
            assertThrows({ _ = try NiftiVolume.read(unreadable) }, contains: ["locked.nii.gz", "not readable"])
        }
    }
}
