import CUDADriver
import Testing
@testable import IntFlashAttention

/// What the GPU entry points refuse before queuing anything (a misaligned read would leave a
/// sticky error in the CUDA context), and the host-side bookkeeping around the kernels.
struct DeviceCallValidationTests {
    private func tensor(_ address: UInt64, _ type: ElementType = .float16, strides: TensorStrides? = nil) -> DeviceTensor {
        DeviceTensor(
            address: address, elementType: type,
            strides: strides ?? TensorLayout.bhnd.strides(heads: 2, tokens: 10, headDim: 64))
    }

    private func expectInvalid(_ name: String, _ body: () throws(AttentionError) -> Void) {
        do throws(AttentionError) {
            try body()
            Issue.record("expected \(name) to be refused")
        } catch {
            guard case .invalidDeviceTensor(let tensor, _) = error else {
                Issue.record("expected invalidDeviceTensor for \(name), got \(error)")
                return
            }
            #expect(tensor == name)
        }
    }

    @Test func mergeNeedsAnFP32AccumulatorAndAlignedRows() throws {
        let out = tensor(0x10000, .float32), part = tensor(0x20000)
        let lse = DeviceTensor(address: 0x30000, elementType: .float32, strides: TensorStrides(batch: 20, head: 10, token: 1))
        func merge(_ out: DeviceTensor, _ lse: DeviceTensor, _ part: DeviceTensor, headDim: Int = 64) throws(AttentionError) {
            try CUDAAttention.validateMerge(
                output: out, logSumExp: lse, part: part, partLogSumExp: lse, batch: 1, heads: 2, tokens: 10, headDim: headDim)
        }
        try merge(out, lse, part)
        try merge(out, lse, tensor(0x20008, .bfloat16))
        expectInvalid("merge output") { () throws(AttentionError) in try merge(tensor(0x10000), lse, part) }
        expectInvalid("merge output") { () throws(AttentionError) in try merge(tensor(0x10008, .float32), lse, part) }
        expectInvalid("part") { () throws(AttentionError) in try merge(out, lse, tensor(0x20004)) }
        let strided = DeviceTensor(address: 0x30000, elementType: .float32, strides: TensorStrides(batch: 40, head: 20, token: 2))
        expectInvalid("logSumExp") { () throws(AttentionError) in try merge(out, strided, part) }
        #expect(throws: AttentionError.self) { try merge(out, lse, part, headDim: 6) }
        #expect(throws: AttentionError.self) { try merge(out, lse, tensor(0x20000, .float32)) }
    }

    @Test func fp16KernelNeedsSixteenByteRows() throws {
        let aligned = tensor(0x10000)
        try CUDAAttention.validateInputs(.fp16, q: aligned, k: aligned, v: aligned)
        expectInvalid("K") { () throws(AttentionError) in
            try CUDAAttention.validateInputs(.fp16, q: aligned, k: tensor(0x10008), v: aligned)
        }
        let oddStride = TensorStrides(batch: 2 * 10 * 68, head: 10 * 68, token: 68)
        expectInvalid("V") { () throws(AttentionError) in
            try CUDAAttention.validateInputs(.fp16, q: aligned, k: aligned, v: tensor(0x10000, strides: oddStride))
        }
        // The quantizers read any element-aligned view, and the fp16 method converts bf16.
        try CUDAAttention.validateInputs(.int8, q: aligned, k: tensor(0x10002), v: tensor(0x10000, strides: oddStride))
        try CUDAAttention.validateInputs(.fp16, q: tensor(0x10002, .bfloat16), k: aligned, v: aligned)
    }

    @Test func inputsMustBeElementAlignedWithNonNegativeStrides() {
        let aligned = tensor(0x10000)
        expectInvalid("Q") { () throws(AttentionError) in
            try CUDAAttention.validateInputs(.int8, q: tensor(0x10001), k: aligned, v: aligned)
        }
        expectInvalid("Q") { () throws(AttentionError) in
            try CUDAAttention.validateInputs(.int8, q: tensor(0), k: aligned, v: aligned)
        }
        expectInvalid("K") { () throws(AttentionError) in
            try CUDAAttention.validateInputs(
                .int8, q: aligned, k: tensor(0x10000, strides: TensorStrides(batch: 0, head: 64, token: -128)), v: aligned)
        }
        #expect(throws: AttentionError.self) {
            try CUDAAttention.validateInputs(.int8, q: tensor(0x10000, .float32), k: aligned, v: aligned)
        }
    }

    @Test func outputIsWrittenInPairs() throws {
        try CUDAAttention.validateOutput(tensor(0x10004), logSumExp: 0x20004)
        expectInvalid("output") { () throws(AttentionError) in try CUDAAttention.validateOutput(tensor(0x10002), logSumExp: nil) }
        expectInvalid("output") { () throws(AttentionError) in
            try CUDAAttention.validateOutput(
                tensor(0x10000, strides: TensorStrides(batch: 2 * 10 * 65, head: 10 * 65, token: 65)), logSumExp: nil)
        }
        expectInvalid("logSumExp") { () throws(AttentionError) in
            try CUDAAttention.validateOutput(tensor(0x10000), logSumExp: 0x20002)
        }
    }

    @Test func quantizedInputsAreCopiedInSixteenBytePieces() throws {
        let good = QuantizedDeviceInputs(method: .int8, q: 0x1000, qScale: 0x2004, k: 0x3000, kScale: 0x4000, vt: 0x5000, vScale: 0x6004)
        try CUDAAttention.validateQuantized(good)
        var bad = good
        bad.vt = 0x5008
        expectInvalid("quantized Vt") { () throws(AttentionError) in try CUDAAttention.validateQuantized(bad) }
        bad = good
        bad.kScale = 0x4004
        expectInvalid("K scales") { () throws(AttentionError) in try CUDAAttention.validateQuantized(bad) }
    }

    @Test func lengthsAndGridExtentsHaveLimits() throws {
        try CUDAAttention.validateLimits(try AttentionProblem(batch: 1, heads: 65_535, queryLength: 1, keyLength: 1, headDim: 64))
        let long = try AttentionProblem(batch: 1, heads: 1, queryLength: 1, keyLength: Int(Int32.max), headDim: 64)
        #expect(throws: AttentionError.self) { try CUDAAttention.validateLimits(long) }
        let wide = try AttentionProblem(batch: 65_536, heads: 1, queryLength: 1, keyLength: 1, headDim: 64)
        #expect(throws: AttentionError.self) { try CUDAAttention.validateLimits(wide) }
        #expect(CUDAAttention.gridLimited(70_000) == 65_535)
        #expect(CUDAAttention.gridLimited(3) == 3)
    }

    @Test func loadedKernelsAreKeyedByEveryOption() throws {
        // The layout test's name spells only the head dim; its other options still differ.
        let a = try HopperKernelDescriptor(headDim: 128, causal: false, isLayoutTest: true)
        let b = try HopperKernelDescriptor(headDim: 128, causal: true, isLayoutTest: true)
        #expect(a.kernelName == b.kernelName)
        #expect(a.compileOptions != b.compileOptions)
        #expect(AnyHashable(a) != AnyHashable(b))  // the loaded-function cache's key
    }
}

/// The workspace waits for queued work before it frees a buffer that work may still read.
struct AttentionWorkspaceTests {
    final class Log { var events: [String] = [] }
    final class FakeBuffer {
        let size: Int, id: Int, log: Log
        init(size: Int, id: Int, log: Log) { (self.size, self.id, self.log) = (size, id, log) }
        deinit { log.events.append("free \(id)") }
    }
    struct FakeMemory: WorkspaceMemory {
        let log: Log
        final class Counter { var next = 0 }
        let counter = Counter()
        func allocate(byteCount: Int) throws(CUDAError) -> FakeBuffer {
            counter.next += 1
            log.events.append("allocate \(counter.next)")
            return FakeBuffer(size: byteCount, id: counter.next, log: log)
        }
        func address(of buffer: FakeBuffer) throws(CUDAError) -> UInt64 { UInt64(buffer.id) << 20 }
        func byteCount(of buffer: FakeBuffer) -> Int { buffer.size }
        func waitForQueuedWork() throws(CUDAError) { log.events.append("wait") }
    }

    @Test func growingWaitsBeforeFreeing() throws {
        let log = Log()
        let workspace = AttentionWorkspace(memory: FakeMemory(log: log))
        let first = try workspace.address(.kCodes, byteCount: 1000)
        #expect(try workspace.address(.kCodes, byteCount: 500) == first)  // reused, no wait
        #expect(log.events == ["allocate 1"])
        _ = try workspace.address(.kCodes, byteCount: 5000)
        #expect(log.events == ["allocate 1", "wait", "free 1", "allocate 2"])
    }
}
