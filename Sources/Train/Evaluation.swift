import Data
import DataParallel
import Foundation
import Metrics
import Tensor

/// Argmax label maps for a list of slices, `evalBatch` at a time, without dropout.
public func predictSlices(net: UNet, data: SliceSource, slices: [Int], evalBatch: Int) throws -> [UInt8] {
    let h = data.height, w = data.width, p = h * w, c = net.config.numClasses
    var out = [UInt8](repeating: 0, count: slices.count * p)
    var input = [Float](repeating: 0, count: evalBatch * p)
    var start = 0
    while start < slices.count {
        let n = min(evalBatch, slices.count - start)
        input.withUnsafeMutableBufferPointer { inp in
            for j in 0..<n {
                _ = UnsafeMutableBufferPointer(rebasing: inp[(j * p)..<((j + 1) * p)]).initialize(from: data.image(slices[start + j]))
            }
        }
        let logits = try input.withUnsafeBufferPointer {
            try net.forward(input: $0.baseAddress!, batch: n, height: h, width: w, training: false,
                            dropout: DropoutKey(seed: 0, step: 0, firstGlobalSample: 0))
        }
        out.withUnsafeMutableBufferPointer { o in
            for j in 0..<n {
                let base = j * c * p
                for q in 0..<p {
                    var best = 0
                    var bv = logits[base + q]
                    for k in 1..<c where logits[base + k * p + q] > bv { bv = logits[base + k * p + q]; best = k }
                    o[(start + j) * p + q] = UInt8(best)
                }
            }
        }
        start += n
    }
    return out
}

/// NaN-aware mean (NaN when nothing is defined).
func nanMean(_ xs: [Double]) -> Double {
    let v = xs.filter { !$0.isNaN }
    return v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count)
}

/// Test-split scores of a run: per case and class Dice/HD95 and their aggregate.
public struct TestScores: Codable, Sendable {
    public var cases: [CaseScores]
    public var summary: ScoreSummary
}

/// Cases are spread over the group's ranks (contiguously); each rank predicts and scores its own, rank 0 gathers.
func scoreAcrossRanks(net: UNet, data: RunData, cases: [CaseEntry], evalBatch: Int, comm: Communicator,
                      computeHD95: Bool) throws -> [CaseScores] {
    let mine = Coordinator.shard(of: cases.count, rank: comm.rank, size: comm.size)
    var local: [CaseScores] = []
    let store = data.store
    for c in cases[mine] {
        let slices = Array(c.sliceRange)
        let pred = try predictSlices(net: net, data: store, slices: slices, evalBatch: evalBatch)
        var ref = [UInt8](); ref.reserveCapacity(pred.count)
        for s in slices { ref.append(contentsOf: store.label(s)) }
        local.append(try scoreCase(caseID: c.id, pred: pred, ref: ref, dims: (store.width, store.height, slices.count),
                                   spacing: store.sliceSpacing(c), numClasses: store.numClasses,
                                   ignoreLabel: store.ignoreLabel, computeHD95: computeHD95))
    }
    let gathered = try comm.gather(try JSONEncoder().encode(local), root: 0)
    let all: [CaseScores] = try (gathered ?? []).flatMap { try ConfigJSON.decoder().decode([CaseScores].self, from: $0) }
    // Everyone needs the validation result (early stopping is decided identically on all ranks).
    let bytes = try comm.broadcast(comm.rank == 0 ? try JSONEncoder().encode(all) : Data(), root: 0)
    return try ConfigJSON.decoder().decode([CaseScores].self, from: bytes)
}

/// Per validation volume, per foreground class Dice (NaN where absent from both).
func validationDice(net: UNet, data: RunData, cases: [CaseEntry], evalBatch: Int, comm: Communicator) throws -> [[Double]] {
    try scoreAcrossRanks(net: net, data: data, cases: cases, evalBatch: evalBatch, comm: comm, computeHD95: false)
        .map { $0.scores.map(\.dice) }
}

func scoreCases(net: UNet, data: RunData, cases: [CaseEntry], evalBatch: Int, comm: Communicator) throws -> TestScores {
    let all = try scoreAcrossRanks(net: net, data: data, cases: cases, evalBatch: evalBatch, comm: comm, computeHD95: true)
    return TestScores(cases: all, summary: aggregate(all, classNames: data.store.classNames))
}
