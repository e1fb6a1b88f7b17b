import Foundation
import XCTest

/// The communication layer under a real `mpirun`: `episodic comm-check` exercises every operation with values whose
/// results are known exactly and prints one JSON line per check on rank 0.
final class MPICommTests: XCTestCase {
    static let allChecks = ["ranks", "broadcast", "allreduce", "allreduce-chunked", "buckets", "bucket-requests-reused", "error-text", "split",
                            "work-queue", "gather", "checksum"]

    private func checks(_ r: ProcessResult) -> [String: [String: Any]] {
        var byName: [String: [String: Any]] = [:]
        for j in r.jsonLines { if let name = j["check"] as? String { byName[name] = j } }
        return byName
    }

    private func assertAllPassed(_ r: ProcessResult, ranks: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, r.summary, file: file, line: line)
        XCTAssertEqual(r.exitCode, 0, r.summary, file: file, line: line)
        let c = checks(r)
        for name in MPICommTests.allChecks {
            XCTAssertEqual(c[name]?["ok"] as? Bool, true, "check \(name)\n\(r.summary)", file: file, line: line)
            XCTAssertEqual(c[name]?["ranks"] as? Int, ranks, "check \(name)", file: file, line: line)
        }
        XCTAssertEqual(c["summary"]?["ok"] as? Bool, true, r.summary, file: file, line: line)
        // Only rank 0 prints: one line per check, not one per rank.
        XCTAssertEqual(r.jsonLines.count, MPICommTests.allChecks.count + 1, r.summary, file: file, line: line)
    }

    func testSharedMemoryTransport() throws {
        let r = try MPITestSupport.runEpisodic(np: 2, ["comm-check"], for: Self.self)
        assertAllPassed(r, ranks: 2)
        XCTAssertEqual(checks(r)["ranks"]?["mpi"] as? Bool, true)
        XCTAssertEqual(checks(r)["allreduce-chunked"]?["skipped"] as? String, nil, "chunking must run under MPI")
    }

    func testTCPTransport() throws {
        // Forces the off-node path (TCP over loopback) instead of shared memory.
        let r = try MPITestSupport.runEpisodic(np: 2, mpiArguments: ["--mca", "btl", "tcp,self"], ["comm-check"], for: Self.self)
        assertAllPassed(r, ranks: 2)
    }

    func testTwoGroupsShareTheWorkQueue() throws {
        let r = try MPITestSupport.runEpisodic(np: 2, ["comm-check", "--groups", "2", "--runs", "6", "--run-ms", "60"], for: Self.self)
        assertAllPassed(r, ranks: 2)
        let c = checks(r)
        XCTAssertEqual(c["split"]?["groups"] as? Int, 2)
        XCTAssertEqual(c["split"]?["groupSize"] as? Int, 1)
        XCTAssertEqual(c["work-queue"]?["results"] as? Int, 6)
        // 60 ms per run: the second group asks long before the first has taken all six.
        XCTAssertEqual(c["work-queue"]?["groupsUsed"] as? Int, 2, r.summary)
    }

    func testPlainBinaryRunsWithoutMPI() throws {
        let exe = try MPITestSupport.episodic(for: Self.self)
        let r = try MPITestSupport.run(exe, ["comm-check"], removing: MPITestSupport.launcherVariables)
        XCTAssertEqual(r.exitCode, 0, r.summary)
        let c = checks(r)
        XCTAssertEqual(c["ranks"]?["mpi"] as? Bool, false, "no mpirun: single-process communicator")
        XCTAssertEqual(c["ranks"]?["ranks"] as? Int, 1)
        XCTAssertEqual(c["summary"]?["ok"] as? Bool, true, r.summary)
    }

    /// A refusal is printed once (by rank 0), nothing runs, and the job exits non-zero.
    private func assertRefusedOnce(np: Int, _ args: [String], message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try MPITestSupport.runEpisodic(np: np, ["comm-check"] + args, for: Self.self)
        XCTAssertFalse(r.timedOut, r.summary, file: file, line: line)
        XCTAssertNotEqual(r.exitCode, 0, r.summary, file: file, line: line)
        XCTAssertEqual(r.stderr.components(separatedBy: message).count - 1, 1, "message exactly once\n\(r.summary)", file: file, line: line)
        XCTAssertTrue(r.jsonLines.isEmpty, "no check ran\n\(r.summary)", file: file, line: line)
    }

    func testMoreGroupsThanRanksIsRefusedOnce() throws {
        try assertRefusedOnce(np: 2, ["--groups", "3"], message: "--groups 3: more groups than ranks")
    }

    func testGroupCountMustDivideTheWorld() throws {
        try assertRefusedOnce(np: 3, ["--groups", "2"], message: "--groups 2 does not divide the 3 ranks")
    }

    func testBatchSmallerThanTheGroupIsRefusedOnce() throws {
        try assertRefusedOnce(np: 2, ["--groups", "1", "--batch", "1"], message: "global batch 1 is smaller than the group of 2 ranks")
    }

    func testAWrongResultOnOneRankFailsTheCheck() throws {
        // The self-test must be able to fail: one rank corrupts its all-reduce result.
        let r = try MPITestSupport.runEpisodic(np: 2, ["comm-check", "--inject-fault"], for: Self.self)
        XCTAssertFalse(r.timedOut, r.summary)
        XCTAssertEqual(r.exitCode, 1, r.summary)
        let c = checks(r)
        XCTAssertEqual(c["allreduce"]?["ok"] as? Bool, false, r.summary)
        XCTAssertEqual(c["allreduce"]?["failedRanks"] as? [Int], [1], r.summary)
        XCTAssertEqual(c["broadcast"]?["ok"] as? Bool, true, "the other checks still run and pass")
        XCTAssertEqual(c["summary"]?["ok"] as? Bool, false)
    }

    func testKillingOneRankEndsTheWholeJob() throws {
        // Long runs in the work queue: rank 1 is waiting for work or inside a run when it is killed; mpirun must end
        // the job with a non-zero exit instead of leaving rank 0 waiting for it forever.
        let p = try MPITestSupport.startEpisodic(np: 2, ["comm-check", "--groups", "2", "--runs", "50", "--run-ms", "400"], for: Self.self)
        XCTAssertTrue(p.waitForOutput(timeout: 15) { $0.contains("\"check\":\"split\"") }, "comm-check did not reach the work queue\n\(p.stderrSoFar)")
        let ranks = MPITestSupport.descendants(of: p.pid, named: "episodic")
        XCTAssertEqual(ranks.count, 2, "two rank processes under mpirun: \(ranks)")
        guard let victim = ranks.last else { _ = p.wait(timeout: 1); return }
        usleep(300_000)
        kill(victim, SIGKILL)
        let r = p.wait(timeout: 15)
        XCTAssertFalse(r.timedOut, "mpirun did not end the job after a rank died\n\(r.summary)")
        XCTAssertNotEqual(r.exitCode, 0, r.summary)
        XCTAssertFalse(r.jsonLines.contains { $0["check"] as? String == "summary" }, "the run must not complete")
    }
}
