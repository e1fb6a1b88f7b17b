import Foundation
import XCTest

/// launch/cluster refuses a missing or malformed hostfile before starting anything (EPISODIC_DRY_RUN prints the
/// mpirun command instead of running it, so the test needs no cluster).
final class LauncherTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func cluster(_ hostfile: String) throws -> ProcessResult {
        try MPITestSupport.run(URL(fileURLWithPath: "/bin/bash"), [root.appendingPathComponent("launch/cluster").path, hostfile, "2", "comm-check"],
                               environment: ["EPISODIC_DRY_RUN": "1", "EPISODIC_BIN": "/bin/true"], timeout: 30)
    }

    func testHostfilesAreCheckedBeforeLaunch() throws {
        let missing = try cluster("/nonexistent/hosts")
        XCTAssertEqual(missing.exitCode, 2, missing.summary)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/hosts"), missing.stderr)

        let bad = Scratch.path("bad-hosts")
        try Data("localhost slots=2\nnode02 slots=two\n".utf8).write(to: bad)
        let malformed = try cluster(bad.path)
        XCTAssertEqual(malformed.exitCode, 2, malformed.summary)
        XCTAssertTrue(malformed.stderr.contains("line 2"), malformed.stderr)

        let good = try cluster(root.appendingPathComponent("hostfiles/local").path)
        XCTAssertEqual(good.exitCode, 0, good.summary)
        XCTAssertTrue(good.stdout.contains("--hostfile"), good.stdout)
        XCTAssertTrue(good.stdout.contains("-x OPENBLAS_NUM_THREADS"), good.stdout)
    }
}
