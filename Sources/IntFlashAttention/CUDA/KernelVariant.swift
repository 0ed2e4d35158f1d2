import CUDADriver

/// One kernel of the embedded `.cu` sources, compiled with its own `-D` options for one
/// architecture: what the kernel cache needs to build it and the launcher to find it.
public protocol KernelVariant: Hashable, Sendable, CustomStringConvertible {
    /// File name of the embedded `.cu` source, e.g. `attention.cu`.
    var sourceFile: String { get }
    /// The kernel's `extern "C"` name in the compiled module.
    var kernelName: String { get }
    /// NVRTC options: `-arch`, the language standard and the variant's `-D` macros.
    var compileOptions: [String] { get }
    /// NVRTC architecture, e.g. `sm_90`.
    var arch: String { get }
    /// Dynamic shared memory a launch asks for.
    var sharedMemoryBytes: Int { get }
    /// What NVRTC compiles: by default the variant's source among the library's embedded
    /// kernels; a family outside the library brings its own.
    func compilationRequest() throws(AttentionError) -> CompilationRequest
}

extension MMAKernelDescriptor: KernelVariant {}

/// Every kernel the library can launch on `arch`: each family's of ``AttentionFamilies``
/// (those added at run time too), the quantizers, the merge, the row poisoning, the
/// `int8` log-sum-exp restore, decode on the paged cache and appends to it, the padding of
/// packed variable-length batches. The one
/// list that `intfa compile` and the compile-without-spills tests iterate.
public enum KernelRegistry {
    public static func allVariants(arch: String) -> [any KernelVariant] {
        let attention = AttentionFamilies.all.flatMap { $0.allVariants(arch: arch) }
        let helpers: [any KernelVariant] = QuantizationKernelDescriptor.allVariants(arch: arch) + MergeKernelDescriptor.allVariants(arch: arch)
            + PoisonKernelDescriptor.allVariants(arch: arch) + RestoreLogSumExpKernelDescriptor.allVariants(arch: arch)
            + DecodeKernelDescriptor.allVariants(arch: arch) + KVAppendKernelDescriptor.allVariants(arch: arch)
            + VariableLengthKernelDescriptor.allVariants(arch: arch)
        return attention + helpers
    }
}

extension QuantizationKernelDescriptor: KernelVariant {
    /// Zero: the quantization kernels need no dynamic shared memory.
    public var sharedMemoryBytes: Int { 0 }
}

extension KernelVariant {
    /// `kernelName [arch]`, for logs.
    public var description: String { "\(kernelName) [\(arch)]" }

    /// The NVRTC request: the variant's source file with every embedded header available to
    /// `#include`. The compiler adds `-arch` itself from `architecture`.
    public func compilationRequest() throws(AttentionError) -> CompilationRequest {
        guard let source = EmbeddedKernelSources.files[sourceFile] else {
            throw .gpu("kernel source \(sourceFile) is not embedded in this build")
        }
        return compilationRequest(source: source)
    }

    /// The NVRTC request for `source` (named ``sourceFile``) with the library's headers
    /// (`params.cuh`, `common.cuh`, …) available to `#include`: how a family defined outside
    /// the library compiles its own kernel.
    public func compilationRequest(source: String) -> CompilationRequest {
        let headers = EmbeddedKernelSources.files.filter { $0.key.hasSuffix(".cuh") }
        return CompilationRequest(
            source: source, name: sourceFile, headers: headers,
            options: compileOptions.filter { !$0.hasPrefix("-arch=") }, architecture: arch)
    }
}

extension AttentionError {
    /// Wraps a CUDA or NVRTC failure, keeping its whole message (call, code, log); running
    /// out of device (or compiler) memory becomes `outOfMemory` with the bytes asked for.
    public init(_ error: CUDAError) {
        guard error.isOutOfMemory else {
            self = .gpu(error.description)
            return
        }
        let memory = error.library == .nvrtc ? "NVRTC" : "GPU"
        let detail = error.requestedBytes == nil ? error.description : "(\(error.description))"
        self = .outOfMemory(bytes: error.requestedBytes, memory: memory, detail: detail)
    }
}

/// Runs driver calls, turning a `CUDAError` into an `AttentionError` that keeps its message.
public func cuda<T>(_ body: () throws(CUDAError) -> T) throws(AttentionError) -> T {
    do throws(CUDAError) { return try body() } catch { throw AttentionError(error) }
}
