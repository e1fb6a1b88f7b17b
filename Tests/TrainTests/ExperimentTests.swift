import Foundation
import XCTest
@testable import Train

/// The experiment grid under mpirun: an interrupted experiment, started again, completes with the same summary as an
/// uninterrupted one; another experiment's folder is refused unless --force.
final class ExperimentTests: XCTestCase {
    func writeConfig() throws -> URL {
        let cfg = """
        {"name": "tiny", "base": {"data": "\(TinyData.dir.path)", "size": 32, "logEvery": 1000, "evalBatch": 4,
          "network": {"features": [4, 8, 16]}},
         "folds": [0, 1], "regimes": ["full"],
         "samplers": [{"name": "random", "sampler": {"kind": "random", "batchSize": 4}},
                      {"name": "episodic", "sampler": {"kind": "episodic", "k": 2, "nSupport": 1, "nQuery": 1, "allowReplacement": true}}],
         "budgets": [{"name": "it", "budget": {"unit": "iterations", "max": 8, "milestones": [], "patience": 0, "validationInterval": 2}}]}
        """
        let url = Scratch.path("exp-config", extension: "json")
        try Data(cfg.utf8).write(to: url)
        return url
    }

    func experiment(_ config: URL, _ out: URL, extra: [String] = []) -> [String] {
        ["experiment", "--config", config.path, "--out", out.path, "--groups", "2"] + extra
    }

    func testInterruptedExperimentCompletesWithTheSameSummary() throws {
        let config = try writeConfig()
        let whole = Scratch.path("exp-whole"), cut = Scratch.path("exp-cut")
        let r = try MPITestSupport.runEpisodic(np: 2, experiment(config, whole), for: Self.self, timeout: 300)
        XCTAssertEqual(r.exitCode, 0, r.summary)
        XCTAssertTrue(r.stdout.contains("report: "), r.stdout)

        // Interrupt as soon as any run has a checkpoint (mid-run), by killing mpirun's whole job.
        let p = try MPITestSupport.startEpisodic(np: 2, experiment(config, cut), for: Self.self)
        let deadline = Date().addingTimeInterval(200)
        func anyCheckpoint() -> Bool {
            guard let e = FileManager.default.enumerator(atPath: cut.appendingPathComponent("runs").path) else { return false }
            return e.contains { ($0 as? String)?.hasSuffix("checkpoint_latest/state.json") ?? false }
        }
        while !anyCheckpoint() && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(anyCheckpoint(), p.stderrSoFar)
        for pid in MPITestSupport.descendants(of: p.pid, named: "episodic") { kill(pid, SIGKILL) }
        let killed = p.wait(timeout: 60)
        XCTAssertNotEqual(killed.exitCode, 0, killed.summary)
        XCTAssertFalse(FileManager.default.fileExists(atPath: cut.appendingPathComponent("summary.json").path))

        let again = try MPITestSupport.runEpisodic(np: 2, experiment(config, cut), for: Self.self, timeout: 300)
        XCTAssertEqual(again.exitCode, 0, again.summary)
        XCTAssertEqual(try String(contentsOf: whole.appendingPathComponent("table.csv"), encoding: .utf8),
                       try String(contentsOf: cut.appendingPathComponent("table.csv"), encoding: .utf8))
        let runs = try ExperimentConfig.load(path: config.path).runs()
        XCTAssertEqual(runs.count, 4)
        for run in runs {
            let a = try Data(contentsOf: whole.appendingPathComponent(run.relativePath + "/checkpoint_latest/model.safetensors"))
            let b = try Data(contentsOf: cut.appendingPathComponent(run.relativePath + "/checkpoint_latest/model.safetensors"))
            XCTAssertEqual(a, b, run.relativePath)
        }
        // A finished experiment re-run trains nothing and reports the same table.
        let third = try MPITestSupport.runEpisodic(np: 2, experiment(config, cut), for: Self.self, timeout: 120)
        XCTAssertEqual(third.exitCode, 0, third.summary)
        XCTAssertTrue(third.stderr.contains("4 already finished"), third.stderr)

        // Another experiment's folder is refused unless --force.
        let other = try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "\"max\": 8", with: "\"max\": 6")
        let otherURL = Scratch.path("exp-other", extension: "json")
        try Data(other.utf8).write(to: otherURL)
        let refused = try MPITestSupport.runEpisodic(np: 2, experiment(otherURL, cut), for: Self.self, timeout: 60)
        XCTAssertNotEqual(refused.exitCode, 0)
        XCTAssertTrue(refused.stderr.contains("--force"), refused.stderr)
        XCTAssertEqual(refused.stderr.components(separatedBy: "--force").count - 1, 1, "one message, not one per rank: \(refused.stderr)")
    }

    func testAGridThatCannotRunIsRefusedBeforeTraining() throws {
        let cfg = try String(contentsOf: try writeConfig(), encoding: .utf8)
            .replacingOccurrences(of: "\"nSupport\": 1, \"nQuery\": 1, \"allowReplacement\": true", with: "\"nSupport\": 40, \"nQuery\": 40")
        let url = Scratch.path("exp-bad", extension: "json")
        try Data(cfg.utf8).write(to: url)
        let out = Scratch.path("exp-bad-out")
        let r = try MPITestSupport.runEpisodic(np: 2, experiment(url, out), for: Self.self, timeout: 60)
        XCTAssertNotEqual(r.exitCode, 0, r.summary)
        XCTAssertTrue(r.stderr.contains("2 run(s) cannot start"), r.stderr)
        XCTAssertTrue(r.stderr.contains("runs/it/full/episodic/fold1"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("runs").path), "nothing trained")
    }

    func testReportOnUnfinishedRunsNamesThem() throws {
        let config = try writeConfig()
        let out = Scratch.path("exp-partial")
        // Only the first run of the grid is trained (with `train`, straight into its run folder); the others are missing.
        let run = try ExperimentConfig.load(path: config.path).runs()[0]
        let dir = out.appendingPathComponent(run.relativePath)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let cfgFile = out.appendingPathComponent("run-config.json")
        try ConfigJSON.prettyData(run.config).write(to: cfgFile)
        try ExperimentRunner.prepareFolder(config: ExperimentConfig.load(path: config.path), out: out, force: false)
        let t = try MPITestSupport.run(try MPITestSupport.episodic(for: Self.self), ["train", "--config", cfgFile.path, "--out", dir.path],
                                       removing: MPITestSupport.launcherVariables, timeout: 120)
        XCTAssertEqual(t.exitCode, 0, t.summary)
        let rep = try MPITestSupport.run(try MPITestSupport.episodic(for: Self.self), ["report", out.path],
                                         removing: MPITestSupport.launcherVariables, timeout: 60)
        XCTAssertEqual(rep.exitCode, 0, rep.summary)
        let all = rep.stdout + rep.stderr
        XCTAssertTrue(all.contains("runs/it/full/episodic/fold1"), all)
    }
}
