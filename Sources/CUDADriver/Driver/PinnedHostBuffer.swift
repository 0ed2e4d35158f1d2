/// Page-locked host memory (`cuMemAllocHost`), which asynchronous copies need to overlap
/// with kernels; freed when released.
///
/// `@unchecked Sendable`: the pointer is immutable; the bytes themselves are only reached
/// through `withUnsafe…Bytes`, and synchronising access with in-flight copies is the
/// caller's job, as in CUDA.
public final class PinnedHostBuffer: @unchecked Sendable {
    /// The context the allocation belongs to.
    public let context: CUDAContext
    /// Size in bytes.
    public let byteCount: Int
    let pointer: UnsafeMutableRawPointer?

    /// Allocates `byteCount` bytes of page-locked host memory (zero allocates nothing).
    public init(context: CUDAContext, byteCount: Int) throws(CUDAError) {
        guard byteCount >= 0 else {
            throw CUDAError.invalidArgument("cuMemAllocHost_v2", "negative byte count \(byteCount)")
        }
        self.context = context
        self.byteCount = byteCount
        if byteCount == 0 {
            pointer = nil
            return
        }
        try context.makeCurrent()
        var raw: UnsafeMutableRawPointer?
        try context.api.check(context.api.memAllocHost(&raw, byteCount), "cuMemAllocHost_v2")
        pointer = raw
    }

    deinit {
        guard let pointer else { return }
        _ = context.api.ctxSetCurrent(context.handle)
        _ = context.api.memFreeHost(pointer)
    }

    /// Reads the bytes.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: byteCount))
    }

    /// Reads or writes the bytes.
    public func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer, count: byteCount))
    }
}
