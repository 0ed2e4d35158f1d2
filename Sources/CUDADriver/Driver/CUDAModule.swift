/// A module loaded from a cubin into a context; unloaded when released.
///
/// `@unchecked Sendable`: the handle is immutable and the driver API is thread-safe.
public final class CUDAModule: @unchecked Sendable {
    /// The context the module lives in (kept alive by the module).
    public let context: CUDAContext
    let handle: OpaquePointer

    /// Loads `image` (a cubin, as produced by ``NVRTCCompiler``) into `context`.
    public init(context: CUDAContext, image: [UInt8]) throws(CUDAError) {
        guard !image.isEmpty else {
            throw CUDAError.invalidArgument("cuModuleLoadData", "the module image is empty")
        }
        try context.makeCurrent()
        let api = context.api
        var module: OpaquePointer?
        let result = image.withUnsafeBytes { api.moduleLoadData(&module, $0.baseAddress) }
        try api.check(result, "cuModuleLoadData")
        guard let module else {
            throw CUDAError(library: .driver, kind: .callFailed, call: "cuModuleLoadData", message: "returned no module")
        }
        self.context = context
        self.handle = module
    }

    deinit {
        // Best effort: a failure here (context torn down) cannot be reported from deinit.
        _ = context.api.ctxSetCurrent(context.handle)
        _ = context.api.moduleUnload(handle)
    }

    /// The kernel `name` (its `extern "C"` name or the mangled name).
    public func function(named name: String) throws(CUDAError) -> CUDAFunction {
        try context.makeCurrent()
        let api = context.api
        var function: OpaquePointer?
        let result = api.moduleGetFunction(&function, handle, name)
        if result != 0 {
            var error = api.error(result, "cuModuleGetFunction")
            error.message += " (kernel \"\(name)\")"
            throw error
        }
        guard let function else {
            throw CUDAError(library: .driver, kind: .callFailed, call: "cuModuleGetFunction", message: "returned no function for \(name)")
        }
        return CUDAFunction(module: self, handle: function, name: name)
    }
}
