/// Grid or block dimensions of a launch.
public struct LaunchDimensions: Sendable, Equatable {
    /// Extent along x.
    public var x: Int
    /// Extent along y.
    public var y: Int
    /// Extent along z.
    public var z: Int

    /// Dimensions `x`×`y`×`z`; `y` and `z` default to 1.
    public init(_ x: Int, _ y: Int = 1, _ z: Int = 1) {
        self.x = x
        self.y = y
        self.z = z
    }

    var product: Int { x * y * z }
}

/// A CUDA stream: work queued on it runs in order; destroyed when released.
///
/// `@unchecked Sendable`: the handle is immutable and the driver API is thread-safe.
public final class CUDAStream: @unchecked Sendable {
    /// The context the stream belongs to.
    public let context: CUDAContext
    let handle: OpaquePointer?
    /// Whether this object created the stream (and destroys it when released).
    private let owned: Bool

    /// Creates a stream; `nonBlocking` streams do not synchronise with the legacy default
    /// stream (`CU_STREAM_NON_BLOCKING`).
    public init(context: CUDAContext, nonBlocking: Bool = true) throws(CUDAError) {
        try context.makeCurrent()
        var stream: OpaquePointer?
        try context.api.check(context.api.streamCreate(&stream, nonBlocking ? 1 : 0), "cuStreamCreate")
        self.context = context
        self.handle = stream
        self.owned = true
    }

    /// Wraps a stream someone else created (a `CUstream`, e.g. PyTorch's current stream; nil
    /// is the legacy default stream) without taking ownership: it must outlive this object.
    public init(borrowing stream: OpaquePointer?, context: CUDAContext) {
        self.context = context
        self.handle = stream
        self.owned = false
    }

    deinit {
        guard owned else { return }
        _ = context.api.ctxSetCurrent(context.handle)
        _ = context.api.streamDestroy(handle)
    }

    /// Waits until all work queued on the stream has finished.
    public func synchronize() throws(CUDAError) {
        try context.makeCurrent()
        try context.api.check(context.api.streamSynchronize(handle), "cuStreamSynchronize")
    }

    /// Queues `function` on this stream.
    ///
    /// - Parameters:
    ///   - grid: blocks in the grid.
    ///   - block: threads per block; checked against the kernel's limit first.
    ///   - sharedMemoryBytes: dynamic shared memory per block; above 48 KiB call
    ///     ``CUDAFunction/setMaxDynamicSharedMemory(bytes:)`` first.
    ///   - arguments: one per kernel parameter, in order; their bytes are copied now.
    ///   - programmaticDependency: launch as a programmatic dependent of the kernel before it
    ///     on this stream (sm_90+): its CTAs may start while that kernel runs, once every CTA
    ///     of it has executed `griddepcontrol.launch_dependents` or exited, and must execute
    ///     `griddepcontrol.wait` before they read what it writes. Drivers without
    ///     `cuLaunchKernelEx` launch ordinarily, which the same kernel code also runs under.
    public func launch(
        _ function: CUDAFunction, grid: LaunchDimensions, block: LaunchDimensions,
        sharedMemoryBytes: Int = 0, arguments: [any KernelArgument], programmaticDependency: Bool = false
    ) throws(CUDAError) {
        let dimensions = [grid.x, grid.y, grid.z, block.x, block.y, block.z]
        guard dimensions.allSatisfy({ $0 >= 1 && $0 <= Int(UInt32.max) }),
              sharedMemoryBytes >= 0, sharedMemoryBytes <= Int(UInt32.max)
        else {
            throw CUDAError.invalidArgument(
                "cuLaunchKernel",
                "\(function.name): invalid launch grid \(grid), block \(block), shared \(sharedMemoryBytes)")
        }
        let limit = try function.maxThreadsPerBlock
        guard block.product <= limit else {
            throw CUDAError.invalidArgument(
                "cuLaunchKernel", "\(function.name): block of \(block.product) threads exceeds its limit of \(limit)")
        }
        try context.makeCurrent()
        let api = context.api
        let stream = handle
        let result = withKernelParameterArray(arguments) { parameters in
            if programmaticDependency, let launchKernelEx = api.launchKernelEx {
                return Self.withDependentLaunchConfig(grid: grid, block: block, sharedMemoryBytes: sharedMemoryBytes, stream: stream) {
                    launchKernelEx($0, function.handle, parameters, nil)
                }
            }
            return api.launchKernel(
                function.handle,
                UInt32(grid.x), UInt32(grid.y), UInt32(grid.z),
                UInt32(block.x), UInt32(block.y), UInt32(block.z),
                UInt32(sharedMemoryBytes), stream, parameters, nil)
        }
        if result != 0 {
            var error = api.error(result, "cuLaunchKernel")
            error.message += " (kernel \(function.name), grid \(grid.x)x\(grid.y)x\(grid.z), "
                + "block \(block.x)x\(block.y)x\(block.z), \(sharedMemoryBytes) bytes dynamic shared memory)"
            throw error
        }
    }

    /// A `CUlaunchConfig` (56 bytes: grid, block, shared bytes, stream, attributes, their count)
    /// with one `CUlaunchAttribute` (72 bytes: id, padding, value union),
    /// `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION` (6) set to 1, written at the
    /// C structs' offsets.
    private static func withDependentLaunchConfig<R>(
        grid: LaunchDimensions, block: LaunchDimensions, sharedMemoryBytes: Int, stream: OpaquePointer?,
        _ body: (UnsafeRawPointer) -> R
    ) -> R {
        let attribute = UnsafeMutableRawPointer.allocate(byteCount: 72, alignment: 8)
        let config = UnsafeMutableRawPointer.allocate(byteCount: 56, alignment: 8)
        defer {
            attribute.deallocate()
            config.deallocate()
        }
        attribute.initializeMemory(as: UInt8.self, repeating: 0, count: 72)
        attribute.storeBytes(of: UInt32(6), toByteOffset: 0, as: UInt32.self)
        attribute.storeBytes(of: Int32(1), toByteOffset: 8, as: Int32.self)
        config.initializeMemory(as: UInt8.self, repeating: 0, count: 56)
        for (index, value) in [grid.x, grid.y, grid.z, block.x, block.y, block.z, sharedMemoryBytes].enumerated() {
            config.storeBytes(of: UInt32(value), toByteOffset: 4 * index, as: UInt32.self)
        }
        config.storeBytes(of: stream, toByteOffset: 32, as: OpaquePointer?.self)
        config.storeBytes(of: UnsafeRawPointer(attribute), toByteOffset: 40, as: UnsafeRawPointer.self)
        config.storeBytes(of: UInt32(1), toByteOffset: 48, as: UInt32.self)
        return body(UnsafeRawPointer(config))
    }

    /// Queues a host-to-device copy; `source` must be pinned for the copy to be truly
    /// asynchronous, and must stay untouched until the stream reaches the copy.
    public func copy(_ source: PinnedHostBuffer, to destination: DeviceBuffer, byteCount: Int? = nil) throws(CUDAError) {
        let count = byteCount ?? source.byteCount
        guard count >= 0, count <= source.byteCount else {
            throw CUDAError.invalidArgument("cuMemcpyHtoDAsync_v2", "\(count) bytes exceed the \(source.byteCount)-byte host buffer")
        }
        try destination.checkRange(0, count, "cuMemcpyHtoDAsync_v2")
        guard count > 0 else { return }
        try context.makeCurrent()
        try context.api.check(
            context.api.memcpyHtoDAsync(destination.address, source.pointer, count, handle), "cuMemcpyHtoDAsync_v2")
    }

    /// Queues a copy of `array` into `destination` at `byteOffset`. From pageable memory the
    /// driver stages the bytes before returning, so the array may change or go away at once;
    /// the device copy itself is ordered after the work already queued on this stream.
    public func copy<T: BitwiseCopyable>(_ array: [T], to destination: DeviceBuffer, byteOffset: Int = 0) throws(CUDAError) {
        let count = array.count * MemoryLayout<T>.stride
        try destination.checkRange(byteOffset, count, "cuMemcpyHtoDAsync_v2")
        guard count > 0 else { return }
        try context.makeCurrent()
        let api = context.api
        let (target, stream) = (destination.address + UInt64(byteOffset), handle)
        let result = array.withUnsafeBytes { api.memcpyHtoDAsync(target, $0.baseAddress, $0.count, stream) }
        try api.check(result, "cuMemcpyHtoDAsync_v2")
    }

    /// Queues a device-to-host copy into pinned memory; read it after synchronising.
    public func copy(_ source: DeviceBuffer, to destination: PinnedHostBuffer, byteCount: Int? = nil) throws(CUDAError) {
        let count = byteCount ?? source.byteCount
        guard count >= 0, count <= destination.byteCount else {
            throw CUDAError.invalidArgument("cuMemcpyDtoHAsync_v2", "\(count) bytes exceed the \(destination.byteCount)-byte host buffer")
        }
        try source.checkRange(0, count, "cuMemcpyDtoHAsync_v2")
        guard count > 0 else { return }
        try context.makeCurrent()
        try context.api.check(
            context.api.memcpyDtoHAsync(destination.pointer, source.address, count, handle), "cuMemcpyDtoHAsync_v2")
    }

    /// Queues a device-to-device copy of `byteCount` bytes (default: all of `source`).
    public func copy(_ source: DeviceBuffer, to destination: DeviceBuffer, byteCount: Int? = nil) throws(CUDAError) {
        let count = byteCount ?? source.byteCount
        try source.checkRange(0, count, "cuMemcpyDtoDAsync_v2")
        try destination.checkRange(0, count, "cuMemcpyDtoDAsync_v2")
        guard count > 0 else { return }
        try context.makeCurrent()
        try context.api.check(context.api.memcpyDtoDAsync(destination.address, source.address, count, handle), "cuMemcpyDtoDAsync_v2")
    }

    /// Queues setting every byte of `buffer` to `value`.
    public func fill(_ buffer: DeviceBuffer, byte value: UInt8) throws(CUDAError) {
        guard buffer.byteCount > 0 else { return }
        try context.makeCurrent()
        try context.api.check(context.api.memsetD8Async(buffer.address, value, buffer.byteCount, handle), "cuMemsetD8Async")
    }

    /// Queues setting `count` 32-bit words from `address` (4-byte aligned device memory that
    /// the caller owns) to `value`.
    public func fill(address: UInt64, words count: Int, value: UInt32) throws(CUDAError) {
        guard address % 4 == 0, count >= 0 else {
            throw CUDAError.invalidArgument("cuMemsetD32Async", "address \(address) is not 4-byte aligned or count \(count) is negative")
        }
        guard count > 0 else { return }
        try context.makeCurrent()
        try context.api.check(context.api.memsetD32Async(address, value, count, handle), "cuMemsetD32Async")
    }
}
