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
}
