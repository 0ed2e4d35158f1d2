/// Device memory from `cuMemAlloc`, freed when released.
///
/// Kernels run asynchronously: keep the buffer alive until work using it has finished
/// (synchronize the stream or context first), as with any CUDA allocation.
///
/// `@unchecked Sendable`: the address is immutable and the driver API is thread-safe;
/// concurrent writes to the same device bytes are a data race on the device, as in CUDA.
public final class DeviceBuffer: @unchecked Sendable {
    /// The context owning the memory.
    public let context: CUDAContext
    /// Size in bytes.
    public let byteCount: Int
    /// The device address; 0 for an empty buffer.
    let address: UInt64

    /// Allocates `byteCount` bytes (uninitialised). A zero-byte buffer allocates nothing.
    public init(context: CUDAContext, byteCount: Int) throws(CUDAError) {
        guard byteCount >= 0 else {
            throw CUDAError.invalidArgument("cuMemAlloc_v2", "negative byte count \(byteCount)")
        }
        self.context = context
        self.byteCount = byteCount
        if byteCount == 0 {
            address = 0
            return
        }
        try context.makeCurrent()
        var pointer: UInt64 = 0
        do {
            try context.api.check(context.api.memAlloc(&pointer, byteCount), "cuMemAlloc_v2")
        } catch {
            // The size is what a caller needs to report running out of memory.
            var failure = error
            failure.requestedBytes = byteCount
            throw failure
        }
        address = pointer
    }

    /// Allocates a buffer holding a copy of `array`.
    public convenience init<T: BitwiseCopyable>(context: CUDAContext, copying array: [T]) throws(CUDAError) {
        try self.init(context: context, byteCount: array.count * MemoryLayout<T>.stride)
        try copy(from: array)
    }

    deinit {
        guard address != 0 else { return }
        // Best effort: a failure here cannot be reported and only leaks the memory.
        _ = context.api.ctxSetCurrent(context.handle)
        _ = context.api.memFree(address)
    }

    /// Calls `body` with the device address (for kernel arguments or other libraries).
    public func withDevicePointer<R, E: Error>(_ body: (UInt64) throws(E) -> R) throws(E) -> R {
        try body(address)
    }

    /// A kernel argument pointing `byteOffset` bytes into this buffer.
    public func pointer(byteOffset: Int = 0) throws(CUDAError) -> DevicePointer {
        try checkRange(byteOffset, 0, "pointer(byteOffset:)")
        return DevicePointer(address: address + UInt64(byteOffset))
    }

    /// Copies host bytes into the buffer at `byteOffset`; complete on return.
    public func copy(fromHost bytes: UnsafeRawBufferPointer, byteOffset: Int = 0) throws(CUDAError) {
        try checkRange(byteOffset, bytes.count, "cuMemcpyHtoD_v2")
        guard bytes.count > 0 else { return }
        try context.makeCurrent()
        try context.api.check(
            context.api.memcpyHtoD(address + UInt64(byteOffset), bytes.baseAddress, bytes.count), "cuMemcpyHtoD_v2")
        try finishLegacyStream()
    }

    /// Copies `array` into the buffer starting at `byteOffset`; complete on return.
    public func copy<T: BitwiseCopyable>(from array: [T], byteOffset: Int = 0) throws(CUDAError) {
        let api = context.api
        try checkRange(byteOffset, array.count * MemoryLayout<T>.stride, "cuMemcpyHtoD_v2")
        guard !array.isEmpty else { return }
        try context.makeCurrent()
        let target = address + UInt64(byteOffset)
        let result = array.withUnsafeBytes { api.memcpyHtoD(target, $0.baseAddress, $0.count) }
        try api.check(result, "cuMemcpyHtoD_v2")
        try finishLegacyStream()
    }

    /// Copies buffer bytes at `byteOffset` into host memory (synchronous).
    public func copy(toHost bytes: UnsafeMutableRawBufferPointer, byteOffset: Int = 0) throws(CUDAError) {
        try checkRange(byteOffset, bytes.count, "cuMemcpyDtoH_v2")
        guard bytes.count > 0 else { return }
        try context.makeCurrent()
        try context.api.check(
            context.api.memcpyDtoH(bytes.baseAddress, address + UInt64(byteOffset), bytes.count), "cuMemcpyDtoH_v2")
    }

    /// Reads `count` elements of `T` starting at `byteOffset` (synchronous).
    public func toArray<T: BitwiseCopyable>(of type: T.Type, count: Int, byteOffset: Int = 0) throws(CUDAError) -> [T] {
        guard count >= 0 else { throw CUDAError.invalidArgument("cuMemcpyDtoH_v2", "negative count \(count)") }
        try checkRange(byteOffset, count * MemoryLayout<T>.stride, "cuMemcpyDtoH_v2")
        guard count > 0 else { return [] }
        return try context.read(T.self, from: address + UInt64(byteOffset), count: count)
    }

    /// Copies all of `source` into this buffer at `byteOffset`, device to device.
    public func copy(fromDevice source: DeviceBuffer, byteOffset: Int = 0) throws(CUDAError) {
        try checkRange(byteOffset, source.byteCount, "cuMemcpyDtoD_v2")
        guard source.byteCount > 0 else { return }
        try context.makeCurrent()
        try context.api.check(
            context.api.memcpyDtoD(address + UInt64(byteOffset), source.address, source.byteCount), "cuMemcpyDtoD_v2")
        try finishLegacyStream()
    }

    /// Sets every byte to `value`; complete on return.
    public func fill(byte value: UInt8) throws(CUDAError) {
        guard byteCount > 0 else { return }
        try context.makeCurrent()
        try context.api.check(context.api.memsetD8(address, value, byteCount), "cuMemsetD8_v2")
        try finishLegacyStream()
    }

    /// Sets every 32-bit word to `value`; the byte count must be a multiple of 4.
    public func fill(word value: UInt32) throws(CUDAError) {
        guard byteCount % 4 == 0 else {
            throw CUDAError.invalidArgument("cuMemsetD32_v2", "byte count \(byteCount) is not a multiple of 4")
        }
        guard byteCount > 0 else { return }
        try context.makeCurrent()
        try context.api.check(context.api.memsetD32(address, value, byteCount / 4), "cuMemsetD32_v2")
        try finishLegacyStream()
    }

    /// Sets every 32-bit word to the bits of `value` (e.g. 0.0 or -infinity).
    public func fill(float value: Float) throws(CUDAError) {
        try fill(word: value.bitPattern)
    }

    /// Waits for the legacy default stream. The driver's "synchronous" copies from pageable
    /// memory may return before the device holds the bytes, and its memsets return at once;
    /// work on non-blocking streams is not ordered after either. Waiting here makes these
    /// methods complete on return, so any stream may read the result.
    private func finishLegacyStream() throws(CUDAError) {
        try context.api.check(context.api.streamSynchronize(nil), "cuStreamSynchronize")
    }

    func checkRange(_ offset: Int, _ length: Int, _ call: String) throws(CUDAError) {
        guard offset >= 0, length >= 0, offset <= byteCount, length <= byteCount - offset else {
            throw CUDAError.invalidArgument(
                call, "range \(offset)..<\(offset + length) is outside the \(byteCount)-byte buffer")
        }
    }
}
