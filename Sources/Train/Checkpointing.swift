import DataParallel
import Foundation
import Tensor

/// Run-directory checkpoints. `checkpoint_latest/` (weights, AdamW state, RunState) is replaced as a whole: written
/// to `checkpoint_latest.tmp/`, then swapped in by two renames; a crash in between leaves `checkpoint_latest.old/`,
/// which loading falls back to. `checkpoint_best/model.safetensors` holds the best validation weights.
/// Only rank 0 writes; loading happens on every rank (then rank 0's copy is broadcast by the caller).
enum Checkpointing {
    static func latestDir(_ run: URL) -> URL { run.appendingPathComponent("checkpoint_latest") }
    static func bestDir(_ run: URL) -> URL { run.appendingPathComponent("checkpoint_best") }
    static let stateFile = "state.json"

    static func saveLatest(runDir: URL, net: UNet, optimizer: AdamW, state: RunState, comm: Communicator) throws {
        defer { try? comm.barrier() }
        guard comm.rank == 0 else { return }
        let fm = FileManager.default
        let final = latestDir(runDir)
        let tmp = runDir.appendingPathComponent("checkpoint_latest.tmp")
        let old = runDir.appendingPathComponent("checkpoint_latest.old")
        try? fm.removeItem(at: tmp)
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        try Checkpoint.save(arena: net.parameters, optimizer: optimizer,
                            metadata: ["iteration": String(state.iteration), "config_hash": state.configHash], directory: tmp)
        try AtomicFile.write(try ConfigJSON.prettyData(state), to: tmp.appendingPathComponent(stateFile))
        try? fm.removeItem(at: old)
        if fm.fileExists(atPath: final.path) { try fm.moveItem(at: final, to: old) }
        try fm.moveItem(at: tmp, to: final)
        try? fm.removeItem(at: old)
    }

    /// Restores weights, optimiser and run state from the newest complete checkpoint; nil when there is none.
    static func loadLatest(runDir: URL, net: UNet, optimizer: AdamW, comm: Communicator) throws -> RunState? {
        let fm = FileManager.default
        let candidates = [latestDir(runDir), runDir.appendingPathComponent("checkpoint_latest.old")]
        guard let dir = candidates.first(where: { fm.fileExists(atPath: $0.appendingPathComponent(stateFile).path) }) else { return nil }
        let stateURL = dir.appendingPathComponent(stateFile)
        let state: RunState
        do { state = try ConfigJSON.decoder().decode(RunState.self, from: Data(contentsOf: stateURL)) } catch {
            throw TrainError("\(stateURL.path): unreadable run state (\(error))")
        }
        let info = try Checkpoint.load(directory: dir, arena: net.parameters, optimizer: optimizer)
        guard info.metadata["iteration"] == String(state.iteration) else {
            throw TrainError("\(dir.path): weights are from iteration \(info.metadata["iteration"] ?? "?") but state.json from \(state.iteration)")
        }
        return state
    }

    static func saveBest(runDir: URL, net: UNet, iteration: Int, dice: Double, comm: Communicator) throws {
        guard comm.rank == 0 else { return }
        let dir = bestDir(runDir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Checkpoint.saveModel(net.parameters, metadata: ["iteration": String(iteration), "val_mean_dice": String(dice)],
                                 to: dir.appendingPathComponent(Checkpoint.modelFileName))
    }

    /// Loads the best weights on every rank (the file system is shared within a group, as for the data cache).
    static func loadBestWeights(runDir: URL, net: UNet, comm: Communicator) throws {
        try comm.barrier()
        let url = bestDir(runDir).appendingPathComponent(Checkpoint.modelFileName)
        if FileManager.default.fileExists(atPath: url.path) {
            try Checkpoint.loadModel(into: net.parameters, from: url)
        }
        try comm.broadcast(inPlace: &net.parameters.values, root: 0)
    }
}
