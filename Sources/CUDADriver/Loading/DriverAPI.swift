/// The CUDA driver API entry points this package uses, resolved once with `dlsym`.
///
/// The `_v2` names are the ones the CUDA headers map the plain names to (64-bit sizes,
/// per-thread-safe semantics); resolving the plain name would bind the legacy ABI.
/// `@unchecked Sendable`: C function pointers into a library that is never unloaded are
/// immutable, and the driver API is thread-safe.
struct DriverAPI: @unchecked Sendable {
    typealias Handle = OpaquePointer
    typealias Out<T> = UnsafeMutablePointer<T>

    let initialize: @convention(c) (UInt32) -> Int32
    let driverGetVersion: @convention(c) (Out<Int32>?) -> Int32
    let getErrorName: @convention(c) (Int32, Out<UnsafePointer<CChar>?>?) -> Int32
    let getErrorString: @convention(c) (Int32, Out<UnsafePointer<CChar>?>?) -> Int32

    let deviceGetCount: @convention(c) (Out<Int32>?) -> Int32
    let deviceGet: @convention(c) (Out<Int32>?, Int32) -> Int32
    let deviceGetName: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32) -> Int32
    let deviceGetAttribute: @convention(c) (Out<Int32>?, Int32, Int32) -> Int32
    let deviceTotalMem: @convention(c) (Out<Int>?, Int32) -> Int32
    let primaryCtxRetain: @convention(c) (Out<Handle?>?, Int32) -> Int32
    let primaryCtxRelease: @convention(c) (Int32) -> Int32
    let ctxSetCurrent: @convention(c) (Handle?) -> Int32
    let ctxSynchronize: @convention(c) () -> Int32
    let memGetInfo: @convention(c) (Out<Int>?, Out<Int>?) -> Int32

    let moduleLoadData: @convention(c) (Out<Handle?>?, UnsafeRawPointer?) -> Int32
    let moduleUnload: @convention(c) (Handle?) -> Int32
    let moduleGetFunction: @convention(c) (Out<Handle?>?, Handle?, UnsafePointer<CChar>?) -> Int32
    let funcGetAttribute: @convention(c) (Out<Int32>?, Int32, Handle?) -> Int32
    let funcSetAttribute: @convention(c) (Handle?, Int32, Int32) -> Int32
    let launchKernel: @convention(c) (
        Handle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, Handle?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Int32

    let memAlloc: @convention(c) (Out<UInt64>?, Int) -> Int32
    let memFree: @convention(c) (UInt64) -> Int32
    let memAllocHost: @convention(c) (Out<UnsafeMutableRawPointer?>?, Int) -> Int32
    let memFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Int32
    let memcpyHtoD: @convention(c) (UInt64, UnsafeRawPointer?, Int) -> Int32
    let memcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, UInt64, Int) -> Int32
    let memcpyDtoD: @convention(c) (UInt64, UInt64, Int) -> Int32
    let memcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer?, Int, Handle?) -> Int32
    let memcpyDtoDAsync: @convention(c) (UInt64, UInt64, Int, Handle?) -> Int32
    let memcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, UInt64, Int, Handle?) -> Int32
    let memsetD8: @convention(c) (UInt64, UInt8, Int) -> Int32
    let memsetD32: @convention(c) (UInt64, UInt32, Int) -> Int32
    let memsetD8Async: @convention(c) (UInt64, UInt8, Int, Handle?) -> Int32
    let memsetD32Async: @convention(c) (UInt64, UInt32, Int, Handle?) -> Int32

    let streamCreate: @convention(c) (Out<Handle?>?, UInt32) -> Int32
    let streamDestroy: @convention(c) (Handle?) -> Int32
    let streamSynchronize: @convention(c) (Handle?) -> Int32
    let eventCreate: @convention(c) (Out<Handle?>?, UInt32) -> Int32
    let eventDestroy: @convention(c) (Handle?) -> Int32
    let eventRecord: @convention(c) (Handle?, Handle?) -> Int32
    let eventSynchronize: @convention(c) (Handle?) -> Int32
    let eventElapsedTime: @convention(c) (Out<Float>?, Handle?, Handle?) -> Int32

    /// `cuTensorMapEncodeTiled` (CUDA 12.0+): nil on older drivers, which cannot run TMA kernels.
    typealias TensorMapEncodeTiled = @convention(c) (
        UnsafeMutableRawPointer?, Int32, UInt32, UInt64, UnsafePointer<UInt64>?, UnsafePointer<UInt64>?,
        UnsafePointer<UInt32>?, UnsafePointer<UInt32>?, Int32, Int32, Int32, Int32
    ) -> Int32
    let tensorMapEncodeTiled: TensorMapEncodeTiled?

    /// `cuLaunchKernelEx` (CUDA 11.8+): a launch with attributes (a `CUlaunchConfig`); nil on
    /// older drivers, which launch without them.
    typealias LaunchKernelEx = @convention(c) (
        UnsafeRawPointer?, Handle?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Int32
    let launchKernelEx: LaunchKernelEx?

    init(resolving lib: DynamicLibrary) throws(MissingSymbol) {
        initialize = try lib.require("cuInit")
        driverGetVersion = try lib.require("cuDriverGetVersion")
        getErrorName = try lib.require("cuGetErrorName")
        getErrorString = try lib.require("cuGetErrorString")
        deviceGetCount = try lib.require("cuDeviceGetCount")
        deviceGet = try lib.require("cuDeviceGet")
        deviceGetName = try lib.require("cuDeviceGetName")
        deviceGetAttribute = try lib.require("cuDeviceGetAttribute")
        deviceTotalMem = try lib.require("cuDeviceTotalMem_v2")
        primaryCtxRetain = try lib.require("cuDevicePrimaryCtxRetain")
        primaryCtxRelease = try lib.require("cuDevicePrimaryCtxRelease_v2")
        ctxSetCurrent = try lib.require("cuCtxSetCurrent")
        ctxSynchronize = try lib.require("cuCtxSynchronize")
        memGetInfo = try lib.require("cuMemGetInfo_v2")
        moduleLoadData = try lib.require("cuModuleLoadData")
        moduleUnload = try lib.require("cuModuleUnload")
        moduleGetFunction = try lib.require("cuModuleGetFunction")
        funcGetAttribute = try lib.require("cuFuncGetAttribute")
        funcSetAttribute = try lib.require("cuFuncSetAttribute")
        launchKernel = try lib.require("cuLaunchKernel")
        memAlloc = try lib.require("cuMemAlloc_v2")
        memFree = try lib.require("cuMemFree_v2")
        memAllocHost = try lib.require("cuMemAllocHost_v2")
        memFreeHost = try lib.require("cuMemFreeHost")
        memcpyHtoD = try lib.require("cuMemcpyHtoD_v2")
        memcpyDtoH = try lib.require("cuMemcpyDtoH_v2")
        memcpyDtoD = try lib.require("cuMemcpyDtoD_v2")
        memcpyHtoDAsync = try lib.require("cuMemcpyHtoDAsync_v2")
        memcpyDtoDAsync = try lib.require("cuMemcpyDtoDAsync_v2")
        memcpyDtoHAsync = try lib.require("cuMemcpyDtoHAsync_v2")
        memsetD8 = try lib.require("cuMemsetD8_v2")
        memsetD32 = try lib.require("cuMemsetD32_v2")
        memsetD8Async = try lib.require("cuMemsetD8Async")
        memsetD32Async = try lib.require("cuMemsetD32Async")
        streamCreate = try lib.require("cuStreamCreate")
        streamDestroy = try lib.require("cuStreamDestroy_v2")
        streamSynchronize = try lib.require("cuStreamSynchronize")
        eventCreate = try lib.require("cuEventCreate")
        eventDestroy = try lib.require("cuEventDestroy_v2")
        eventRecord = try lib.require("cuEventRecord")
        eventSynchronize = try lib.require("cuEventSynchronize")
        // CUDA 12.8 added a _v2 with the same signature; older drivers only have the plain one.
        eventElapsedTime = try lib.requireAny(["cuEventElapsedTime_v2", "cuEventElapsedTime"])
        tensorMapEncodeTiled = lib.function("cuTensorMapEncodeTiled", as: TensorMapEncodeTiled.self)
        launchKernelEx = lib.function("cuLaunchKernelEx", as: LaunchKernelEx.self)
    }

    /// The driver's symbolic name and message for `code`.
    func describe(_ code: Int32) -> (name: String, message: String) {
        var namePointer: UnsafePointer<CChar>?
        var messagePointer: UnsafePointer<CChar>?
        _ = getErrorName(code, &namePointer)
        _ = getErrorString(code, &messagePointer)
        let name = namePointer.map { String(cString: $0) } ?? "CUDA_ERROR_\(code)"
        let message = messagePointer.map { String(cString: $0) } ?? "unknown CUDA error \(code)"
        return (name, message)
    }

    /// The single checking helper every driver call goes through: throws a ``CUDAError``
    /// naming `call` unless `result` is `CUDA_SUCCESS`.
    @inline(__always)
    func check(_ result: Int32, _ call: StaticString) throws(CUDAError) {
        guard result != 0 else { return }
        throw error(result, "\(call)")
    }

    func error(_ result: Int32, _ call: String) -> CUDAError {
        let (name, message) = describe(result)
        // 100 is CUDA_ERROR_NO_DEVICE: a driver without a usable GPU.
        let kind: CUDAError.Kind = result == 100 ? .noDevice : .callFailed
        return CUDAError(library: .driver, kind: kind, call: call, code: result, name: name, message: message)
    }
}
