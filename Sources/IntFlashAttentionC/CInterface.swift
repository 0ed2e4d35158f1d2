import CIntFlashAttentionABI
import CUDADriver
import IntFlashAttention
#if canImport(Glibc)
import Glibc
#endif

// The functions of intfa.h. Each converts its arguments, runs the Swift API and reports a
// failure as an intfa_status plus the thread's last error message; none lets an error or a
// trap escape to the caller.

/// What an `intfa_context*` points at: the GPU engine of one device.
final class InterfaceContext {
    let attention: CUDAAttention
    init(attention: CUDAAttention) { self.attention = attention }

    static func from(_ pointer: OpaquePointer?) throws(AttentionError) -> InterfaceContext {
        guard let pointer else { throw .missingArgument("context") }
        return Unmanaged<InterfaceContext>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }

    /// The caller's stream (nil: the legacy default stream), borrowed for one call.
    func stream(_ handle: UnsafeMutableRawPointer?) -> CUDAStream {
        CUDAStream(borrowing: handle.map(OpaquePointer.init), context: attention.context)
    }
}

// Never freed or written: a C string that lives as long as the library.
nonisolated(unsafe) private let versionString = UnsafePointer(strdup(intFlashAttentionVersion)!)

/// `intfa_version` (intfa.h): the library version as a C string owned by the library.
@_cdecl("intfa_version")
public func intfa_version() -> UnsafePointer<CChar> { versionString }

/// `intfa_abi_version` (intfa.h): the INTFA_ABI_VERSION this library was built with.
@_cdecl("intfa_abi_version")
public func intfa_abi_version() -> Int32 { INTFA_ABI_VERSION }

/// `intfa_int8_key_tile` (intfa.h): keys per tile of the `int8` scheme's K scales and P blocks.
@_cdecl("intfa_int8_key_tile")
public func intfa_int8_key_tile() -> Int32 { Int32(KeyGroups.tileKeys) }

/// `intfa_last_error_message` (intfa.h): the calling thread's last error, "" after a success.
@_cdecl("intfa_last_error_message")
public func intfa_last_error_message() -> UnsafePointer<CChar> { LastError.message }

/// `intfa_context_create` (intfa.h): a GPU engine for one device, or INTFA_ERROR_GPU.
@_cdecl("intfa_context_create")
public func intfa_context_create(_ device: Int32, _ context: UnsafeMutablePointer<OpaquePointer?>?) -> intfa_status {
    reporting { () throws(AttentionError) in
        guard let context else { throw .missingArgument("context") }
        context.pointee = nil
        guard device >= 0 else { throw .invalidDimension(name: "device", value: Int(device), requirement: "must not be negative") }
        let engine = try CUDAAttention(device: Int(device))
        context.pointee = OpaquePointer(Unmanaged.passRetained(InterfaceContext(attention: engine)).toOpaque())
    }
}

/// `intfa_context_destroy` (intfa.h): releases a context (NULL is ignored).
@_cdecl("intfa_context_destroy")
public func intfa_context_destroy(_ context: OpaquePointer?) {
    guard let context else { return }
    Unmanaged<InterfaceContext>.fromOpaque(UnsafeRawPointer(context)).release()
}

/// `intfa_workspace_size` (intfa.h): the device workspace a problem needs.
@_cdecl("intfa_workspace_size")
public func intfa_workspace_size(
    _ problem: UnsafePointer<intfa_problem>?, _ inputType: Int32, _ bytes: UnsafeMutablePointer<Int>?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let (problem, method) = try AttentionProblem.from(problem)
        guard let bytes else { throw .missingArgument("bytes") }
        let type = try ElementType(c: inputType, tensor: "input_dtype")
        bytes.pointee = CUDAAttention.workspaceByteCount(method, problem: problem, inputType: type)
    }
}

/// `intfa_attention` (intfa.h): attention on device memory, queued on the caller's stream.
@_cdecl("intfa_attention")
public func intfa_attention(
    _ context: OpaquePointer?, _ problem: UnsafePointer<intfa_problem>?, _ options: UnsafePointer<intfa_options>?,
    _ q: UnsafePointer<intfa_tensor>?, _ k: UnsafePointer<intfa_tensor>?, _ v: UnsafePointer<intfa_tensor>?,
    _ out: UnsafePointer<intfa_tensor>?, _ lse: UnsafeMutablePointer<Float>?,
    _ workspace: UnsafeMutableRawPointer?, _ workspaceBytes: Int, _ stream: UnsafeMutableRawPointer?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let (problem, method) = try AttentionProblem.from(problem)
        let options = try AttentionOptions.from(options)
        let engine = try InterfaceContext.from(context)
        try engine.attention.forward(
            method, problem: problem, q: .from(q, name: "q"), k: .from(k, name: "k"), v: .from(v, name: "v"),
            output: .from(out, name: "out"), logSumExp: lse.map { UInt64(UInt(bitPattern: $0)) },
            stream: engine.stream(stream),
            workspace: DeviceWorkspace(address: UInt64(UInt(bitPattern: workspace)), byteCount: workspaceBytes),
            options: options)
    }
}

/// `intfa_attention_host` (intfa.h): attention on host memory with the CPU kernels.
@_cdecl("intfa_attention_host")
public func intfa_attention_host(
    _ problem: UnsafePointer<intfa_problem>?,
    _ q: UnsafePointer<intfa_tensor>?, _ k: UnsafePointer<intfa_tensor>?, _ v: UnsafePointer<intfa_tensor>?,
    _ out: UnsafePointer<intfa_tensor>?, _ lse: UnsafeMutablePointer<Float>?, _ validateInputs: Int32, _ threads: Int32
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let (p, method) = try AttentionProblem.from(problem)
        let isa = try CPUKernelISA.fromEnvironment()
        let (qh, kh, vh, oh) = try (
            HostTensor(q, name: "q", batch: p.batch, heads: p.heads, tokens: p.queryLength, headDim: p.headDim),
            HostTensor(k, name: "k", batch: p.batch, heads: p.kvHeads, tokens: p.keyLength, headDim: p.headDim),
            HostTensor(v, name: "v", batch: p.batch, heads: p.kvHeads, tokens: p.keyLength, headDim: p.headDim),
            HostTensor(out, name: "out", batch: p.batch, heads: p.heads, tokens: p.queryLength, headDim: p.headDim))
        if let lse, Int(bitPattern: lse) % MemoryLayout<Float>.alignment != 0 {
            throw .invalidDeviceTensor(tensor: "lse", reason: "the pointer is not aligned to its 4-byte elements")
        }
        if p.isEmpty { return }
        // Reading makes one fp32 copy of each input; ask for it all before making any.
        let workers = threads > 0 ? Int(threads) : nil
        try CPUAttention.reserveHostMemory(method, problem: p, threads: workers, inputCopies: 1)
        let (qv, kv, vv) = (qh.read(), kh.read(), vh.read())
        if validateInputs != 0 { try InputScreen.validate(method, q: qv, k: kv, v: vv) }
        let result = try CPUAttention.run(
            method, problem: p, q: qv, k: kv, v: vv, threads: workers,
            isa: isa, computeLogSumExp: lse != nil)
        oh.write(result.output)
        if let lse { result.logSumExp.withUnsafeBufferPointer { lse.update(from: $0.baseAddress!, count: $0.count) } }
    }
}

/// `intfa_quantized_byte_counts` (intfa.h): buffer sizes of the pre-quantized form.
@_cdecl("intfa_quantized_byte_counts")
public func intfa_quantized_byte_counts(
    _ problem: UnsafePointer<intfa_problem>?, _ sizes: UnsafeMutablePointer<intfa_quantized_sizes>?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let (problem, method) = try AttentionProblem.from(problem)
        guard let sizes else { throw .missingArgument("sizes") }
        guard [.int8, .int8Paper, .fp8E4M3].contains(method) else {
            throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "it has no quantized form")
        }
        let b = QuantizedDeviceInputs.byteCounts(method: method, problem: problem)
        sizes.pointee = intfa_quantized_sizes(q: b.q, q_scale: b.qScale, k: b.k, k_scale: b.kScale, vt: b.vt, v_scale: b.vScale)
    }
}

/// `intfa_quantize` (intfa.h): device q, k, v into the caller's pre-quantized buffers.
@_cdecl("intfa_quantize")
public func intfa_quantize(
    _ context: OpaquePointer?, _ problem: UnsafePointer<intfa_problem>?,
    _ q: UnsafePointer<intfa_tensor>?, _ k: UnsafePointer<intfa_tensor>?, _ v: UnsafePointer<intfa_tensor>?,
    _ keyMean: UnsafePointer<Float>?, _ valueAmax: UnsafePointer<Float>?,
    _ destination: UnsafePointer<intfa_quantized>?,
    _ workspace: UnsafeMutableRawPointer?, _ workspaceBytes: Int, _ stream: UnsafeMutableRawPointer?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let engine = try InterfaceContext.from(context)
        let (problem, method) = try AttentionProblem.from(problem)
        var statistics: ChannelStatistics?
        switch (keyMean, valueAmax) {
        case (nil, nil): statistics = nil
        case let (mean?, amax?):
            statistics = ChannelStatistics(keyMean: UInt64(UInt(bitPattern: mean)), valueAmax: UInt64(UInt(bitPattern: amax)))
        default: throw .invalidDeviceTensor(tensor: "k_mean/v_amax", reason: "give both channel statistics or neither")
        }
        _ = try engine.attention.quantize(
            method, problem: problem, q: .from(q, name: "q"), k: .from(k, name: "k"), v: .from(v, name: "v"),
            into: .from(destination, method: method), statistics: statistics, stream: engine.stream(stream),
            workspace: DeviceWorkspace(address: UInt64(UInt(bitPattern: workspace)), byteCount: workspaceBytes))
    }
}

/// `intfa_attention_quantized` (intfa.h): attention on pre-quantized device inputs.
@_cdecl("intfa_attention_quantized")
public func intfa_attention_quantized(
    _ context: OpaquePointer?, _ problem: UnsafePointer<intfa_problem>?, _ options: UnsafePointer<intfa_options>?,
    _ inputs: UnsafePointer<intfa_quantized>?, _ out: UnsafePointer<intfa_tensor>?, _ lse: UnsafeMutablePointer<Float>?,
    _ stream: UnsafeMutableRawPointer?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let (problem, method) = try AttentionProblem.from(problem)
        let options = try AttentionOptions.from(options)
        let engine = try InterfaceContext.from(context)
        try engine.attention.forward(
            quantized: .from(inputs, method: method), problem: problem, output: .from(out, name: "out"),
            logSumExp: lse.map { UInt64(UInt(bitPattern: $0)) }, stream: engine.stream(stream), options: options)
    }
}

/// `intfa_merge_partial` (intfa.h): merges a partial result into an fp32 accumulator.
@_cdecl("intfa_merge_partial")
public func intfa_merge_partial(
    _ context: OpaquePointer?, _ batch: Int64, _ heads: Int64, _ tokens: Int64, _ headDim: Int64,
    _ out: UnsafePointer<intfa_tensor>?, _ lse: UnsafePointer<intfa_tensor>?,
    _ part: UnsafePointer<intfa_tensor>?, _ partLse: UnsafePointer<intfa_tensor>?, _ stream: UnsafeMutableRawPointer?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let (b, h, n, d) = try (dimension(batch, "batch"), dimension(heads, "heads"), dimension(tokens, "tokens"), dimension(headDim, "head_dim"))
        let tensors = try (DeviceTensor.from(out, name: "out"), DeviceTensor.from(lse, name: "lse"),
                           DeviceTensor.from(part, name: "part"), DeviceTensor.from(partLse, name: "part_lse"))
        let engine = try InterfaceContext.from(context)
        try engine.attention.mergePartial(
            into: tensors.0, logSumExp: tensors.1, part: tensors.2, partLogSumExp: tensors.3,
            batch: b, heads: h, tokens: n, headDim: d, stream: engine.stream(stream))
    }
}

/// `intfa_kv_cache_byte_counts` (intfa.h): the buffer sizes of a paged KV cache.
@_cdecl("intfa_kv_cache_byte_counts")
public func intfa_kv_cache_byte_counts(_ cache: UnsafePointer<intfa_kv_cache>?, _ sizes: UnsafeMutablePointer<intfa_kv_cache_sizes>?) -> intfa_status {
    reporting { () throws(AttentionError) in
        let view = try PagedKVCacheView.from(cache)
        guard let sizes else { throw .missingArgument("sizes") }
        let bytes = PagedKVCacheView.byteCounts(layout: view.layout, sequences: view.sequences, maxPages: view.maxPages)
        sizes.pointee = intfa_kv_cache_sizes(
            codes: bytes.codes, scales: bytes.scales, means: bytes.means, block_table: bytes.blockTable, lengths: bytes.lengths)
    }
}

/// `intfa_kv_append` (intfa.h): new tokens quantized into a paged KV cache on the caller's stream.
@_cdecl("intfa_kv_append")
public func intfa_kv_append(
    _ context: OpaquePointer?, _ cache: UnsafePointer<intfa_kv_cache>?, _ keys: UnsafePointer<intfa_tensor>?,
    _ values: UnsafePointer<intfa_tensor>?, _ tokens: Int64, _ stream: UnsafeMutableRawPointer?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let view = try PagedKVCacheView.from(cache)
        let engine = try InterfaceContext.from(context)
        try engine.attention.append(
            to: view, keys: .from(keys, name: "keys"), values: .from(values, name: "values"), tokens: dimension(tokens, "tokens"),
            stream: engine.stream(stream))
    }
}

/// `intfa_decode_workspace_size` (intfa.h): the device workspace of a decode call.
@_cdecl("intfa_decode_workspace_size")
public func intfa_decode_workspace_size(
    _ context: OpaquePointer?, _ cache: UnsafePointer<intfa_kv_cache>?, _ heads: Int64, _ queryLength: Int64,
    _ bytes: UnsafeMutablePointer<Int>?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let view = try PagedKVCacheView.from(cache)
        let engine = try InterfaceContext.from(context)
        guard let bytes else { throw .missingArgument("bytes") }
        bytes.pointee = engine.attention.decodeWorkspaceByteCount(
            cache: view, heads: try dimension(heads, "heads"), queryLength: try dimension(queryLength, "query_length"))
    }
}

/// `intfa_decode` (intfa.h): decode attention on a paged KV cache on the caller's stream.
@_cdecl("intfa_decode")
public func intfa_decode(
    _ context: OpaquePointer?, _ cache: UnsafePointer<intfa_kv_cache>?, _ heads: Int64, _ queryLength: Int64,
    _ softmaxScale: Float, _ causal: Int32, _ q: UnsafePointer<intfa_tensor>?, _ out: UnsafePointer<intfa_tensor>?,
    _ lse: UnsafeMutablePointer<Float>?, _ workspace: UnsafeMutableRawPointer?, _ workspaceBytes: Int,
    _ stream: UnsafeMutableRawPointer?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let view = try PagedKVCacheView.from(cache)
        let engine = try InterfaceContext.from(context)
        try engine.attention.decode(
            cache: view, queries: .from(q, name: "q"), heads: dimension(heads, "heads"),
            queryLength: dimension(queryLength, "query_length"), output: .from(out, name: "out"),
            logSumExp: lse.map { UInt64(UInt(bitPattern: $0)) }, softmaxScale: softmaxScale > 0 ? softmaxScale : nil,
            causal: causal != 0, stream: engine.stream(stream),
            workspace: DeviceWorkspace(address: UInt64(UInt(bitPattern: workspace)), byteCount: workspaceBytes))
    }
}

/// `intfa_varlen_workspace_size` (intfa.h): the device workspace of a packed batch.
@_cdecl("intfa_varlen_workspace_size")
public func intfa_varlen_workspace_size(
    _ problem: UnsafePointer<intfa_problem>?, _ cuSeqlensQ: UnsafePointer<Int32>?, _ cuSeqlensK: UnsafePointer<Int32>?,
    _ inputType: Int32, _ bytes: UnsafeMutablePointer<Int>?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let packed = try VariableLengthBatch.from(problem, cuSeqlensQ, cuSeqlensK)
        guard let bytes else { throw .missingArgument("bytes") }
        bytes.pointee = try CUDAAttention.variableLengthWorkspaceByteCount(
            packed.method, batch: packed.batch, inputType: ElementType(c: inputType, tensor: "input_dtype"))
    }
}

/// `intfa_attention_varlen` (intfa.h): packed variable-length attention on the caller's stream.
@_cdecl("intfa_attention_varlen")
public func intfa_attention_varlen(
    _ context: OpaquePointer?, _ problem: UnsafePointer<intfa_problem>?, _ options: UnsafePointer<intfa_options>?,
    _ q: UnsafePointer<intfa_tensor>?, _ k: UnsafePointer<intfa_tensor>?, _ v: UnsafePointer<intfa_tensor>?,
    _ out: UnsafePointer<intfa_tensor>?, _ cuSeqlensQ: UnsafePointer<Int32>?, _ cuSeqlensK: UnsafePointer<Int32>?,
    _ workspace: UnsafeMutableRawPointer?, _ workspaceBytes: Int, _ stream: UnsafeMutableRawPointer?
) -> intfa_status {
    reporting { () throws(AttentionError) in
        let packed = try VariableLengthBatch.from(problem, cuSeqlensQ, cuSeqlensK)
        let options = try AttentionOptions.from(options)
        let engine = try InterfaceContext.from(context)
        try engine.attention.forwardVariableLength(
            packed.method, batch: packed.batch, q: .from(q, name: "q"), k: .from(k, name: "k"), v: .from(v, name: "v"),
            output: .from(out, name: "out"), causal: packed.causal, softmaxScale: packed.softmaxScale,
            stream: engine.stream(stream),
            workspace: DeviceWorkspace(address: UInt64(UInt(bitPattern: workspace)), byteCount: workspaceBytes), options: options)
    }
}
