import CIntFlashAttentionABI
import IntFlashAttention

/// The C structs of intfa.h as the library's types, each refusing what it cannot represent.
extension AttentionError {
    /// The `intfa_status` a failure reports.
    var status: intfa_status {
        switch self {
        case .invalidDimension, .headsNotDivisible, .shapeMismatch, .invalidSoftmaxScale, .invalidDeviceTensor,
             .missingArgument, .malformedNPY, .io, .tooLarge, .invalidEnvironment:
            return INTFA_ERROR_INVALID_ARGUMENT
        case .unsupportedHeadDim, .unsupportedMethod: return INTFA_ERROR_UNSUPPORTED
        case .nonFiniteInput, .inputOutOfRange: return INTFA_ERROR_NON_FINITE_INPUT
        case .gpu: return INTFA_ERROR_GPU
        case .outOfMemory: return INTFA_ERROR_OUT_OF_MEMORY
        case .workspaceTooSmall: return INTFA_ERROR_WORKSPACE_TOO_SMALL
        }
    }
}

/// Runs an entry point's body: success clears the thread's message, a failure records it.
func reporting(_ body: () throws(AttentionError) -> Void) -> intfa_status {
    do throws(AttentionError) {
        try body()
        LastError.clear()
        return INTFA_SUCCESS
    } catch {
        LastError.set(error.description)
        return error.status
    }
}

extension AttentionMethod {
    init(c value: Int32) throws(AttentionError) {
        switch UInt32(bitPattern: value) {
        case INTFA_METHOD_INT8.rawValue: self = .int8
        case INTFA_METHOD_INT8_PAPER.rawValue: self = .int8Paper
        case INTFA_METHOD_FP8_E4M3.rawValue: self = .fp8E4M3
        case INTFA_METHOD_FP16.rawValue: self = .fp16
        case INTFA_METHOD_FP32.rawValue: self = .fp32
        default: throw .unsupportedMethod(method: "\(value)", backend: "c", reason: "not an intfa_method value")
        }
    }
}

extension ElementType {
    init(c value: Int32, tensor: String) throws(AttentionError) {
        switch UInt32(bitPattern: value) {
        case INTFA_DTYPE_FLOAT16.rawValue: self = .float16
        case INTFA_DTYPE_BFLOAT16.rawValue: self = .bfloat16
        case INTFA_DTYPE_FLOAT32.rawValue: self = .float32
        default: throw .invalidDeviceTensor(tensor: tensor, reason: "dtype \(value) is not an intfa_dtype value")
        }
    }

    var byteWidth: Int { self == .float32 ? 4 : 2 }
}

/// A C dimension as an `Int`, refused when it does not fit.
func dimension(_ value: Int64, _ name: String) throws(AttentionError) -> Int {
    guard let result = Int(exactly: value) else {
        throw .invalidDimension(name: name, value: Int(truncatingIfNeeded: value), requirement: "out of range")
    }
    return result
}

extension AttentionProblem {
    /// The problem and method of an `intfa_problem`.
    static func from(_ pointer: UnsafePointer<intfa_problem>?) throws(AttentionError) -> (AttentionProblem, AttentionMethod) {
        guard let p = pointer?.pointee else { throw .missingArgument("problem") }
        let problem = try AttentionProblem(
            batch: dimension(p.batch, "batch"), heads: dimension(p.heads, "heads"), kvHeads: dimension(p.kv_heads, "kv_heads"),
            queryLength: dimension(p.query_length, "query_length"), keyLength: dimension(p.key_length, "key_length"),
            headDim: dimension(p.head_dim, "head_dim"), softmaxScale: p.softmax_scale > 0 ? p.softmax_scale : nil,
            causal: p.causal != 0)
        guard p.reserved == 0 else {
            throw .invalidDimension(name: "problem.reserved", value: Int(p.reserved), requirement: "must be 0")
        }
        return (problem, try AttentionMethod(c: p.method))
    }
}

extension AttentionOptions {
    /// The options of an `intfa_options` (NULL: every default). The struct says how many of
    /// its bytes the caller wrote: fields past them take their defaults, and bytes past the
    /// fields this version knows must be 0 (an option it cannot honour is refused, not ignored).
    static func from(_ pointer: UnsafePointer<intfa_options>?) throws(AttentionError) -> AttentionOptions {
        guard let pointer else { return AttentionOptions() }
        let known = MemoryLayout<intfa_options>.size
        let size = Int(pointer.pointee.size)
        let header = MemoryLayout<UInt32>.size + MemoryLayout<Int32>.size
        guard size >= header else {
            throw .invalidDimension(name: "options.size", value: size, requirement: "must be sizeof(intfa_options) (at least \(header))")
        }
        var c = intfa_options()
        withUnsafeMutableBytes(of: &c) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: min(size, known))) }
        if size > known {
            let newer = UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer) + known, count: size - known)
            if let offset = newer.firstIndex(where: { $0 != 0 }) {
                throw .unsupportedMethod(
                    method: "options", backend: "c",
                    reason: "byte \(known + offset) of intfa_options is set, an option newer than this library (ABI \(INTFA_ABI_VERSION)) knows")
            }
        }
        let reserved = c.reserved
        guard reserved.0 == 0, reserved.1 == 0, reserved.2 == 0 else {
            throw .invalidDimension(name: "options.reserved", value: 1, requirement: "must be 0")
        }
        switch UInt32(bitPattern: c.grid) {
        case INTFA_GRID_DEFAULT.rawValue: return AttentionOptions()
        case INTFA_GRID_PERSISTENT.rawValue: return AttentionOptions(grid: .persistent)
        case INTFA_GRID_PER_TILE.rawValue: return AttentionOptions(grid: .perTile)
        default: throw .invalidDimension(name: "grid", value: Int(c.grid), requirement: "an intfa_grid value (0, 1 or 2)")
        }
    }
}

extension DeviceTensor {
    /// A device tensor from an `intfa_tensor` (validated later, with the call's requirements).
    static func from(_ pointer: UnsafePointer<intfa_tensor>?, name: String) throws(AttentionError) -> DeviceTensor {
        guard let t = pointer?.pointee else { throw .missingArgument(name) }
        return DeviceTensor(
            address: UInt64(UInt(bitPattern: t.data)), elementType: try ElementType(c: t.dtype, tensor: name),
            strides: TensorStrides(batch: Int(t.stride_batch), head: Int(t.stride_head), token: Int(t.stride_token)))
    }
}

extension QuantizedDeviceInputs {
    static func from(_ pointer: UnsafePointer<intfa_quantized>?, method: AttentionMethod) throws(AttentionError) -> QuantizedDeviceInputs {
        guard let c = pointer?.pointee else { throw .missingArgument("quantized inputs") }
        func address(_ p: UnsafeMutableRawPointer?) -> UInt64 { UInt64(UInt(bitPattern: p)) }
        return QuantizedDeviceInputs(
            method: method, q: address(c.q), qScale: address(c.q_scale), k: address(c.k),
            kScale: address(c.k_scale), vt: address(c.vt), vScale: address(c.v_scale))
    }
}

/// A host tensor of intfa.h read into, or written from, fp32 values in BHND order. Made only
/// for a known shape: every element the shape reaches at the given strides has a byte offset
/// and an address that fit in 64 bits (checked here), and is readable or writable (what the
/// caller owes, intfa.h).
struct HostTensor {
    let data: UnsafeMutableRawPointer?
    let type: ElementType
    let strides: TensorStrides
    let batch: Int, heads: Int, tokens: Int, headDim: Int

    init(
        _ pointer: UnsafePointer<intfa_tensor>?, name: String, batch: Int, heads: Int, tokens: Int, headDim: Int
    ) throws(AttentionError) {
        guard let t = pointer?.pointee else { throw .missingArgument(name) }
        self.type = try ElementType(c: t.dtype, tensor: name)
        guard t.reserved == 0 else {
            throw .invalidDeviceTensor(tensor: name, reason: "the reserved field must be 0 (it is \(t.reserved))")
        }
        guard t.stride_batch >= 0, t.stride_head >= 0, t.stride_token >= 0 else {
            throw .invalidDeviceTensor(
                tensor: name,
                reason: "negative strides are not supported (batch \(t.stride_batch), head \(t.stride_head), token \(t.stride_token))")
        }
        let empty = batch == 0 || heads == 0 || tokens == 0 || headDim == 0
        if !empty {
            guard let data = t.data else { throw .invalidDeviceTensor(tensor: name, reason: "the data pointer is NULL") }
            guard Int(bitPattern: data) % type.byteWidth == 0 else {
                throw .invalidDeviceTensor(tensor: name, reason: "the data pointer is not aligned to its \(type.byteWidth)-byte elements")
            }
            // The bytes the shape spans at these strides, and the address past them, must not wrap.
            let strides = TensorStrides(batch: Int(t.stride_batch), head: Int(t.stride_head), token: Int(t.stride_token))
            guard let span = strides.span(batch: batch, heads: heads, tokens: tokens, headDim: headDim),
                  case let (bytes, overflow) = span.multipliedReportingOverflow(by: type.byteWidth), !overflow,
                  !UInt(bitPattern: data).addingReportingOverflow(UInt(bytes)).overflow
            else {
                throw .tooLarge(
                    what: "\(name) of shape [\(batch), \(heads), \(tokens), \(headDim)] at element strides "
                        + "(\(t.stride_batch), \(t.stride_head), \(t.stride_token), 1)",
                    limit: "the address past its last element must fit in 64 bits")
            }
        }
        self.data = t.data
        self.strides = TensorStrides(batch: Int(t.stride_batch), head: Int(t.stride_head), token: Int(t.stride_token))
        (self.batch, self.heads, self.tokens, self.headDim) = (batch, heads, tokens, headDim)
    }

    /// Element offsets of every row (b, h, n) in BHND order.
    private func rows() -> [Int] {
        var offsets: [Int] = []
        offsets.reserveCapacity(batch * heads * tokens)
        for b in 0..<batch {
            for h in 0..<heads {
                for n in 0..<tokens { offsets.append(strides.offset(batch: b, head: h, token: n)) }
            }
        }
        return offsets
    }

    func read() -> [Float] {
        var values = [Float](repeating: 0, count: batch * heads * tokens * headDim)
        guard let data, !values.isEmpty else { return values }
        var index = 0
        for row in rows() {
            for d in 0..<headDim {
                let e = row + d
                switch type {
                case .float32: values[index] = data.load(fromByteOffset: 4 * e, as: Float.self)
                case .float16: values[index] = Float(Float16(bitPattern: data.load(fromByteOffset: 2 * e, as: UInt16.self)))
                case .bfloat16: values[index] = BFloat16(bitPattern: data.load(fromByteOffset: 2 * e, as: UInt16.self)).float
                }
                index += 1
            }
        }
        return values
    }

    func write(_ values: [Float]) {
        guard let data, !values.isEmpty else { return }
        var index = 0
        for row in rows() {
            for d in 0..<headDim {
                let e = row + d
                switch type {
                case .float32: data.storeBytes(of: values[index], toByteOffset: 4 * e, as: Float.self)
                case .float16: data.storeBytes(of: Float16(values[index]).bitPattern, toByteOffset: 2 * e, as: UInt16.self)
                case .bfloat16: data.storeBytes(of: BFloat16(values[index]).bitPattern, toByteOffset: 2 * e, as: UInt16.self)
                }
                index += 1
            }
        }
    }
}

extension PagedKVCacheView {
    /// The view of an `intfa_kv_cache`, refused when a size does not fit the library's types.
    static func from(_ pointer: UnsafePointer<intfa_kv_cache>?) throws(AttentionError) -> PagedKVCacheView {
        guard let c = pointer?.pointee else { throw .missingArgument("cache") }
        func address(_ p: UnsafeMutableRawPointer?) -> UInt64 { UInt64(UInt(bitPattern: p)) }
        let layout = try PagedKVCache.Layout(
            pageSize: dimension(c.page_size, "page_size"), pageCount: dimension(c.page_count, "page_count"),
            kvHeads: dimension(c.kv_heads, "kv_heads"), headDim: dimension(c.head_dim, "head_dim"))
        return PagedKVCacheView(
            layout: layout, sequences: try dimension(c.sequences, "sequences"), maxPages: try dimension(c.max_pages, "max_pages"),
            maxLength: try dimension(c.max_length, "max_length"),
            keyCodes: address(c.key_codes), valueCodes: address(c.value_codes), keyScales: address(c.key_scales),
            valueScales: address(c.value_scales), keyMeans: address(c.key_means), blockTable: address(c.block_table),
            lengths: address(c.lengths))
    }
}

extension VariableLengthBatch {
    /// The packed batch of an `intfa_problem` (query and key lengths 0) and its host offset
    /// arrays, with the method, causality and softmax scale.
    static func from(
        _ pointer: UnsafePointer<intfa_problem>?, _ cuSeqlensQ: UnsafePointer<Int32>?, _ cuSeqlensK: UnsafePointer<Int32>?
    ) throws(AttentionError) -> (batch: VariableLengthBatch, method: AttentionMethod, causal: Bool, softmaxScale: Float?) {
        guard let p = pointer?.pointee else { throw .missingArgument("problem") }
        guard p.reserved == 0 else { throw .invalidDimension(name: "problem.reserved", value: Int(p.reserved), requirement: "must be 0") }
        guard p.query_length == 0, p.key_length == 0 else {
            throw .invalidDimension(
                name: "problem.query_length", value: Int(truncatingIfNeeded: p.query_length | p.key_length),
                requirement: "query_length and key_length must be 0 for a packed batch (the offsets give the lengths)")
        }
        let count = try dimension(p.batch, "batch")
        guard count >= 0, count < Int(Int32.max) else { throw .invalidDimension(name: "batch", value: count, requirement: "out of range") }
        guard let cuSeqlensQ else { throw .missingArgument("cu_seqlens_q") }
        guard let cuSeqlensK else { throw .missingArgument("cu_seqlens_k") }
        let batch = try VariableLengthBatch(
            cuSeqlensQ: (0...count).map { Int(cuSeqlensQ[$0]) }, cuSeqlensK: (0...count).map { Int(cuSeqlensK[$0]) },
            heads: dimension(p.heads, "heads"), kvHeads: dimension(p.kv_heads, "kv_heads"), headDim: dimension(p.head_dim, "head_dim"))
        return (batch, try AttentionMethod(c: p.method), p.causal != 0, p.softmax_scale > 0 ? p.softmax_scale : nil)
    }
}
