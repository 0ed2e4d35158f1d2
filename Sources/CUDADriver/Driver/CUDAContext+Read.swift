extension CUDAContext {
    /// Reads `count` elements of `T` from device memory at `address` (synchronous). For memory
    /// this module does not own as a ``DeviceBuffer`` (a workspace, a caller's tensor), so the
    /// caller vouches that the range is allocated.
    public func read<T: BitwiseCopyable>(_ type: T.Type, from address: UInt64, count: Int) throws(CUDAError) -> [T] {
        guard count >= 0 else { throw CUDAError.invalidArgument("cuMemcpyDtoH_v2", "negative count \(count)") }
        guard count > 0 else { return [] }
        try makeCurrent()
        var result: Int32 = 0
        let array = [T](unsafeUninitializedCapacity: count) { storage, initialized in
            result = api.memcpyDtoH(UnsafeMutableRawPointer(storage.baseAddress), address, count * MemoryLayout<T>.stride)
            // On failure the bytes are garbage but still valid bit patterns of a
            // BitwiseCopyable type; the array is discarded by the throw below.
            initialized = count
        }
        try api.check(result, "cuMemcpyDtoH_v2")
        return array
    }
}
