import Testing
@testable import CUDADriver

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}

@Suite struct PtxasReportTests {
    @Test func parsesEntriesDeviceFunctionsAndSpills() {
        let log = """
        ptxas info    : 0 bytes gmem
        ptxas info    : Compiling entry function 'attention_fwd' for 'sm_90a'
        ptxas info    : Function properties for attention_fwd
        ptxas         .     16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
        ptxas info    : Used 168 registers, used 1 barriers, 32 bytes cumulative stack size, 40960 bytes smem, 400 bytes cmem[0]
        ptxas info    : Function properties for _Z6helperv
        ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Compile time = 1.0 ms
        ptxas info    : Compiling entry function '_Z5smallPf' for 'sm_90a'
        ptxas info    : Function properties for _Z5smallPf
        ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 8 registers, used 0 barriers
        """
        let report = PtxasReport.parse(log: log)
        let big = report["attention_fwd"]
        #expect(big?.isEntry == true)
        #expect(big?.architecture == "sm_90a")
        #expect(big?.registers == 168)
        #expect(big?.barriers == 1)
        #expect(big?.sharedMemoryBytes == 40960)
        #expect(big?.constantMemoryBytes == 400)
        #expect(big?.cumulativeStackBytes == 32)
        #expect(big?.stackFrameBytes == 16)
        #expect(big?.spillStoreBytes == 8)
        #expect(big?.spillLoadBytes == 12)
        #expect(big?.spills == true)
        #expect(report["_Z6helperv"]?.isEntry == false)
        #expect(report["_Z5smallPf"]?.registers == 8)
        #expect(report.entries.map(\.name) == ["_Z5smallPf", "attention_fwd"])
    }
}

@Suite struct KernelArgumentTests {
    struct Params: BitwiseCopyable {
        var pointer: UInt64
        var count: Int32
        var scale: Float
    }

    @Test func scalarsAndStructsCopyTheirBytes() {
        #expect(Int32(-1).kernelArgumentBytes == KernelArgumentBytes(copying: Int32(-1)))
        #expect(Int32(7).kernelArgumentBytes.bytes == [7, 0, 0, 0])
        #expect(Float(1).kernelArgumentBytes.alignment == 4)
        #expect(DevicePointer(address: 0x1234).kernelArgumentBytes.bytes.count == 8)
        let params = KernelStruct(Params(pointer: 0xABCD, count: 3, scale: 0.5))
        #expect(params.kernelArgumentBytes.bytes.count == MemoryLayout<Params>.size)
        #expect(params.kernelArgumentBytes.alignment == 8)
        // A fixed-size array: the elements, then zeros; never more than `count`.
        let offsets = KernelArray([Int32(0), 3, 7], count: 5).kernelArgumentBytes
        #expect(offsets.bytes == [0, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0] + [UInt8](repeating: 0, count: 8))
        #expect(offsets.alignment == 4)
        #expect(KernelArray([Int32(1), 2, 3], count: 2).kernelArgumentBytes.bytes == [1, 0, 0, 0, 2, 0, 0, 0])
    }

    @Test func parameterArrayPointsAtAlignedCopies() {
        let arguments: [any KernelArgument] = [Int32(5), DevicePointer(address: 99), KernelStruct(Params(pointer: 1, count: 2, scale: 3))]
        let seen: [[UInt8]] = withKernelParameterArray(arguments) { parameters in
            guard let parameters else { return [] }
            return arguments.indices.map { index in
                let size = arguments[index].kernelArgumentBytes.bytes.count
                guard let pointer = parameters[index] else { return [] }
                #expect(Int(bitPattern: pointer) % arguments[index].kernelArgumentBytes.alignment == 0)
                return Array(UnsafeRawBufferPointer(start: pointer, count: size))
            }
        }
        #expect(seen == arguments.map(\.kernelArgumentBytes.bytes))
    }
}
