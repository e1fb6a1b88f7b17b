import Data
import DataParallel
import Foundation
import Sampling

extension SliceStore: SliceSource {}

extension SliceStore {
    /// (x, y, z) voxel size in mm of a case's stored slices, for HD95.
    func sliceSpacing(_ c: CaseEntry) -> (Double, Double, Double) {
        (c.spacing[0], c.spacing.count > 1 ? c.spacing[1] : c.spacing[0], c.spacing.count > 2 ? c.spacing[2] : 1)
    }
}

/// The data a run trains, validates and tests on: the memory-mapped slice cache and the patient-level case lists of
/// the run's fold and regime.
public final class RunData {
    public let store: SliceStore
    public let splits: Splits
    public let trainCases: [String]
    public let valCases: [CaseEntry]
    public let testCases: [CaseEntry]
    public let trainSlices: [Int]
    public let pool: SlicePool

    public init(store: SliceStore, splits: Splits, fold: Fold, test: [String]) throws {
        self.store = store
        self.splits = splits
        trainCases = fold.train
        func entries(_ ids: [String]) throws -> [CaseEntry] {
            try ids.map { id in
                guard let e = store.caseEntry(id) else { throw DataError("case \(id) is in the splits but not in the slice cache \(store.directory.path)") }
                return e
            }
        }
        valCases = try entries(fold.val)
        testCases = try entries(test)
        trainSlices = try store.slices(ofCases: fold.train)
        guard !trainSlices.isEmpty else { throw DataError("fold has no training slices (cases: \(fold.train.joined(separator: ", ")))") }
        pool = try SlicePool(sliceIDs: trainSlices, classPixelCounts: trainSlices.map { store.classPixelCounts($0) },
                             numClasses: store.numClasses, classNames: store.classNames)
    }

    /// The run's fold: the configured cross-validation fold, or its seeded low-data subsample.
    public static func fold(for config: RunConfig, in splits: Splits) throws -> Fold {
        guard config.fold < splits.folds.count else {
            throw ConfigError("fold \(config.fold) is out of range: \(splits.folds.count) folds (\(splits.foldSource))")
        }
        return config.regime == .low
            ? try splits.lowData(fold: config.fold, fraction: config.lowDataFraction, seed: config.splitSeed)
            : splits.folds[config.fold]
    }

    public static func settings(for config: RunConfig) -> PreprocessSettings {
        PreprocessSettings(size: config.size > 0 ? config.size : nil)
    }

    /// Builds the slice cache on rank 0 (others wait at a barrier), opens it everywhere, and selects the run's cases.
    /// A failure on rank 0 is shared with every rank, so all stop with the same message.
    public static func prepare(config: RunConfig, comm: Communicator) throws -> RunData {
        let dataset = try Dataset.open(URL(fileURLWithPath: config.data))
        let settings = settings(for: config)
        let cacheRoot = config.cache.isEmpty ? nil : URL(fileURLWithPath: config.cache)
        var failure = ""
        var splitsResult: Splits?
        if comm.rank == 0 {
            do {
                try SliceStore.build(dataset: dataset, settings: settings, cacheRoot: cacheRoot) { msg in
                    FileHandle.standardError.write(Data(("preprocess: " + msg + "\n").utf8))
                }
                splitsResult = try Splits.make(dataset: dataset, seed: config.splitSeed, numFolds: config.folds)
            } catch { failure = "\(error)" }
        }
        failure = try comm.broadcast(failure, root: 0)
        guard failure.isEmpty else { throw SharedFailure(failure) }
        let store = try SliceStore.open(dataset: dataset, settings: settings, cacheRoot: cacheRoot)
        // Every rank reads the splits rank 0 made (and wrote, when splits_final.json was missing).
        let splits = try splitsResult ?? Splits.make(dataset: dataset, seed: config.splitSeed, numFolds: config.folds, writeIfMissing: false)
        let fold = try RunData.fold(for: config, in: splits)
        return try RunData(store: store, splits: splits, fold: fold, test: splits.test)
    }
}
