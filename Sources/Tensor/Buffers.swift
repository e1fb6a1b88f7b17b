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

/// The grouped GEMMs' re-layout, samples side by side: [g, c, plane] (sample stride `sampleStride`) → [c, g·plane].
func gatherSamples(_ src: UnsafePointer<Float>, sampleStride: Int, into dst: UnsafeMutablePointer<Float>, channels: Int,
                   samples g: Int, plane: Int) {
    for i in 0..<g { for c in 0..<channels { (dst + c * g * plane + i * plane).update(from: src + i * sampleStride + c * plane, count: plane) } }
}

/// The inverse of gatherSamples: [c, g·plane] → [g, c, plane] (sample stride `sampleStride`), written or added.
func scatterSamples(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, sampleStride: Int, channels: Int,
                    samples g: Int, plane: Int, accumulate: Bool = false) {
    for i in 0..<g {
        for c in 0..<channels {
            let s = src + c * g * plane + i * plane, d = dst + i * sampleStride + c * plane
            if accumulate { addInPlace(d, s, plane) } else { d.update(from: s, count: plane) }
        }
    }
}
