/// Every way an attention call can be refused or fail, each naming the problem.
///
/// Thrown by validation (bad shapes, non-finite inputs, malformed files) and by the
/// backends (a GPU that cannot be used, a kernel that failed to build).
public enum AttentionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A dimension is out of range; `name` is the parameter (`"batch"`, `"headDim"`, …).
    case invalidDimension(name: String, value: Int, requirement: String)
    /// `heads` is not a multiple of `kvHeads`.
    case headsNotDivisible(heads: Int, kvHeads: Int)
    /// The head dimension is valid but this backend or method has no kernel for it.
    case unsupportedHeadDim(Int, supported: [Int])
    /// A tensor's element count or shape does not match the problem.
    case shapeMismatch(tensor: String, expected: String, actual: String)
    /// An input holds NaN or ±Inf; `index` is the first offending element, counted in
    /// [batch, heads, tokens, headDim] order.
    case nonFiniteInput(tensor: String, index: Int)
    /// An input is finite but overflows the format the call rounds it to (fp16: |x| ≥ 65520
    /// rounds to ±Inf); `index` counts in [batch, heads, tokens, headDim] order and `reason`
    /// says which rounding.
    case inputOutOfRange(tensor: String, index: Int, value: Float, reason: String)
    /// The softmax scale is NaN, infinite, zero or negative.
    case invalidSoftmaxScale(Float)
    /// A device tensor's address, alignment or strides cannot be read or written by the GPU
    /// kernels; `reason` says which requirement fails.
    case invalidDeviceTensor(tensor: String, reason: String)
    /// The workspace a caller lent a call is smaller than the call needs.
    case workspaceTooSmall(required: Int, provided: Int)
    /// A required argument of a C call is NULL; the associated value names it.
    case missingArgument(String)
    /// A `.npy` file cannot be used; `reason` says why.
    case malformedNPY(path: String, reason: String)
    /// The requested method does not exist on this backend.
    case unsupportedMethod(method: String, backend: String, reason: String)
    /// The GPU backend cannot be used or a CUDA / NVRTC call failed.
    case gpu(String)
    /// Memory could not be had: `bytes` is what was asked for (nil when the failing call does
    /// not say), `memory` which memory (`"host"`, `"GPU"`), `detail` what for ("for …") or
    /// which call failed ("(…)").
    case outOfMemory(bytes: Int?, memory: String, detail: String)
    /// A tensor, or a size computed from extents or strides, exceeds what can be addressed;
    /// `what` names it and `limit` says the bound.
    case tooLarge(what: String, limit: String)
    /// An environment variable that configures the library holds a value it does not know.
    case invalidEnvironment(variable: String, value: String, expected: String)
    /// A file could not be read or written.
    case io(path: String, reason: String)

    /// A one-line message naming the problem, for users.
    public var description: String {
        switch self {
        case let .invalidDimension(name, value, requirement):
            return "invalid \(name) = \(value): \(requirement)"
        case let .headsNotDivisible(heads, kvHeads):
            return "heads (\(heads)) must be a multiple of kv heads (\(kvHeads))"
        case let .unsupportedHeadDim(d, supported):
            return "head dim \(d) is not supported here (supported: \(supported.map(String.init).joined(separator: ", ")))"
        case let .shapeMismatch(tensor, expected, actual):
            return "\(tensor) has shape \(actual), expected \(expected)"
        case let .nonFiniteInput(tensor, index):
            return "\(tensor) holds a non-finite value (NaN or Inf) at element \(index) (counted in [B, H, N, D] order)"
        case let .inputOutOfRange(tensor, index, value, reason):
            return "\(tensor) holds \(value) at element \(index) (counted in [B, H, N, D] order), which overflows: \(reason)"
        case let .invalidDeviceTensor(tensor, reason):
            return "\(tensor): \(reason)"
        case let .missingArgument(name):
            return "\(name) is NULL"
        case let .workspaceTooSmall(required, provided):
            return "the workspace holds \(provided) bytes; this call needs \(required)"
        case let .invalidSoftmaxScale(scale):
            return "softmax scale \(scale) must be finite and positive"
        case let .malformedNPY(path, reason):
            return "\(path): not a usable .npy file: \(reason)"
        case let .unsupportedMethod(method, backend, reason):
            return "method \(method) is not available on the \(backend) backend: \(reason)"
        case let .gpu(message):
            return message
        case let .outOfMemory(bytes, memory, detail):
            guard let bytes else { return "out of \(memory) memory: \(detail)" }
            return "out of \(memory) memory: \(ByteCount(bytes)) requested \(detail)"
        case let .tooLarge(what, limit):
            return "\(what) is too large (\(limit))"
        case let .invalidEnvironment(variable, value, expected):
            return "\(variable)=\(value) is not valid: expected \(expected)"
        case let .io(path, reason):
            return "\(path): \(reason)"
        }
    }
}
