import DataParallel
import Foundation
import Sampling
import Tensor

/// Progress lines go to stderr on the group's rank 0 only.
func progress(_ comm: Communicator, _ s: String) {
    guard comm.rank == 0 else { return }
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Summary of a finished run, written as `results.json` beside the run's checkpoints.
public struct RunResult: Codable, Sendable {
    public var config: RunConfig
    public var budget: ResolvedBudget
    public var iterationsTrained: Int
    public var epochsTrained: Double
    public var samplesSeen: Int
    public var bestIteration: Int
    public var bestValidationDice: Double
    public var stopReason: String
    public var exposure: ExposureReport
    public var classNames: [String]
    public var test: TestScores?
    public var wallSeconds: Double
    public var ranks: Int
    /// Validation curve (also written as curve.csv).
    public var curve: [CurveRow]
}

/// One test slice with its reference and this run's prediction, for the report's example figure. The slice is chosen
/// from the data alone (first test case, the slice with the most foreground classes), so every run of a fold shows
/// the same slice.
public struct ExampleSlice: Codable, Sendable {
    public var caseID: String
    public var slice: Int
    public var width: Int
    public var height: Int
    /// Windowed CT, 0...255, row-major (x fastest).
    public var image: [UInt8]
    public var reference: [UInt8]
    public var prediction: [UInt8]
}

/// A training run: the data-parallel loop with validation, early stopping, checkpoints and resume.
/// Every rank of `comm` calls `run()`; only rank 0 writes files.
public final class Trainer {
    public let config: RunConfig
    public let runDir: URL
    public let comm: Communicator
    let data: RunData
    let net: UNet
    let engine: StepEngine
    let sampler: any BatchSampler
    let budget: ResolvedBudget
    var state: RunState
    let configHash: String

    /// The sampler's seed for a run seed (`episodic sampler-stats` draws exactly the batches training will).
    public static func samplerSeed(_ seed: UInt64) -> UInt64 { CounterRNG.mixKey(seed, 0x5A4D) }

    public init(config: RunConfig, runDir: URL, comm: Communicator, data: RunData, resume: Bool) throws {
        self.config = config
        self.runDir = runDir
        self.comm = comm
        self.data = data
        let batch = config.sampler.globalBatchSize
        guard batch >= comm.size else {
            throw ConfigError("the global batch (\(batch) slices) is smaller than the group (\(comm.size) ranks): every rank needs at least one slice")
        }
        try config.network.validate(height: data.store.height, width: data.store.width)
        guard config.network.numClasses == data.store.numClasses else {
            throw ConfigError("network.numClasses = \(config.network.numClasses) but the data set has \(data.store.numClasses) classes (dataset.json labels)")
        }
        sampler = try makeSampler(config: config.sampler, pool: data.pool, seed: Trainer.samplerSeed(config.seed))
        budget = config.budget.resolve(samplerIterationsPerEpoch: sampler.iterationsPerEpoch)
        net = try UNet(config: config.network, seed: CounterRNG.mixKey(config.seed, 0x1717))
        let loss = SegmentationLoss(numClasses: config.network.numClasses, ignoreLabel: data.store.ignoreLabel,
                                    smooth: config.loss.smooth, ceWeight: config.loss.ceWeight, diceWeight: config.loss.diceWeight)
        let opt = AdamW(count: net.parameterCount, beta1: config.optimizer.beta1, beta2: config.optimizer.beta2,
                        eps: config.optimizer.eps, weightDecay: config.optimizer.weightDecay)
        engine = try StepEngine(net: net, loss: loss, optimizer: opt, comm: comm,
                                seed: CounterRNG.mixKey(config.seed, 0xD80F))
        configHash = Hashing.fnv1a(try ConfigJSON.prettyData(config))
        state = RunState(configHash: configHash, exposure: ExposureCounter(numClasses: config.network.numClasses))
        if resume, let restored = try Checkpointing.loadLatest(runDir: runDir, net: net, optimizer: opt, comm: comm) {
            guard restored.configHash == configHash else {
                throw ConfigError("--resume: \(runDir.path) holds a checkpoint of another configuration (config hash \(restored.configHash), this run \(configHash)); use another --out or drop --resume")
            }
            state = restored
        } else if !resume, comm.rank == 0, FileManager.default.fileExists(atPath: Checkpointing.latestDir(runDir).path) {
            throw ConfigError("\(runDir.path) already holds a checkpoint: pass --resume to continue it or choose another --out")
        }
        // Rank 0's weights and optimiser state are the truth (identical anyway when seeded alike).
        try comm.broadcast(inPlace: &net.parameters.values, root: 0)
        try comm.broadcast(inPlace: &opt.m, root: 0)
        try comm.broadcast(inPlace: &opt.v, root: 0)
        var t = [opt.t]
        t = try comm.broadcast(t, root: 0)
        opt.t = t[0]
    }

    /// Trains until the budget ends or early stopping fires, then scores the test split with the best weights.
    /// `stopAfter`: checkpoint and return nil once this many iterations are done (a session limit, e.g. a SLURM time
    /// slot; `--resume` continues to exactly the weights an uninterrupted run reaches).
    public func run(stopAfter: Int? = nil) throws -> RunResult? {
        let started = Date()
        if comm.rank == 0 {
            try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
            try AtomicFile.write(try config.jsonData(), to: runDir.appendingPathComponent("config.json"))
        }
        let b = budget
        let batchSize = config.sampler.globalBatchSize
        progress(comm, "run \(runDir.lastPathComponent): sampler \(config.sampler.kind.rawValue), \(data.trainSlices.count) training slices, "
                 + "\(b.iterationsPerEpoch) it/epoch, budget \(b.maxIterations) iterations, ranks \(comm.size)")
        var lastLog = Date()
        var itAtLog = state.iteration
        while !state.finished && state.iteration < b.maxIterations {
            if let stop = stopAfter, state.iteration >= stop {
                try Checkpointing.saveLatest(runDir: runDir, net: net, optimizer: engine.optimizer, state: state, comm: comm)
                progress(comm, "stopped after iteration \(state.iteration) (--stop-after); --resume continues the run")
                return nil
            }
            let t = state.iteration
            // Group rank 0 is the coordinator: it draws the global batch and every rank trains on its shard of it.
            let batch = try Coordinator(comm).broadcastBatch(comm.rank == 0 ? sampler.batch(iteration: t) : nil)
            let lr = b.lr(base: config.optimizer.lr, iteration: t)
            let value = try engine.step(globalBatch: batch, iteration: t, lr: lr, data: data.store)
            guard value.total.isFinite else {
                throw TrainError("iteration \(t): the loss is \(value.total); lower optimizer.lr or check the data")
            }
            state.exposure.add(batch: batch, pool: data.pool, episodeClasses: sampler.episodeClasses(iteration: t))
            state.lossSinceLastRow += value.total
            state.itersSinceLastRow += 1
            state.iteration = t + 1
            if (t + 1) % config.logEvery == 0 {
                let dt = Date().timeIntervalSince(lastLog)
                let its = Double(state.iteration - itAtLog) / max(dt, 1e-9)
                let eta = Double(b.maxIterations - state.iteration) / max(its, 1e-9)
                progress(comm, String(format: "it %d/%d  epoch %.2f  loss %.4f (ce %.4f dice %.4f)  lr %.2e  %.2f it/s  eta %@  best val dice %@",
                                      state.iteration, b.maxIterations, b.epoch(ofIteration: state.iteration), value.total, value.ce,
                                      value.dice, lr, its, formatDuration(eta), state.bestDice < 0 ? "-" : String(format: "%.4f", state.bestDice)))
                lastLog = Date(); itAtLog = state.iteration
            }
            if state.iteration % b.validationEvery == 0 || state.iteration == b.maxIterations {
                try validateAndCheckpoint(lr: lr, batchSize: batchSize)
            }
        }
        if !state.finished {
            state.finished = true
            if state.stopReason.isEmpty { state.stopReason = "budget exhausted" }
            try Checkpointing.saveLatest(runDir: runDir, net: net, optimizer: engine.optimizer, state: state, comm: comm)
        }
        // Replicas must not drift: every rank applied the same reduced gradients, so the weights are bit-identical.
        if comm.size > 1 {
            guard try comm.allRanksHoldIdentical(net.parameters.values) else {
                throw TrainError("the \(comm.size) ranks hold different weights after training (checksums differ)")
            }
            progress(comm, "weights bit-identical on all \(comm.size) ranks (checksum)")
        }
        // Test scoring with the best checkpoint.
        var test: TestScores?
        if config.scoreTest && !data.testCases.isEmpty {
            try Checkpointing.loadBestWeights(runDir: runDir, net: net, comm: comm)
            test = try scoreCases(net: net, data: data, cases: data.testCases, evalBatch: config.evalBatch, comm: comm)
        }
        let result = RunResult(config: config, budget: b, iterationsTrained: state.iteration,
                               epochsTrained: b.epoch(ofIteration: state.iteration),
                               samplesSeen: state.iteration * batchSize, bestIteration: state.bestIteration,
                               bestValidationDice: state.bestDice, stopReason: state.stopReason,
                               exposure: state.exposure.report(pool: data.pool), classNames: data.store.classNames,
                               test: test, wallSeconds: Date().timeIntervalSince(started), ranks: comm.size,
                               curve: state.curve)
        if comm.rank == 0, config.scoreTest, let example = try exampleSlice() {
            try AtomicFile.write(try ConfigJSON.prettyData(example), to: runDir.appendingPathComponent("example.json"))
        }
        if comm.rank == 0 {
            try AtomicFile.write(try ConfigJSON.prettyData(result), to: runDir.appendingPathComponent("results.json"))
        }
        return result
    }

    func exampleSlice() throws -> ExampleSlice? {
        guard let c = data.testCases.first ?? data.valCases.first else { return nil }
        let store = data.store
        let best = c.sliceRange.max { a, b in
            store.classPixelCounts(a).dropFirst().filter { $0 > 0 }.count < store.classPixelCounts(b).dropFirst().filter { $0 > 0 }.count
        } ?? c.sliceStart
        let pred = try predictSlices(net: net, data: store, slices: [best], evalBatch: 1)
        return ExampleSlice(caseID: c.id, slice: best, width: store.width, height: store.height,
                            image: store.image(best).map { UInt8(max(0, min(255, ($0 * 255).rounded()))) },
                            reference: Array(store.label(best)), prediction: pred)
    }

    func validateAndCheckpoint(lr: Double, batchSize: Int) throws {
        let b = budget
        let perClass = try validationDice(net: net, data: data, cases: data.valCases, evalBatch: config.evalBatch, comm: comm)
        let mean = nanMean(perClass.map(nanMean)) // mean over classes per volume, then over volumes
        let classMeans = (0..<(config.network.numClasses - 1)).map { c in nanMean(perClass.map { $0[c] }) }
        let row = CurveRow(iteration: state.iteration, epoch: b.epoch(ofIteration: state.iteration),
                           samplesSeen: state.iteration * batchSize, lr: lr,
                           trainLoss: state.lossSinceLastRow / Double(max(state.itersSinceLastRow, 1)),
                           valMeanDice: mean, valDice: classMeans)
        state.curve.append(row)
        state.lossSinceLastRow = 0
        state.itersSinceLastRow = 0
        let improved = mean.isFinite && mean > state.bestDice
        if improved {
            state.bestDice = mean
            state.bestIteration = state.iteration
            try Checkpointing.saveBest(runDir: runDir, net: net, iteration: state.iteration, dice: mean, comm: comm)
        }
        progress(comm, String(format: "validation at it %d (epoch %.2f): mean fg dice %.4f%@", state.iteration,
                              row.epoch, mean, improved ? "  (best)" : String(format: "  (best %.4f at it %d)", state.bestDice, state.bestIteration)))
        if b.patienceIterations > 0 && state.bestIteration >= 0 && state.iteration - state.bestIteration >= b.patienceIterations {
            state.finished = true
            state.stopReason = "early stopping: no improvement for \(state.iteration - state.bestIteration) iterations (patience \(b.patienceIterations))"
            progress(comm, state.stopReason)
        }
        try Checkpointing.saveLatest(runDir: runDir, net: net, optimizer: engine.optimizer, state: state, comm: comm)
        if comm.rank == 0 { try CurveCSV.write(state.curve, classNames: data.store.classNames, to: runDir.appendingPathComponent("curve.csv")) }
    }
}

/// An error every rank of a group raises together (rank 0 found it and broadcast it): printed once, by rank 0.
public struct SharedFailure: Error, LocalizedError, CustomStringConvertible {
    public let description: String
    public init(_ m: String) { description = m }
    public var errorDescription: String? { description }
}

public struct TrainError: Error, LocalizedError, CustomStringConvertible {
    public let description: String
    public init(_ m: String) { description = m }
    public var errorDescription: String? { description }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

enum CurveCSV {
    static func write(_ rows: [CurveRow], classNames: [String], to url: URL) throws {
        var s = "iteration,epoch,samples_seen,lr,train_loss,val_mean_dice"
        for n in classNames.dropFirst() { s += ",val_dice_" + n }
        s += "\n"
        for r in rows {
            s += "\(r.iteration),\(String(format: "%.4f", r.epoch)),\(r.samplesSeen),\(r.lr),\(r.trainLoss),\(r.valMeanDice)"
            for d in r.valDice { s += ",\(d)" }
            s += "\n"
        }
        try AtomicFile.write(Data(s.utf8), to: url)
    }
}
