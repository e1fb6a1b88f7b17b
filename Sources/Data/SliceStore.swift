import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One case in the slice cache.
public struct CaseEntry: Codable, Equatable, Sendable {
    public var id: String
    /// "train" (imagesTr) or "test" (imagesTs).
    public var subset: String
    public var sliceStart: Int
    public var sliceCount: Int
    /// RAS z index in the volume of each stored slice (slices that are entirely ignore are not stored).
    public var sliceZ: [Int]
    /// Voxel size (mm) of the stored records: in-plane x, y after resizing, and z of the volume.
    public var spacing: [Double]
    /// Voxel size (mm) of the RAS volume before resizing.
    public var volumeSpacing: [Double]
    /// RAS dims of the volume before resizing and cropping.
    public var volumeDims: [Int]
    /// Stored geometry of the input image, for writing predictions back (`NiftiVolume.writeLabelVolume`).
    public var geometry: NiftiGeometry
    public var imagePath: String
    public var labelPath: String

    public var sliceRange: Range<Int> { sliceStart..<(sliceStart + sliceCount) }
}

struct StoreIndex: Codable {
    var formatVersion: Int
    var key: String
    var count: Int
    var height: Int
    var width: Int
    var classNames: [String]
    var ignoreLabel: UInt8
    var settings: PreprocessSettings
    var datasetRoot: String
    var cases: [CaseEntry]
    /// Per slice, pixel count of each class (incl. background; ignore pixels are not counted).
    var classCounts: [[Int]]
}

/// Memory-mapped cache of preprocessed axial slices: `images.f32` (count × H × W Float32, windowed to [0, 1]),
/// `labels.u8` (count × H × W UInt8, 255 = ignore) and `index.json`. Every process that opens it maps the same
/// files, so ranks on a node share the page cache; nothing is read into private memory.
public final class SliceStore: @unchecked Sendable {  // read-only after init
    public static let formatVersion = 1
    public static let ignoreLabel: UInt8 = 255
    public static let cacheDirectoryName = ".episodic-cache"

    public let directory: URL
    public let count: Int
    public let height: Int
    public let width: Int
    public let classNames: [String]
    public let cases: [CaseEntry]
    public let settings: PreprocessSettings
    public let key: String
    public var numClasses: Int { classNames.count }
    public var ignoreLabel: UInt8 { SliceStore.ignoreLabel }

    private let counts: [[Int]]
    private let sliceCase: [Int32]
    private let caseByID: [String: Int]
    private let imageMap: MappedFile
    private let labelMap: MappedFile
    private let images: UnsafePointer<Float>
    private let labels: UnsafePointer<UInt8>

    // MARK: access

    public func image(_ i: Int) -> UnsafeBufferPointer<Float> {
        precondition(i >= 0 && i < count, "slice \(i) out of 0..<\(count)")
        return UnsafeBufferPointer(start: images + i * height * width, count: height * width)
    }

    public func label(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        precondition(i >= 0 && i < count, "slice \(i) out of 0..<\(count)")
        return UnsafeBufferPointer(start: labels + i * height * width, count: height * width)
    }

    public func classPixelCounts(_ i: Int) -> [Int] { counts[i] }
    public var allClassPixelCounts: [[Int]] { counts }
    public func caseIndex(of slice: Int) -> Int { Int(sliceCase[slice]) }
    public func caseID(of slice: Int) -> String { cases[Int(sliceCase[slice])].id }
    public func caseEntry(_ id: String) -> CaseEntry? { caseByID[id].map { cases[$0] } }

    /// Slice ids of the given cases, in case order; an unknown case id is an error naming it.
    public func slices<S: Sequence>(ofCases ids: S) throws -> [Int] where S.Element == String {
        var out: [Int] = []
        var unknown: [String] = []
        for id in ids {
            guard let c = caseByID[id] else { unknown.append(id); continue }
            out.append(contentsOf: cases[c].sliceRange)
        }
        if !unknown.isEmpty {
            throw DataError("\(directory.path): unknown case(s) \(unknown.joined(separator: ", ")) (not in the slice cache)")
        }
        return out
    }

    // MARK: open / build

    public static func defaultCacheRoot(for dataset: Dataset) -> URL {
        dataset.root.appendingPathComponent(cacheDirectoryName)
    }

    /// Hash of the dataset files' (relative path, size, mtime), the settings and the format version.
    public static func cacheKey(dataset: Dataset, settings: PreprocessSettings) throws -> String {
        var text = "episodic-slice-cache v\(formatVersion)\n\(settings.keyString)\n"
        var files = [dataset.datasetJSON]
        for c in dataset.allCases { files.append(c.image); files.append(c.label) }
        for f in files {
            var st = stat()
            guard stat(f.path, &st) == 0 else {
                throw DataError("\(f.path): cannot stat (\(String(cString: strerror(errno))))")
            }
            let rel = f.path.hasPrefix(dataset.root.path) ? String(f.path.dropFirst(dataset.root.path.count)) : f.path
            text += "\(rel)\t\(st.st_size)\t\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)\n"
        }
        let a = fnv1a64(text), b = fnv1a64(text, offset: 0x84222325CBF29CE4)
        return String(format: "%016llx%016llx", a, b)
    }

    /// Cache directory for (dataset, settings) under `cacheRoot` (default `<dataset>/.episodic-cache`).
    public static func cacheDirectory(dataset: Dataset, settings: PreprocessSettings, cacheRoot: URL? = nil) throws -> URL {
        (cacheRoot ?? defaultCacheRoot(for: dataset)).appendingPathComponent(try cacheKey(dataset: dataset, settings: settings))
    }

    /// Training entry point on one process: build when missing or stale, then map.
    public static func openOrBuild(dataset: Dataset, settings: PreprocessSettings, cacheRoot: URL? = nil,
                                   progress: ((String) -> Void)? = nil) throws -> SliceStore {
        let dir = try build(dataset: dataset, settings: settings, cacheRoot: cacheRoot, progress: progress)
        return try open(directory: dir)
    }

    /// Opens an existing cache for (dataset, settings) without building (under MPI: rank 0 builds, barrier,
    /// every rank opens). Fails when the cache is missing or stale.
    public static func open(dataset: Dataset, settings: PreprocessSettings, cacheRoot: URL? = nil) throws -> SliceStore {
        let dir = try cacheDirectory(dataset: dataset, settings: settings, cacheRoot: cacheRoot)
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("index.json").path) else {
            throw DataError("\(dir.path): no slice cache for these data and settings; run `episodic preprocess`")
        }
        return try open(directory: dir)
    }

    /// Builds the cache unless a valid one exists; returns its directory. Writes into a temporary directory that is
    /// renamed into place, so a failure (bad input, full disk) leaves no cache behind.
    @discardableResult
    public static func build(dataset: Dataset, settings: PreprocessSettings, cacheRoot: URL? = nil,
                             progress: ((String) -> Void)? = nil) throws -> URL {
        try settings.validate()
        let key = try cacheKey(dataset: dataset, settings: settings)
        let root = cacheRoot ?? defaultCacheRoot(for: dataset)
        let dir = root.appendingPathComponent(key)
        let fm = FileManager.default
        if fm.fileExists(atPath: dir.appendingPathComponent("index.json").path), (try? open(directory: dir)) != nil {
            return dir
        }
        do { try fm.createDirectory(at: root, withIntermediateDirectories: true) } catch {
            throw DataError("\(root.path): cannot create the cache directory (\(error.localizedDescription))")
        }
        // pid + host + a random tag: ranks on different nodes of a shared file system may share a pid, and threads
        // share one (the name only has to be unique; it never affects the content).
        let tag = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let tmp = root.appendingPathComponent(".tmp-\(key)-\(ProcessInfo.processInfo.hostName)-"
            + "\(ProcessInfo.processInfo.processIdentifier)-\(tag)")
        try? fm.removeItem(at: tmp)
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
            try writeCache(into: tmp, key: key, dataset: dataset, settings: settings, progress: progress)
        } catch {
            try? fm.removeItem(at: tmp)
            if let e = error as? DataError { throw e }
            throw DataError("\(tmp.path): building the slice cache failed (\(error.localizedDescription))")
        }
        // A stale/corrupt directory of the same key is replaced; if another process won the race, keep theirs.
        if fm.fileExists(atPath: dir.path), (try? open(directory: dir)) == nil { try? fm.removeItem(at: dir) }
        if rename(tmp.path, dir.path) != 0 {
            try? fm.removeItem(at: tmp)
            guard (try? open(directory: dir)) != nil else {
                throw DataError("\(dir.path): cannot move the new cache into place (\(String(cString: strerror(errno))))")
            }
        }
        return dir
    }

    private static func writeCache(into tmp: URL, key: String, dataset: Dataset, settings: PreprocessSettings,
                                   progress: ((String) -> Void)?) throws {
        let fm = FileManager.default
        let imgURL = tmp.appendingPathComponent("images.f32"), labURL = tmp.appendingPathComponent("labels.u8")
        guard fm.createFile(atPath: imgURL.path, contents: nil), fm.createFile(atPath: labURL.path, contents: nil),
              let imgOut = FileHandle(forWritingAtPath: imgURL.path),
              let labOut = FileHandle(forWritingAtPath: labURL.path) else {
            throw DataError("\(tmp.path): cannot create cache files")
        }
        defer { try? imgOut.close(); try? labOut.close() }
        let desc = dataset.description
        let k = desc.numClasses
        var height = settings.size ?? -1, width = settings.size ?? -1
        var entries: [CaseEntry] = []
        var counts: [[Int]] = []
        var firstShapeCase = ""
        let all = dataset.allCases
        for (ci, files) in all.enumerated() {
            progress?("[\(ci + 1)/\(all.count)] \(files.id)")
            let c = try LoadedCase.load(files, description: desc, settings: settings)
            let nx = c.image.nx, ny = c.image.ny, nz = c.image.nz
            if settings.size == nil {
                if height < 0 { height = ny; width = nx; firstShapeCase = files.id }
                guard ny == height && nx == width else {
                    throw DataError("case \(files.id): in-plane size \(nx)×\(ny) differs from case \(firstShapeCase) "
                        + "(\(width)×\(height)); pass --size S to resize every slice to S×S")
                }
            }
            var z0 = 0, z1 = nz - 1
            if let r = settings.zRange { z0 = min(r[0], nz - 1); z1 = min(r[1], nz - 1) }
            let plane = nx * ny
            var kept: [Int] = []
            var imgBytes = [Float](), labBytes = [UInt8]()
            for z in z0...z1 {
                let ls = Array(c.labels[(z * plane)..<((z + 1) * plane)])
                if ls.allSatisfy({ $0 == SliceStore.ignoreLabel }) { continue }
                let img = Preprocess.imageSlice(c.image, z: z, settings: settings)
                var lab = ls
                if nx != width || ny != height {
                    lab = Preprocess.resizeNearest(lab, width: nx, height: ny, toWidth: width, height: height)
                }
                var cc = [Int](repeating: 0, count: k)
                for v in lab where v != SliceStore.ignoreLabel { cc[Int(v)] += 1 }
                counts.append(cc)
                kept.append(z)
                imgBytes.append(contentsOf: img)
                labBytes.append(contentsOf: lab)
            }
            try imgBytes.withUnsafeBytes { try imgOut.write(contentsOf: $0) }
            try labBytes.withUnsafeBytes { try labOut.write(contentsOf: $0) }
            let sp = c.image.spacing
            entries.append(CaseEntry(id: files.id, subset: files.subset, sliceStart: counts.count - kept.count,
                                     sliceCount: kept.count, sliceZ: kept,
                                     spacing: [sp[0] * Double(nx) / Double(width), sp[1] * Double(ny) / Double(height), sp[2]],
                                     volumeSpacing: sp, volumeDims: c.image.dims, geometry: c.image.geometry,
                                     imagePath: files.image.path, labelPath: files.label.path))
        }
        guard !counts.isEmpty else {
            throw DataError("\(dataset.root.path): no annotated slices (every slice is entirely ignore)")
        }
        try imgOut.synchronize()
        try labOut.synchronize()
        let index = StoreIndex(formatVersion: formatVersion, key: key, count: counts.count, height: height, width: width,
                               classNames: desc.classNames, ignoreLabel: SliceStore.ignoreLabel, settings: settings,
                               datasetRoot: dataset.root.path, cases: entries, classCounts: counts)
        try AtomicWrite.writeJSON(index, to: tmp.appendingPathComponent("index.json"))
    }

    /// Maps an existing cache directory; checks the index against the file sizes.
    public static func open(directory: URL) throws -> SliceStore { try SliceStore(directory: directory) }

    private init(directory: URL) throws {
        let iu = directory.appendingPathComponent("index.json")
        let idx: StoreIndex
        do { idx = try JSONDecoder().decode(StoreIndex.self, from: Data(contentsOf: iu)) } catch {
            throw DataError("\(iu.path): unreadable slice-cache index (\(error.localizedDescription))")
        }
        guard idx.formatVersion == SliceStore.formatVersion else {
            throw DataError("\(iu.path): cache format \(idx.formatVersion), expected \(SliceStore.formatVersion); rebuild it")
        }
        let px = idx.height * idx.width
        guard idx.count > 0, px > 0, idx.classCounts.count == idx.count,
              idx.cases.reduce(0, { $0 + $1.sliceCount }) == idx.count else {
            throw DataError("\(iu.path): inconsistent slice-cache index")
        }
        imageMap = try MappedFile(directory.appendingPathComponent("images.f32"), expectedBytes: idx.count * px * 4)
        labelMap = try MappedFile(directory.appendingPathComponent("labels.u8"), expectedBytes: idx.count * px)
        images = UnsafeRawPointer(imageMap.base).bindMemory(to: Float.self, capacity: idx.count * px)
        labels = UnsafeRawPointer(labelMap.base).bindMemory(to: UInt8.self, capacity: idx.count * px)
        self.directory = directory
        count = idx.count
        height = idx.height
        width = idx.width
        classNames = idx.classNames
        cases = idx.cases
        settings = idx.settings
        key = idx.key
        counts = idx.classCounts
        var sc = [Int32](repeating: 0, count: idx.count)
        var byID: [String: Int] = [:]
        for (ci, c) in idx.cases.enumerated() {
            byID[c.id] = ci
            for s in c.sliceRange { sc[s] = Int32(ci) }
        }
        sliceCase = sc
        caseByID = byID
    }
}

/// A read-only shared mapping of a whole file.
final class MappedFile {
    let base: UnsafeMutableRawPointer
    let length: Int

    init(_ url: URL, expectedBytes: Int) throws {
        let fd = Glibc.open(url.path, O_RDONLY)
        guard fd >= 0 else { throw DataError("\(url.path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) == expectedBytes else {
            throw DataError("\(url.path): size \(st.st_size) bytes, the index expects \(expectedBytes); cache is damaged")
        }
        let p = mmap(nil, expectedBytes, PROT_READ, MAP_SHARED, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw DataError("\(url.path): mmap failed (\(String(cString: strerror(errno))))")
        }
        base = p
        length = expectedBytes
    }

    deinit { munmap(base, length) }
}
