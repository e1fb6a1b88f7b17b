import Foundation

/// The rank-0 pattern of data-parallel training: group rank 0 runs the sampler and broadcasts each global batch;
/// every rank trains on its contiguous shard.
public struct Coordinator {
    public let communicator: Communicator

    public init(_ communicator: Communicator) { self.communicator = communicator }

    /// The root passes the global batch's slice indices; the other ranks pass nil (ignored) and receive them.
    /// If the root passes nil every rank throws (nobody waits forever).
    public func broadcastBatch(_ indices: [Int]?, root: Int = 0) throws -> [Int] {
        let c = communicator
        return try c.broadcastArray(c.rank == root ? indices : [], root: root, "broadcastBatch")
    }

    /// Rank `rank` of `size`'s contiguous shard of a global batch of `count` samples.
    ///
    /// When `count % size != 0` the first `count % size` ranks get one sample more (e.g. 10 over 4 ranks:
    /// 3, 3, 2, 2). Shards are therefore uneven, and the loss must be weighted exactly: Train does so because CE is
    /// averaged over the global pixel count and Dice uses all-reduced global sums, so every sample counts the same
    /// whichever rank holds it. Ranks past `count` get an empty shard (refused earlier by `validateBatch`).
    public static func shard(of count: Int, rank: Int, size: Int) -> Range<Int> {
        precondition(size > 0 && rank >= 0 && rank < size && count >= 0, "shard(of: \(count), rank: \(rank), size: \(size))")
        let base = count / size, extra = count % size
        let start = rank * base + Swift.min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// This rank's shard of `batch`, with the global position of its first sample (for dropout keys).
    public func localShard(of batch: [Int]) -> (range: Range<Int>, indices: ArraySlice<Int>) {
        let r = Coordinator.shard(of: batch.count, rank: communicator.rank, size: communicator.size)
        return (r, batch[r])
    }
}

// MARK: - Refusals before any work

/// Checks a fold-group layout: `groups` equal groups out of `world` ranks. Returns the group size.
/// The caller prints the error on rank 0 only (`Communicator.printOnRoot`) and exits non-zero on every rank.
@discardableResult
public func validateGroups(world: Int, groups: Int) throws -> Int {
    guard groups >= 1 else {
        throw DataParallelError.invalidConfiguration("--groups \(groups): the number of groups must be at least 1")
    }
    guard groups <= world else {
        throw DataParallelError.invalidConfiguration("--groups \(groups): more groups than ranks (the job has \(world) rank\(world == 1 ? "" : "s")); start at least \(groups) ranks (mpirun -np \(groups)) or use fewer groups")
    }
    guard world % groups == 0 else {
        let divisors = (1...world).filter { world % $0 == 0 }.map(String.init).joined(separator: ", ")
        throw DataParallelError.invalidConfiguration("--groups \(groups) does not divide the \(world) ranks into equal groups; use one of \(divisors)")
    }
    return world / groups
}

/// Checks that every rank of a group gets at least one sample of the global batch.
public func validateBatch(globalBatch: Int, groupSize: Int) throws {
    guard globalBatch >= groupSize else {
        throw DataParallelError.invalidConfiguration("global batch \(globalBatch) is smaller than the group of \(groupSize) ranks: every rank needs at least one sample; use a batch of at least \(groupSize) or fewer ranks per group")
    }
}

/// World ranks 0..<g·s in `groups` consecutive blocks: group = rank / groupSize, group rank = rank % groupSize, so
/// world rank 0 leads group 0 (the work queue relies on this).
public struct GroupLayout: Sendable, Equatable {
    public let world: Int
    public let groups: Int
    public let groupSize: Int

    public init(world: Int, groups: Int) throws {
        self.world = world
        self.groups = groups
        groupSize = try validateGroups(world: world, groups: groups)
    }

    public func group(ofWorldRank r: Int) -> Int { r / groupSize }
    public func groupRank(ofWorldRank r: Int) -> Int { r % groupSize }
}

extension Communicator {
    /// Splits this (world) communicator into `layout.groups` groups. Collective.
    public func splitGroups(_ layout: GroupLayout) throws -> Communicator {
        guard layout.world == size else {
            throw DataParallelError.invalidArgument(operation: "splitGroups", message: "layout for \(layout.world) ranks, communicator has \(size)")
        }
        return try split(color: layout.group(ofWorldRank: rank), key: layout.groupRank(ofWorldRank: rank))
    }
}

// MARK: - Checksums ("all ranks hold bit-identical weights")

public enum Checksum {
    static let offset: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// FNV-1a over 64-bit little-endian words (then the tail bytes, then the length): a byte-exact fingerprint,
    /// 8× faster than byte-wise FNV. Not cryptographic; it only has to notice any differing bit.
    public static func fnv1a64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = offset
        let n = bytes.count
        var i = 0
        while i + 8 <= n {
            h = (h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))) &* prime
            i += 8
        }
        while i < n { h = (h ^ UInt64(bytes[i])) &* prime; i += 1 }
        return (h ^ UInt64(n)) &* prime
    }

    public static func of(_ buffer: UnsafeBufferPointer<Float>) -> UInt64 { fnv1a64(UnsafeRawBufferPointer(buffer)) }
    public static func of(_ values: [Float]) -> UInt64 { values.withUnsafeBytes { fnv1a64($0) } }
    public static func of(_ values: [Double]) -> UInt64 { values.withUnsafeBytes { fnv1a64($0) } }
    public static func of(_ data: Data) -> UInt64 { data.withUnsafeBytes { fnv1a64($0) } }
}

/// Free-function spelling of `Checksum.of`.
public func checksum(of values: [Float]) -> UInt64 { Checksum.of(values) }
public func checksum(of buffer: UnsafeBufferPointer<Float>) -> UInt64 { Checksum.of(buffer) }

extension Communicator {
    /// True on every rank iff every rank passed the same checksum (max and min of the all-reduce agree).
    public func allRanksAgree(onChecksum value: UInt64) throws -> Bool {
        let v = Int(bitPattern: UInt(value))
        var hi = [v], lo = [v]
        try allReduceMax(&hi)
        try allReduceMin(&lo)
        // max == min ⇔ all equal; both values are the same on every rank, so every rank gets the same answer.
        return hi[0] == lo[0]
    }

    /// True on every rank iff all ranks hold bit-identical `values`.
    public func allRanksHoldIdentical(_ values: [Float]) throws -> Bool {
        try allRanksAgree(onChecksum: Checksum.of(values))
    }
}
