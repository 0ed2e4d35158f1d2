/// The pages of a paged KV cache's pool and, per sequence, the pages it owns in token order
/// and its length: the one allocator of ``PagedKVCache`` (host) and ``DevicePagedKVCache``
/// (device), so that a device cache filled like the oracle holds every token in the same slot.
struct PagePool: Sendable {
    let pageSize: Int
    /// Per sequence, the pages it owns, in token order.
    private(set) var blockTables: [[Int]]
    /// Per sequence, the tokens stored.
    private(set) var lengths: [Int]
    /// Pages no sequence owns; the next one taken is the last.
    private var free: [Int]

    init(pageCount: Int, pageSize: Int, sequences: Int) {
        self.pageSize = pageSize
        blockTables = Array(repeating: [], count: sequences)
        lengths = Array(repeating: 0, count: sequences)
        free = Array((0..<pageCount).reversed())
    }

    var freeCount: Int { free.count }

    /// Takes the pages that `tokens` more tokens of each sequence in `sequences` need, a
    /// sequence owning at most `maxPages`; returns, per sequence that grows, the index of its
    /// first new block-table entry and the pages taken. Throws, taking nothing, when a row or
    /// the pool is too small. The lengths do not change until ``advance(tokens:sequences:)``.
    mutating func reserve(
        tokens: Int, sequences: Range<Int>, maxPages: Int = .max
    ) throws(AttentionError) -> [(sequence: Int, first: Int, pages: [Int])] {
        let needed = sequences.map { (lengths[$0] + tokens + pageSize - 1) / pageSize }
        if let longest = needed.max(), longest > maxPages {
            throw .invalidDimension(
                name: "tokens", value: tokens, requirement: "a sequence would need \(longest) pages; its block-table row holds \(maxPages)")
        }
        let missing = zip(sequences, needed).reduce(0) { $0 + max(0, $1.1 - blockTables[$1.0].count) }
        guard missing <= free.count else {
            throw .invalidDimension(
                name: "tokens", value: tokens,
                requirement: "needs \(missing) more pages of \(pageSize) tokens; the pool has \(free.count) free")
        }
        var taken: [(sequence: Int, first: Int, pages: [Int])] = []
        for (sequence, count) in zip(sequences, needed) where count > blockTables[sequence].count {
            let first = blockTables[sequence].count
            let pages = (first..<count).map { _ in free.removeLast() }
            blockTables[sequence] += pages
            taken.append((sequence, first, pages))
        }
        return taken
    }

    /// Counts `tokens` more tokens stored in each sequence of `sequences`.
    mutating func advance(tokens: Int, sequences: Range<Int>) {
        for sequence in sequences { lengths[sequence] += tokens }
    }
}
