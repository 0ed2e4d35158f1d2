/// Something that turns a ``CompilationRequest`` into a ``CompiledKernel``; NVRTC in
/// production, a counting stand-in in tests.
public protocol KernelCompiling: Sendable {
    /// Names the compiler and its version; part of every cache key.
    var cacheIdentity: String { get }
    /// Compiles `request`.
    func compile(_ request: CompilationRequest) throws(CUDAError) -> CompiledKernel
}

extension NVRTCCompiler: KernelCompiling {
    /// `nvrtc-<major>.<minor>`, e.g. `nvrtc-13.0`.
    public var cacheIdentity: String {
        let (major, minor) = version
        return "nvrtc-\(major).\(minor)"
    }
}
