import XCTest
@testable import Train

/// How `bench` splits a step's per-rank times: exposed communication is the slowest rank's own wait, not the
/// longest wait (which a faster rank spends waiting for the slower one).
final class BenchTimingTests: XCTestCase {
    func testExposedIsTheSlowestRanksWait() {
        // Rank 1 computes longest and waits 3 ms; rank 0 waits 103 ms, 100 of them for rank 1.
        let s = StepTiming.split(compute: [0.600, 0.700, 0.650], wait: [0.103, 0.003, 0.053])
        XCTAssertEqual(s.compute, 0.700)
        XCTAssertEqual(s.exposed, 0.003)
        XCTAssertEqual(s.longestWait, 0.103)
        XCTAssertEqual(s.skew, 0.100, accuracy: 1e-12)
    }

    func testOneRankHasNoSkew() {
        let s = StepTiming.split(compute: [0.5], wait: [0.01])
        XCTAssertEqual(s.compute, 0.5)
        XCTAssertEqual(s.exposed, 0.01)
        XCTAssertEqual(s.longestWait, 0.01)
        XCTAssertEqual(s.skew, 0)
    }

    func testMismatchedInputsGiveZeros() {
        let s = StepTiming.split(compute: [0.5, 0.6], wait: [0.01])
        XCTAssertEqual([s.compute, s.exposed, s.longestWait, s.skew], [0, 0, 0, 0])
        let e = StepTiming.split(compute: [], wait: [])
        XCTAssertEqual([e.compute, e.exposed, e.longestWait, e.skew], [0, 0, 0, 0])
    }
}
