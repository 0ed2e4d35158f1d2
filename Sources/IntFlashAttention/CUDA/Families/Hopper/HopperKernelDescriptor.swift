import Foundation
import CUDADriver

/// One compiled variant of the Hopper kernel (`attention_wgmma.cu` beside it): warpgroup MMAs
/// fed by TMA over key tiles of 128, a producer warpgroup and `consumers` warpgroups of 64
/// query rows each, for the default `int8` scheme on sm_90a. Hashable: it keys the module
/// caches, and its kernel name spells every option.
public struct HopperKernelDescriptor: Hashable, Sendable, CustomStringConvertible {
    /// Pipeline shape: ring slots of 128 keys, consumer warpgroups, and whether consumers take
    /// turns issuing their GEMMs (ping-pong).
    public struct Tiles: Hashable, Sendable {
        /// Ring slots of 128 keys (K tile, Vt tile and K group scales each).
        public var stages: Int
        /// Consumer warpgroups, 64 query rows each.
        public var consumers: Int
        /// Whether consumers take turns issuing their GEMMs.
        public var pingPong: Bool
        /// Creates tiles from their fields.
        public init(stages: Int, consumers: Int, pingPong: Bool) {
            self.stages = stages
            self.consumers = consumers
            self.pingPong = pingPong
        }
    }

    /// Head dimension (D): 64 or 128.
    public var headDim: Int
    /// Whether the bottom-right-aligned causal mask applies.
    public var causal: Bool
    /// Element type of the output tensor.
    public var output: KernelFloatType
    /// Whether the kernel also writes the fp32 log-sum-exp of each query row.
    public var writesLogSumExp: Bool
    /// NVRTC architecture: `sm_90a` (wgmma and setmaxnreg need the `a` feature set).
    public var arch: String
    /// Pipeline shape.
    public var tiles: Tiles
    /// Compiles the fragment-layout test kernel of the same source instead of attention.
    public var isLayoutTest: Bool
    /// The element type of Q when the kernel quantizes Q itself (fp16 or bf16 values, read
    /// once per tile), or nil when Q arrives as s8 codes with their scales.
    public var queryInput: KernelFloatType?

    /// Head dims with a Hopper kernel.
    public static let headDims = [64, 128]

    /// Creates a descriptor; `tiles` defaults to ``defaultTiles(headDim:causal:)``. Throws for
    /// head dims or architectures without a kernel.
    public init(
        headDim: Int, causal: Bool, output: KernelFloatType = .float16,
        writesLogSumExp: Bool = false, arch: String = "sm_90a", tiles: Tiles? = nil, isLayoutTest: Bool = false,
        queryInput: KernelFloatType? = nil
    ) throws(AttentionError) {
        guard Self.headDims.contains(headDim) else { throw .unsupportedHeadDim(headDim, supported: Self.headDims) }
        guard Self.supports(arch: arch) else {
            throw .gpu("the wgmma kernels need sm_90a (compute capability 9.0), not \(arch)")
        }
        self.headDim = headDim
        self.causal = causal
        self.output = output
        self.writesLogSumExp = writesLogSumExp
        self.arch = arch
        let chosen = tiles ?? Self.defaultTiles(headDim: headDim, causal: causal)
        guard (2...8).contains(chosen.stages), chosen.consumers == 2 || (chosen.consumers == 3 && headDim == 64) else {
            throw .gpu("wgmma tiles \(chosen.stages) stages, \(chosen.consumers) consumers: 2-8 stages and 2 consumers (3 at D = 64) are supported")
        }
        self.tiles = chosen
        self.isLayoutTest = isLayoutTest
        self.queryInput = isLayoutTest ? nil : queryInput
    }

    /// wgmma, TMA multicast-free loads and setmaxnreg exist on sm_90a only (the `a` feature
    /// set is not forward compatible).
    public static func supports(arch: String) -> Bool { arch == "sm_90a" }

    /// The tile heuristic: 2 consumer warpgroups (240 registers each: the O', P·V and S
    /// accumulators of 128-key tiles take 64 each at D = 128; with 3 consumers, 160 each, ptxas
    /// spills at D = 64 too) and a 4-slot ring (33 KiB a slot at D = 128; a power of two keeps
    /// the slot arithmetic a mask), consumers issuing on their own.
    public static func defaultTiles(headDim: Int, causal: Bool) -> Tiles {
        Tiles(stages: 4, consumers: 2, pingPong: false)
    }

    /// Whether the end-to-end path lets the kernel quantize Q (measured on the H200 against
    /// the Q quantizer pass, docs/PERFORMANCE.md): it gains at D = 64 (+1.5% at N = 8192, +9%
    /// at N = 1024), under the causal mask (+2.5% at D = 128, N = 8192) and for short rows
    /// (+3% at D = 128, N = 1024), and loses 3–7% on long non-causal rows at D = 128, whose
    /// main loop issues at a lower rate in the fused build.
    public static func fusesQueryQuantization(problem: AttentionProblem) -> Bool {
        problem.headDim == 64 || problem.causal || problem.keyLength <= 1024
    }

    /// Whether `INTFA_WGMMA_FUSED_Q=1` or `0` forces Q quantization inside the kernel on or
    /// off (for measurements); nil when unset.
    public static func fusedQueryQuantization(fromEnvironment environment: [String: String]) throws(AttentionError) -> Bool? {
        switch environment["INTFA_WGMMA_FUSED_Q"] {
        case nil, ""?: return nil
        case "1"?: return true
        case "0"?: return false
        case let value?: throw .invalidEnvironment(variable: "INTFA_WGMMA_FUSED_Q", value: value, expected: "1 or 0")
        }
    }

    /// Tiles forced by `INTFA_WGMMA_TILES=stages,consumers,pingpong` (e.g. `4,2,1`), for
    /// tuning runs; nil when unset.
    public static func tiles(fromEnvironment environment: [String: String]) throws(AttentionError) -> Tiles? {
        guard let text = environment["INTFA_WGMMA_TILES"], !text.isEmpty else { return nil }
        let fields = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard fields.count == 3, fields[2] == 0 || fields[2] == 1 else {
            throw .gpu("INTFA_WGMMA_TILES=\(text): expected stages,consumers,pingpong such as 4,2,1")
        }
        return Tiles(stages: fields[0], consumers: fields[1], pingPong: fields[2] == 1)
    }

    /// The embedded source, `attention_wgmma.cu` beside it.
    public var sourceFile: String { "attention_wgmma.cu" }

    /// The `extern "C"` name; `attention_wgmma.cu` builds the same string from its macros.
    public var kernelName: String {
        if isLayoutTest { return "intfa_wgmma_layout_test_d\(headDim)" }
        return "intfa_wgmma_int8_d\(headDim)_\(causal ? "causal" : "full")_\(output.rawValue)"
            + (writesLogSumExp ? "_lse" : "") + "_c\(tiles.consumers)_s\(tiles.stages)" + (tiles.pingPong ? "_pp" : "")
            + (queryInput.map { "_q\($0.rawValue)" } ?? "")
    }

    /// NVRTC options. `INTFA_SMEM_BYTES` lets the kernel check, at compile time, that the
    /// host's shared-memory size equals its own.
    public var compileOptions: [String] {
        [
            "-arch=\(arch)", "-std=c++17", "-default-device",
            "-DINTFA_HEAD_DIM=\(headDim)", "-DINTFA_CAUSAL=\(causal ? 1 : 0)",
            "-DINTFA_OUT_BF16=\(output == .bfloat16 ? 1 : 0)", "-DINTFA_WRITE_LSE=\(writesLogSumExp ? 1 : 0)",
            "-DINTFA_STAGES=\(tiles.stages)", "-DINTFA_CONSUMERS=\(tiles.consumers)",
            "-DINTFA_PINGPONG=\(tiles.pingPong ? 1 : 0)", "-DINTFA_LAYOUT_TEST=\(isLayoutTest ? 1 : 0)",
            "-DINTFA_Q_INPUT=\(queryInput.map { $0 == .float16 ? 1 : 2 } ?? 0)",
            "-DINTFA_SMEM_BYTES=\(sharedMemoryBytes)",
            "-DINTFA_K_SWIZZLE_BYTES=\(Self.keySwizzle(headDim: headDim).bytes)",
            "-DINTFA_V_SWIZZLE_BYTES=\(Self.valueSwizzle.bytes)",
        ]
    }

    /// The swizzle of the K tile in shared memory: its rows are D bytes, swizzled over their
    /// whole width. The one source of the K tensor map's swizzle (``HopperAttentionParams``)
    /// and of the kernel's K and Q tile layout (`-DINTFA_K_SWIZZLE_BYTES`, asserted there).
    public static func keySwizzle(headDim: Int) -> CUDATensorMap.Swizzle { headDim == 128 ? .bytes128 : .bytes64 }

    /// The swizzle of the Vt tile: rows of 128 keys (bytes). The one source of the Vt tensor
    /// map's swizzle and of the kernel's Vt descriptors (`-DINTFA_V_SWIZZLE_BYTES`).
    public static let valueSwizzle = CUDATensorMap.Swizzle.bytes128

    /// A producer warpgroup plus the consumers (the layout test is one warpgroup).
    public var threadsPerBlock: Int { isLayoutTest ? 128 : 128 * (tiles.consumers + 1) }

    /// Query rows per CTA.
    public var blockM: Int { 64 * tiles.consumers }

    /// Dynamic shared memory: `stages` slots of (K tile + Vt tile + 16 K group scales) rounded
    /// up to 1 KiB, a 64-row Q tile per consumer, plus 1 KiB to align the ring to the 128-byte
    /// swizzle's 1 KiB repeat.
    public var sharedMemoryBytes: Int {
        let keys = KeyGroups.tileKeys
        let slot = (keys * headDim * 2 + keys / KeyGroups.groupKeys * 4 + 1023) / 1024 * 1024
        return tiles.stages * slot + tiles.consumers * 64 * headDim + 1024
    }

    /// CTA tiles of a problem: `blockM` query rows of one (batch, head) each.
    public func tileCount(for problem: AttentionProblem) -> Int {
        (problem.queryLength + blockM - 1) / blockM * problem.heads * problem.batch
    }

    /// How many CTAs a launch has; the kernel takes tiles `blockIdx.x`, `+ gridDim.x`, … .
    public enum GridPolicy: String, Sendable, CaseIterable {
        /// One CTA per SM (the consumers' registers leave room for no second), each looping
        /// over tiles; its producer loads the next tile while the consumers finish this one.
        case persistent
        /// One CTA per tile: the hardware hands the next tile to whichever SM frees up.
        case perTile = "tiles"

        /// Persistent for full attention; one CTA per tile when causal, whose tiles differ in
        /// length: a fixed stride would leave SMs idle behind the long ones, while the
        /// hardware, given the longest tiles first (the kernel numbers them so), balances them.
        public static func `default`(causal: Bool) -> GridPolicy { causal ? .perTile : .persistent }

        /// The policy forced by `INTFA_WGMMA_GRID=persistent|tiles`, for tuning runs; nil when unset.
        public static func fromEnvironment(_ environment: [String: String]) throws(AttentionError) -> GridPolicy? {
            guard let text = environment["INTFA_WGMMA_GRID"], !text.isEmpty else { return nil }
            guard let policy = GridPolicy(rawValue: text) else {
                throw .gpu("INTFA_WGMMA_GRID=\(text): expected persistent or tiles")
            }
            return policy
        }
    }

    /// CTAs for `problem` under `policy` (default: ``GridPolicy/default(causal:)``).
    public func grid(for problem: AttentionProblem, multiprocessors: Int, policy: GridPolicy? = nil) -> Int {
        let chosen = policy ?? .default(causal: causal)
        let tiles = tileCount(for: problem)
        return max(1, chosen == .persistent ? min(tiles, multiprocessors) : tiles)
    }

    /// Every attention variant (head dims × causal × output type × log-sum-exp × Q as codes,
    /// fp16 or bf16) with default tiles, plus the layout test at each head dim: the compile
    /// report's list.
    public static func allVariants(arch: String) -> [HopperKernelDescriptor] {
        guard supports(arch: arch) else { return [] }
        var variants: [HopperKernelDescriptor] = []
        for headDim in headDims {
            for causal in [false, true] {
                for output in KernelFloatType.allCases {
                    for lse in [false, true] {
                        for query in [nil] + KernelFloatType.allCases {
                            if let d = try? HopperKernelDescriptor(
                                headDim: headDim, causal: causal, output: output, writesLogSumExp: lse, arch: arch,
                                queryInput: query)
                            {
                                variants.append(d)
                            }
                        }
                    }
                }
            }
            if let test = try? HopperKernelDescriptor(headDim: headDim, causal: false, arch: arch, isLayoutTest: true) {
                variants.append(test)
            }
        }
        return variants
    }
}

extension HopperKernelDescriptor: KernelVariant {}
