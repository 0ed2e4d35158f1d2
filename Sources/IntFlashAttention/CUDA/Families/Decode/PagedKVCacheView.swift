/// A paged INT8 KV cache in device memory that the caller owns (a torch tensor, a serving
/// stack's pool), in ``PagedKVCache``'s layout (docs/SCHEMES.md, "The INT8 KV cache"): what
/// the append and decode kernels read and write. ``DevicePagedKVCache`` owns such memory and
/// keeps the block tables for its caller; a view leaves them to the caller.
///
/// Buffers (all device addresses, the byte counts of ``byteCounts(layout:sequences:maxPages:)``):
/// - `keyCodes`, `valueCodes`: s8 [pageCount, kvHeads, pageSize, headDim], 16-byte aligned;
/// - `keyScales`, `valueScales`: fp32 [pageCount, kvHeads, pageSize];
/// - `keyMeans`: fp32 [sequences, kvHeads, headDim], K's channel means, fixed by each
///   sequence's first append;
/// - `blockTable`: s32 [sequences, maxPages], sequence b's pages in token order (entries
///   outside 0..<pageCount are never read or written through);
/// - `lengths`: s32 [sequences], the tokens stored, advanced by each append on the device.
public struct PagedKVCacheView: Hashable, Sendable {
    /// The pages' shape.
    public var layout: PagedKVCache.Layout
    /// Rows of the block table and of `lengths`: the batch of a decode call.
    public var sequences: Int
    /// Entries per block-table row.
    public var maxPages: Int
    /// An upper bound of every sequence's length (the lengths live on the device): decode
    /// plans its key splits by it.
    public var maxLength: Int
    public var keyCodes: UInt64, valueCodes: UInt64, keyScales: UInt64, valueScales: UInt64
    public var keyMeans: UInt64
    public var blockTable: UInt64
    public var lengths: UInt64

    /// Creates a view from its fields; ``validate()`` checks them.
    public init(
        layout: PagedKVCache.Layout, sequences: Int, maxPages: Int, maxLength: Int,
        keyCodes: UInt64, valueCodes: UInt64, keyScales: UInt64, valueScales: UInt64, keyMeans: UInt64,
        blockTable: UInt64, lengths: UInt64
    ) {
        self.layout = layout
        self.sequences = sequences
        self.maxPages = maxPages
        self.maxLength = maxLength
        self.keyCodes = keyCodes
        self.valueCodes = valueCodes
        self.keyScales = keyScales
        self.valueScales = valueScales
        self.keyMeans = keyMeans
        self.blockTable = blockTable
        self.lengths = lengths
    }

    /// Bytes of each buffer of a cache of this shape.
    public struct ByteCounts: Hashable, Sendable {
        public var codes: Int, scales: Int, means: Int, blockTable: Int, lengths: Int
    }

    /// Bytes of each buffer (codes and scales count one of K and V each).
    public static func byteCounts(layout: PagedKVCache.Layout, sequences: Int, maxPages: Int) -> ByteCounts {
        let slots = layout.pageCount * layout.kvHeads * layout.pageSize
        return ByteCounts(
            codes: slots * layout.headDim, scales: slots * 4, means: sequences * layout.kvHeads * layout.headDim * 4,
            blockTable: sequences * maxPages * 4, lengths: sequences * 4)
    }

    /// Checks the sizes and the addresses' alignment.
    public func validate() throws(AttentionError) {
        guard sequences >= 1, sequences <= 65_535 else {
            throw .invalidDimension(name: "sequences", value: sequences, requirement: "must be between 1 and 65535")
        }
        guard maxPages >= 1 else { throw .invalidDimension(name: "maxPages", value: maxPages, requirement: "must be at least 1") }
        guard maxLength >= 0, maxLength <= maxPages * layout.pageSize, maxLength <= Int(Int32.max) else {
            throw .invalidDimension(
                name: "maxLength", value: maxLength,
                requirement: "must be between 0 and maxPages × pageSize (\(maxPages * layout.pageSize))")
        }
        guard layout.pageCount * layout.kvHeads * layout.pageSize <= Int(Int32.max) else {
            throw .tooLarge(what: "a pool of \(layout.pageCount) pages", limit: "at most 2^31 − 1 token slots (pages × KV heads × page size)")
        }
        for (name, address, alignment) in [
            ("keyCodes", keyCodes, UInt64(16)), ("valueCodes", valueCodes, 16), ("keyScales", keyScales, 4),
            ("valueScales", valueScales, 4), ("keyMeans", keyMeans, 4), ("blockTable", blockTable, 4), ("lengths", lengths, 4),
        ] {
            try CUDAAttention.validateAlignment(address, bytes: alignment, name, what: "its address")
        }
    }
}
