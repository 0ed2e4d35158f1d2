/// A device's primary context, retained for the lifetime of this object.
///
/// Every resource made from a context keeps it alive and makes it current on the calling
/// thread before each operation, so callers never juggle the driver's per-thread
/// "current context" themselves.
///
/// `@unchecked Sendable`: the handles are immutable after `init`, and the driver API is
/// thread-safe; making the context current is per thread.
public final class CUDAContext: @unchecked Sendable {
    /// The device ordinal.
    public let ordinal: Int
    /// What the driver reports about the device.
    public let properties: CUDADeviceProperties
    let api: DriverAPI
    let device: Int32
    let handle: OpaquePointer

    /// Retains the primary context of device `ordinal` (`--device N`).
    public init(device ordinal: Int = 0) throws(CUDAError) {
        let api = try DriverLoader.require()
        let device = try CUDADevice.handle(ordinal: ordinal, api: api)
        var context: OpaquePointer?
        try api.check(api.primaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else {
            throw CUDAError(library: .driver, kind: .callFailed, call: "cuDevicePrimaryCtxRetain", message: "returned no context")
        }
        self.api = api
        self.device = device
        self.handle = context
        self.ordinal = ordinal
        do {
            self.properties = try CUDADeviceProperties.query(ordinal: ordinal)
        } catch {
            _ = api.primaryCtxRelease(device)
            throw error
        }
    }

    deinit {
        // Nothing to report to from deinit; a failed release only leaks the context.
        _ = api.primaryCtxRelease(device)
    }

    /// Makes this context current on the calling thread (`cuCtxSetCurrent`).
    public func makeCurrent() throws(CUDAError) {
        try api.check(api.ctxSetCurrent(handle), "cuCtxSetCurrent")
    }

    /// Waits for all work on the device to finish, surfacing asynchronous kernel errors.
    public func synchronize() throws(CUDAError) {
        try makeCurrent()
        try api.check(api.ctxSynchronize(), "cuCtxSynchronize")
    }

    /// Free and total device memory in bytes, as seen now.
    public func memoryInfo() throws(CUDAError) -> (free: Int, total: Int) {
        try makeCurrent()
        var free = 0
        var total = 0
        try api.check(api.memGetInfo(&free, &total), "cuMemGetInfo_v2")
        return (free, total)
    }

    /// The driver's CUDA version, e.g. 13000 for 13.0.
    public var driverVersion: Int {
        get throws(CUDAError) { try CUDADevice.driverVersion() }
    }
}
