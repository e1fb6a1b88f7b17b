import DataParallel
import Foundation
import Tensor
import Train

let trainCommand = Command(name: "train", summary: "train one run (fold, regime, sampler, budget) from a JSON config") { argv in
    var a = try Args(argv, flagNames: ["resume", "help"])
    if a.flag("help") {
        print("""
        usage: episodic train [--config FILE] [--set key=value ...] [--data DIR] --out RUNDIR [--resume]
          Trains one run; every rank of an mpirun job takes part (data-parallel over the world).
          --config FILE     run config JSON (fields not given take their defaults; see README "Run configuration")
          --set key=value   override any config field, e.g. --set sampler.kind=weighted --set budget.max=3000
          --data DIR        shorthand for --set data=DIR
          --out RUNDIR      run directory: config.json, curve.csv, checkpoints, results.json
          --resume          continue from RUNDIR's last checkpoint (refused if its config differs)
          --stop-after N    checkpoint and exit once N iterations are done (resume later with --resume)
        """)
        return 0
    }
    var overrides = a.strings("set")
    if let d = a.string("data") { overrides.append("data=\"\(d)\"") }
    let configPath = a.string("config")
    let out = try a.required("out")
    let resume = a.flag("resume")
    let stopAfter = try a.int("stop-after", min: 0)
    try a.checkAllUsed()
    let config = try RunConfig.load(path: configPath, overrides: overrides)
    return try withCommunicator { comm in
        try BLASStartup.check(comm: comm)
        let data = try RunData.prepare(config: config, comm: comm)
        let trainer = try Trainer(config: config, runDir: URL(fileURLWithPath: out), comm: comm, data: data, resume: resume)
        guard let result = try trainer.run(stopAfter: stopAfter) else { return 0 }
        if comm.rank == 0 {
            print(String(format: "finished: %d iterations (%.2f epochs), best validation mean Dice %.4f at iteration %d; %@",
                         result.iterationsTrained, result.epochsTrained, result.bestValidationDice, result.bestIteration, result.stopReason))
            if let t = result.test, let d = t.summary.meanDice {
                print(String(format: "test: %d cases, mean foreground Dice %.4f, mean HD95 %@ mm", t.summary.cases, d,
                             t.summary.meanHD95.map { String(format: "%.2f", $0) } ?? "n/a"))
            }
            print("results: \(out)/results.json")
        }
        return 0
    }
}

/// Runs `body` with the world communicator (MPI under mpirun, else a single process) and finalises MPI. An error on
/// any rank is printed once (by the rank that has it) and ends the whole job, so no rank waits forever.
func withCommunicator(_ body: (Communicator) throws -> Int32) throws -> Int32 {
    let comm = try detectCommunicator()
    do {
        let code = try body(comm)
        MPIRuntime.finalize()
        return code
    } catch let e as SharedFailure {
        // Every rank has it: one message, a clean exit everywhere.
        if comm.rank == 0 { eprint("episodic: error: \(e)") }
        MPIRuntime.finalize()
        return 1
    } catch {
        if comm.size > 1 {
            eprint("episodic (rank \(comm.rank)): error: \(error)")
            comm.abort(1)
        }
        throw error
    }
}

/// OpenBLAS kernel sanity before any training: warn on a generic kernel on a capable CPU, refuse wrong numbers.
enum BLASStartup {
    static func check(comm: Communicator) throws {
        if comm.rank == 0, let w = BLASInfo.genericKernelWarning() { eprint("warning: " + w) }
        try BLASInfo.selfCheck()
    }
}
