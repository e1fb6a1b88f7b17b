import XCTest
@testable import Refine
final class RefinePlaceholderTests: XCTestCase { func testLinks() { XCTAssertTrue(true) } }
