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
do {
    exit(try command.run(Array(argv.dropFirst())))
} catch let e as UsageError {
    if isFirstRank { eprint("episodic \(name): \(e.description)") }
    exit(2)
} catch {
    if isFirstRank { eprint("episodic \(name): error: \(error)") }
    exit(1)
}
