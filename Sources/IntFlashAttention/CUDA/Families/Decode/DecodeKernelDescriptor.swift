/// One kernel of `decode.cu` (decode attention on the paged INT8 KV cache): the split
/// attention or the combine of the splits, for one head dim, row capacity and pair of element
/// types. Both stages share one module (the same source and options).
public struct DecodeKernelDescriptor: KernelVariant {
    /// The two kernels of a decode call.
    public enum Stage: String, Hashable, Sendable {
        /// Attention of one split of the keys into fp32 partials.
        case attend = "int8"
        /// The partials merged by their log-sum-exps into the output.
        case combine
    }

    public var stage: Stage
    /// Head dimension: 64 or 128.
    public var headDim: Int
    /// Query rows one CTA holds at most (query heads per KV head × new tokens).
    public var rows: Int
    /// Element types of Q and of the output.
    public var query: KernelFloatType
    public var output: KernelFloatType
    /// NVRTC architecture, e.g. `sm_90`.
    public var arch: String

    /// Head dims with a decode kernel.
    public static let headDims = [64, 128]
    /// Row capacities compiled: a call takes the smallest that holds its rows. The tensor
    /// cores' M is 16 rows; with at most 8 the kernel skips the upper half's softmax.
    public static let rowCapacities = [8, 16]
    /// Keys per P block (docs/SCHEMES.md), the one source of `decode.cu`'s `INTFA_DECODE_BLOCK`
    /// and of the split granularity.
    public static var blockKeys: Int { PagedKVCache.decodeBlockKeys }
    /// Warps of an attention CTA on `arch`: eight where a CTA may take the ~135 KB their
    /// buffers need at D = 128 (sm_80, sm_90, sm_100), else four (sm_86, sm_89, sm_120: 99 KB).
    public static func warps(arch: String) -> Int {
        let sm = MMAKernelDescriptor.smVersion(arch) ?? 0
        return sm == 80 || (90..<120).contains(sm) ? 8 : 4
    }

    /// Threads per CTA: the attention kernel's warps, or the combine's four (one per row).
    public var threadsPerBlock: Int { stage == .attend ? 32 * Self.warps(arch: arch) : 128 }

    /// Rows the combine kernel merges per CTA.
    public static let combineRowsPerBlock = 4

    /// Creates a descriptor from its fields.
    public init(stage: Stage, headDim: Int, rows: Int, query: KernelFloatType, output: KernelFloatType, arch: String) {
        self.stage = stage
        self.headDim = headDim
        self.rows = rows
        self.query = query
        self.output = output
        self.arch = arch
    }

    /// The embedded source.
    public var sourceFile: String { "decode.cu" }

    /// The `extern "C"` name; `decode.cu` builds the same string from its macros.
    public var kernelName: String {
        "intfa_decode_\(stage.rawValue)_d\(headDim)_r\(rows)_\(query.rawValue)_\(output.rawValue)"
    }

    /// NVRTC options: the architecture, C++17, the shape and the element types.
    public var compileOptions: [String] {
        [
            "-arch=\(arch)", "-std=c++17", "-DINTFA_HEAD_DIM=\(headDim)", "-DINTFA_DECODE_ROWS=\(rows)",
            "-DINTFA_DECODE_BLOCK=\(Self.blockKeys)", "-DINTFA_DECODE_WARPS=\(Self.warps(arch: arch))",
            "-DINTFA_INPUT_BF16=\(query == .bfloat16 ? 1 : 0)",
            "-DINTFA_OUT_BF16=\(output == .bfloat16 ? 1 : 0)",
        ]
    }

    /// The attention kernel's dynamic shared memory: per warp a block's K and V codes and
    /// scales, then 16 rows of Q codes, their scales, visible keys and output rows (`decode.cu`); none for
    /// the combine.
    public var sharedMemoryBytes: Int {
        guard stage == .attend else { return 0 }
        return Self.warps(arch: arch) * (2 * Self.blockKeys * headDim + 2 * Self.blockKeys * 4) + 16 * headDim + 3 * 16 * 4
    }

    /// Query rows of the largest capacity: the most a CTA holds.
    public static var maxRows: Int { rowCapacities.last ?? 16 }

    /// The query tile of a decode call with `group` query heads per KV head: all of them, with
    /// as many of the `queryLength` new tokens as the largest capacity holds; a step that fits
    /// is one tile, a longer chunk several. Nil when the group alone exceeds ``maxRows`` (or a
    /// count is below 1).
    public static func queryTile(group: Int, queryLength: Int) -> (tokensPerTile: Int, tiles: Int, rows: Int)? {
        guard group >= 1, group <= maxRows, queryLength >= 1 else { return nil }
        let tokens = min(queryLength, maxRows / group)
        return (tokens, (queryLength + tokens - 1) / tokens, group * tokens)
    }

    /// The smallest row capacity that holds `rows`, or nil above the largest.
    public static func rowCapacity(for rows: Int) -> Int? { rowCapacities.first { $0 >= rows } }

    /// Every decode kernel for `arch` (sm_80 and later: the int8 `mma.sync`, `ldmatrix` and `cp.async` they use).
    public static func allVariants(arch: String) -> [DecodeKernelDescriptor] {
        guard (MMAKernelDescriptor.smVersion(arch) ?? 0) >= 80 else { return [] }
        return [Stage.attend, .combine].flatMap { stage in
            headDims.flatMap { d in
                rowCapacities.flatMap { rows in
                    KernelFloatType.allCases.flatMap { query in
                        KernelFloatType.allCases.map { output in
                            DecodeKernelDescriptor(stage: stage, headDim: d, rows: rows, query: query, output: output, arch: arch)
                        }
                    }
                }
            }
        }
    }
}
