import Testing
@testable import IntFlashAttention

/// The decode planner and kernel names (host only; the kernels themselves are checked against
/// the CPU oracle by `intfa check`).
struct DecodePlanTests {
    @Test func splitsAreWholeBlocksThatCoverTheKeys() {
        for (batch, kvHeads, length) in [(1, 8, 131_072), (64, 8, 1000), (1, 1, 1), (3, 2, 129), (16, 8, 8192), (1, 8, 0)] {
            let plan = CUDAAttention.decodeSplits(batch: batch, kvHeads: kvHeads, maxLength: length, multiprocessors: 132)
            #expect(plan.splitKeys % PagedKVCache.decodeBlockKeys == 0, "\(batch) \(kvHeads) \(length)")
            #expect(plan.splits >= 1 && plan.splits * plan.splitKeys >= length, "\(batch) \(kvHeads) \(length)")
            // No split starts past the keys (an empty last split would only cost a launch).
            #expect((plan.splits - 1) * plan.splitKeys < max(length, 1), "\(batch) \(kvHeads) \(length)")
        }
        // Small batches at long contexts split to fill the device once; large ones do not.
        #expect(CUDAAttention.decodeSplits(batch: 1, kvHeads: 8, maxLength: 131_072, multiprocessors: 132).splits == 16)
        #expect(CUDAAttention.decodeSplits(
            batch: 1, kvHeads: 8, maxLength: 131_072, multiprocessors: 132, residentPerMultiprocessor: 3).splits == 49)
        #expect(CUDAAttention.decodeSplits(batch: 16, kvHeads: 8, maxLength: 131_072, multiprocessors: 132).splits == 1)
        #expect(CUDAAttention.decodeSplits(batch: 64, kvHeads: 8, maxLength: 131_072, multiprocessors: 132).splits == 1)
        #expect(CUDAAttention.decodeSplits(forced: 5, maxLength: 2049).splits == 5)
        #expect(CUDAAttention.decodeSplits(forced: 100, maxLength: 300).splits == 5)  // 64-key blocks
    }

    /// A workspace sized for a length bound serves every shorter length: the splits are not
    /// monotonic in the length (rounding), but never exceed min(target, blocks of the bound).
    @Test func splitsStayWithinTheWorkspaceBound() {
        for (batch, kvHeads) in [(3, 2), (1, 8), (5, 1)] {
            let target = 132 / (batch * kvHeads)
            for bound in [1, 64, 65, 1000, 5000] {
                let blocks = (bound + PagedKVCache.decodeBlockKeys - 1) / PagedKVCache.decodeBlockKeys
                for length in stride(from: 0, through: bound, by: 7) {
                    let plan = CUDAAttention.decodeSplits(batch: batch, kvHeads: kvHeads, maxLength: length, multiprocessors: 132)
                    #expect(plan.splits <= max(1, min(target, blocks)), "\(batch) \(kvHeads) \(length) ≤ \(bound)")
                }
            }
        }
    }

    @Test func kernelNamesAndRowCapacities() {
        let d = DecodeKernelDescriptor(stage: .attend, headDim: 128, rows: 16, query: .bfloat16, output: .float16, arch: "sm_90")
        #expect(d.kernelName == "intfa_decode_int8_d128_r16_bf16_f16")
        var combine = d
        combine.stage = .combine
        #expect(combine.kernelName == "intfa_decode_combine_d128_r16_bf16_f16")
        #expect(combine.compileOptions == d.compileOptions)  // one module holds both
        #expect(DecodeKernelDescriptor.rowCapacity(for: 1) == 8)
        #expect(DecodeKernelDescriptor.rowCapacity(for: 8) == 8)
        #expect(DecodeKernelDescriptor.rowCapacity(for: 9) == 16)
        // Eight warps where a CTA may take ~135 KB of shared memory, four on the 99 KB parts.
        #expect(d.threadsPerBlock == 256 && d.sharedMemoryBytes <= 227 * 1024)
        #expect(DecodeKernelDescriptor(stage: .attend, headDim: 128, rows: 8, query: .float16, output: .float16, arch: "sm_89")
            .sharedMemoryBytes <= 99 * 1024)
        #expect(combine.sharedMemoryBytes == 0)
        #expect(DecodeKernelDescriptor.rowCapacity(for: 17) == nil)
        // Query tiles: a decode step is one tile; a chunk of a prompt is several of 16 / G tokens.
        for (group, tokens, expected) in [(4, 1, (1, 1, 4)), (4, 4, (4, 1, 16)), (4, 37, (4, 10, 16)), (16, 5, (1, 5, 16)),
                                          (1, 50, (16, 4, 16)), (3, 7, (5, 2, 15)), (2, 3, (3, 1, 6))] {
            let tile = DecodeKernelDescriptor.queryTile(group: group, queryLength: tokens)
            #expect(tile?.tokensPerTile == expected.0 && tile?.tiles == expected.1 && tile?.rows == expected.2, "\(group) \(tokens)")
        }
        #expect(DecodeKernelDescriptor.queryTile(group: 17, queryLength: 1) == nil)
        #expect(DecodeKernelDescriptor.queryTile(group: 4, queryLength: 0) == nil)
        #expect(DecodeKernelDescriptor.allVariants(arch: "sm_75").isEmpty)
        #expect(DecodeKernelDescriptor.allVariants(arch: "sm_80").count == 32)
    }
}
