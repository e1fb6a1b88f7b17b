/// A fixed-size, 64-byte aligned Float buffer owned by the network's per-shape workspace. Allocated once per
/// (batch, H, W) shape and reused every step, so a training step does not allocate in steady state.
final class FloatBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Float>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    func zero() { pointer.update(repeating: 0, count: count) }
}

@inline(__always)
func zeroFill(_ p: UnsafeMutablePointer<Float>, _ n: Int) { p.update(repeating: 0, count: n) }

/// y += x, elementwise (vectorises).
@inline(__always)
func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += x[i] }
}
