import XCTest
@testable import Metrics
final class MetricsSmokeTests: XCTestCase { func testModuleLinks() { XCTAssertTrue(true) } }
