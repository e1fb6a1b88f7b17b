import Foundation
import XCTest
@testable import DataParallel

/// A fake 2-rank communicator for the bucket logic: every non-blocking all-reduce is recorded, and completing it
/// doubles the values (the sum over two ranks holding the same gradients).
final class RecordingCommunicator: Communicator {
    var rank: Int { 0 }
    var size: Int { 2 }
    var started: [(start: UnsafeMutablePointer<Float>, count: Int)] = []
    var tests = 0

    final class Req: CommRequest {
        let buffer: UnsafeMutableBufferPointer<Float>
        var done = false
        init(_ b: UnsafeMutableBufferPointer<Float>) { buffer = b }
        func wait() throws { if !done { for i in buffer.indices { buffer[i] *= 2 }; done = true } }
        func test() throws -> Bool { done }
    }

    func barrier() throws {}
    func broadcastRaw(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws {}
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp) throws {}
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Int>, op: ReduceOp) throws {}
    func iallReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws -> CommRequest {
        started.append((buffer.baseAddress!, buffer.count))
        return Req(buffer)
    }
    func gather(_ data: Data, root: Int) throws -> [Data]? { [data, data] }
    func split(color: Int, key: Int) throws -> Communicator { self }
    func send(_ data: Data, to destination: Int, tag: Int) throws {}
    func receive(from source: Int?, tag: Int?) throws -> (data: Data, source: Int, tag: Int) { throw DataParallelError.invalidArgument(operation: "receive", message: "fake") }
    func probe(from source: Int?, tag: Int?) throws -> (source: Int, tag: Int, count: Int)? { nil }
    func abort(_ code: Int32) -> Never { fatalError("abort \(code)") }
}

final class ShardTests: XCTestCase {
    func testShardsPartitionTheBatchContiguouslyFirstRanksLarger() {
        for count in 0...23 {
            for size in 1...6 {
                let shards = (0..<size).map { Coordinator.shard(of: count, rank: $0, size: size) }
                XCTAssertEqual(shards.first?.lowerBound, 0)
                XCTAssertEqual(shards.last?.upperBound, count)
                for r in 1..<size { XCTAssertEqual(shards[r - 1].upperBound, shards[r].lowerBound, "count \(count) size \(size)") }
                let sizes = shards.map(\.count)
                XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1)
                XCTAssertEqual(sizes, sizes.sorted(by: >), "earlier ranks get the extra samples")
            }
        }
        XCTAssertEqual((0..<4).map { Coordinator.shard(of: 10, rank: $0, size: 4) }, [0..<3, 3..<6, 6..<8, 8..<10])
        XCTAssertEqual(Coordinator.shard(of: 16, rank: 1, size: 2), 8..<16)
    }

    func testLocalShardOfBatch() {
        let c = Coordinator(SingleProcessCommunicator())
        let s = c.localShard(of: [9, 8, 7])
        XCTAssertEqual(s.range, 0..<3)
        XCTAssertEqual(Array(s.indices), [9, 8, 7])
    }

    func testValidateGroupsRefusesBadLayouts() throws {
        XCTAssertEqual(try validateGroups(world: 4, groups: 2), 2)
        XCTAssertEqual(try validateGroups(world: 2, groups: 2), 1)
        XCTAssertEqual(try validateGroups(world: 1, groups: 1), 1)
        for (world, groups, needle) in [(2, 3, "more groups than ranks"), (4, 3, "does not divide"), (4, 0, "at least 1"), (6, 4, "use one of 1, 2, 3, 6")] {
            XCTAssertThrowsError(try validateGroups(world: world, groups: groups)) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(needle), text)
                XCTAssertTrue(text.contains("--groups \(groups)"), text)
            }
        }
    }

    func testValidateBatch() throws {
        XCTAssertNoThrow(try validateBatch(globalBatch: 2, groupSize: 2))
        XCTAssertThrowsError(try validateBatch(globalBatch: 1, groupSize: 2)) { e in
            XCTAssertTrue("\(e)".contains("global batch 1 is smaller than the group of 2"), "\(e)")
        }
    }

    func testGroupLayoutPutsWorldRankZeroAtTheHeadOfGroupZero() throws {
        let l = try GroupLayout(world: 6, groups: 3)
        XCTAssertEqual((0..<6).map(l.group(ofWorldRank:)), [0, 0, 1, 1, 2, 2])
        XCTAssertEqual((0..<6).map(l.groupRank(ofWorldRank:)), [0, 1, 0, 1, 0, 1])
        XCTAssertThrowsError(try GroupLayout(world: 6, groups: 4))
    }
}

final class SingleProcessTests: XCTestCase {
    func testCollectivesAreIdentity() throws {
        let c = SingleProcessCommunicator()
        XCTAssertEqual(c.rank, 0); XCTAssertEqual(c.size, 1)
        var f: [Float] = [1, 2.5, -3]
        try c.allReduceSum(&f)
        XCTAssertEqual(f, [1, 2.5, -3])
        XCTAssertEqual(try c.broadcast([1.5, 2] as [Float], root: 0), [1.5, 2])
        XCTAssertEqual(try c.broadcast("héllo", root: 0), "héllo")
        XCTAssertEqual(try c.broadcast(Data([1, 2, 3]), root: 0), Data([1, 2, 3]))
        XCTAssertEqual(try c.allReduceMax(7), 7)
        XCTAssertEqual(try c.gather(Data([4]), root: 0), [Data([4])])
        XCTAssertEqual(try c.split(color: 3, key: 0).size, 1)
        XCTAssertThrowsError(try c.broadcast([1] as [Int], root: 1), "root outside the communicator")
        XCTAssertTrue(try c.iallReduceSum(UnsafeMutableBufferPointer(start: nil, count: 0)).test())
    }

    func testCodableRoundTripAndNilRootIsAnError() throws {
        struct P: Codable, Equatable { var a: Int; var b: [String] }
        let c = SingleProcessCommunicator()
        XCTAssertEqual(try c.broadcastCodable(P(a: 3, b: ["x"]), root: 0), P(a: 3, b: ["x"]))
        XCTAssertThrowsError(try c.broadcastCodable(P?.none, root: 0))
        XCTAssertThrowsError(try Coordinator(c).broadcastBatch(nil, root: 0)) { e in
            XCTAssertTrue("\(e)".contains("had nothing to send"), "\(e)")
        }
        XCTAssertEqual(try Coordinator(c).broadcastBatch([4, 2], root: 0), [4, 2])
    }

    func testWorkQueueHandsOutRunsInOrderAndCollectsResults() throws {
        let c = SingleProcessCommunicator()
        let q = try WorkQueue(world: c, group: try c.split(color: 0, key: 0), runs: [3, 1, 2])
        var got: [Int] = []
        while let run = try q.next() {
            got.append(run)
            try q.submit(run: run, result: Data("r\(run)".utf8))
        }
        XCTAssertEqual(got, [3, 1, 2])
        XCTAssertNil(try q.next())
        let results = try q.finish()
        XCTAssertEqual(results?.count, 3)
        XCTAssertEqual(results?[1], Data("r1".utf8))
        XCTAssertThrowsError(try WorkQueue(world: c, group: c, runs: [-1]))
    }

    func testDetectionFollowsTheLauncherEnvironment() throws {
        XCTAssertFalse(launchedByMPI(environment: ["PATH": "/bin"]))
        XCTAssertTrue(launchedByMPI(environment: ["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(try detectCommunicator(environment: [:]) is SingleProcessCommunicator)
    }

    func testMPIErrorBeforeInitDoesNotAbort() {
        // Open MPI aborts on MPI_Error_string before MPI_Init; the wrapper must not call it then.
        let e = mpiError(15, "MPI_Init_thread")
        XCTAssertTrue(e.description.contains("MPI_Init_thread"), e.description)
        XCTAssertTrue(e.description.contains("not initialised"), e.description)
    }
}

final class ChecksumTests: XCTestCase {
    func testChecksumSeesEveryBitAndTheLength() {
        let w = (0..<1001).map { Float($0) * 0.37 }
        XCTAssertEqual(checksum(of: w), checksum(of: Array(w)))
        for i in [0, 7, 8, 500, 1000] {
            for bit in [0, 13, 31] {
                var v = w
                v[i] = Float(bitPattern: v[i].bitPattern ^ (1 << UInt32(bit)))
                XCTAssertNotEqual(checksum(of: v), checksum(of: w), "element \(i) bit \(bit)")
            }
        }
        XCTAssertNotEqual(Checksum.of([Float](repeating: 0, count: 3)), Checksum.of([Float](repeating: 0, count: 4)))
        // Unaligned byte views (Data slices) hash the same bytes the same way.
        let bytes = Data((0..<37).map { UInt8($0) })
        XCTAssertEqual(Checksum.of(bytes.dropFirst(3)), Checksum.of(Data(bytes.dropFirst(3))))
        XCTAssertNotEqual(Checksum.of(bytes.dropFirst(3)), Checksum.of(bytes.dropFirst(4)))
    }

    func testSingleRankAlwaysAgrees() throws {
        XCTAssertTrue(try SingleProcessCommunicator().allRanksHoldIdentical([1, 2, 3]))
    }
}

final class GradientBucketTests: XCTestCase {
    func testBucketsAlignFromTheEnd() throws {
        let b = try GradientBuckets(communicator: SingleProcessCommunicator(), count: 10, bucketBytes: 16)
        XCTAssertEqual(b.buckets, [0..<2, 2..<6, 6..<10])
        XCTAssertEqual((0..<10).map(b.bucketIndex(of:)), [0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
        XCTAssertEqual(try GradientBuckets(communicator: SingleProcessCommunicator(), count: 8, bucketBytes: 16).buckets, [0..<4, 4..<8])
        XCTAssertEqual(try GradientBuckets(communicator: SingleProcessCommunicator(), count: 0).buckets, [])
        XCTAssertEqual(try GradientBuckets(communicator: SingleProcessCommunicator(), count: 100).buckets, [0..<100], "default 25 MB holds it all")
        XCTAssertThrowsError(try GradientBuckets(communicator: SingleProcessCommunicator(), count: 10, bucketBytes: 3))
    }

    func testEachBucketStartsExactlyWhenFullyCovered() throws {
        let fake = RecordingCommunicator()
        let b = try GradientBuckets(communicator: fake, count: 10, bucketBytes: 16)
        var g: [Float] = (0..<10).map { Float($0) }
        try g.withUnsafeMutableBufferPointer { p in
            try b.begin(p)
            func startedOffsets() -> [Int] { fake.started.map { $0.start - p.baseAddress! } }
            b.report(8..<10)
            XCTAssertEqual(fake.started.count, 0, "bucket 6..<10 only half done")
            b.report(5..<8)            // completes 6..<10, half of 2..<6
            XCTAssertEqual(startedOffsets(), [6])
            XCTAssertEqual(fake.started.last?.count, 4)
            b.report(0..<2)            // out of order: the first bucket
            XCTAssertEqual(startedOffsets(), [6, 0])
            b.report(2..<5)
            XCTAssertEqual(startedOffsets(), [6, 0, 2])
            let stats = try b.finish(scale: 0.5)
            XCTAssertEqual(stats.bucketsReduced, 3)
        }
        XCTAssertEqual(g, (0..<10).map { Float($0) }, "summed over the two fake ranks (×2) then scaled by 0.5")
    }

    func testBadReportsAreErrorsAtFinish() throws {
        let fake = RecordingCommunicator()
        let b = try GradientBuckets(communicator: fake, count: 10, bucketBytes: 16)
        var g = [Float](repeating: 1, count: 10)
        try g.withUnsafeMutableBufferPointer { p in
            try b.begin(p)
            XCTAssertThrowsError(try b.begin(p), "previous step not finished")
            b.report(0..<4)
            b.report(3..<10)   // overlaps offset 3
            XCTAssertThrowsError(try b.finish()) { XCTAssertTrue("\($0)".contains("already reported"), "\($0)") }

            try b.begin(p)
            b.report(0..<11)
            XCTAssertThrowsError(try b.finish()) { XCTAssertTrue("\($0)".contains("outside the arena"), "\($0)") }

            try b.begin(p)
            b.report(0..<9)
            XCTAssertThrowsError(try b.finish()) { XCTAssertTrue("\($0)".contains("not fully reported"), "\($0)") }
        }
        var short = [Float](repeating: 0, count: 9)
        try short.withUnsafeMutableBufferPointer { p in XCTAssertThrowsError(try b.begin(p)) }
    }

    func testReduceAllAndStatsWithOneProcess() throws {
        let b = try GradientBuckets(communicator: SingleProcessCommunicator(), count: 1000, bucketBytes: 400)
        var g = [Float](repeating: 3, count: 1000)
        let s = try g.withUnsafeMutableBufferPointer { try b.reduceAll($0, scale: 2) }
        XCTAssertEqual(s.bucketsReduced, 10)
        XCTAssertTrue(g.allSatisfy { $0 == 6 })
        XCTAssertGreaterThanOrEqual(s.exposedSeconds, 0)
        XCTAssertEqual(b.totalStats.bucketsReduced, 10)
    }
}
