import Data
import Foundation
import Metrics
import Tensor

/// A trained network with the preprocessing it was trained with, for `episodic predict`.
public final class Predictor {
    public let config: RunConfig
    public let net: UNet
    let settings: PreprocessSettings

    /// `checkpoint`: a `model.safetensors` file or a directory holding one (e.g. `RUN/checkpoint_best`); the run
    /// config is `config` or, by default, the `config.json` of the run directory above the checkpoint.
    public init(checkpoint: URL, configPath: String?) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: checkpoint.path, isDirectory: &isDir) else {
            throw TrainError("\(checkpoint.path): no such checkpoint")
        }
        let model = isDir.boolValue ? checkpoint.appendingPathComponent(Checkpoint.modelFileName) : checkpoint
        let runDir = model.deletingLastPathComponent().deletingLastPathComponent()
        let cfgPath = configPath ?? runDir.appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: cfgPath) else {
            throw TrainError("\(cfgPath): no run config beside the checkpoint; pass --config with the run's config.json")
        }
        config = try RunConfig.load(path: cfgPath)
        net = try UNet(config: config.network, seed: 0)
        try Checkpoint.loadModel(into: net.parameters, from: model)
        settings = RunData.settings(for: config)
    }

    /// Label map of one volume on its RAS grid: every axial slice preprocessed as in training, argmax of the logits,
    /// resized back (nearest neighbour) when training used another in-plane size.
    public func predict(_ volume: NiftiVolume) throws -> [UInt8] {
        let s = settings.size ?? volume.nx
        guard settings.size != nil || volume.nx == volume.ny else {
            throw TrainError("volume is \(volume.nx)×\(volume.ny) in-plane; this network was trained at native size on square slices")
        }
        do { try config.network.validate(height: s, width: s) } catch { throw TrainError("predict: \(error)") }
        let source = VolumeSlices(volume: volume, settings: settings, size: s)
        let flat = try predictSlices(net: net, data: source, slices: Array(0..<volume.nz), evalBatch: config.evalBatch)
        let p = s * s
        let slices = (0..<volume.nz).map { Array(flat[($0 * p)..<(($0 + 1) * p)]) }
        return try Preprocess.labelVolume(fromSlices: slices, size: s, like: volume)
    }
}

/// Slices of one volume, preprocessed once into one buffer owned by this object.
final class VolumeSlices: SliceSource {
    let height: Int
    let width: Int
    private let storage: UnsafeMutableBufferPointer<Float>
    init(volume: NiftiVolume, settings: PreprocessSettings, size: Int) {
        height = size
        width = size
        storage = .allocate(capacity: volume.nz * size * size)
        for z in 0..<volume.nz {
            let img = Preprocess.imageSlice(volume, z: z, settings: settings)
            _ = UnsafeMutableBufferPointer(rebasing: storage[(z * size * size)..<((z + 1) * size * size)]).initialize(from: img)
        }
    }
    deinit { storage.deallocate() }
    func image(_ i: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(rebasing: storage[(i * height * width)..<((i + 1) * height * width)])
    }
    func label(_ i: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: nil, count: 0) }
}

/// nnU-Net's evaluate-folder convention: every reference label file in `ref` against the same-named file in `pred`.
public enum FolderScoring {
    public static func score(pred: URL, ref: URL, dataset: DatasetDescription, computeHD95: Bool = true) throws -> (cases: [CaseScores], summary: ScoreSummary) {
        let fm = FileManager.default
        let ending = dataset.fileEnding
        guard let names = try? fm.contentsOfDirectory(atPath: ref.path) else { throw TrainError("\(ref.path): cannot list the reference folder") }
        let refs = names.filter { $0.hasSuffix(ending) }.sorted()
        guard !refs.isEmpty else { throw TrainError("\(ref.path): no \(ending) reference files") }
        var out: [CaseScores] = []
        for name in refs {
            let p = pred.appendingPathComponent(name)
            guard fm.fileExists(atPath: p.path) else { throw TrainError("\(p.path): no prediction for reference \(name)") }
            let r = try NiftiVolume.read(ref.appendingPathComponent(name))
            let q = try NiftiVolume.read(p)
            guard r.dims == q.dims else { throw TrainError("\(name): prediction dims \(q.dims) differ from reference \(r.dims)") }
            let id = String(name.dropLast(ending.count))
            let rl = try labels(r, name: "reference " + name, dataset: dataset)
            let pl = try labels(q, name: "prediction " + name, dataset: dataset)
            out.append(try scoreCase(caseID: id, pred: pl, ref: rl, dims: (r.nx, r.ny, r.nz), spacing: (r.spacing[0], r.spacing[1], r.spacing[2]),
                                     numClasses: dataset.numClasses, ignoreLabel: dataset.ignoreLabel, computeHD95: computeHD95))
        }
        return (out, aggregate(out, classNames: dataset.classNames))
    }

    static func labels(_ v: NiftiVolume, name: String, dataset: DatasetDescription) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: v.data.count)
        for (i, x) in v.data.enumerated() {
            let k = Int(x.rounded())
            guard Float(k) == x, k >= 0, k < dataset.numClasses || (dataset.ignoreLabel.map { Int($0) == k } ?? false) else {
                throw TrainError("\(name): voxel value \(x) is not a label of dataset.json (0..<\(dataset.numClasses))")
            }
            out[i] = UInt8(k)
        }
        return out
    }
}
