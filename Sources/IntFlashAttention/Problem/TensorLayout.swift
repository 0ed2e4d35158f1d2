/// Memory order of a Q, K, V or O tensor of logical shape [batch, heads, tokens, headDim].
public enum TensorLayout: String, CaseIterable, Sendable, Hashable, Codable {
    /// [batch, heads, tokens, headDim], head-major (PyTorch's SDPA layout).
    case bhnd
    /// [batch, tokens, heads, headDim], token-major (FlashAttention's layout).
    case bnhd

    /// Element strides (batch, head, token), the head dim being contiguous.
    public func strides(heads: Int, tokens: Int, headDim: Int) -> TensorStrides {
        switch self {
        case .bhnd:
            return TensorStrides(batch: heads * tokens * headDim, head: tokens * headDim, token: headDim)
        case .bnhd:
            return TensorStrides(batch: tokens * heads * headDim, head: headDim, token: heads * headDim)
        }
    }
}

/// Element strides of a [batch, heads, tokens, headDim] tensor whose head dim is contiguous.
public struct TensorStrides: Hashable, Sendable {
    /// Elements between batches.
    public var batch: Int
    /// Elements between heads.
    public var head: Int
    /// Elements between tokens.
    public var token: Int

    /// Creates strides from their fields.
    public init(batch: Int, head: Int, token: Int) {
        self.batch = batch
        self.head = head
        self.token = token
    }

    /// Offset of element (b, h, n, 0).
    @inlinable
    public func offset(batch b: Int, head h: Int, token n: Int) -> Int {
        b * batch + h * head + n * token
    }

    /// Elements from the first element of a [batch, heads, tokens, headDim] tensor at these
    /// strides (head dim contiguous) to one past its last: the span a caller's memory must
    /// cover. 0 for an empty shape; nil when it does not fit in `Int` or a stride is negative.
    public func span(batch b: Int, heads h: Int, tokens n: Int, headDim d: Int) -> Int? {
        guard b >= 0, h >= 0, n >= 0, d >= 0, batch >= 0, head >= 0, token >= 0 else { return nil }
        if b == 0 || h == 0 || n == 0 || d == 0 { return 0 }
        guard let byBatch = CheckedSize.product(batch, b - 1), let byHead = CheckedSize.product(head, h - 1),
              let byToken = CheckedSize.product(token, n - 1), let span = CheckedSize.sum(byBatch, byHead, byToken, d)
        else { return nil }
        return span
    }
}
