import XCTest
@testable import DataParallel
final class DataParallelSmokeTests: XCTestCase { func testModuleLinks() { XCTAssertTrue(true) } }
