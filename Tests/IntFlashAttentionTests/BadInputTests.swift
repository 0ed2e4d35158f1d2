import CUDADriver
import Foundation
import Testing
@testable import IntFlashAttention

/// Every way the Swift entry points refuse a call, one row each: the call, the `AttentionError`
/// case it must throw and words its message must hold (the argument's name, both shapes, the
/// requirement). None of them may trap.
@Suite struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var expected: String
        var words: [String]
        var call: @Sendable () throws -> Void

        var testDescription: String { name }

        init(_ name: String, _ expected: String, _ words: [String], _ call: @escaping @Sendable () throws -> Void) {
            (self.name, self.expected, self.words, self.call) = (name, expected, words, call)
        }
    }

    static func problem(
        batch: Int = 1, heads: Int = 2, kvHeads: Int? = nil, queryLength: Int = 4, keyLength: Int = 5, headDim: Int = 8,
        scale: Float? = nil
    ) throws -> AttentionProblem {
        try AttentionProblem(
            batch: batch, heads: heads, kvHeads: kvHeads, queryLength: queryLength, keyLength: keyLength, headDim: headDim,
            softmaxScale: scale)
    }

    static func arrays(_ p: AttentionProblem) -> ([Float], [Float], [Float]) {
        ([Float](repeating: 0.5, count: p.queryElementCount), [Float](repeating: 0.25, count: p.keyElementCount),
         [Float](repeating: 1, count: p.keyElementCount))
    }

    static func tensor(_ values: [Float]? = nil, heads: Int, tokens: Int, headDim: Int = 8, layout: TensorLayout = .bhnd) throws -> AttentionTensor {
        try AttentionTensor(
            converting: values ?? [Float](repeating: 0.5, count: heads * tokens * headDim), to: .float32,
            batch: 1, heads: heads, tokens: tokens, headDim: headDim, layout: layout)
    }

    /// Q [1, 2, 4, 8], K and V [1, 2, 5, 8], with `value` at `index` of the tensor `planted`.
    static func runTensors(_ method: AttentionMethod, planted: Int, index: Int, value: Float) throws {
        let p = try problem()
        var inputs = [[Float](repeating: 0.5, count: 64), [Float](repeating: 0.25, count: 80), [Float](repeating: 1, count: 80)]
        inputs[planted][index] = value
        _ = try CPUAttention.run(
            method, problem: p, q: tensor(inputs[0], heads: 2, tokens: 4), k: tensor(inputs[1], heads: 2, tokens: 5),
            v: tensor(inputs[2], heads: 2, tokens: 5))
    }

    static func npy(_ header: String, dataBytes: Int = 0) -> [UInt8] {
        var text = header
        while (10 + text.utf8.count + 1) % 64 != 0 { text += " " }
        text += "\n"
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(text.utf8.count & 0xFF), UInt8(text.utf8.count >> 8)]
            + Array(text.utf8) + [UInt8](repeating: 0, count: dataBytes)
    }

    static let device = TensorLayout.bhnd.strides(heads: 2, tokens: 10, headDim: 64)

    static func deviceTensor(_ address: UInt64, _ type: ElementType = .float16, strides: TensorStrides = device) -> DeviceTensor {
        DeviceTensor(address: address, elementType: type, strides: strides)
    }

    static let cases: [Case] = [
        // The problem.
        Case("negative batch", "invalidDimension", ["batch", "-1", "must not be negative"]) { _ = try problem(batch: -1) },
        Case("no heads", "invalidDimension", ["heads", "0", "at least 1"]) { _ = try problem(heads: 0) },
        Case("no kv heads", "invalidDimension", ["kvHeads", "0", "at least 1"]) { _ = try problem(kvHeads: 0) },
        Case("heads not a multiple", "headsNotDivisible", ["heads (3)", "multiple of kv heads (2)"]) {
            _ = try problem(heads: 3, kvHeads: 2)
        },
        Case("negative query length", "invalidDimension", ["queryLength", "-1"]) { _ = try problem(queryLength: -1) },
        Case("no keys", "invalidDimension", ["keyLength", "0", "at least 1"]) { _ = try problem(keyLength: 0) },
        Case("head dim not a multiple of 8", "invalidDimension", ["headDim", "12", "multiple of 8"]) { _ = try problem(headDim: 12) },
        Case("head dim too large", "invalidDimension", ["headDim", "264", "256"]) { _ = try problem(headDim: 264) },
        Case("head dim 0", "invalidDimension", ["headDim", "0"]) { _ = try problem(headDim: 0) },
        Case("NaN scale", "invalidSoftmaxScale", ["softmax scale", "nan", "finite and positive"]) { _ = try problem(scale: .nan) },
        Case("negative scale", "invalidSoftmaxScale", ["-1.0", "finite and positive"]) { _ = try problem(scale: -1) },
        Case("infinite scale", "invalidSoftmaxScale", ["inf", "finite and positive"]) { _ = try problem(scale: .infinity) },
        Case("element count overflows", "tooLarge", ["q of shape", "[1099511627776, 1099511627776, 4, 8]", "2^56"]) {
            _ = try problem(batch: 1 << 40, heads: 1 << 40, kvHeads: 1)
        },
        Case("key count overflows", "tooLarge", ["k of shape", "2^56"]) {
            _ = try problem(heads: 1, queryLength: 1, keyLength: 1 << 62)
        },
        // fp32 arrays.
        Case("q array too short", "shapeMismatch", ["q has shape 63 elements", "expected 64 elements [1, 2, 4, 8]"]) {
            let p = try problem(); let (q, k, v) = arrays(p)
            _ = try CPUAttention.run(.int8, problem: p, q: Array(q.dropLast()), k: k, v: v)
        },
        Case("k array too long", "shapeMismatch", ["k has shape 81 elements", "80 elements [1, 2, 5, 8]"]) {
            let p = try problem(); let (q, k, v) = arrays(p)
            _ = try CPUAttention.run(.fp32, problem: p, q: q, k: k + [0], v: v)
        },
        Case("v array of another head count", "shapeMismatch", ["v has shape 40 elements", "80 elements [1, 2, 5, 8]"]) {
            let p = try problem(); let (q, k, v) = arrays(p)
            _ = try CPUAttention.run(.int8, problem: p, q: q, k: k, v: Array(v.prefix(40)))
        },
        Case("reference: empty k", "shapeMismatch", ["k has shape 0 elements"]) {
            let p = try problem(); let (q, _, v) = arrays(p)
            _ = try CPUAttention.reference(p, q: q, k: [], v: v)
        },
        Case("quantize: a float method", "unsupportedMethod", ["fp16", "not an integer method"]) {
            let p = try problem(); let (q, k, v) = arrays(p)
            _ = try QuantizedAttentionInputs.quantize(method: .fp16, problem: p, q: q, k: k, v: v)
        },
        // Tensors.
        Case("v with one head against k's two", "shapeMismatch", ["v has shape [1, 1, 5, 8] (bhnd)", "expected [1, 2, 5, 8] (bhnd)"]) {
            let p = try problem()
            _ = try CPUAttention.run(.int8, problem: p, q: tensor(heads: 2, tokens: 4), k: tensor(heads: 2, tokens: 5),
                                     v: tensor(heads: 1, tokens: 5))
        },
        Case("k of another head dim", "shapeMismatch", ["k has shape [1, 2, 5, 16] (bhnd)", "expected [1, 2, 5, 8]"]) {
            let p = try problem()
            _ = try CPUAttention.run(.int8, problem: p, q: tensor(heads: 2, tokens: 4), k: tensor(heads: 2, tokens: 5, headDim: 16),
                                     v: tensor(heads: 2, tokens: 5))
        },
        Case("bnhd q of other length", "shapeMismatch", ["q has shape [1, 3, 2, 8] (bnhd)", "expected [1, 4, 2, 8] (bnhd)"]) {
            let p = try problem()
            _ = try CPUAttention.run(.int8, problem: p, q: tensor(heads: 2, tokens: 3, layout: .bnhd),
                                     k: tensor(heads: 2, tokens: 5), v: tensor(heads: 2, tokens: 5))
        },
        Case("storage of the wrong count", "shapeMismatch", ["tensor has shape 3 elements", "expected 4 elements"]) {
            _ = try AttentionTensor(storage: .float32([1, 2, 3]), batch: 1, heads: 1, tokens: 1, headDim: 4)
        },
        Case("NaN in q", "nonFiniteInput", ["q holds a non-finite value", "element 7"]) {
            try runTensors(.int8, planted: 0, index: 7, value: .nan)
        },
        Case("Inf in k", "nonFiniteInput", ["k holds a non-finite value", "element 3"]) {
            try runTensors(.fp32, planted: 1, index: 3, value: .infinity)
        },
        Case("-Inf in v", "nonFiniteInput", ["v holds a non-finite value", "element 79"]) {
            try runTensors(.int8Paper, planted: 2, index: 79, value: -.infinity)
        },
        Case("fp16 overflow in q", "inputOutOfRange", ["q holds 70000.0 at element 5", "overflows", "fp16", "65504"]) {
            try runTensors(.fp16, planted: 0, index: 5, value: 70_000)
        },
        Case("fp16 overflow in v", "inputOutOfRange", ["v holds -100000.0", "65504"]) {
            try runTensors(.fp16, planted: 2, index: 0, value: -100_000)
        },
        // Memory.
        Case("host memory beyond the machine", "outOfMemory", ["out of host memory", "9223372036854775807 bytes", "for a test"]) {
            try HostMemory.reserve(.max, for: "a test")
        },
        Case("a CPU problem beyond the machine", "outOfMemory", ["out of host memory", "the CPU path's buffers (int8"]) {
            try CPUAttention.reserveHostMemory(.int8, problem: problem(heads: 1 << 12, queryLength: 1 << 20, keyLength: 1 << 20, headDim: 128))
        },
        Case("a GPU allocation that failed", "outOfMemory", ["out of GPU memory", "34359738400 bytes (32.0 GiB)", "cuMemAlloc_v2"]) {
            throw AttentionError(CUDAError(
                library: .driver, kind: .callFailed, call: "cuMemAlloc_v2", code: CUDAError.cudaErrorOutOfMemory,
                name: "CUDA_ERROR_OUT_OF_MEMORY", message: "out of memory", requestedBytes: 34_359_738_400))
        },
        // .npy files.
        Case("npy without magic", "malformedNPY", ["q.npy", "magic"]) { _ = try NPYFile.parse([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], path: "q.npy") },
        Case("npy of float64", "malformedNPY", ["dtype <f8"]) {
            _ = try NPYFile.parse(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 8), }"), path: "q.npy")
        },
        Case("npy of rank 2", "malformedNPY", ["rank 2"]) {
            _ = try NPYFile.parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 8), }"), path: "q.npy")
        },
        Case("npy shape that overflows", "malformedNPY", ["more elements than memory can hold"]) {
            _ = try NPYFile.parse(
                npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2, 8), }"), path: "q.npy")
        },
        Case("npy truncated", "malformedNPY", ["truncated data", "16 elements"]) {
            _ = try NPYFile.parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 8), }", dataBytes: 12), path: "q.npy")
        },
        // GPU calls, refused on the host before anything is queued.
        Case("fp32 device input", "unsupportedMethod", ["Q must be fp16 or bf16"]) {
            try CUDAAttention.validateInputs(.int8, q: deviceTensor(0x10000, .float32), k: deviceTensor(0x10000), v: deviceTensor(0x10000))
        },
        Case("misaligned device K", "invalidDeviceTensor", ["K", "2-byte aligned", "0x10001"]) {
            try CUDAAttention.validateInputs(.int8, q: deviceTensor(0x10000), k: deviceTensor(0x10001), v: deviceTensor(0x10000))
        },
        Case("null device V", "invalidDeviceTensor", ["V", "null"]) {
            try CUDAAttention.validateInputs(.int8, q: deviceTensor(0x10000), k: deviceTensor(0x10000), v: deviceTensor(0))
        },
        Case("negative device stride", "invalidDeviceTensor", ["Q", "negative strides", "token -64"]) {
            try CUDAAttention.validateInputs(
                .int8, q: deviceTensor(0x10000, strides: TensorStrides(batch: 0, head: 64, token: -64)),
                k: deviceTensor(0x10000), v: deviceTensor(0x10000))
        },
        Case("output written in pairs", "invalidDeviceTensor", ["output", "4-byte aligned"]) {
            try CUDAAttention.validateOutput(deviceTensor(0x10002), logSumExp: nil)
        },
        Case("misaligned log-sum-exp", "invalidDeviceTensor", ["logSumExp", "4-byte aligned"]) {
            try CUDAAttention.validateOutput(deviceTensor(0x10000), logSumExp: 0x20002)
        },
        Case("device strides past 64 bits", "tooLarge", ["K of shape [1, 2, 5, 8]", "(1, 4611686018427387904, 8, 1)", "64 bits"]) {
            try CUDAAttention.validateSpans(
                try problem(), k: deviceTensor(0x10000, strides: TensorStrides(batch: 1, head: 1 << 62, token: 8)))
        },
        Case("sequence too long for the GPU", "invalidDimension", ["queryLength", "32-bit"]) {
            try CUDAAttention.validateLimits(problem(heads: 1, queryLength: Int(Int32.max), keyLength: 1))
        },
        Case("batch too large for a grid", "invalidDimension", ["batch", "65535"]) {
            try CUDAAttention.validateLimits(problem(batch: 70_000, heads: 1, queryLength: 1, keyLength: 1))
        },
        Case("merge strides past 64 bits", "tooLarge", ["part of shape [1, 2, 10, 64]", "64 bits"]) {
            let lse = DeviceTensor(address: 0x30000, elementType: .float32, strides: TensorStrides(batch: 20, head: 10, token: 1))
            try CUDAAttention.validateMerge(
                output: deviceTensor(0x10000, .float32), logSumExp: lse,
                part: deviceTensor(0x20000, strides: TensorStrides(batch: 0, head: 1 << 62, token: 64)), partLogSumExp: lse,
                batch: 1, heads: 2, tokens: 10, headDim: 64)
        },
        Case("workspace too small", "workspaceTooSmall", ["holds 100 bytes", "needs"]) {
            _ = try DeviceWorkspace(address: 0x10000, byteCount: 100).addresses(for: [(.qCodes, 4096)])
        },
    ]

    @Test(arguments: cases)
    func refused(_ c: Case) {
        do {
            try c.call()
            Issue.record("\(c.name): not refused")
        } catch let error as AttentionError {
            let caseName = Mirror(reflecting: error).children.first?.label ?? "\(error)"
            #expect(caseName == c.expected, "\(c.name): \(error)")
            for word in c.words {
                #expect(error.description.contains(word), "\(c.name): \"\(word)\" not in \"\(error.description)\"")
            }
        } catch {
            Issue.record("\(c.name): not an AttentionError: \(error)")
        }
    }

    @Test func tableIsLargeEnough() { #expect(Self.cases.count >= 40) }

    /// Empty problems are valid: every CPU entry point returns an empty result.
    @Test func emptyProblemsGiveEmptyResults() throws {
        for p in [try Self.problem(batch: 0), try Self.problem(queryLength: 0)] {
            let (q, k, v) = Self.arrays(p)
            for method in AttentionMethod.allCases {
                let result = try CPUAttention.run(method, problem: p, q: q, k: k, v: v)
                #expect(result.output.isEmpty && result.logSumExp.isEmpty, "\(method) \(p)")
            }
            #expect(try CPUAttention.reference(p, q: q, k: k, v: v).isEmpty)
        }
        #expect(ErrorMetrics(output: [Float](), reference: []).cosineSimilarity.isNaN)
    }
}
