/// One compiled variant of the mma.sync attention kernels (`attention_mma_int8.cu` for
/// `int8`, `attention.cu` for the other methods): hashable, so it can key the
/// in-memory and on-disk module caches; its kernel name spells every option.
public struct MMAKernelDescriptor: Hashable, Sendable, CustomStringConvertible {
    /// Query rows per CTA and per warp, the K/V pipeline depth, and whether the CTA's Q
    /// fragments stay in registers or are re-read from shared memory per key block.
    public struct Tiles: Hashable, Sendable {
        /// Query rows per CTA: 64 or 128.
        public var blockM: Int
        /// Query rows per warp: 16 (one MMA row tile) or 32 (two, sharing each K and V fragment).
        public var warpRows: Int
        /// K/V pipeline depth: shared-memory ring slots of 64 keys.
        public var stages: Int
        /// Whether Q fragments stay in registers instead of being re-read per key block.
        public var qInRegisters: Bool
        /// With two row tiles per warp: take them through S and the softmax one at a time
        /// (K fragments read per tile) instead of together (each K fragment read once).
        public var splitRowTiles: Bool
        /// CTAs per SM promised to the register allocator (1: up to 255 registers per thread).
        public var minBlocksPerSM: Int
        /// Creates tiles from their fields.
        public init(
            blockM: Int, warpRows: Int = 16, stages: Int, qInRegisters: Bool, splitRowTiles: Bool = false,
            minBlocksPerSM: Int = 1
        ) {
            self.blockM = blockM
            self.warpRows = warpRows
            self.stages = stages
            self.qInRegisters = qInRegisters
            self.splitRowTiles = splitRowTiles
            self.minBlocksPerSM = minBlocksPerSM
        }
        /// Warps per CTA.
        public var warps: Int { blockM / warpRows }
        /// These tiles with Q in registers where 16-row warps of the method and head dim keep it there.
        public func withDefaultQPlacement(method: AttentionMethod, headDim: Int) -> Tiles {
            var tiles = self
            tiles.qInRegisters = Self.keepsQInRegisters(method: method, headDim: headDim)
            return tiles
        }
        /// Whether Q stays in registers by default: only where it is cheap, rows of 64 bytes or
        /// fewer (at 128 bytes and more, re-reading it per key block saves the registers).
        static func keepsQInRegisters(method: AttentionMethod, headDim: Int) -> Bool {
            headDim * (method == .fp16 ? 2 : 1) <= 64
        }
    }

    /// The attention scheme the kernel computes.
    public var method: AttentionMethod
    /// Head dimension (D).
    public var headDim: Int
    /// Whether the bottom-right-aligned causal mask applies.
    public var causal: Bool
    /// Element type of the output tensor.
    public var output: KernelFloatType
    /// Whether the kernel also writes the fp32 log-sum-exp of each query row.
    public var writesLogSumExp: Bool
    /// NVRTC architecture, e.g. "sm_90".
    public var arch: String
    /// CTA shape and pipeline depth.
    public var tiles: Tiles

    /// Creates a descriptor; `tiles` defaults to `defaultTiles(method:headDim:causal:writesLogSumExp:arch:)`.
    /// Throws when the method, head dim or architecture has no kernel.
    public init(
        method: AttentionMethod, headDim: Int, causal: Bool, output: KernelFloatType = .float16,
        writesLogSumExp: Bool = false, arch: String, tiles: Tiles? = nil
    ) throws(AttentionError) {
        guard Self.methods.contains(method) else {
            throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "no GPU kernel for this method")
        }
        let dims = Self.supportedHeadDims(method)
        guard dims.contains(headDim) else { throw .unsupportedHeadDim(headDim, supported: dims) }
        guard let sm = Self.smVersion(arch) else {
            throw .gpu("unrecognized GPU architecture \(arch) (expected e.g. sm_90)")
        }
        guard sm >= 80 else { throw .gpu("the attention kernels need sm_80 or newer, not \(arch)") }
        if method == .fp8E4M3 && sm < 89 {
            throw .unsupportedMethod(method: method.rawValue, backend: "cuda", reason: "FP8 tensor cores need sm_89 or newer (\(arch))")
        }
        self.method = method
        self.headDim = headDim
        self.causal = causal
        self.output = output
        self.writesLogSumExp = writesLogSumExp
        self.arch = arch
        let tiles =
            tiles
            ?? Self.defaultTiles(
                method: method, headDim: headDim, causal: causal, writesLogSumExp: writesLogSumExp, arch: arch)
        guard [64, 128].contains(tiles.blockM), [16, 32].contains(tiles.warpRows),
            tiles.blockM % tiles.warpRows == 0, (2...4).contains(tiles.stages),
            method != .int8 || (tiles.warpRows == 16 && !tiles.splitRowTiles)
        else {
            throw .gpu("mma tiles \(tiles.blockM) rows per CTA, \(tiles.warpRows) per warp, \(tiles.stages) stages: "
                + "expected 64 or 128 per CTA, 16 or 32 per warp (16 for int8), 2 to 4 stages")
        }
        self.tiles = tiles
    }

    /// Methods with a GPU attention kernel.
    public static let methods: [AttentionMethod] = [.int8, .int8Paper, .fp8E4M3, .fp16]

    /// Head dims with a kernel (8-bit rows must be a multiple of 64 bytes). d=256 compiles
    /// but spills (the fp32 accumulator alone is 128 registers per thread) and is left out
    /// until it has a kernel that splits the head dim.
    public static func supportedHeadDims(_ method: AttentionMethod) -> [Int] {
        method == .fp16 ? [32, 64, 128] : [64, 128]
    }

    /// The tile-size heuristic, as data, measured on an H200 (same-call A/B runs, docs/PERFORMANCE.md):
    /// - 64-row CTAs of 4 warps with 16 rows per warp are the base: against 128-row CTAs of
    ///   16-row warps they won by 3–18%, and a third stage gained nothing.
    /// - 32 rows per warp in 128-row CTAs, each K and V fragment serving both row tiles: fp16
    ///   +19% at D = 64 and +36% at D = 128, int8 +10% at D = 128 (with two CTAs per SM
    ///   promised, which fences fragment loads), the paper scheme +7–10% at D = 64, where it
    ///   takes its two row tiles through the softmax one at a time. At D = 128 the
    ///   kernel keeps the rows' sums in shared memory to fit; fp8 still spills there, so it
    ///   keeps 16 rows; so does fp16 with the log-sum-exp at D = 128 without a mask on sm_90,
    ///   where ptxas spills 8 bytes. fp8 at D = 64 without a mask runs 64-row CTAs of two
    ///   32-row warps, four per SM: +11% (with the mask that tiling spills on sm_90). The same
    ///   tiling measured 5–20% slower for int8, the paper scheme and fp16.
    /// - The paper scheme at D = 128 takes both row tiles together through three K/V stages
    ///   (two CTAs per SM still fit): +4–6% over two stages taken one tile at a time, which it
    ///   keeps with the log-sum-exp and the causal mask on sm_90 (24 spill bytes otherwise). A
    ///   third stage cost int8 2%.
    /// - int8 (`attention_mma_int8.cu`, key tiles of 128) runs 16-row warps: its S tile alone is
    ///   64 registers per thread. At D = 64, 64-row CTAs with two per SM promised (three, at 168
    ///   registers, spill); at D = 128, 128-row CTAs, one per SM (about 250 registers; two
    ///   64-row CTAs spill on sm_86 and sm_89).
    /// - Q stays in registers only where it is cheap (64-byte rows per 16 rows): at 128 bytes
    ///   and more, re-reading it from shared memory per key block saves the registers.
    public static func defaultTiles(
        method: AttentionMethod, headDim: Int, causal: Bool = false, writesLogSumExp: Bool = false, arch: String
    ) -> Tiles {
        let qInRegisters = Tiles.keepsQInRegisters(method: method, headDim: headDim)
        let oneRowTile = Tiles(blockM: 64, stages: 2, qInRegisters: qInRegisters)
        func twoRowTiles(blockM: Int = 128, stages: Int = 2, split: Bool = false, minBlocksPerSM: Int = 1) -> Tiles {
            Tiles(
                blockM: blockM, warpRows: 32, stages: stages, qInRegisters: qInRegisters, splitRowTiles: split,
                minBlocksPerSM: minBlocksPerSM)
        }
        let hopperOrNewer = (smVersion(arch) ?? 0) >= 90
        switch (method, headDim) {
        case (.int8, 64):
            var tiles = oneRowTile
            tiles.minBlocksPerSM = 2
            return tiles
        case (.int8, _):
            return Tiles(blockM: 128, stages: 2, qInRegisters: qInRegisters)
        case (.fp16, 64):
            return twoRowTiles()
        case (.fp16, 128):
            let spills = writesLogSumExp && !causal && hopperOrNewer
            return spills ? oneRowTile : twoRowTiles()
        case (.int8Paper, 64):
            return twoRowTiles(split: true)
        case (.int8Paper, 128):
            let spills = writesLogSumExp && causal && hopperOrNewer
            return spills ? twoRowTiles(split: true, minBlocksPerSM: 2) : twoRowTiles(stages: 3, minBlocksPerSM: 2)
        case (.fp8E4M3, 64) where !causal:
            return twoRowTiles(blockM: 64, minBlocksPerSM: 4)
        default:
            return oneRowTile
        }
    }

    /// Tiles forced by `INTFA_MMA_TILES=blockM,warpRows,stages[,split[,minBlocksPerSM]]` (e.g.
    /// `128,32,2` or `64,16,2,0,3`), for tuning runs; nil when unset. Where Q lives is left to
    /// ``Tiles/withDefaultQPlacement(method:headDim:)``.
    public static func tiles(fromEnvironment environment: [String: String]) throws(AttentionError) -> Tiles? {
        guard let text = environment["INTFA_MMA_TILES"], !text.isEmpty else { return nil }
        let fields = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (3...5).contains(fields.count), fields.count < 4 || fields[3] == 0 || fields[3] == 1,
            fields.count < 5 || (1...4).contains(fields[4])
        else {
            throw .gpu(
                "INTFA_MMA_TILES=\(text): expected blockM,warpRows,stages[,split[,minBlocksPerSM]] such as 128,32,2")
        }
        return Tiles(
            blockM: fields[0], warpRows: fields[1], stages: fields[2], qInRegisters: false,
            splitRowTiles: fields.count >= 4 && fields[3] == 1, minBlocksPerSM: fields.count == 5 ? fields[4] : 1)
    }

    /// The embedded source: `attention_mma_int8.cu` for `int8`, else `attention.cu`.
    public var sourceFile: String { method == .int8 ? "attention_mma_int8.cu" : "attention.cu" }

    /// Keys per block of `attention.cu`'s schemes (`int8-paper`, fp8, fp16): the K/V ring's
    /// tile and the P block of the online softmax. Passed to the kernel as `INTFA_KEY_BLOCK`.
    public static let blockKeys = 64

    private var methodName: String {
        switch method {
        case .int8: return "int8"
        case .int8Paper: return "int8paper"
        case .fp8E4M3: return "fp8e4m3"
        default: return "fp16"
        }
    }

    /// The method ids of `attention.cu`'s `INTFA_METHOD`, passed to it as macros: their one
    /// source (`int8` has its own kernel, attention_mma_int8.cu, and id 0).
    static let methodMacros: [(macro: String, method: AttentionMethod, id: Int)] = [
        ("INTFA_M_INT8_PAPER", .int8Paper, 1), ("INTFA_M_FP8", .fp8E4M3, 2), ("INTFA_M_FP16", .fp16, 3),
    ]

    /// `INTFA_METHOD` value of this variant.
    private var methodID: Int { Self.methodMacros.first { $0.method == method }?.id ?? 0 }

    /// The `extern "C"` name; `attention.cu` builds the same string from the macros.
    public var kernelName: String {
        "intfa_attention_\(methodName)_d\(headDim)_\(causal ? "causal" : "full")_\(output.rawValue)"
            + (writesLogSumExp ? "_lse" : "") + "_m\(tiles.blockM)_s\(tiles.stages)_w\(tiles.warpRows)"
            + (tiles.splitRowTiles ? "_split" : "") + (tiles.minBlocksPerSM > 1 ? "_b\(tiles.minBlocksPerSM)" : "")
    }

    /// NVRTC options: the architecture, C++17, and the variant's `-D` macros.
    public var compileOptions: [String] {
        [
            // -default-device: the kernel's lambda (scores to P fragments) is device code.
            "-arch=\(arch)", "-std=c++17", "-default-device",
            "-DINTFA_METHOD=\(methodID)", "-DINTFA_HEAD_DIM=\(headDim)",
            "-DINTFA_BLOCK_M=\(tiles.blockM)", "-DINTFA_WARP_ROWS=\(tiles.warpRows)",
            "-DINTFA_SPLIT_ROW_TILES=\(tiles.splitRowTiles ? 1 : 0)", "-DINTFA_MIN_BLOCKS=\(tiles.minBlocksPerSM)",
            "-DINTFA_STAGES=\(tiles.stages)",
            "-DINTFA_CAUSAL=\(causal ? 1 : 0)", "-DINTFA_OUT_BF16=\(output == .bfloat16 ? 1 : 0)",
            "-DINTFA_WRITE_LSE=\(writesLogSumExp ? 1 : 0)", "-DINTFA_Q_IN_REGISTERS=\(tiles.qInRegisters ? 1 : 0)",
            "-DINTFA_SMEM_BYTES=\(sharedMemoryBytes)", "-DINTFA_KEY_BLOCK=\(Self.blockKeys)",
        ] + Self.methodMacros.map { "-D\($0.macro)=\($0.id)" }
    }

    /// Threads per CTA: 32 per warp.
    public var threadsPerBlock: Int { tiles.warps * 32 }

    /// Dynamic shared memory, mirroring `kSharedBytes` of `attention.cu` (which checks it at
    /// compile time): a ring of `stages` (K tile + V tile + per-key K scales), rows padded by
    /// 16 bytes, then the Q tile, its per-token scales, the CTA's 32-byte source pointers and,
    /// for 32-row warps at D ≥ 128, each thread's row sums and maxima (`kRowStateInShared`).
    /// Above 48 KiB the launcher must raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
    public var sharedMemoryBytes: Int {
        if method == .int8 {
            // attention_mma_int8.cu: a ring of (K tile of 128 keys + Vt tile + 16 group scales),
            // rows padded by 16 bytes, then the Q tile.
            let keys = KeyGroups.tileKeys, kStride = headDim + 16
            let stage = keys * kStride + headDim * (keys + 16) + keys / KeyGroups.groupKeys * 4
            return tiles.stages * stage + tiles.blockM * kStride
        }
        let eightBit = method != .fp16
        let kStride = headDim * (eightBit ? 1 : 2) + 16
        let keys = Self.blockKeys
        let vBytes = eightBit ? headDim * (keys + 16) : keys * (2 * headDim + 16)
        let perTokenScales = method == .int8 || method == .int8Paper
        let kScaleBytes = perTokenScales ? keys * 4 : 0
        let qScaleBytes = perTokenScales ? tiles.blockM * 4 : 0
        let keySourcesBytes = 32
        let ring = tiles.stages * (keys * kStride + vBytes + kScaleBytes)
        let rowStateBytes = tiles.warpRows == 32 && headDim >= 128 ? 2 * threadsPerBlock * 16 : 0
        return ring + tiles.blockM * kStride + qScaleBytes + keySourcesBytes + rowStateBytes
    }

    /// Grid for a problem: (query blocks, heads, batch).
    public func grid(for problem: AttentionProblem) -> (x: Int, y: Int, z: Int) {
        ((problem.queryLength + tiles.blockM - 1) / tiles.blockM, problem.heads, problem.batch)
    }

    /// Every variant for `arch` (methods the architecture supports × head dims × causal ×
    /// output type × log-sum-exp), with default tiles: the compile report's list.
    public static func allVariants(arch: String) -> [MMAKernelDescriptor] {
        var variants: [MMAKernelDescriptor] = []
        for method in methods {
            for headDim in supportedHeadDims(method) {
                for causal in [false, true] {
                    for output in KernelFloatType.allCases {
                        for lse in [false, true] {
                            if let d = try? MMAKernelDescriptor(
                                method: method, headDim: headDim, causal: causal, output: output,
                                writesLogSumExp: lse, arch: arch)
                            {
                                variants.append(d)
                            }
                        }
                    }
                }
            }
        }
        return variants
    }

    /// "sm_90" / "sm_90a" / "compute_90" → 90.
    static func smVersion(_ arch: String) -> Int? {
        let digits = arch.drop { !$0.isNumber }.prefix { $0.isNumber }
        return Int(digits)
    }
}
