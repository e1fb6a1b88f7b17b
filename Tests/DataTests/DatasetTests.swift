import Foundation
import XCTest
@testable import Data

/// A small phantom data set in a fresh directory.
func makePhantom(_ name: String, cases: Int = 6, size: Int = 32, slices: Int = 8, seed: UInt64 = 1,
                 testCases: Int = 0) throws -> URL {
    let d = try tempDir(name)
    try Phantom.write(to: d, cases: cases, size: size, slices: slices, seed: seed, testCases: testCases)
    return d
}

func cacheEntries(_ ds: URL) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: ds.appendingPathComponent(SliceStore.cacheDirectoryName).path)) ?? []
}

final class DatasetTests: XCTestCase {
    func testDatasetJSON() throws {
        let d = try tempDir("json")
        defer { try? FileManager.default.removeItem(at: d) }
        let url = d.appendingPathComponent("dataset.json")
        try Data(#"{"labels": {"background": 0, "b": 2, "a": 1, "ignore": 3}, "channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}"#.utf8).write(to: url)
        let desc = try DatasetDescription.load(url)
        XCTAssertEqual(desc.classNames, ["background", "a", "b"])
        XCTAssertEqual(desc.ignoreLabel, 3)
        try Data(#"{"labels": {"background": 0, "b": 2}}"#.utf8).write(to: url)
        assertThrows({ _ = try DatasetDescription.load(url) }, contains: ["dataset.json", "consecutive"])
        try Data(#"{"labels": {"background": 0, "a": [1, 2]}}"#.utf8).write(to: url)
        assertThrows({ _ = try DatasetDescription.load(url) }, contains: ["dataset.json", "\"a\""])
        try Data(#"{"labels": {"background": 0, "a": 1}, "channel_names": {"0": "CT", "1": "PET"}}"#.utf8).write(to: url)
        assertThrows({ _ = try DatasetDescription.load(url) }, contains: ["dataset.json", "2 input channels"])
    }

    func testCacheBuildOpenAndContents() throws {
        let root = try makePhantom("cache")
        defer { try? FileManager.default.removeItem(at: root) }
        let ds = try Dataset.open(root)
        XCTAssertEqual(ds.description.classNames, Phantom.classNames)
        let settings = PreprocessSettings()
        assertThrows({ _ = try SliceStore.open(dataset: ds, settings: settings) }, contains: ["episodic preprocess"])
        let store = try SliceStore.openOrBuild(dataset: ds, settings: settings)
        XCTAssertEqual(store.count, 6 * 8)
        XCTAssertEqual(store.height, 32)
        XCTAssertEqual(store.width, 32)
        XCTAssertEqual(store.numClasses, 10)
        // Records equal the windowed volume and the label file, slice by slice.
        let c0 = try LoadedCase.load(ds.training[0], description: ds.description, settings: settings)
        for (s, z) in zip(store.cases[0].sliceRange, store.cases[0].sliceZ) {
            let img = store.image(s), lab = store.label(s)
            for p in stride(from: 0, to: 32 * 32, by: 7) {
                XCTAssertEqual(img[p], Preprocess.window(c0.image.data[z * 1024 + p], level: 40, width: 400))
                XCTAssertEqual(lab[p], c0.labels[z * 1024 + p])
            }
            var counts = [Int](repeating: 0, count: 10)
            for v in lab { counts[Int(v)] += 1 }
            XCTAssertEqual(counts, store.classPixelCounts(s))
            XCTAssertTrue(img.allSatisfy { $0 >= 0 && $0 <= 1 })
            XCTAssertEqual(store.caseID(of: s), "phantom_000")
        }
        XCTAssertEqual(store.cases[0].spacing[0], Phantom.spacing(size: 32), accuracy: 1e-4)
        XCTAssertEqual(try store.slices(ofCases: ["phantom_002"]), Array(16..<24))
        assertThrows({ _ = try store.slices(ofCases: ["nope"]) }, contains: ["nope"])
        // Build is a no-op when the cache is valid: same directory, index untouched.
        let idx = store.directory.appendingPathComponent("index.json")
        let m0 = try FileManager.default.attributesOfItem(atPath: idx.path)[.modificationDate] as? Date
        let again = try SliceStore.build(dataset: ds, settings: settings)
        XCTAssertEqual(again.path, store.directory.path)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: idx.path)[.modificationDate] as? Date, m0)
        XCTAssertEqual(cacheEntries(root), [store.key])
    }

    func testCacheRebuiltOnChange() throws {
        let root = try makePhantom("rebuild", cases: 5, size: 32, slices: 4)
        defer { try? FileManager.default.removeItem(at: root) }
        var ds = try Dataset.open(root)
        let k0 = try SliceStore.openOrBuild(dataset: ds, settings: PreprocessSettings()).key
        // Settings change → new key.
        let resized = try SliceStore.openOrBuild(dataset: ds, settings: PreprocessSettings(size: 16))
        XCTAssertNotEqual(resized.key, k0)
        XCTAssertEqual(resized.height, 16)
        XCTAssertEqual(resized.cases[0].spacing[0], 2 * Phantom.spacing(size: 32), accuracy: 1e-4)
        let w = PreprocessSettings(windowLevel: 50)
        XCTAssertNotEqual(try SliceStore.cacheKey(dataset: ds, settings: w), k0)
        // The memory cap does not change the content, so not the key.
        XCTAssertEqual(try SliceStore.cacheKey(dataset: ds, settings: PreprocessSettings(memoryCapBytes: 1 << 28)), k0)
        // Data change (a label rewritten with other content) → new key, new content.
        let c = Phantom.generate(index: 3, size: 32, slices: 4, seed: 99)
        try NiftiVolume.write(.uint8(c.labels), dims: c.dims, affine: c.affine, to: ds.training[1].label)
        ds = try Dataset.open(root)
        let s2 = try SliceStore.openOrBuild(dataset: ds, settings: PreprocessSettings())
        XCTAssertNotEqual(s2.key, k0)
        XCTAssertEqual(Array(s2.label(s2.cases[1].sliceStart)), Array(c.labels[0..<1024]))
        // Touching a file (mtime only) also invalidates.
        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, ds.training[0].image.path, &times, 0), 0)
        XCTAssertNotEqual(try SliceStore.cacheKey(dataset: ds, settings: PreprocessSettings()), s2.key)
    }

    func testIgnoreSlicesDroppedAndZRange() throws {
        let root = try tempDir("ignore")
        defer { try? FileManager.default.removeItem(at: root) }
        try Phantom.write(to: root, cases: 2, size: 32, slices: 10, seed: 3)
        // Rewrite dataset.json with an ignore label (10) and annotate only every fifth slice of case 0.
        var obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("dataset.json"))) as? [String: Any])
        var labels = try XCTUnwrap(obj["labels"] as? [String: Any])
        labels["ignore"] = 10
        obj["labels"] = labels
        try JSONSerialization.data(withJSONObject: obj).write(to: root.appendingPathComponent("dataset.json"))
        let c = Phantom.generate(index: 0, size: 32, slices: 10, seed: 3)
        var lab = c.labels
        for z in 0..<10 where z % 5 != 0 { for p in 0..<1024 { lab[z * 1024 + p] = 10 } }
        lab[1 * 1024 + 5] = 10  // a partially ignored annotated slice keeps its ignore pixels as 255
        lab[0 * 1024 + 5] = 10
        try NiftiVolume.write(.uint8(lab), dims: c.dims, affine: c.affine,
                              to: root.appendingPathComponent("labelsTr/phantom_000.nii.gz"))
        let ds = try Dataset.open(root)
        let store = try SliceStore.openOrBuild(dataset: ds, settings: PreprocessSettings())
        XCTAssertEqual(store.cases[0].sliceZ, [0, 5])
        XCTAssertEqual(store.cases[1].sliceCount, 10)
        XCTAssertEqual(store.label(0)[5], 255)
        XCTAssertEqual(store.classPixelCounts(0).reduce(0, +), 1023)
        let cropped = try SliceStore.openOrBuild(dataset: ds, settings: PreprocessSettings(zRange: [3, 7]))
        XCTAssertEqual(cropped.cases[0].sliceZ, [5])
        XCTAssertEqual(cropped.cases[1].sliceZ, [3, 4, 5, 6, 7])
    }

    /// Bad input: a clear error naming the case and file, and no cache left behind.
    func testBadInputLeavesNoCache() throws {
        let root = try makePhantom("bad", cases: 5, size: 32, slices: 4)
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        let lab2 = root.appendingPathComponent("labelsTr/phantom_002.nii.gz")
        let saved = try Data(contentsOf: lab2)
        func expectFailure(_ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
            assertThrows({
                let ds = try Dataset.open(root)
                _ = try SliceStore.openOrBuild(dataset: ds, settings: PreprocessSettings())
            }, contains: parts, file: file, line: line)
            XCTAssertEqual(cacheEntries(root).filter { !$0.isEmpty }, [], "a cache was left behind", file: file, line: line)
        }
        // Image without label.
        try fm.removeItem(at: lab2)
        expectFailure(["phantom_002", "has no label", "labelsTr/phantom_002.nii.gz"])
        // Label without image.
        try saved.write(to: lab2)
        try fm.moveItem(at: root.appendingPathComponent("imagesTr/phantom_002_0000.nii.gz"), to: root.appendingPathComponent("img2.keep"))
        expectFailure(["phantom_002", "has no image"])
        try fm.moveItem(at: root.appendingPathComponent("img2.keep"), to: root.appendingPathComponent("imagesTr/phantom_002_0000.nii.gz"))
        let c = Phantom.generate(index: 2, size: 32, slices: 4, seed: 1)
        // Shape mismatch.
        try NiftiVolume.write(.uint8([UInt8](repeating: 0, count: 32 * 32 * 3)), dims: [32, 32, 3], affine: c.affine, to: lab2)
        expectFailure(["phantom_002", "shape mismatch", "phantom_002.nii.gz"])
        // Affine mismatch.
        var shifted = c.affine
        shifted[3] += 2
        try NiftiVolume.write(.uint8(c.labels), dims: c.dims, affine: shifted, to: lab2)
        expectFailure(["phantom_002", "affine mismatch"])
        // Label value absent from dataset.json.
        var l = c.labels
        l[17] = 12
        try NiftiVolume.write(.uint8(l), dims: c.dims, affine: c.affine, to: lab2)
        expectFailure(["phantom_002", "12", "absent from dataset.json"])
        // NaN voxel in an image.
        try saved.write(to: lab2)
        var hu = c.hu.map(Float.init)
        hu[100] = .nan
        let img2 = root.appendingPathComponent("imagesTr/phantom_002_0000.nii.gz")
        try NiftiVolume.write(.float32(hu), dims: c.dims, affine: c.affine, to: img2)
        expectFailure(["phantom_002_0000.nii.gz", "NaN"])
        // Truncated gzip.
        try NiftiVolume.write(.int16(c.hu), dims: c.dims, affine: c.affine, to: img2)
        let full = try Data(contentsOf: img2)
        try full.prefix(full.count / 2).write(to: img2)
        expectFailure(["phantom_002_0000.nii.gz", "truncated"])
        // Unsupported datatype (complex fixture as an image).
        try fm.removeItem(at: img2)
        try fm.copyItem(at: try fixtureDir().appendingPathComponent("bad_complex.nii.gz"), to: img2)
        expectFailure(["phantom_002_0000.nii.gz", "unsupported datatype"])
        // Over the memory cap.
        try NiftiVolume.write(.int16(c.hu), dims: c.dims, affine: c.affine, to: img2)
        assertThrows({
            _ = try SliceStore.openOrBuild(dataset: try Dataset.open(root), settings: PreprocessSettings(memoryCapBytes: 1000))
        }, contains: ["memory cap"])
        XCTAssertEqual(cacheEntries(root), [])
        // Repaired: builds.
        XCTAssertEqual(try SliceStore.openOrBuild(dataset: try Dataset.open(root), settings: PreprocessSettings()).count, 20)
    }

    func testLPSPhantomReadsLikeRAS() throws {
        let a = try tempDir("ras"), b = try tempDir("lps")
        defer { try? FileManager.default.removeItem(at: a); try? FileManager.default.removeItem(at: b) }
        try Phantom.write(to: a, cases: 1, size: 32, slices: 4, seed: 5)
        try Phantom.write(to: b, cases: 1, size: 32, slices: 4, seed: 5, orientation: .lps)
        let va = try NiftiVolume.read(a.appendingPathComponent("imagesTr/phantom_000_0000.nii.gz"))
        let vb = try NiftiVolume.read(b.appendingPathComponent("imagesTr/phantom_000_0000.nii.gz"))
        XCTAssertEqual(va.geometry.orientation, "RAS")
        XCTAssertEqual(vb.geometry.orientation, "LPS")
        XCTAssertEqual(va.data, vb.data)
        for (x, y) in zip(va.affine, vb.affine) { XCTAssertEqual(x, y, accuracy: 1e-3) }
    }

    func testResizeConventions() {
        // 2×2 → 4×4 bilinear with pixel-centre alignment: corners keep their values, inner pixels interpolate.
        let up = Preprocess.resizeBilinear([0, 1, 2, 3], width: 2, height: 2, toWidth: 4, height: 4)
        XCTAssertEqual(up[0], 0)
        XCTAssertEqual(up[15], 3)
        XCTAssertEqual(up[1], 0.25, accuracy: 1e-6)
        let lab: [UInt8] = [1, 2, 3, 4]
        let n = Preprocess.resizeNearest(lab, width: 2, height: 2, toWidth: 4, height: 4)
        XCTAssertEqual(n, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        XCTAssertEqual(Preprocess.resizeNearest(n, width: 4, height: 4, toWidth: 2, height: 2), lab)
        XCTAssertEqual(Preprocess.window(-160, level: 40, width: 400), 0)
        XCTAssertEqual(Preprocess.window(240, level: 40, width: 400), 1)
        XCTAssertEqual(Preprocess.window(40, level: 40, width: 400), 0.5)
        XCTAssertEqual(Preprocess.window(-1000, level: 40, width: 400), 0)
    }
}

final class PredictionPathTests: XCTestCase {
    /// Labels taken through the cache's resize and back (nearest both ways, integer factor) are unchanged, and the
    /// written prediction reads back like the input label in the input's geometry.
    func testSlicesBackToVolume() throws {
        let root = try tempDir("predpath")
        defer { try? FileManager.default.removeItem(at: root) }
        try Phantom.write(to: root, cases: 1, size: 32, slices: 3, seed: 9, orientation: .lps)
        let img = try NiftiVolume.read(root.appendingPathComponent("imagesTr/phantom_000_0000.nii.gz"))
        let lab = try NiftiVolume.read(root.appendingPathComponent("labelsTr/phantom_000.nii.gz"))
        let settings = PreprocessSettings(size: 64)
        XCTAssertEqual(Preprocess.imageSlice(img, z: 1, settings: settings).count, 64 * 64)
        let plane = 32 * 32
        let slices: [[UInt8]] = (0..<3).map { z in
            Preprocess.resizeNearest(lab.data[(z * plane)..<((z + 1) * plane)].map { UInt8($0) },
                                     width: 32, height: 32, toWidth: 64, height: 64)
        }
        let vol = try Preprocess.labelVolume(fromSlices: slices, size: 64, like: img)
        XCTAssertEqual(vol.map(Float.init), lab.data)
        let out = root.appendingPathComponent("pred.nii.gz")
        try NiftiVolume.writeLabelVolume(like: img, labels: vol, to: out)
        let back = try NiftiVolume.read(out)
        XCTAssertEqual(back.geometry.orientation, "LPS")
        XCTAssertEqual(back.data, lab.data)
        assertThrows({ _ = try Preprocess.labelVolume(fromSlices: [], size: 64, like: img) }, contains: ["3 slices"])
    }
}

final class ConcurrentBuildTests: XCTestCase {
    /// Two builders racing on one cache root both end with the same valid cache and leave no temporary directory.
    func testConcurrentBuilds() throws {
        let root = try makePhantom("race", cases: 3, size: 16, slices: 3)
        defer { try? FileManager.default.removeItem(at: root) }
        let ds = try Dataset.open(root)
        let results = UnsafeMutableBufferPointer<String>.allocate(capacity: 2)
        results.initialize(repeating: "")
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            results[i] = (try? SliceStore.build(dataset: ds, settings: PreprocessSettings()).path) ?? "failed"
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertNotEqual(results[0], "failed")
        XCTAssertEqual(cacheEntries(root).count, 1, "\(cacheEntries(root))")
        XCTAssertEqual(try SliceStore.open(dataset: ds, settings: PreprocessSettings()).count, 9)
    }
}
