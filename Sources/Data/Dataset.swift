import Foundation

/// `dataset.json` of an nnU-Net v2 raw folder.
public struct DatasetDescription: Equatable, Sendable {
    /// Class names ordered by label value (index = value; 0 = background). The ignore label is not a class.
    public var classNames: [String]
    /// The value of the `ignore` entry in `labels`, if any (nnU-Net: the highest value). In the slice cache
    /// these voxels are stored as 255 (`SliceStore.ignoreLabel`).
    public var ignoreLabel: UInt8?
    public var fileEnding: String
    /// Channel names ordered by channel index.
    public var channelNames: [String]
    public var name: String?

    public var numClasses: Int { classNames.count }

    public init(classNames: [String], ignoreLabel: UInt8? = nil, fileEnding: String = ".nii.gz",
                channelNames: [String] = ["CT"], name: String? = nil) {
        self.classNames = classNames
        self.ignoreLabel = ignoreLabel
        self.fileEnding = fileEnding
        self.channelNames = channelNames
        self.name = name
    }

    public static func load(_ url: URL) throws -> DatasetDescription {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError("\(url.path): cannot read dataset.json (\(error.localizedDescription))")
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw DataError("\(url.path): not a JSON object")
        }
        guard let labels = obj["labels"] as? [String: Any], !labels.isEmpty else {
            throw DataError("\(url.path): missing or empty \"labels\" (name → value)")
        }
        var byValue: [Int: String] = [:]
        var ignore: Int?
        for (name, v) in labels {
            guard let n = v as? NSNumber, let value = Int(exactly: n.doubleValue) else {
                throw DataError("\(url.path): label \"\(name)\" has value \(v); only integer labels are supported "
                    + "(region-based labels are not)")
            }
            if name == "ignore" { ignore = value; continue }
            if let other = byValue[value] {
                throw DataError("\(url.path): labels \"\(other)\" and \"\(name)\" share the value \(value)")
            }
            byValue[value] = name
        }
        guard byValue[0] != nil else { throw DataError("\(url.path): \"labels\" has no value 0 (background)") }
        let k = byValue.count
        guard byValue.keys.sorted() == Array(0..<k) else {
            throw DataError("\(url.path): label values must be consecutive from 0; got \(byValue.keys.sorted())")
        }
        guard k <= 255 else { throw DataError("\(url.path): \(k) classes; at most 255 are supported") }
        if let ig = ignore, ig < k || ig > 255 {
            throw DataError("\(url.path): ignore label \(ig) must be above every class value (0..<\(k)) and ≤ 255")
        }
        let ending = (obj["file_ending"] as? String) ?? ".nii.gz"
        guard ending == ".nii.gz" || ending == ".nii" else {
            throw DataError("\(url.path): file_ending \"\(ending)\" is not supported (use .nii.gz or .nii)")
        }
        var channels: [String] = []
        if let ch = (obj["channel_names"] ?? obj["modality"]) as? [String: Any] {
            let keys = ch.keys.compactMap { Int($0) }.sorted()
            guard keys.count == ch.count, keys == Array(0..<keys.count) else {
                throw DataError("\(url.path): channel_names keys must be \"0\", \"1\", ...")
            }
            channels = keys.map { "\(ch[String($0)] ?? "")" }
        } else {
            channels = ["CT"]
        }
        guard channels.count == 1 else {
            throw DataError("\(url.path): \(channels.count) input channels \(channels); only one (CT) is supported")
        }
        return DatasetDescription(classNames: (0..<k).map { byValue[$0] ?? "" },
                                  ignoreLabel: ignore.map { UInt8($0) }, fileEnding: ending,
                                  channelNames: channels, name: obj["name"] as? String)
    }

    /// nnU-Net v2 form, for writing (phantom).
    public func jsonObject(numTraining: Int) -> [String: Any] {
        var labels: [String: Int] = [:]
        for (i, n) in classNames.enumerated() { labels[n] = i }
        if let ig = ignoreLabel { labels["ignore"] = Int(ig) }
        var ch: [String: String] = [:]
        for (i, n) in channelNames.enumerated() { ch[String(i)] = n }
        var o: [String: Any] = ["labels": labels, "channel_names": ch, "file_ending": fileEnding,
                                "numTraining": numTraining]
        if let name { o["name"] = name }
        return o
    }
}

/// One case's files.
public struct CaseFiles: Equatable, Sendable {
    public var id: String
    public var image: URL
    public var label: URL
    /// "train" (imagesTr/labelsTr) or "test" (imagesTs/labelsTs).
    public var subset: String
}

/// An nnU-Net v2 raw dataset folder: `dataset.json`, `imagesTr/CASE_0000<ending>`, `labelsTr/CASE<ending>`,
/// optional `imagesTs`/`labelsTs` (used as the test set when `labelsTs` exists).
public struct Dataset: Sendable {
    public var root: URL
    public var description: DatasetDescription
    public var training: [CaseFiles]
    public var test: [CaseFiles]

    public var allCases: [CaseFiles] { training + test }
    public var datasetJSON: URL { root.appendingPathComponent("dataset.json") }
    public var splitsFile: URL { root.appendingPathComponent("splits_final.json") }

    public static func open(_ root: URL) throws -> Dataset {
        let fm = FileManager.default
        guard fm.isDirectory(root) else { throw DataError("\(root.path): dataset directory does not exist") }
        let dj = root.appendingPathComponent("dataset.json")
        guard fm.fileExists(atPath: dj.path) else { throw DataError("\(dj.path): missing dataset.json") }
        let desc = try DatasetDescription.load(dj)
        let tr = try cases(root: root, images: "imagesTr", labels: "labelsTr", ending: desc.fileEnding,
                           subset: "train", required: true)
        var ts: [CaseFiles] = []
        if fm.isDirectory(root.appendingPathComponent("labelsTs")) {
            ts = try cases(root: root, images: "imagesTs", labels: "labelsTs", ending: desc.fileEnding,
                           subset: "test", required: false)
        }
        let dup = Set(tr.map(\.id)).intersection(ts.map(\.id))
        if !dup.isEmpty {
            throw DataError("\(root.path): case(s) \(dup.sorted().joined(separator: ", ")) appear in both imagesTr and imagesTs")
        }
        guard !tr.isEmpty else { throw DataError("\(root.appendingPathComponent("imagesTr").path): no cases (*_0000\(desc.fileEnding))") }
        return Dataset(root: root, description: desc, training: tr, test: ts)
    }

    static func cases(root: URL, images: String, labels: String, ending: String, subset: String,
                      required: Bool) throws -> [CaseFiles] {
        let fm = FileManager.default
        let imgDir = root.appendingPathComponent(images), labDir = root.appendingPathComponent(labels)
        guard fm.isDirectory(imgDir) else {
            if required { throw DataError("\(imgDir.path): missing directory") }
            return []
        }
        guard fm.isDirectory(labDir) else { throw DataError("\(labDir.path): missing directory") }
        let imgNames = try listing(imgDir).filter { $0.hasSuffix(ending) && !$0.hasPrefix(".") }
        let labNames = Set(try listing(labDir).filter { $0.hasSuffix(ending) && !$0.hasPrefix(".") })
        var out: [CaseFiles] = []
        var ids = Set<String>()
        for name in imgNames.sorted() {
            let stem = String(name.dropLast(ending.count))
            guard stem.hasSuffix("_0000") else {
                if stem.range(of: #"_\d{4}$"#, options: .regularExpression) != nil {
                    throw DataError("\(imgDir.appendingPathComponent(name).path): channel \(stem.suffix(4)) found; "
                        + "only single-channel data (_0000) is supported")
                }
                throw DataError("\(imgDir.appendingPathComponent(name).path): image names must be CASE_0000\(ending)")
            }
            let id = String(stem.dropLast(5))
            let lab = id + ending
            guard labNames.contains(lab) else {
                throw DataError("case \(id): image \(imgDir.appendingPathComponent(name).path) has no label "
                    + "(expected \(labDir.appendingPathComponent(lab).path))")
            }
            ids.insert(id)
            out.append(CaseFiles(id: id, image: imgDir.appendingPathComponent(name),
                                 label: labDir.appendingPathComponent(lab), subset: subset))
        }
        for lab in labNames.sorted() {
            let id = String(lab.dropLast(ending.count))
            if !ids.contains(id) {
                throw DataError("case \(id): label \(labDir.appendingPathComponent(lab).path) has no image "
                    + "(expected \(imgDir.appendingPathComponent(id + "_0000" + ending).path))")
            }
        }
        return out
    }

    static func listing(_ dir: URL) throws -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: dir.path) } catch {
            throw DataError("\(dir.path): cannot list directory (\(error.localizedDescription))")
        }
    }
}
