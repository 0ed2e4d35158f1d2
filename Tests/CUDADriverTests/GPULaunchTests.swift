import Foundation
import Testing
@testable import CUDADriver

/// End-to-end on a real GPU: compile, load, copy, launch with a by-value struct, time.
/// Skipped where there is no usable driver or device (this includes GPU-less CI).
@Suite(.enabled(if: GPUForTests.available && NVRTCForTests.shouldRun, "no CUDA device"))
struct GPULaunchTests {
    /// Mirrors `struct Params` in ``TestKernels/source`` field for field.
    struct Params: BitwiseCopyable {
        var a: UInt64
        var b: UInt64
        var out: UInt64
        var bias: Int32
        var padding: Int32 = 0
    }

    @Test func int8MMAKernelMatchesTheCPU() throws {
        let context = try CUDAContext(device: 0)
        let cc = context.properties.computeCapability
        let compiled = try KernelCache(compiler: try NVRTCForTests.compiler(), directory: nil).kernel(
            for: CompilationRequest(
                source: TestKernels.source, name: "mma_test.cu", headers: ["mma_s8.cuh": TestKernels.header],
                architecture: cc.architecture))
        let module = try compiled.load(into: context)
        let function = try module.function(named: "mma_test")
        #expect(try function.registerCount > 0)

        // One warp: A is 16x32 and B is 32x8 int8, held in the mma fragment layouts.
        let a = (0..<(32 * 16)).map { Int8(truncatingIfNeeded: $0 % 7 - 3) }
        let b = (0..<(32 * 8)).map { Int8(truncatingIfNeeded: $0 % 5 - 2) }
        let aBuffer = try DeviceBuffer(context: context, copying: a)
        let bBuffer = try DeviceBuffer(context: context, copying: b)
        let out = try DeviceBuffer(context: context, byteCount: 32 * 4 * 4)
        try out.fill(byte: 0)

        let stream = try CUDAStream(context: context)
        let start = try CUDAEvent(context: context)
        let stop = try CUDAEvent(context: context)
        let params = Params(
            a: try aBuffer.pointer().address, b: try bBuffer.pointer().address, out: try out.pointer().address, bias: 10)
        try start.record(on: stream)
        try stream.launch(
            function, grid: LaunchDimensions(1), block: LaunchDimensions(32), arguments: [KernelStruct(params)])
        try stop.record(on: stream)
        try stop.synchronize()
        #expect(try stop.elapsedMilliseconds(since: start) >= 0)

        let result = try out.toArray(of: Int32.self, count: 32 * 4)
        #expect(result == Self.referenceMMA(a: a, b: b, bias: 10))
    }

    @Test func copiesRoundTripThroughPinnedMemory() throws {
        let context = try CUDAContext(device: 0)
        let values = (0..<1000).map { Float($0) * 0.5 }
        let device = try DeviceBuffer(context: context, byteCount: values.count * 4)
        let pinned = try PinnedHostBuffer(context: context, byteCount: values.count * 4)
        pinned.withUnsafeMutableBytes { bytes in values.withUnsafeBytes { bytes.copyMemory(from: $0) } }
        let stream = try CUDAStream(context: context)
        try stream.copy(pinned, to: device)
        let back = try PinnedHostBuffer(context: context, byteCount: values.count * 4)
        try stream.copy(device, to: back)
        try stream.synchronize()
        #expect(back.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } == values)
        try device.fill(float: -1)
        #expect(try device.toArray(of: Float.self, count: 3) == [-1, -1, -1])
        #expect(try context.memoryInfo().free > 0)
    }

    @Test func hugeAllocationIsOutOfMemory() throws {
        let context = try CUDAContext(device: 0)
        let error = #expect(throws: CUDAError.self) {
            try DeviceBuffer(context: context, byteCount: 1 << 50)
        }
        #expect(error?.isOutOfMemory == true)
        #expect(error?.call == "cuMemAlloc_v2")
    }

    /// The m16n8k32 fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k32"):
    /// lane = 4 * group + t; A regs a0..a3 hold rows group / group+8, columns t*4.. and
    /// t*4+16..; B regs b0, b1 hold column group, rows t*4.. and t*4+16..; C c0..c3 hold
    /// rows group / group+8, columns 2t, 2t+1.
    static func referenceMMA(a: [Int8], b: [Int8], bias: Int32) -> [Int32] {
        var aMatrix = [[Int32]](repeating: [Int32](repeating: 0, count: 32), count: 16)
        var bMatrix = [[Int32]](repeating: [Int32](repeating: 0, count: 8), count: 32)
        for lane in 0..<32 {
            let group = lane / 4, t = lane % 4
            for register in 0..<4 {
                for byte in 0..<4 {
                    let row = group + (register % 2) * 8
                    let column = t * 4 + byte + (register / 2) * 16
                    aMatrix[row][column] = Int32(a[lane * 16 + register * 4 + byte])
                }
            }
            for register in 0..<2 {
                for byte in 0..<4 {
                    bMatrix[t * 4 + byte + register * 16][group] = Int32(b[lane * 8 + register * 4 + byte])
                }
            }
        }
        var out = [Int32](repeating: 0, count: 32 * 4)
        for lane in 0..<32 {
            let group = lane / 4, t = lane % 4
            for index in 0..<4 {
                let row = group + (index / 2) * 8
                let column = 2 * t + index % 2
                out[lane * 4 + index] = bias + (0..<32).reduce(0) { $0 + aMatrix[row][$1] * bMatrix[$1][column] }
            }
        }
        return out
    }
}

enum GPUForTests {
    static let available: Bool = {
        do throws(CUDAError) { return try CUDADevice.count() > 0 } catch { return false }
    }()
}
