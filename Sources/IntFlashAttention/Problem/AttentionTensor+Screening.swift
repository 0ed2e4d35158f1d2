/// The non-finite contract (``InputScreen``) on tensors in their own element type and
/// layout, for paths that hand the tensors on as they are (the GPU's host-tensor path).
extension AttentionTensor {
    /// This tensor with every element whose magnitude is not below `limit` (NaN included)
    /// replaced by 0.
    func zeroingOutside(limit: Float) -> AttentionTensor {
        var copy = self
        switch storage {
        case let .float16(values): copy.storage = .float16(values.map { abs(Float($0)) < limit ? $0 : 0 })
        case let .bfloat16(values): copy.storage = .bfloat16(values.map { abs($0.float) < limit ? $0 : BFloat16(0) })
        case let .float32(values): copy.storage = .float32(values.map { abs($0) < limit ? $0 : 0 })
        }
        return copy
    }

    /// Writes NaN into every row (b, h, n) whose index in [B·H·N] (BHND order) `reached`
    /// accepts.
    mutating func fillRowsWithNaN(where reached: (Int) -> Bool) {
        let s = strides, d = headDim
        let rows = (0..<(batch * heads * tokens)).filter(reached)
        guard !rows.isEmpty else { return }
        func offsets(_ row: Int) -> Range<Int> {
            let start = s.offset(batch: row / (heads * tokens), head: row / tokens % heads, token: row % tokens)
            return start..<(start + d)
        }
        switch storage {
        case var .float16(values):
            for row in rows { for i in offsets(row) { values[i] = .nan } }
            storage = .float16(values)
        case var .bfloat16(values):
            for row in rows { for i in offsets(row) { values[i] = BFloat16(Float.nan) } }
            storage = .bfloat16(values)
        case var .float32(values):
            for row in rows { for i in offsets(row) { values[i] = .nan } }
            storage = .float32(values)
        }
    }
}
