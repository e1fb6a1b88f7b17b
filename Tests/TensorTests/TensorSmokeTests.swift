import XCTest
@testable import Tensor
final class TensorSmokeTests: XCTestCase { func testModuleLinks() { XCTAssertTrue(true) } }
