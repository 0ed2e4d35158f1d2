import CUDADriver

/// A paged INT8 KV cache in device memory, in ``PagedKVCache``'s layout (docs/SCHEMES.md, "The
/// INT8 KV cache"): every page's K and V codes and per-token scales, the sequences' block
/// tables (padded to the longest) and their lengths. What decode attention reads.
public final class DevicePagedKVCache: @unchecked Sendable {
    /// The pages' shape.
    public let layout: PagedKVCache.Layout
    /// Tokens of each sequence, as on the host.
    public let lengths: [Int]
    /// Entries per block-table row: the most pages any sequence owns (at least 1).
    public let maxPages: Int
    let keyCodes: DeviceBuffer
    let valueCodes: DeviceBuffer
    let keyScales: DeviceBuffer
    let valueScales: DeviceBuffer
    let blockTable: DeviceBuffer
    let lengthBuffer: DeviceBuffer

    /// Copies `cache` (its pages, block tables and lengths) to `engine`'s device.
    public init(copying cache: PagedKVCache, on engine: CUDAAttention) throws(AttentionError) {
        layout = cache.layout
        lengths = cache.lengths
        let pages = max(1, cache.blockTables.map(\.count).max() ?? 1)
        maxPages = pages
        var table = [Int32](repeating: 0, count: cache.blockTables.count * pages)
        for (sequence, row) in cache.blockTables.enumerated() {
            for (index, page) in row.enumerated() { table[sequence * pages + index] = Int32(page) }
        }
        let context = engine.context
        (keyCodes, valueCodes, keyScales, valueScales, blockTable, lengthBuffer) = try cuda { () throws(CUDAError) in
            (try DeviceBuffer(context: context, copying: cache.keyCodes), try DeviceBuffer(context: context, copying: cache.valueCodes),
             try DeviceBuffer(context: context, copying: cache.keyScales), try DeviceBuffer(context: context, copying: cache.valueScales),
             try DeviceBuffer(context: context, copying: table),
             try DeviceBuffer(context: context, copying: cache.lengths.map { Int32($0) }))
        }
    }

    /// Sequences in the cache: the batch of a decode call.
    public var sequences: Int { lengths.count }
}
