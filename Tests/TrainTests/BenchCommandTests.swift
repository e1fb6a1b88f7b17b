import Foundation
import XCTest

/// `episodic bench` on a tiny network: its JSON is self-consistent, `--blas-peak` measures the sgemm rate on every
/// rank at once, and bad options are refused by name.
final class BenchCommandTests: XCTestCase {
    private let tiny = ["bench", "--size", "16", "--batch", "2", "--features", "4,8", "--steps", "2", "--warmup", "0", "--threads", "1"]

    private func result(_ r: ProcessResult, file: StaticString = #filePath, line: UInt = #line) -> [String: Any] {
        XCTAssertEqual(r.exitCode, 0, r.summary, file: file, line: line)
        XCTAssertEqual(r.jsonLines.count, 1, "one JSON line, from rank 0 only\n\(r.summary)", file: file, line: line)
        return r.jsonLines.first ?? [:]
    }

    private func assertConsistent(_ j: [String: Any], ranks: Int, file: StaticString = #filePath, line: UInt = #line) {
        guard let step = j["median_step_s"] as? Double, let ips = j["images_per_s"] as? Double, let gf = j["gflops"] as? Double,
              let peak = j["blas_peak_gflops"] as? Double, let frac = j["fraction_of_blas_peak"] as? Double else {
            return XCTFail("missing fields in \(j)", file: file, line: line)
        }
        XCTAssertEqual(j["ranks"] as? Int, ranks, file: file, line: line)
        XCTAssertGreaterThan(step, 0, file: file, line: line)
        XCTAssertEqual(ips, 2 / step, accuracy: 1e-9 * ips, "images/s = global batch / step", file: file, line: line)
        XCTAssertGreaterThan(peak, 0.5, "an sgemm rate in GFLOP/s", file: file, line: line)
        XCTAssertEqual(frac, gf / peak, accuracy: 1e-12, file: file, line: line)
        // Measured once before and once after the timed steps; the higher is the peak.
        guard let before = j["blas_peak_before_gflops"] as? Double, let after = j["blas_peak_after_gflops"] as? Double else {
            return XCTFail("the peak before and after the steps are missing in \(j)", file: file, line: line)
        }
        XCTAssertTrue(before > 0.5 && after > 0.5, "\(before), \(after)", file: file, line: line)
        XCTAssertEqual(peak, max(before, after), file: file, line: line)
    }

    func testSingleProcessBlasPeak() throws {
        let exe = try MPITestSupport.episodic(for: Self.self)
        let r = try MPITestSupport.run(exe, tiny + ["--blas-peak", "--json"], environment: ["OPENBLAS_NUM_THREADS": "1"],
                                       removing: MPITestSupport.launcherVariables, timeout: 60)
        let j = result(r)
        assertConsistent(j, ranks: 1)
        XCTAssertEqual((j["blas_peak_per_rank_gflops"] as? [Double])?.count, 1)
        // Without the flag the fields are absent (nothing is claimed that was not measured).
        let plain = result(try MPITestSupport.run(exe, tiny + ["--json"], environment: ["OPENBLAS_NUM_THREADS": "1"],
                                                  removing: MPITestSupport.launcherVariables, timeout: 60))
        XCTAssertNil(plain["blas_peak_gflops"])
    }

    func testTwoRanksBlasPeakIsSummedOverRanks() throws {
        let r = try MPITestSupport.runEpisodic(np: 2, tiny + ["--blas-peak", "--json"], for: Self.self, timeout: 90)
        let j = result(r)
        assertConsistent(j, ranks: 2)
        // The peak is the sum of what each rank measured at the same moment (one positive rate per rank).
        let per = j["blas_peak_per_rank_gflops"] as? [Double] ?? []
        XCTAssertEqual(per.count, 2, r.summary)
        XCTAssertTrue(per.allSatisfy { $0 > 0.5 }, "\(per)")
        XCTAssertEqual(per.reduce(0, +), j["blas_peak_gflops"] as? Double ?? -1, accuracy: 1e-9)
        // Exposed communication is the slowest rank's wait; a faster rank's longer wait is that plus the skew.
        guard let step = j["median_step_s"] as? Double, let compute = j["compute_s"] as? Double, let exposed = j["exposed_comm_s"] as? Double,
              let longest = j["longest_rank_wait_s"] as? Double, let skew = j["rank_skew_s"] as? Double else {
            return XCTFail("missing communication fields in \(j)")
        }
        XCTAssertGreaterThanOrEqual(exposed, 0)
        XCTAssertGreaterThanOrEqual(skew, 0)
        XCTAssertGreaterThanOrEqual(longest, exposed, "medians of per-step values where longest ≥ exposed in every step")
        XCTAssertLessThanOrEqual(compute, step, "the slowest rank's compute fits inside the step it is part of")
    }

    /// Each MPI_Iallreduce allocates a bucket-sized temporary buffer; with glibc's adaptive malloc defaults the freed
    /// buffers were unmapped and faulted in again at every step. MPI initialisation now fixes the thresholds (unless
    /// the user set their own): steady-state 2-rank steps then fault almost nothing. The same run with a user malloc
    /// setting (which turns the fix off, glibc's defaults otherwise) shows the faults the bench is meant to catch.
    func testTwoRankStepsDoNotFaultInCollectiveBuffers() throws {
        // A 1.9 MB gradient arena in 256 KB buckets: eight buffers above glibc's initial mmap threshold per step.
        let args = ["bench", "--size", "32", "--batch", "2", "--features", "32,64,128", "--bucket-mb", "0.25",
                    "--steps", "4", "--warmup", "1", "--threads", "1", "--json"]
        func faults(_ env: [String: String]) throws -> Double {
            let j = result(try MPITestSupport.runEpisodic(np: 2, args, for: Self.self, environment: env, timeout: 180))
            guard let f = j["page_faults_per_step"] as? Double, let most = j["page_faults_max_step"] as? Double else {
                XCTFail("no page_faults_per_step / page_faults_max_step in \(j)"); return .nan
            }
            XCTAssertGreaterThanOrEqual(most, f, "the largest step's faults are at least the median")
            return f
        }
        let kept = try faults([:])
        let adaptive = try faults(["GLIBC_TUNABLES": "glibc.malloc.perturb=0"])
        XCTAssertLessThan(kept, 48, "steady-state 2-rank steps fault in fresh memory (adaptive run: \(adaptive))")
        XCTAssertGreaterThan(adaptive, 100, "glibc's adaptive thresholds should refault the buckets (kept: \(kept))")
    }

    func testBadOptionsAreRefusedByName() throws {
        let exe = try MPITestSupport.episodic(for: Self.self)
        for (args, needle) in [(["bench", "--batch", "0"], "--batch"), (["bench", "--size", "x"], "--size"),
                               (["bench", "--features", "4"], "--features"), (["bench", "--blas-peek"], "blas-peek")] {
            let r = try MPITestSupport.run(exe, args, removing: MPITestSupport.launcherVariables, timeout: 30)
            XCTAssertNotEqual(r.exitCode, 0, "\(args)\n\(r.summary)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): stderr should name \(needle)\n\(r.summary)")
        }
    }
}
