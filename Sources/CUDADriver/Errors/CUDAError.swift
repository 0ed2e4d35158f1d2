/// The one error type of the CUDA layer: every failure names the library, the call that
/// failed, its numeric code and the library's own name and message for that code.
///
/// NVRTC compile failures also carry the compile log, and out-of-memory is queryable
/// (``isOutOfMemory``) so callers can fall back to smaller tiles or report it plainly.
public struct CUDAError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which part of the stack produced the error.
    public enum Library: String, Sendable, Equatable {
        /// The CUDA driver API (`libcuda`).
        case driver
        /// The NVRTC run-time compiler (`libnvrtc`).
        case nvrtc
        /// Finding or loading a shared library, or resolving one of its symbols.
        case loader
        /// This package's own checks (bad arguments, cache I/O) around the CUDA calls.
        case runtime
    }

    /// What kind of failure this is, for callers that branch on it.
    public enum Kind: Sendable, Equatable {
        /// A library call returned a non-success code.
        case callFailed
        /// `libcuda` could not be found or loaded: no NVIDIA driver on this machine.
        case driverNotFound
        /// `libnvrtc` could not be found or loaded.
        case nvrtcNotFound
        /// The driver loaded but reports no CUDA device (or the ordinal is out of range).
        case noDevice
        /// NVRTC rejected the source; ``CUDAError/log`` holds the compiler's messages.
        case compilationFailed
        /// An argument was invalid before any CUDA call was made.
        case invalidArgument
        /// Reading or writing the on-disk kernel cache failed.
        case cacheIO
    }

    /// The part of the stack that failed.
    public var library: Library
    /// What kind of failure this is.
    public var kind: Kind
    /// The failing call, e.g. `cuMemAlloc_v2` or `nvrtcCompileProgram`.
    public var call: String
    /// The numeric result code (`CUresult` / `nvrtcResult`), 0 when there is none.
    public var code: Int32
    /// The library's symbolic name for the code, e.g. `CUDA_ERROR_OUT_OF_MEMORY`.
    public var name: String
    /// A human-readable explanation: the library's message or this package's own.
    public var message: String
    /// The NVRTC compile log, when the failure came from compiling.
    public var log: String?
    /// The bytes an allocation that failed asked for, when the failure came from one.
    public var requestedBytes: Int?

    /// Makes an error from its parts; the library layers build these through their
    /// checking helpers rather than by hand.
    public init(
        library: Library, kind: Kind, call: String, code: Int32 = 0,
        name: String = "", message: String, log: String? = nil, requestedBytes: Int? = nil
    ) {
        self.library = library
        self.kind = kind
        self.call = call
        self.code = code
        self.name = name
        self.message = message
        self.log = log
        self.requestedBytes = requestedBytes
    }

    /// `CUDA_ERROR_OUT_OF_MEMORY`, the one driver code callers commonly recover from.
    public static let cudaErrorOutOfMemory: Int32 = 2
    /// `NVRTC_ERROR_OUT_OF_MEMORY`.
    public static let nvrtcErrorOutOfMemory: Int32 = 1

    /// True when the device (driver) or the compiler (NVRTC) ran out of memory.
    public var isOutOfMemory: Bool {
        guard kind == .callFailed else { return false }
        switch library {
        case .driver: return code == Self.cudaErrorOutOfMemory
        case .nvrtc: return code == Self.nvrtcErrorOutOfMemory
        case .loader, .runtime: return false
        }
    }

    /// `library: call failed (NAME code): message`, then the compile log if there is one.
    public var description: String {
        var text = "\(library.rawValue): \(call) failed"
        if code != 0 || !name.isEmpty {
            text += " (\(name.isEmpty ? "error" : name) \(code))"
        }
        text += ": \(message)"
        if let log, !log.isEmpty {
            text += "\n" + log
        }
        return text
    }

    static func invalidArgument(_ call: String, _ message: String) -> CUDAError {
        CUDAError(library: .runtime, kind: .invalidArgument, call: call, message: message)
    }
}
