/// One compiled variant of the attention kernel (`Kernels/attention.cu`): hashable, so it can
/// key the in-memory and on-disk module caches; its kernel name spells every option.
public struct AttentionKernelDescriptor: Hashable, Sendable, CustomStringConvertible {
    /// GPU element type of the output tensor.
    public enum Output: String, Hashable, Sendable, CaseIterable {
        /// fp16.
        case float16 = "f16"
        /// bf16.
        case bfloat16 = "bf16"
    }

    /// Query rows per CTA (one warp per 16 rows), the K/V pipeline depth, and whether the
    /// CTA's Q fragments stay in registers or are re-read from shared memory per key block.
    public struct Tiles: Hashable, Sendable {
        /// Query rows per CTA, a multiple of 16.
        public var blockM: Int
        /// K/V pipeline depth: shared-memory ring slots of 64 keys.
        public var stages: Int
        /// Whether Q fragments stay in registers instead of being re-read per key block.
        public var qInRegisters: Bool
        /// Creates tiles from their fields.
        public init(blockM: Int, stages: Int, qInRegisters: Bool) {
            self.blockM = blockM
            self.stages = stages
            self.qInRegisters = qInRegisters
        }
        /// Warps per CTA, one per 16 query rows.
        public var warps: Int { blockM / 16 }
    }

    /// The attention scheme the kernel computes.
    public var method: AttentionMethod
    /// Head dimension (D).
    public var headDim: Int
    /// Whether the bottom-right-aligned causal mask applies.
    public var causal: Bool
    /// Element type of the output tensor.
    public var output: Output
    /// Whether the kernel also writes the fp32 log-sum-exp of each query row.
    public var writesLogSumExp: Bool
    /// NVRTC architecture, e.g. "sm_90".
    public var arch: String
    /// CTA shape and pipeline depth.
    public var tiles: Tiles

    /// Creates a descriptor; `tiles` defaults to `defaultTiles(method:headDim:arch:)`.
    /// Throws when the method, head dim or architecture has no kernel.
    public init(
        method: AttentionMethod, headDim: Int, causal: Bool, output: Output = .float16,
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
        self.tiles = tiles ?? Self.defaultTiles(method: method, headDim: headDim, arch: arch)
    }

    /// Methods with a GPU attention kernel.
    public static let methods: [AttentionMethod] = [.int8, .int8Paper, .fp8E4M3, .fp16]

    /// Head dims with a kernel (8-bit rows must be a multiple of 64 bytes). d=256 compiles
    /// but spills (the fp32 accumulator alone is 128 registers per thread) and is left out
    /// until it has a kernel that splits the head dim.
    public static func supportedHeadDims(_ method: AttentionMethod) -> [Int] {
        method == .fp16 ? [32, 64, 128] : [64, 128]
    }

    /// The tile-size heuristic, as data. Measured on an H200 (B=1, H=16, N=8192, 2 stages
    /// vs 3, 64 rows vs 128): 64-row CTAs (4 warps) were fastest for every method at d=64 and
    /// d=128, by 3–18%; a third stage gained nothing. Q stays in registers only where it is
    /// cheap (64-byte rows): at 128 bytes and more, re-reading it from shared memory per key
    /// block is what keeps the 8-bit d=128 kernels free of spills.
    public static func defaultTiles(method: AttentionMethod, headDim: Int, arch: String) -> Tiles {
        let rowBytes = headDim * (method == .fp16 ? 2 : 1)
        return Tiles(blockM: 64, stages: 2, qInRegisters: rowBytes <= 64)
    }

    /// The embedded source, `Kernels/attention.cu`.
    public var sourceFile: String { "attention.cu" }

    private var methodName: String {
        switch method {
        case .int8: return "int8"
        case .int8Paper: return "int8paper"
        case .fp8E4M3: return "fp8e4m3"
        default: return "fp16"
        }
    }

    /// `INTFA_METHOD` value of `attention.cu`.
    private var methodID: Int {
        switch method {
        case .int8: return 0
        case .int8Paper: return 1
        case .fp8E4M3: return 2
        default: return 3
        }
    }

    /// The `extern "C"` name; `attention.cu` builds the same string from the macros.
    public var kernelName: String {
        "intfa_attention_\(methodName)_d\(headDim)_\(causal ? "causal" : "full")_\(output.rawValue)"
            + (writesLogSumExp ? "_lse" : "") + "_m\(tiles.blockM)_s\(tiles.stages)"
    }

    /// NVRTC options: the architecture, C++17, and the variant's `-D` macros.
    public var compileOptions: [String] {
        [
            "-arch=\(arch)", "-std=c++17",
            "-DINTFA_METHOD=\(methodID)", "-DINTFA_HEAD_DIM=\(headDim)",
            "-DINTFA_BLOCK_M=\(tiles.blockM)", "-DINTFA_STAGES=\(tiles.stages)",
            "-DINTFA_CAUSAL=\(causal ? 1 : 0)", "-DINTFA_OUT_BF16=\(output == .bfloat16 ? 1 : 0)",
            "-DINTFA_WRITE_LSE=\(writesLogSumExp ? 1 : 0)", "-DINTFA_Q_IN_REGISTERS=\(tiles.qInRegisters ? 1 : 0)",
        ]
    }

    /// Threads per CTA: 32 per warp.
    public var threadsPerBlock: Int { tiles.warps * 32 }

    /// Dynamic shared memory, mirroring `kSharedBytes` of `attention.cu`: a ring of `stages`
    /// (K tile + V tile + per-key K scales), rows padded by 16 bytes, then the Q tile.
    /// Above 48 KiB the launcher must raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
    public var sharedMemoryBytes: Int {
        let eightBit = method != .fp16
        let kStride = headDim * (eightBit ? 1 : 2) + 16
        let vBytes = eightBit ? headDim * (64 + 16) : 64 * (2 * headDim + 16)
        let kScaleBytes = (method == .int8 || method == .int8Paper) ? 64 * 4 : 0
        return tiles.stages * (64 * kStride + vBytes + kScaleBytes) + tiles.blockM * kStride
    }

    /// Grid for a problem: (query blocks, heads, batch).
    public func grid(for problem: AttentionProblem) -> (x: Int, y: Int, z: Int) {
        ((problem.queryLength + tiles.blockM - 1) / tiles.blockM, problem.heads, problem.batch)
    }

    /// Every variant for `arch` (methods the architecture supports × head dims × causal ×
    /// output type × log-sum-exp), with default tiles: the compile report's list.
    public static func allVariants(arch: String) -> [AttentionKernelDescriptor] {
        var variants: [AttentionKernelDescriptor] = []
        for method in methods {
            for headDim in supportedHeadDims(method) {
                for causal in [false, true] {
                    for output in Output.allCases {
                        for lse in [false, true] {
                            if let d = try? AttentionKernelDescriptor(
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

    /// `kernelName [arch]`, for logs.
    public var description: String { "\(kernelName) [\(arch)]" }
}
