import Foundation

/// A subcommand: `run` gets the arguments after the command name.
struct Command {
    let name: String
    let summary: String
    let run: ([String]) throws -> Int32
}

// Each command lives in its own file; register it here.
let commands: [Command] = [
    benchCommand,
    blasCommand,
    phantomCommand,
    preprocessCommand,
    inspectCommand,
    datasetCommand,
    commCheckCommand,
    trainCommand,
    predictCommand,
    scoreCommand,
    experimentCommand,
    samplerStatsCommand,
    reportCommand,
    refineCommand,
]

/// `episodic <command> --help` for the commands that do not print their own (train and experiment do): the options,
/// as in the README's command table.
let commandUsage: [String: String] = [
    "report": "report DIR\n  writes summary.json, table.csv, table.md and report.html of an experiment folder; lists missing runs",
    "predict": "predict --checkpoint RUN/checkpoint_best -i DIR_OR_FILE -o DIR [--config FILE]\n" +
        "  label maps as NIfTI in each input's geometry (CASE_0000.nii.gz → CASE.nii.gz)",
    "score": "score --pred DIR --ref DIR --dataset dataset.json [--json] [--no-hd95]\n" +
        "  Dice and HD95 per case and class; writes summary.json and scores.csv",
    "sampler-stats": "sampler-stats --data DIR --sampler random|weighted|episodic [--fold F] [--regime full|low] [--iterations N]\n" +
        "  [--size S] [--seed X] [--set key=value ...] [--json]\n" +
        "  draws batches without training; per-class exposure against prevalence",
    "phantom": "phantom --out DIR [--cases N] [--size S] [--slices Z] [--seed X] [--test-cases N] [--orientation RAS|LPS]\n" +
        "  writes the synthetic data set (nnU-Net raw layout)",
    "preprocess": "preprocess --data DIR [--out CACHE] [--size S] [--window-level L] [--window-width W] [--z-range A:B]\n" +
        "  [--max-volume-mb M] [--quiet]\n  builds the memory-mapped slice cache (training builds it when missing)",
    "inspect": "inspect FILE.nii.gz [--json]\n  shape after RAS reorientation, spacing, orientation, datatype, scaling, min/max/mean",
    "dataset": "dataset stats --data DIR [--subset train|test] [--json]\n  cases, slices, per-class slice prevalence and pixel share",
    "refine": "refine --saros DIR --boa DIR [--abdominal-muscles DIR] --preset NAME|--mapping FILE --out DIR [--cases A,B,..]\n" +
        "  [--keep-uncropped] [--quiet] | refine --list-presets | refine --preset NAME --print-mapping\n" +
        "  builds the nine-class data set from SAROS + BOA + TotalSegmentator (docs/refine.md)",
    "bench": "bench [--size S] [--batch B] [--steps N] [--warmup W] [--threads T] [--bucket-mb M] [--features a,b,..] " +
        "[--json] [--blas-peak] [--scaling] [--profile]\n" +
        "  times full training steps; --blas-peak: the sgemm rate of all ranks × threads at once and the step's fraction\n" +
        "  of it; --scaling (under mpirun): 1-rank baselines; --profile (1 rank): per-layer wall time",
    "blas": "blas [--json] [--suggest-coretype]\n  OpenBLAS kernel, threads, the sgemm self-check and rate, the conv GEMM choice",
    "comm-check": "comm-check [--bench-mb M] [--bench-reps N] [--bucket-mb M] [--groups G]\n" +
        "  MPI self-test with exactly known results (run under mpirun)",
]

func usage() -> String {
    var s = "usage: episodic <command> [options]\n\ncommands:\n"
    for c in commands { s += "  " + c.name.padding(toLength: 16, withPad: " ", startingAt: 0) + c.summary + "\n" }
    return s
}

let argv = Array(CommandLine.arguments.dropFirst())
/// Errors that reach main happen before or outside MPI work and are the same on every rank: print them once.
let isFirstRank = (ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? "0") == "0"
guard let name = argv.first, !["-h", "--help", "help"].contains(name) else {
    print(usage(), terminator: "")
    exit(argv.isEmpty ? 2 : 0)
}
guard let command = commands.first(where: { $0.name == name }) else {
    eprint("episodic: unknown command '\(name)'\n" + usage())
    exit(2)
}
if let text = commandUsage[name], argv.dropFirst().contains(where: { $0 == "--help" || $0 == "-h" }) {
    print("usage: episodic " + text)
    exit(0)
}
do {
    exit(try command.run(Array(argv.dropFirst())))
} catch let e as UsageError {
    if isFirstRank { eprint("episodic \(name): \(e.description)") }
    exit(2)
} catch {
    if isFirstRank { eprint("episodic \(name): error: \(error)") }
    exit(1)
}
