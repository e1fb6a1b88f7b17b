import XCTest
@testable import Sampling
final class SamplingSmokeTests: XCTestCase { func testModuleLinks() { XCTAssertTrue(true) } }
