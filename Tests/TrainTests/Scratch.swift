import Foundation
import XCTest

/// Scratch paths for this test process, all removed when the test bundle finishes: the suite runs on shared
/// machines and in CI loops, and 40 runs used to leave ~360 MB of run folders in the temporary directory.
/// Removal waits for the bundle's end because some paths (the phantom data set) are shared across test cases.
final class Scratch: NSObject, XCTestObservation, @unchecked Sendable {
    private static let shared: Scratch = {
        let s = Scratch()
        XCTestObservationCenter.shared.addTestObserver(s)
        return s
    }()
    private let lock = NSLock()
    private var paths: [URL] = []

    /// A fresh, not yet existing path `episodic-<name>-<pid>-<random>[.<ext>]` in the temporary directory, for a
    /// file or a folder.
    static func path(_ name: String, extension ext: String? = nil) -> URL {
        var d = FileManager.default.temporaryDirectory
            .appendingPathComponent("episodic-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        if let ext { d.appendPathExtension(ext) }
        try? FileManager.default.removeItem(at: d)
        shared.lock.lock()
        shared.paths.append(d)
        shared.lock.unlock()
        return d
    }

    func testBundleDidFinish(_ testBundle: Bundle) {
        lock.lock()
        let all = paths
        paths.removeAll()
        lock.unlock()
        for p in all { try? FileManager.default.removeItem(at: p) }
    }
}
