import Foundation
import XCTest

/// The executable's user-facing commands, run as a user would (no mpirun).
final class CLITests: XCTestCase {
    func run(_ args: [String], timeout: Double = 120) throws -> ProcessResult {
        try MPITestSupport.run(try MPITestSupport.episodic(for: Self.self), args, removing: MPITestSupport.launcherVariables, timeout: timeout)
    }

    func exposure(_ sampler: String) throws -> [String: Any] {
        let r = try run(["sampler-stats", "--data", TinyData.dir.path, "--sampler", sampler, "--iterations", "3000", "--json",
                         "--set", "sampler.allowReplacement=true"])
        XCTAssertEqual(r.exitCode, 0, r.summary)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return try XCTUnwrap(obj?["exposure"] as? [String: Any])
    }

    func testSamplerStatsShowTheMechanism() throws {
        // random: each class's share of drawn slices follows its prevalence in the pool.
        let random = try exposure("random")
        for row in try XCTUnwrap(random["classes"] as? [[String: Any]]) {
            let share = try XCTUnwrap(row["sliceShare"] as? Double), prev = try XCTUnwrap(row["poolPrevalence"] as? Double)
            XCTAssertEqual(share, prev, accuracy: 0.03, "random follows prevalence: \(row)")
        }
        // episodic: classes are episode targets uniformly, so targeted slices are balanced over classes.
        let episodic = try exposure("episodic")
        let ratio = try XCTUnwrap(episodic["maxMinTargetExposure"] as? Double)
        XCTAssertLessThanOrEqual(ratio, 1.15)
        // and the rarest class is seen more often than under random sampling.
        func share(_ e: [String: Any], _ name: String) throws -> Double {
            let rows = try XCTUnwrap(e["classes"] as? [[String: Any]])
            return try XCTUnwrap(rows.first { ($0["name"] as? String) == name }?["sliceShare"] as? Double)
        }
        XCTAssertGreaterThan(try share(episodic, "IMAT"), try share(random, "IMAT") * 1.2)
    }

    func testEveryCommandHasHelp() throws {
        for name in ["train", "experiment", "report", "predict", "score", "sampler-stats", "phantom", "preprocess", "inspect",
                     "dataset", "refine", "bench", "blas", "comm-check"] {
            let r = try run([name, "--help"], timeout: 30)
            XCTAssertEqual(r.exitCode, 0, "\(name) --help\n\(r.summary)")
            XCTAssertTrue(r.stdout.contains("usage: episodic \(name)"), "\(name) --help\n\(r.summary)")
        }
    }

    func testBadOptionsExitNonZeroWithAClearMessage() throws {
        let r1 = try run(["sampler-stats", "--data", TinyData.dir.path, "--sampler", "bogus"])
        XCTAssertNotEqual(r1.exitCode, 0)
        XCTAssertTrue(r1.stderr.contains("bogus"), r1.stderr)
        let r2 = try run(["train", "--data", TinyData.dir.path, "--out", Scratch.path("x").path, "--set", "budget.max=0"])
        XCTAssertNotEqual(r2.exitCode, 0)
        XCTAssertTrue(r2.stderr.contains("budget.max"), r2.stderr)
        let r3 = try run(["train", "--out", Scratch.path("z").path, "--bogus-option", "1"])
        XCTAssertEqual(r3.exitCode, 2)
        XCTAssertTrue(r3.stderr.contains("--bogus-option"), r3.stderr)
        let r4 = try run(["experiment", "--config", "/nonexistent.json", "--out", Scratch.path("y").path])
        XCTAssertNotEqual(r4.exitCode, 0)
        XCTAssertTrue(r4.stderr.contains("/nonexistent.json"), r4.stderr)
    }

    func testPredictWritesLabelMapsInTheInputGeometryAndScoreReadsThem() throws {
        let run = Scratch.path("predict-run")
        let t = try self.run(["train", "--data", TinyData.dir.path, "--out", run.path, "--set", "size=32", "--set", "network.features=[4,8,16]",
                              "--set", "budget.unit=iterations", "--set", "budget.max=2", "--set", "budget.milestones=[]",
                              "--set", "budget.validationInterval=1", "--set", "sampler.batchSize=4", "--set", "scoreTest=false"])
        XCTAssertEqual(t.exitCode, 0, t.summary)
        let out = Scratch.path("pred")
        let p = try self.run(["predict", "--checkpoint", run.appendingPathComponent("checkpoint_best").path,
                              "-i", TinyData.dir.appendingPathComponent("imagesTr").path, "-o", out.path])
        XCTAssertEqual(p.exitCode, 0, p.summary)
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".nii.gz") }
        XCTAssertEqual(files.count, 8)
        let i = try self.run(["inspect", out.appendingPathComponent(files.sorted()[0]).path, "--json"])
        XCTAssertEqual(i.exitCode, 0, i.summary)
        let s = try self.run(["score", "--pred", out.path, "--ref", TinyData.dir.appendingPathComponent("labelsTr").path,
                              "--dataset", TinyData.dir.appendingPathComponent("dataset.json").path, "--json"])
        XCTAssertEqual(s.exitCode, 0, s.summary)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("summary.json").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("scores.csv").path))
    }
}
