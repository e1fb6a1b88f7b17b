import XCTest
@testable import Train
final class TrainSmokeTests: XCTestCase { func testModuleLinks() { XCTAssertTrue(true) } }
