/// A kernel in a loaded module. Keeps its module (and so its context) alive.
///
/// `@unchecked Sendable`: the handle is immutable and the driver API is thread-safe.
public final class CUDAFunction: @unchecked Sendable {
    /// The module holding the kernel.
    public let module: CUDAModule
    /// The name the kernel was looked up by.
    public let name: String
    let handle: OpaquePointer

    init(module: CUDAModule, handle: OpaquePointer, name: String) {
        self.module = module
        self.handle = handle
        self.name = name
    }

    // CUfunction_attribute values from cuda.h.
    private enum Attribute: Int32 {
        case maxThreadsPerBlock = 0
        case sharedSizeBytes = 1
        case constSizeBytes = 2
        case localSizeBytes = 3
        case numRegs = 4
        case maxDynamicSharedSizeBytes = 8
    }

    private func attribute(_ attribute: Attribute) throws(CUDAError) -> Int {
        let context = module.context
        try context.makeCurrent()
        var value: Int32 = 0
        try context.api.check(context.api.funcGetAttribute(&value, attribute.rawValue, handle), "cuFuncGetAttribute")
        return Int(value)
    }

    /// Registers per thread.
    public var registerCount: Int { get throws(CUDAError) { try attribute(.numRegs) } }
    /// Statically allocated shared memory per block, in bytes.
    public var staticSharedMemoryBytes: Int { get throws(CUDAError) { try attribute(.sharedSizeBytes) } }
    /// Local (stack/spill) memory per thread, in bytes.
    public var localMemoryBytes: Int { get throws(CUDAError) { try attribute(.localSizeBytes) } }
    /// Constant memory used, in bytes.
    public var constantMemoryBytes: Int { get throws(CUDAError) { try attribute(.constSizeBytes) } }
    /// The largest block this kernel can be launched with, given its register use.
    public var maxThreadsPerBlock: Int { get throws(CUDAError) { try attribute(.maxThreadsPerBlock) } }
    /// The dynamic shared memory the kernel is currently allowed to request.
    public var maxDynamicSharedMemoryBytes: Int { get throws(CUDAError) { try attribute(.maxDynamicSharedSizeBytes) } }

    /// Allows launches with up to `bytes` of dynamic shared memory; needed above 48 KiB.
    public func setMaxDynamicSharedMemory(bytes: Int) throws(CUDAError) {
        guard bytes >= 0, bytes <= Int(Int32.max) else {
            throw CUDAError.invalidArgument("cuFuncSetAttribute", "shared memory size \(bytes) is out of range")
        }
        let context = module.context
        try context.makeCurrent()
        try context.api.check(
            context.api.funcSetAttribute(handle, Attribute.maxDynamicSharedSizeBytes.rawValue, Int32(bytes)),
            "cuFuncSetAttribute")
    }
}
