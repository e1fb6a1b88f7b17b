import Data
import Foundation
import Tensor
import XCTest

/// Training under mpirun on the built `episodic` binary: world-size invariance, the TCP path, and a rank killed
/// mid-run followed by --resume.
final class MPITrainingTests: XCTestCase {
    /// 20 steps, global batch 16 (1 rank × 16 vs 2 ranks × 8), a validation point (and curve row) every step.
    func trainArgs(out: URL, iterations: Int = 20, validationEvery: Int = 1, sampler: String = "episodic") -> [String] {
        ["train", "--out", out.path, "--data", TinyData.dir.path,
         "--set", "size=32", "--set", "network.features=[4,8,16]", "--set", "network.decoderDropout=0.2",
         "--set", "sampler.kind=\(sampler)", "--set", "sampler.batchSize=16", "--set", "sampler.allowReplacement=true",
         "--set", "budget.unit=iterations", "--set", "budget.max=\(iterations)", "--set", "budget.milestones=[]",
         "--set", "budget.patience=0", "--set", "budget.validationInterval=\(validationEvery)",
         "--set", "logEvery=1", "--set", "scoreTest=false", "--set", "evalBatch=4"]
    }

    func curveLosses(_ dir: URL) throws -> [Double] {
        let text = try String(contentsOf: dir.appendingPathComponent("curve.csv"), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { Double($0.split(separator: ",")[4])! }
    }

    func weights(_ dir: URL) throws -> [Float] {
        let (t, _) = try SafeTensors.read(dir.appendingPathComponent("checkpoint_latest/model.safetensors"))
        return t.keys.sorted().flatMap { t[$0]!.values }
    }

    func testOneRankAndTwoRanksTrainTheSameModel() throws {
        let one = Scratch.path("np1"), two = Scratch.path("np2")
        let r1 = try MPITestSupport.runEpisodic(np: 1, trainArgs(out: one), for: Self.self, timeout: 240)
        XCTAssertEqual(r1.exitCode, 0, r1.summary)
        let r2 = try MPITestSupport.runEpisodic(np: 2, trainArgs(out: two), for: Self.self, timeout: 240)
        XCTAssertEqual(r2.exitCode, 0, r2.summary)
        XCTAssertTrue(r2.stderr.contains("weights bit-identical on all 2 ranks"), r2.stderr)
        let l1 = try curveLosses(one), l2 = try curveLosses(two)
        XCTAssertEqual(l1.count, 20)
        XCTAssertEqual(l2.count, 20)
        for (i, (a, b)) in zip(l1, l2).enumerated() {
            XCTAssertLessThanOrEqual(abs(a - b) / abs(a), 1e-5, "step \(i + 1): loss \(a) on 1 rank vs \(b) on 2")
        }
        let w1 = try weights(one), w2 = try weights(two)
        XCTAssertEqual(w1.count, w2.count)
        var num = 0.0, den = 0.0
        for (a, b) in zip(w1, w2) { num += Double(a - b) * Double(a - b); den += Double(a) * Double(a) }
        XCTAssertLessThanOrEqual((num / den).squareRoot(), 1e-4, "final weights differ")
        XCTAssertNotEqual(l1.first, l1.last, "training moved the loss")
    }

    func testTrainingOverTCP() throws {
        let d = Scratch.path("tcp")
        let r = try MPITestSupport.runEpisodic(np: 2, mpiArguments: ["--mca", "btl", "tcp,self"],
                                               trainArgs(out: d, iterations: 4, validationEvery: 2), for: Self.self, timeout: 120)
        XCTAssertEqual(r.exitCode, 0, r.summary)
        XCTAssertTrue(r.stderr.contains("weights bit-identical on all 2 ranks"), r.stderr)
        XCTAssertEqual(try curveLosses(d).count, 2)
    }

    func testKilledRankLeavesACheckpointThatResumes() throws {
        let killed = Scratch.path("killed"), reference = Scratch.path("reference")
        let args = trainArgs(out: killed, iterations: 40, validationEvery: 5, sampler: "random")
        let p = try MPITestSupport.startEpisodic(np: 2, args, for: Self.self)
        // Wait for the first checkpoint, then kill -9 one rank.
        let state = killed.appendingPathComponent("checkpoint_latest/state.json")
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: state.path) && Date() < deadline { usleep(50_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: state.path), "no checkpoint appeared: \(p.stderrSoFar)")
        let ranks = MPITestSupport.descendants(of: p.pid, named: "episodic")
        XCTAssertEqual(ranks.count, 2, "rank pids")
        if let victim = ranks.last { kill(victim, SIGKILL) }
        let r = p.wait(timeout: 60)
        XCTAssertNotEqual(r.exitCode, 0, "mpirun must end the job with a failure: \(r.summary)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("results.json").path))
        // The last checkpoint is intact and --resume finishes the run, at the weights of an uninterrupted run.
        let resumed = try MPITestSupport.runEpisodic(np: 2, args + ["--resume"], for: Self.self, timeout: 240)
        XCTAssertEqual(resumed.exitCode, 0, resumed.summary)
        let whole = try MPITestSupport.runEpisodic(np: 2, trainArgs(out: reference, iterations: 40, validationEvery: 5, sampler: "random"),
                                                   for: Self.self, timeout: 240)
        XCTAssertEqual(whole.exitCode, 0, whole.summary)
        XCTAssertEqual(try weights(killed), try weights(reference), "resumed run reaches the uninterrupted weights bit for bit")
        XCTAssertEqual(try curveLosses(killed), try curveLosses(reference))
    }
}
