import DataParallel
import Foundation
import Sampling
import Train

let samplerStatsCommand = Command(name: "sampler-stats", summary: "draw batches without training: per-class exposure of a sampler") { argv in
    var a = try Args(argv, flagNames: ["json"])
    let data = try a.required("data")
    let fold = try a.int("fold", default: 0, min: 0) ?? 0
    let regime = try a.string("regime").map { r -> Regime in
        guard let v = Regime(rawValue: r) else { throw UsageError("--regime \(r): expected full or low") }
        return v
    } ?? .full
    let sampler = try a.required("sampler")
    let iterations = try a.int("iterations", default: 1000, min: 1) ?? 1000
    var overrides = a.strings("set")
    let size = try a.int("size", default: 0, min: 0) ?? 0
    let seed = try a.int("seed", default: 0, min: 0) ?? 0
    let json = a.flag("json")
    try a.checkAllUsed()
    overrides = ["data=\"\(data)\"", "fold=\(fold)", "regime=\(regime.rawValue)", "sampler.kind=\(sampler)", "size=\(size)", "seed=\(seed)"] + overrides
    let config = try RunConfig.load(path: nil, overrides: overrides)
    let comm = SingleProcessCommunicator()
    let run = try RunData.prepare(config: config, comm: comm)
    let s = try makeSampler(config: config.sampler, pool: run.pool, seed: Trainer.samplerSeed(config.seed))
    var exposure = ExposureCounter(numClasses: run.store.numClasses)
    for t in 0..<iterations {
        let b = s.batch(iteration: t)
        exposure.add(batch: b, pool: run.pool, episodeClasses: s.episodeClasses(iteration: t))
    }
    let report = exposure.report(pool: run.pool)
    if json {
        struct Out: Encodable { let sampler: SamplerConfig; let iterations: Int; let poolSlices: Int; let iterationsPerEpoch: Int; let exposure: ExposureReport }
        print(String(decoding: try ConfigJSON.prettyData(Out(sampler: config.sampler, iterations: iterations, poolSlices: run.pool.count,
                                                              iterationsPerEpoch: s.iterationsPerEpoch, exposure: report)), as: UTF8.self))
    } else {
        print("sampler \(sampler), fold \(fold), regime \(regime.rawValue): \(run.pool.count) training slices, \(s.iterationsPerEpoch) iterations per epoch, \(iterations) batches drawn")
        for w in s.warnings { print("warning: " + w) }
        print(report.table())
    }
    return 0
}
