import DataParallel
import Foundation
import Train

let experimentCommand = Command(name: "experiment", summary: "run an experiment grid (folds × samplers × regimes × budgets) in groups of ranks") { argv in
    var a = try Args(argv, flagNames: ["force", "help", "list"])
    if a.flag("help") {
        print("""
        usage: episodic experiment --config FILE --out DIR [--data DIR] [--groups G] [--set key=value ...] [--force] [--list]
          Runs every (budget, regime, sampler, fold) of the grid; under mpirun the world is split into G equal groups,
          each training one run at a time data-parallel. Finished runs are skipped, unfinished ones resume from their
          last checkpoint, so re-running the same command after an interruption completes the experiment.
          --config FILE    experiment config (configs/paper-epochs.json, paper-fixed-3000.json, paper-calibrated.json, demo.json)
          --out DIR        experiment folder (runs/, summary.json, table.csv, table.md, report.html)
          --data DIR       shorthand for --set base.data=DIR
          --groups G       number of rank groups (default 1); must divide the number of ranks
          --set key=value  override a field of the experiment config, e.g. --set folds=[0,1] --set base.size=128
          --force          reuse an output folder that holds another experiment's config
          --list           print the runs of the grid and exit
        """)
        return 0
    }
    let path = try a.required("config")
    let out = try a.required("out")
    var overrides = a.strings("set")
    if let d = a.string("data") { overrides.append("base.data=\"\(d)\"") }
    let groups = try a.int("groups", default: 1, min: 1) ?? 1
    let force = a.flag("force")
    let list = a.flag("list")
    try a.checkAllUsed()
    let config = try ExperimentConfig.load(path: path, overrides: overrides)
    if list {
        for r in config.runs() { print(r.relativePath) }
        return 0
    }
    return try withCommunicator { world in
        do {
            _ = try GroupLayout(world: world.size, groups: groups)
        } catch {
            // Refused before any work, printed once.
            if world.rank == 0 { eprint("episodic experiment: \(error)") }
            MPIRuntime.finalize()
            exit(2)
        }
        try BLASStartup.check(comm: world)
        try ExperimentRunner.run(config: config, out: URL(fileURLWithPath: out), world: world, groups: groups, force: force) { folder in
            let outcome = try ExperimentReport.build(folder: folder)
            print(outcome.tableMarkdown)
            if !outcome.missingRuns.isEmpty { eprint("missing runs: " + outcome.missingRuns.joined(separator: ", ")) }
            print("report: \(outcome.reportURL.path)")
        }
        return 0
    }
}
