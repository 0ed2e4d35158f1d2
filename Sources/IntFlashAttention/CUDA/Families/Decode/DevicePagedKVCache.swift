import CUDADriver
import Foundation

/// A paged INT8 KV cache in device memory that owns its pool and keeps its block tables: the
/// GPU counterpart of ``PagedKVCache`` (docs/SCHEMES.md, "The INT8 KV cache").
///
/// ``CUDAAttention/append(to:keys:values:tokens:sequences:stream:)`` quantizes new tokens into it on
/// the GPU: the host takes free pages for them and uploads the new block-table entries, the
/// kernels code the tokens and advance the lengths on the device. The host keeps its own copy
/// of the lengths (an append adds its token count), which page allocation and decode's split
/// planner read. Appends and decodes of one cache must be issued from one thread at a time.
public final class DevicePagedKVCache: @unchecked Sendable {
    /// The pages' shape.
    public let layout: PagedKVCache.Layout
    /// Sequences: the batch of a decode call.
    public let sequences: Int
    /// Entries per block-table row: the most pages one sequence may own.
    public let maxPages: Int
    let keyCodes: DeviceBuffer
    let valueCodes: DeviceBuffer
    let keyScales: DeviceBuffer
    let valueScales: DeviceBuffer
    let keyMeans: DeviceBuffer
    let blockTable: DeviceBuffer
    let lengthBuffer: DeviceBuffer

    /// Host bookkeeping (the same allocator as ``PagedKVCache``'s); every access holds
    /// `lock` (hence `@unchecked Sendable`).
    private let lock = NSLock()
    private var pages: PagePool

    /// An empty cache for `sequences` sequences of at most `maxLength` tokens each (default:
    /// the whole pool) on `engine`'s device.
    public init(layout: PagedKVCache.Layout, sequences: Int, maxLength: Int? = nil, on engine: CUDAAttention) throws(AttentionError) {
        guard (1...65_535).contains(sequences) else {
            throw .invalidDimension(name: "sequences", value: sequences, requirement: "must be between 1 and 65535")
        }
        let capacity = layout.pageCount * layout.pageSize
        if let maxLength, !(1...min(capacity, Int(Int32.max))).contains(maxLength) {
            throw .invalidDimension(
                name: "maxLength", value: maxLength, requirement: "must be between 1 and the pool's \(capacity) tokens")
        }
        self.layout = layout
        self.sequences = sequences
        maxPages = ((maxLength ?? capacity) + layout.pageSize - 1) / layout.pageSize
        let bytes = PagedKVCacheView.byteCounts(layout: layout, sequences: sequences, maxPages: maxPages)
        let context = engine.context
        (keyCodes, valueCodes, keyScales, valueScales, keyMeans, blockTable, lengthBuffer) = try cuda { () throws(CUDAError) in
            let buffers = try [bytes.codes, bytes.codes, bytes.scales, bytes.scales, bytes.means, bytes.blockTable, bytes.lengths].map {
                (count) throws(CUDAError) in try DeviceBuffer(context: context, byteCount: max(count, 16))
            }
            // Codes, scales and means start as zeros (no slot holds unspecified bytes), the
            // block table as −1 (no page), the lengths as 0.
            for buffer in buffers[0..<5] { try buffer.fill(byte: 0) }
            try buffers[5].fill(byte: 0xFF)
            try buffers[6].fill(byte: 0)
            return (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5], buffers[6])
        }
        pages = PagePool(pageCount: layout.pageCount, pageSize: layout.pageSize, sequences: sequences)
    }

    /// Tokens of each sequence (the host's copy, counting every append issued).
    public var lengths: [Int] { lock.withLock { pages.lengths } }

    /// Pages not yet owned by a sequence.
    public var freePageCount: Int { lock.withLock { pages.freeCount } }

    /// Bytes of device memory the pool takes per token, over all KV heads (see
    /// ``PagedKVCache/Layout/bytesPerToken``).
    public var bytesPerToken: Int { layout.bytesPerToken }

    /// The cache's buffers as a view, with the longest sequence as its length bound.
    public func view() throws(AttentionError) -> PagedKVCacheView {
        let maxLength = lock.withLock { pages.lengths.max() ?? 0 }
        return try view(maxLength: maxLength)
    }

    private func view(maxLength: Int) throws(AttentionError) -> PagedKVCacheView {
        try cuda { () throws(CUDAError) in
            PagedKVCacheView(
                layout: layout, sequences: sequences, maxPages: maxPages, maxLength: maxLength,
                keyCodes: try keyCodes.pointer().address, valueCodes: try valueCodes.pointer().address,
                keyScales: try keyScales.pointer().address, valueScales: try valueScales.pointer().address,
                keyMeans: try keyMeans.pointer().address, blockTable: try blockTable.pointer().address,
                lengths: try lengthBuffer.pointer().address)
        }
    }

    /// Takes pages for `tokens` more tokens of each sequence in `range` and queues their
    /// block-table entries on `stream`; `issue` then queues the append's kernels on a view of
    /// those sequences, and only when it succeeds do the host's lengths advance. Throws,
    /// taking nothing, when the pool or a block-table row is too small.
    func appending(
        tokens: Int, sequences range: Range<Int>, on stream: CUDAStream, issue: (PagedKVCacheView) throws(AttentionError) -> Void
    ) throws(AttentionError) {
        lock.lock()
        defer { lock.unlock() }
        for taken in try pages.reserve(tokens: tokens, sequences: range, maxPages: maxPages) {
            try cuda { () throws(CUDAError) in
                try stream.copy(taken.pages.map { Int32($0) }, to: blockTable, byteOffset: (taken.sequence * maxPages + taken.first) * 4)
            }
        }
        var view = try view(maxLength: (range.map { pages.lengths[$0] }.max() ?? 0) + tokens)
        let start = UInt64(range.lowerBound)
        view.sequences = range.count
        view.keyMeans += start * UInt64(layout.kvHeads * layout.headDim * 4)
        view.blockTable += start * UInt64(maxPages * 4)
        view.lengths += start * 4
        try issue(view)
        pages.advance(tokens: tokens, sequences: range)
    }

    /// The pool, block tables and K means read back to the host (after the stream's work):
    /// for comparing with the CPU oracle's cache.
    public func contents() throws(AttentionError) -> (
        keyCodes: [Int8], valueCodes: [Int8], keyScales: [Float], valueScales: [Float], keyMeans: [Float], blockTables: [[Int]]
    ) {
        let tables = lock.withLock { pages.blockTables }
        let slots = layout.pageCount * layout.kvHeads * layout.pageSize
        return try cuda { () throws(CUDAError) in
            (try keyCodes.toArray(of: Int8.self, count: slots * layout.headDim),
             try valueCodes.toArray(of: Int8.self, count: slots * layout.headDim),
             try keyScales.toArray(of: Float.self, count: slots), try valueScales.toArray(of: Float.self, count: slots),
             try keyMeans.toArray(of: Float.self, count: sequences * layout.kvHeads * layout.headDim), tables)
        }
    }
}
