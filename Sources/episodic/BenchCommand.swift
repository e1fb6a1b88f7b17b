import Foundation
import Tensor

/// `episodic bench`: times full training steps (forward, loss, backward, AdamW) of the default U-Net on a
/// synthetic batch and reports throughput against the analytic FLOP count (training ≈ 3× forward FLOPs).
let benchCommand = Command(name: "bench", summary: "time full training steps of the U-Net") { argv in
    var a = try Args(argv, flagNames: ["json", "profile"])
    let size = try a.int("size", default: 128, min: 1) ?? 128
    let batch = try a.int("batch", default: 16) ?? 16
    let steps = try a.int("steps", default: 5, min: 1) ?? 5
    let warmup = try a.int("warmup", default: 1, min: 0) ?? 1
    let threads = try a.int("threads", min: 1)
    let json = a.flag("json")
    let profile = a.flag("profile")
    try a.checkAllUsed()
    guard batch > 0 else { throw UsageError("option --batch: must be > 0, got \(batch)") }
    let config = UNetConfig()
    do { try config.validate(height: size, width: size) } catch {
        throw UsageError("option --size: \(error)")
    }
    if let t = threads { BLASInfo.setThreads(t) }
    if let w = BLASInfo.genericKernelWarning() { eprint(w) }
    try BLASInfo.selfCheck()
    let sgemmRate = BLASInfo.sgemmRate()

    let net = try UNet(config: config, seed: 0)
    let loss = SegmentationLoss(numClasses: config.numClasses)
    let adam = AdamW(count: net.parameterCount, weightDecay: 3e-5)
    let pixels = size * size
    // Synthetic batch: smooth random image, labels = horizontal bands so every class occurs.
    let key = CounterRNG.mixKey(0x42454E43) // "BENC"
    var input = [Float](repeating: 0, count: batch * pixels)
    for i in input.indices { input[i] = Float(CounterRNG.uniform(key: key, counter: UInt64(i))) }
    var labels = [UInt8](repeating: 0, count: batch * pixels)
    for n in 0..<batch {
        for y in 0..<size {
            for x in 0..<size { labels[n * pixels + y * size + x] = UInt8((y * config.numClasses / size + n) % config.numClasses) }
        }
    }
    var dLogits = [Float](repeating: 0, count: batch * config.numClasses * pixels)

    func step(_ i: Int) throws {
        let logits = try net.forward(input: input, batch: batch, height: size, width: size, training: true,
                                     dropout: DropoutKey(seed: 0, step: UInt64(i), firstGlobalSample: 0))
        let sums = try labels.withUnsafeBufferPointer {
            try loss.partialSums(logits: logits.baseAddress!, labels: $0.baseAddress!, batch: batch, pixels: pixels)
        }
        dLogits.withUnsafeMutableBufferPointer { loss.gradient(global: sums, into: $0.baseAddress!) }
        net.backward(dLogits: dLogits, onBucketReady: nil)
        adam.step(params: &net.parameters.values, grads: net.parameters.grads, lr: 1e-4)
    }

    for i in 0..<warmup { try step(i) }
    var times: [Double] = []
    Profiler.enabled = profile
    let cpu0 = processCPUSeconds()
    for i in 0..<steps {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try step(warmup + i)
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        if !json { eprint(String(format: "step %d: %.3f s", i + 1, times.last ?? 0)) }
    }
    let cpuPerStep = (processCPUSeconds() - cpu0) / Double(steps)
    Profiler.enabled = false
    times.sort()
    let median = times.count % 2 == 1 ? times[times.count / 2] : 0.5 * (times[times.count / 2 - 1] + times[times.count / 2])
    let imagesPerS = Double(batch) / median
    let gflops = 3 * net.forwardFLOPs(height: size, width: size) * Double(batch) / median / 1e9
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let peakMB = Double(usage.ru_maxrss) / 1024 // Linux reports KiB
    if json {
        let obj: [String: Any] = ["median_step_s": median, "images_per_s": imagesPerS, "gflops": gflops,
                                  "params": net.parameterCount, "peak_rss_mb": peakMB, "blas_core": BLASInfo.coreName,
                                  "blas_threads": BLASInfo.threads, "cpu_s_per_step": cpuPerStep, "sgemm_gflops": sgemmRate, "size": size, "batch": batch, "steps": steps]
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    } else {
        print(String(format: "bench %d² batch %d, %d steps (+%d warm-up): median %.3f s/step, %.2f images/s, %.1f GFLOP/s",
                     size, batch, steps, warmup, median, imagesPerS, gflops))
        print("parameters \(net.parameterCount), peak RSS \(String(format: "%.0f", peakMB)) MB, " +
              "BLAS core \(BLASInfo.coreName), \(BLASInfo.threads) thread(s), process CPU \(String(format: "%.2f", cpuPerStep)) s/step, " +
              "sgemm yardstick \(String(format: "%.0f", sgemmRate)) GFLOP/s")
    }
    if profile {
        let rows = Profiler.report()
        let total = rows.reduce(0) { $0 + $1.1 }
        eprint(String(format: "profile (wall s per step, %d steps; layers sum to %.3f s):", steps, total / Double(steps)))
        for (label, t) in rows { eprint(String(format: "  %-22@ %7.3f  %5.1f%%", label as NSString, t / Double(steps), 100 * t / total)) }
    }
    return 0
}

/// User + system CPU time of this process so far (all threads).
func processCPUSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) * 1e-6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) * 1e-6
}
