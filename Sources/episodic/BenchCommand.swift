import DataParallel
import Foundation
import Tensor
import Train

/// `episodic bench`: times full training steps (forward, loss, backward, AdamW) of the default U-Net on a
/// synthetic batch and reports throughput against the analytic FLOP count (training ≈ 3× forward FLOPs).
let benchCommand = Command(name: "bench", summary: "time full training steps of the U-Net") { argv in
    var a = try Args(argv, flagNames: ["json", "profile", "scaling", "blas-peak"])
    let size = try a.int("size", default: 128, min: 1) ?? 128
    let batch = try a.int("batch", default: 16) ?? 16
    let steps = try a.int("steps", default: 5, min: 1) ?? 5
    let warmup = try a.int("warmup", default: 1, min: 0) ?? 1
    let threads = try a.int("threads", min: 1)
    let json = a.flag("json")
    let profile = a.flag("profile")
    let scaling = a.flag("scaling")
    let blasPeak = a.flag("blas-peak")
    let bucketMB = try a.double("bucket-mb")
    let features = try a.string("features").map { f -> [Int] in
        let v = f.split(separator: ",").compactMap { Int($0) }
        guard v.count >= 2, v.count == f.split(separator: ",").count else { throw UsageError("option --features: expected a comma list like 32,64,128, got '\(f)'") }
        return v
    }
    try a.checkAllUsed()
    guard batch > 0 else { throw UsageError("option --batch: must be > 0, got \(batch)") }
    var config = UNetConfig()
    if let f = features { config.features = f }
    do { try config.validate(height: size, width: size) } catch {
        throw UsageError("option --size: \(error)")
    }
    if let t = threads { BLASInfo.setThreads(t) }
    if let w = BLASInfo.genericKernelWarning() { eprint(w) }
    try BLASInfo.selfCheck()

    let comm = try detectCommunicator()
    let world = comm.size
    guard batch >= world else { throw UsageError("option --batch: the global batch \(batch) is smaller than the \(world) ranks") }
    let sgemmRate = comm.rank == 0 ? BLASInfo.sgemmRate() : 0
    // The machine's sgemm rate with the same ranks × threads: every rank runs the yardstick at the same moment (they
    // share memory bandwidth and, on a busy host, cores), summed over ranks; measured once before and once after the
    // timed steps and the higher one kept, so a load spike during one of them cannot flatter the step's fraction.
    func allRanksPeak() throws -> (total: Double, perRank: [Double]) {
        try comm.barrier()
        var r = [Double](repeating: 0, count: world)  // each rank fills its own slot; the sum gathers them
        r[comm.rank] = BLASInfo.sgemmRate(repeats: 5)
        try r.withUnsafeMutableBufferPointer { try comm.allReduceSum($0) }
        return (r.reduce(0, +), r)
    }
    let peakBefore = blasPeak ? try allRanksPeak() : nil
    Profiler.enabled = profile && world == 1
    let cpu0 = processCPUSeconds()
    let dp = try StepBenchmark.run(config: config, size: size, globalBatch: batch, steps: steps, warmup: warmup, comm: comm,
                                   bucketBytes: bucketMB.map { Int($0 * 1024 * 1024) } ?? GradientBuckets.defaultBucketBytes) { i, t in
        if !json && comm.rank == 0 { eprint(String(format: "step %d: %.3f s", i + 1, t)) }
    }
    let cpuPerStep = (processCPUSeconds() - cpu0) / Double(steps + warmup)
    let peakAfter = blasPeak ? try allRanksPeak() : nil
    // (before, after, the higher of the two), with --blas-peak only.
    let peaks = peakBefore.flatMap { b in peakAfter.map { a in (before: b, after: a, best: b.total >= a.total ? b : a) } }
    Profiler.enabled = false
    let gflops = 3 * dp.forwardFLOPsPerImage * Double(batch) / dp.medianStep / 1e9
    // What the GEMMs multiplied (the Winograd layers skip 5/9 of their direct-convolution work).
    let executedGflops = 3 * (dp.forwardFLOPsPerImage - dp.winogradSkippedFLOPsPerImage) * Double(batch) / dp.medianStep / 1e9
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let peakMB = try comm.allReduceMax(Double(usage.ru_maxrss) / 1024) // Linux reports KiB; the largest rank
    // Scaling baselines in the same run: world rank 0 alone (the other ranks wait without spinning), with the same
    // cores as BLAS threads (the comparison the data-parallel path must win), and 1 thread with the per-rank batch (weak
    // scaling) and with the whole batch (strong scaling).
    var baselines: [String: StepTiming] = [:]
    if world > 1 && scaling {
        if comm.rank == 0 {
            let solo = SingleProcessCommunicator()
            let saved = BLASInfo.threads
            BLASInfo.setThreads(world * saved)
            baselines["one_rank_all_threads"] = try StepBenchmark.run(config: config, size: size, globalBatch: batch, steps: steps, warmup: warmup, comm: solo)
            BLASInfo.setThreads(saved)
            baselines["one_rank_per_rank_batch"] = try StepBenchmark.run(config: config, size: size, globalBatch: batch / world, steps: steps, warmup: warmup, comm: solo)
            baselines["one_rank_global_batch"] = try StepBenchmark.run(config: config, size: size, globalBatch: batch, steps: steps, warmup: warmup, comm: solo)
        }
        try comm.idleBarrier()
    }
    defer { MPIRuntime.finalize() }
    guard comm.rank == 0 else { return 0 }
    var obj: [String: Any] = ["median_step_s": dp.medianStep, "images_per_s": dp.imagesPerSecond, "gflops": gflops,
                              "executed_gflops": executedGflops,
                              "params": dp.parameters, "peak_rss_mb": peakMB, "blas_core": BLASInfo.coreName,
                              "blas_threads": BLASInfo.threads, "conv_gemm": ConvGEMM.description, "cpu_s_per_step": cpuPerStep, "sgemm_gflops": sgemmRate,
                              "size": size, "batch": batch, "steps": steps, "ranks": world,
                              "compute_s": dp.medianCompute, "exposed_comm_s": dp.medianCommWait,
                              "exposed_comm_fraction": dp.medianCommWait / dp.medianStep,
                              "longest_rank_wait_s": dp.medianLongestWait, "longest_rank_wait_fraction": dp.medianLongestWait / dp.medianStep,
                              "rank_skew_s": dp.medianSkew, "page_faults_per_step": dp.pageFaultsPerStep,
                              "page_faults_max_step": dp.pageFaultsMaxStep]
    if let p = peaks {
        obj["blas_peak_gflops"] = p.best.total
        obj["blas_peak_before_gflops"] = p.before.total
        obj["blas_peak_after_gflops"] = p.after.total
        obj["blas_peak_per_rank_gflops"] = p.best.perRank
        obj["fraction_of_blas_peak"] = gflops / p.best.total
        obj["executed_fraction_of_blas_peak"] = executedGflops / p.best.total
    }
    if let b = baselines["one_rank_all_threads"] {
        obj["one_rank_all_threads_images_per_s"] = b.imagesPerSecond
        obj["speedup_vs_one_rank_all_threads"] = dp.imagesPerSecond / b.imagesPerSecond
    }
    if let b = baselines["one_rank_per_rank_batch"] { obj["weak_scaling_efficiency"] = b.medianStep / dp.medianStep }
    if let b = baselines["one_rank_global_batch"] { obj["strong_scaling_efficiency"] = b.medianStep / (Double(world) * dp.medianStep) }
    if json {
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    } else {
        print(String(format: "bench %d² global batch %d on %d rank(s), %d steps (+%d warm-up): median %.3f s/step, %.2f images/s, %.1f GFLOP/s " +
                     "(direct-convolution FLOPs; the GEMMs executed %.1f: Winograd layers multiply 4/9 of theirs)",
                     size, batch, world, steps, warmup, dp.medianStep, dp.imagesPerSecond, gflops, executedGflops))
        print(String(format: "per step: compute %.3f s (slowest rank), exposed all-reduce %.3f s (%.1f%%, the slowest rank's wait)",
                     dp.medianCompute, dp.medianCommWait, 100 * dp.medianCommWait / dp.medianStep))
        if world > 1 {
            print(String(format: "rank skew %.3f s (slowest − fastest compute); the fastest rank waits %.3f s (%.1f%%: all-reduce + skew)",
                         dp.medianSkew, dp.medianLongestWait, 100 * dp.medianLongestWait / dp.medianStep))
        }
        print("parameters \(obj["params"] ?? 0), peak RSS \(String(format: "%.0f", peakMB)) MB (largest rank), " +
              "page faults \(String(format: "%.0f", dp.pageFaultsPerStep))/step (median; most in one step " +
              "\(String(format: "%.0f", dp.pageFaultsMaxStep)), on the rank with the most), " +
              "BLAS core \(BLASInfo.coreName), \(BLASInfo.threads) thread(s) per rank, process CPU \(String(format: "%.2f", cpuPerStep)) s/step, " +
              "sgemm yardstick \(String(format: "%.0f", sgemmRate)) GFLOP/s; conv GEMMs: \(ConvGEMM.description)")
        if let p = peaks {
            print(String(format: "sgemm peak with the same %d rank(s) × %d thread(s), all at once: %.0f GFLOP/s (%.0f before the steps, %.0f after); the step reaches %.0f%% of it (executed: %.0f%%)",
                         world, BLASInfo.threads, p.best.total, p.before.total, p.after.total, 100 * gflops / p.best.total,
                         100 * executedGflops / p.best.total))
        }
        if let b = baselines["one_rank_all_threads"] {
            print(String(format: "1 rank × %d threads, same global batch: %.2f images/s → data-parallel speed-up %.2f×", world * BLASInfo.threads,
                         b.imagesPerSecond, dp.imagesPerSecond / b.imagesPerSecond))
        }
        if let w = obj["weak_scaling_efficiency"] as? Double, let st = obj["strong_scaling_efficiency"] as? Double {
            print(String(format: "weak-scaling efficiency %.2f (vs 1 rank × per-rank batch), strong-scaling efficiency %.2f (vs 1 rank × global batch)", w, st))
        }
    }
    if profile && world == 1 {
        let rows = Profiler.report()
        let total = rows.reduce(0) { $0 + $1.1 }
        eprint(String(format: "profile (wall s per step, %d steps; layers sum to %.3f s):", steps + warmup, total / Double(steps + warmup)))
        for (label, t) in rows { eprint(String(format: "  %-22@ %7.3f  %5.1f%%", label as NSString, t / Double(steps + warmup), 100 * t / total)) }
    }
    return 0
}

/// User + system CPU time of this process so far (all threads).
func processCPUSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) * 1e-6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) * 1e-6
}
