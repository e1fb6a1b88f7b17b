import DataParallel
import Foundation
import Train

/// `episodic comm-check`: a self-test of the communication layer, run under mpirun (or alone, size 1). Every check
/// uses values whose result is known exactly; each rank verifies its own copy, the ranks agree on pass/fail, and
/// rank 0 prints one JSON line per check. Exit 0 when everything passed, 1 on any failure, 2 for refused options.
let commCheckCommand = Command(name: "comm-check", summary: "self-test of MPI communication (run under mpirun)") { argv in
    let comm = try detectCommunicator()
    let code: Int32
    do {
        var check = try CommCheck(comm: comm, argv: argv)
        code = try check.run()
    } catch let e as UsageError {
        comm.printOnRoot("episodic comm-check: \(e.description)")
        code = 2
    } catch let e as DataParallelError {
        if case .invalidConfiguration = e {
            // Every rank reaches the same verdict; only rank 0 says so.
            comm.printOnRoot("episodic comm-check: \(e.description)")
            code = 2
        } else {
            throw e  // an MPI failure: exit without finalising so mpirun ends the job
        }
    }
    MPIRuntime.finalize()
    return code
}

private struct CommCheck {
    let comm: Communicator
    let groups: Int
    let batch: Int?
    let runs: Int
    let runMillis: Int
    let benchMB: Double?
    let benchReps: Int
    let bucketMB: Double
    let overlapMillis: Double
    let injectFault: Bool
    var failures: [String] = []

    init(comm: Communicator, argv: [String]) throws {
        self.comm = comm
        var a = try Args(argv, flagNames: ["inject-fault"])
        // Default: two groups when the world splits evenly into two, so the split and the queue are exercised.
        groups = try a.int("groups", default: comm.size >= 2 && comm.size % 2 == 0 ? 2 : 1) ?? 1
        batch = try a.int("batch")
        runs = try a.int("runs", default: 7, min: 0) ?? 7
        runMillis = try a.int("run-ms", default: 30, min: 0) ?? 30
        benchMB = try a.double("bench-mb")
        benchReps = try a.int("bench-reps", default: 5, min: 1) ?? 5
        bucketMB = try a.double("bucket-mb", default: 25) ?? 25
        overlapMillis = try a.double("overlap-ms", default: 1000) ?? 1000
        injectFault = a.flag("inject-fault")
        try a.checkAllUsed()
        if let benchMB, !(benchMB > 0) { throw UsageError("option --bench-mb: \(benchMB) must be > 0") }
        guard bucketMB > 0 else { throw UsageError("option --bucket-mb: \(bucketMB) must be > 0") }
        // Refusals before any work (thrown identically on every rank).
        let layout = try GroupLayout(world: comm.size, groups: groups)
        if let batch { try validateBatch(globalBatch: batch, groupSize: layout.groupSize) }
    }

    private func emit(_ fields: [String: Any]) {
        guard comm.rank == 0 else { return }
        if let d = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), let s = String(data: d, encoding: .utf8) {
            print(s)
            fflush(stdout)
        }
    }

    /// Runs a check on every rank; the ranks agree on the verdict (one failing rank fails the check everywhere).
    private mutating func check(_ name: String, _ body: () throws -> (Bool, [String: Any])) throws {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let (localOK, details) = try body()
        let ok = try comm.allAgree(localOK)
        var failedRanks: [Int] = []
        if !ok {
            var flags = [Int](repeating: 0, count: comm.size)
            flags[comm.rank] = localOK ? 0 : 1
            try comm.allReduceSum(&flags)
            failedRanks = flags.indices.filter { flags[$0] != 0 }
            failures.append(name)
        }
        var f = details
        f["check"] = name
        f["ok"] = ok
        f["ranks"] = comm.size
        f["seconds"] = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        if !ok { f["failedRanks"] = failedRanks }
        emit(f)
    }

    mutating func run() throws -> Int32 {
        let c = comm
        let size = c.size, rank = c.rank

        try check("ranks") {
            let ones = try { var v = [1]; try c.allReduceSum(&v); return v[0] }()
            let hi = try c.allReduceMax(rank), lo = try c.allReduceMin(rank)
            try c.barrier()
            try c.idleBarrier()
            return (ones == size && hi == size - 1 && lo == 0, ["mpi": c is MPICommunicator])
        }

        try check("broadcast") {
            var ok = true
            // Collective first, then `&& ok`: a short-circuit must never skip a collective on some ranks only.
            for root in Set([0, size - 1]).sorted() {
                let isRoot = rank == root
                let floats = (0..<1001).map { Float($0) * 0.5 + Float(root) }
                ok = try ((c.broadcast(isRoot ? floats : [], root: root)) == floats) && ok
                let doubles = (0..<77).map { Double($0) / 3 - Double(root) }
                ok = try ((c.broadcast(isRoot ? doubles : [], root: root)) == doubles) && ok
                let ints = [Int.min, -1, 0, 1, Int.max, root]
                ok = try ((c.broadcast(isRoot ? ints : [], root: root)) == ints) && ok
                let bytes = Data((0..<70_001).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ root) })
                ok = try ((c.broadcast(isRoot ? bytes : Data(), root: root)) == bytes) && ok
                ok = try ((c.broadcast(isRoot ? Data() : Data([1, 2]), root: root)).isEmpty) && ok
                let text = "Größe ✓ — root \(root)"
                ok = try ((c.broadcast(isRoot ? text : "", root: root)) == text) && ok
                let value = CheckPayload(name: "fold \(root)", values: [0.1, -2.5, 1e300], tags: ["a": 1, "b": root])
                ok = try ((c.broadcastCodable(isRoot ? value : nil, root: root)) == value) && ok
                let batch = [5, 3, 99, 0, 12, 7, root]
                ok = try ((Coordinator(c).broadcastBatch(isRoot ? batch : nil, root: root)) == batch) && ok
                var inPlace = isRoot ? floats : [Float](repeating: 0, count: floats.count)
                try c.broadcast(inPlace: &inPlace, root: root)
                ok = ok && inPlace == floats
            }
            return (ok, [:])
        }

        let injectFault = self.injectFault
        try check("allreduce") {
            let n = 100_003
            var f = (0..<n).map { Float($0 % 4096) + Float(rank * 3) }
            try c.allReduceSum(&f)
            if injectFault && rank == size - 1 { f[n / 2] += 1 }  // simulate a wrong result on one rank
            let triangle = 3 * size * (size - 1) / 2
            var ok = f.indices.allSatisfy { f[$0] == Float(size * ($0 % 4096) + triangle) }
            var d = (0..<1000).map { Double($0) * 0.25 + Double(rank) }
            try c.allReduceSum(&d)
            ok = ok && d.indices.allSatisfy { d[$0] == Double(size) * Double($0) * 0.25 + Double(size * (size - 1) / 2) }
            var ints = [rank, -rank, 7]
            try c.allReduceSum(&ints)
            ok = ok && ints == [size * (size - 1) / 2, -size * (size - 1) / 2, 7 * size]
            ok = try ((c.allReduceMax(Double(rank) - 0.5)) == Double(size - 1) - 0.5) && ok
            ok = try ((c.allReduceMin(Double(rank) + 0.25)) == 0.25) && ok
            ok = try (c.allReduceMax(rank * 7)) == (size - 1) * 7 && ok
            ok = try (c.allReduceMin(rank * 7)) == 0 && ok
            return (ok, ["floats": n])
        }

        try check("allreduce-chunked") {
            // Forces several MPI calls per operation, as buffers over Int32.max elements would.
            guard let m = c as? MPICommunicator else { return (true, ["skipped": "single process"]) }
            let saved = m.maxElementsPerCall
            m.maxElementsPerCall = 4096
            defer { m.maxElementsPerCall = saved }
            let n = 10_007
            var f = (0..<n).map { Float($0 % 1000) * Float(rank + 1) }
            try m.allReduceSum(&f)
            let factor = size * (size + 1) / 2
            var ok = f.indices.allSatisfy { f[$0] == Float(($0 % 1000) * factor) }
            var g = (0..<n).map { Float($0) + Float(rank) }
            let req = try g.withUnsafeMutableBufferPointer { try m.iallReduceSum($0) }
            try req.wait()
            ok = ok && g.indices.allSatisfy { g[$0] == Float(size * $0 + size * (size - 1) / 2) }
            let bytes = Data((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            ok = try ((m.broadcast(rank == 0 ? bytes : Data(), root: 0)) == bytes) && ok
            return (ok, ["limit": 4096, "elements": n])
        }

        try check("buckets") {
            let n = 200_003
            let buckets = try GradientBuckets(communicator: c, count: n, bucketBytes: 64 * 1024)
            let scale = 1 / Float(size)
            var ok = true
            var reported = 0
            for order in ["descending", "scattered"] {
                var g = (0..<n).map { Float($0 % 1000) + Float(rank) }
                // Ranges of irregular length, reported from the end of the arena downwards (as backward does), or
                // in a scrambled order.
                var ranges: [Range<Int>] = []
                var hi = n, k = 0
                while hi > 0 { let len = Swift.min(hi, 1 + (k * 7919) % 40_000); ranges.append((hi - len)..<hi); hi -= len; k += 1 }
                if order == "scattered" {
                    ranges = ranges.enumerated().sorted { ($0.offset * 5) % 11 < ($1.offset * 5) % 11 || (($0.offset * 5) % 11 == ($1.offset * 5) % 11 && $0.offset < $1.offset) }.map(\.element)
                }
                let stats = try g.withUnsafeMutableBufferPointer { p -> CommStats in
                    try buckets.begin(p)
                    for r in ranges { buckets.report(r) }
                    return try buckets.finish(scale: scale)
                }
                reported = stats.bucketsReduced
                let triangle = Float(size * (size - 1) / 2)
                ok = ok && stats.bucketsReduced == buckets.buckets.count
                ok = ok && g.indices.allSatisfy { g[$0] == (Float(size * ($0 % 1000)) + triangle) * scale }
            }
            // A backward that misses a range must be an error, not silently unreduced gradients.
            var h = [Float](repeating: 1, count: n)
            let incompleteRefused: Bool = h.withUnsafeMutableBufferPointer { p in
                do {
                    try buckets.begin(p)
                    buckets.report(1..<n)
                    try buckets.finish()
                    return false
                } catch { return true }
            }
            ok = ok && incompleteRefused
            return (ok, ["buckets": buckets.buckets.count, "bucketsReduced": reported, "floats": n])
        }

        try check("bucket-requests-reused") {
            // Steady state allocates no request objects: after the first step each bucket reuses its own.
            guard let m = c as? MPICommunicator else { return (true, ["skipped": "single process"]) }
            let n = 100_000
            let buckets = try GradientBuckets(communicator: m, count: n, bucketBytes: 64 * 1024)
            var g = [Float](repeating: 0, count: n)
            var created: [Int] = []
            var ok = true
            for step in 0..<4 {
                for i in g.indices { g[i] = Float(rank + step) }
                try g.withUnsafeMutableBufferPointer { p in
                    try buckets.begin(p)
                    var hi = n
                    while hi > 0 { let lo = Swift.max(0, hi - 7_777); buckets.report(lo..<hi); hi = lo }
                    try buckets.finish()
                }
                created.append(m.requestObjectsCreated)
                let expected = Float(size * (size - 1) / 2 + size * step)  // Σ_rank (rank + step), exact in floats
                ok = ok && g.allSatisfy { $0 == expected }
            }
            ok = ok && created[1] == created[0] && created[3] == created[0] && created[0] >= buckets.buckets.count
            return (ok, ["requestObjectsCreated": created, "buckets": buckets.buckets.count])
        }

        try check("error-text") {
            // A failing MPI call must come back as a Swift error naming the operation and carrying MPI's text.
            guard let m = c as? MPICommunicator else { return (true, ["skipped": "single process"]) }
            guard let e = m.provokeErrorForSelfTest() else { return (false, ["error": "invalid root was accepted"]) }
            let text = "\(e)"
            return (text.contains("MPI_Bcast (self-test") && text.contains("MPI_ERR_ROOT"), ["message": text])
        }

        let layout = try GroupLayout(world: size, groups: groups)
        let group = try c.splitGroups(layout)
        try check("split") {
            let g = layout.group(ofWorldRank: rank)
            var ok = group.size == layout.groupSize && group.rank == layout.groupRank(ofWorldRank: rank)
            var members = [rank]
            try group.allReduceSum(&members)
            let first = g * layout.groupSize
            ok = ok && members[0] == (first..<(first + layout.groupSize)).reduce(0, +)
            ok = try ((group.broadcast(group.rank == 0 ? [g] : [], root: 0)) == [g]) && ok
            return (ok, ["groups": layout.groups, "groupSize": layout.groupSize])
        }

        let runs = self.runs, runMillis = self.runMillis
        try check("work-queue") {
            let queue = try WorkQueue(world: c, group: group, runs: Array(0..<runs))
            let g = layout.group(ofWorldRank: rank)
            while let run = try queue.next() {
                var v = [run * 100 + group.rank]
                try group.allReduceSum(&v)
                if runMillis > 0 { usleep(UInt32(runMillis) * 1000) }  // stands in for training, so groups interleave
                try queue.submit(run: run, result: Data("\(run) \(g) \(v[0])".utf8))
            }
            let results = try queue.finish()
            try c.idleBarrier()  // groups finish at different times; the early ones wait without spinning
            guard rank == 0 else { return (true, [:]) }
            guard let results else { return (false, ["error": "rank 0 got no results"]) }
            let gsum = layout.groupSize * (layout.groupSize - 1) / 2
            var usedGroups = Set<Int>()
            var ok = Set(results.keys) == Set(0..<runs)
            for (run, data) in results {
                let parts = String(decoding: data, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
                guard parts.count == 3 else { ok = false; continue }
                usedGroups.insert(parts[1])
                ok = ok && parts[0] == run && parts[2] == run * 100 * layout.groupSize + gsum
            }
            return (ok, ["runs": runs, "results": results.count, "groupsUsed": usedGroups.count])
        }

        try check("gather") {
            var ok = true
            for root in Set([0, size - 1]).sorted() {
                // Rank 1 sends nothing: empty contributions must work.
                func payload(_ r: Int) -> Data { r == 1 ? Data() : Data((0..<(r * 3 + 1)).map { UInt8(truncatingIfNeeded: r &* 13 &+ $0) }) }
                let got = try c.gather(payload(rank), root: root)
                if rank == root {
                    ok = ok && got == (0..<size).map(payload)
                } else {
                    ok = ok && got == nil
                }
            }
            return (ok, [:])
        }

        try check("checksum") {
            let w = (0..<10_001).map { Float($0) * 0.001 - 3 }
            var ok = try c.allRanksHoldIdentical(w)
            // One flipped bit on one rank must be noticed on every rank.
            var perturbed = w
            let flipRank = size - 1
            if rank == flipRank { perturbed[4321] = Float(bitPattern: perturbed[4321].bitPattern ^ 1) }
            let agreeAfterFlip = try c.allRanksHoldIdentical(perturbed)
            ok = ok && (size == 1 ? agreeAfterFlip : !agreeAfterFlip)
            var flippedLocal = w
            flippedLocal[0] = Float(bitPattern: flippedLocal[0].bitPattern ^ 1)
            ok = ok && checksum(of: flippedLocal) != checksum(of: w)
            return (ok, ["checksum": String(checksum(of: w), radix: 16)])
        }

        if let benchMB { try bench(megabytes: benchMB) }

        emit(["check": "summary", "ok": failures.isEmpty, "failed": failures, "ranks": size])
        if !failures.isEmpty { c.printOnRoot("episodic comm-check: failed: \(failures.joined(separator: ", "))") }
        return failures.isEmpty ? 0 : 1
    }

    /// Times an in-place all-reduce of `megabytes` of floats, blocking and through the gradient buckets.
    private mutating func bench(megabytes: Double) throws {
        let c = comm
        let n = Int(megabytes * 1024 * 1024) / MemoryLayout<Float>.stride
        var buf = [Float](repeating: 1, count: n)
        let buckets = try GradientBuckets(communicator: c, count: n, bucketBytes: Int(bucketMB * 1024 * 1024))
        var blocking: [Double] = [], bucketed: [Double] = [], exposed: [Double] = []
        var ok = true
        let pieces = 32
        for rep in 0...benchReps {  // rep 0 warms up (page faults, connection set-up)
            for mode in 0..<3 {
                buf.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = 1 } }
                try c.barrier()
                let t0 = DispatchTime.now().uptimeNanoseconds
                var exposedSeconds = 0.0
                if mode == 0 {
                    try c.allReduceSum(&buf)
                } else if mode == 1 {
                    try buf.withUnsafeMutableBufferPointer { p in _ = try buckets.reduceAll(p) }
                } else {
                    // A stand-in backward: `overlapMillis` of busy compute, reporting the arena in pieces from its
                    // end; what remains is the communication the compute did not hide.
                    let overlap = overlapMillis
                    exposedSeconds = try buf.withUnsafeMutableBufferPointer { p -> Double in
                        try buckets.begin(p)
                        var hi = n
                        for k in 0..<pieces {
                            busyCompute(seconds: overlap / 1000 / Double(pieces))
                            let lo = k == pieces - 1 ? 0 : n - (k + 1) * (n / pieces)
                            buckets.report(lo..<hi)
                            hi = lo
                        }
                        return try buckets.finish().exposedSeconds
                    }
                }
                // The slowest rank defines the operation's time.
                let t = try c.allReduceMax(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                let e = try c.allReduceMax(exposedSeconds)
                if rep > 0 { if mode == 0 { blocking.append(t) } else if mode == 1 { bucketed.append(t) } else { exposed.append(e) } }
                ok = ok && buf[0] == Float(c.size) && buf[n - 1] == Float(c.size) && buf[n / 2] == Float(c.size)
            }
        }
        let localOK = ok
        let agreed = try c.allAgree(localOK)
        if !agreed { failures.append("bench") }
        let median = StepBenchmark.median
        let bytes = Double(n * MemoryLayout<Float>.stride)
        let p = Double(c.size)
        let med = median(blocking)
        emit([
            "check": "bench-allreduce", "ok": agreed, "ranks": c.size, "megabytes": megabytes, "floats": n, "reps": benchReps,
            "blockingMedianMs": med * 1000, "blockingMinMs": (blocking.min() ?? 0) * 1000,
            "bucketedMedianMs": median(bucketed) * 1000, "bucketedMinMs": (bucketed.min() ?? 0) * 1000,
            "bucketMB": bucketMB, "buckets": buckets.buckets.count,
            "overlapComputeMs": overlapMillis, "overlapExposedMedianMs": median(exposed) * 1000,
            // algorithmic bandwidth = bytes / time; bus bandwidth = 2(p-1)/p · bytes / time (what a ring moves per link)
            "algGBps": med > 0 ? bytes / med / 1e9 : 0, "busGBps": med > 0 ? 2 * (p - 1) / p * bytes / med / 1e9 : 0,
        ])
    }
}

/// Burns the CPU for `seconds` (stands in for backward's compute in the overlap benchmark).
private func busyCompute(seconds: Double) {
    let end = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9)
    var x: Double = 1
    while DispatchTime.now().uptimeNanoseconds < end {
        for _ in 0..<1000 { x = x * 1.000001 + 1e-9 }
    }
    if x.isNaN { print(x) }  // keeps the loop from being optimised away
}

private struct CheckPayload: Codable, Equatable {
    var name: String
    var values: [Double]
    var tags: [String: Int]
}
