/// A host tensor of logical shape [batch, heads, tokens, headDim] in fp16, bf16 or fp32,
/// stored contiguously in one of the two layouts.
public struct AttentionTensor: Sendable {
    /// The elements, in `layout` order.
    public enum Storage: Sendable {
        /// fp16 elements.
        case float16([Float16])
        /// bf16 elements.
        case bfloat16([BFloat16])
        /// fp32 elements.
        case float32([Float])
    }

    /// The elements, in `layout` order.
    public var storage: Storage
    /// Batch size (B).
    public var batch: Int
    /// Heads (H or Hkv).
    public var heads: Int
    /// Tokens in the sequence (N).
    public var tokens: Int
    /// Channels per head (D).
    public var headDim: Int
    /// Memory order of the elements.
    public var layout: TensorLayout

    /// Wraps existing storage; throws when its count does not match the shape.
    public init(
        storage: Storage, batch: Int, heads: Int, tokens: Int, headDim: Int, layout: TensorLayout = .bhnd
    ) throws(AttentionError) {
        self.storage = storage
        self.batch = batch
        self.heads = heads
        self.tokens = tokens
        self.headDim = headDim
        self.layout = layout
        let expected = batch * heads * tokens * headDim
        if storage.count != expected {
            throw .shapeMismatch(
                tensor: "tensor", expected: "\(expected) elements (\(shapeDescription))",
                actual: "\(storage.count) elements")
        }
    }

    /// Rounds `values` (in `layout` order) to `elementType`.
    public init(
        converting values: [Float], to elementType: ElementType,
        batch: Int, heads: Int, tokens: Int, headDim: Int, layout: TensorLayout = .bhnd
    ) throws(AttentionError) {
        let storage: Storage
        switch elementType {
        case .float16: storage = .float16(values.map { Float16($0) })
        case .bfloat16: storage = .bfloat16(values.map { BFloat16($0) })
        case .float32: storage = .float32(values)
        }
        try self.init(storage: storage, batch: batch, heads: heads, tokens: tokens, headDim: headDim, layout: layout)
    }

    /// The element type of `storage`.
    public var elementType: ElementType {
        switch storage {
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        case .float32: return .float32
        }
    }

    /// Number of elements.
    public var count: Int { storage.count }

    /// The shape in memory order and the layout, e.g. `[1, 16, 128, 64] (bhnd)`, for messages.
    public var shapeDescription: String {
        let dims = layout == .bhnd ? [batch, heads, tokens, headDim] : [batch, tokens, heads, headDim]
        return "[" + dims.map(String.init).joined(separator: ", ") + "] (\(layout.rawValue))"
    }

    /// Element strides of this shape in `layout`.
    public var strides: TensorStrides { layout.strides(heads: heads, tokens: tokens, headDim: headDim) }

    /// The elements widened to fp32, in `layout` order.
    public func floats() -> [Float] {
        switch storage {
        case let .float16(values): return values.map { Float($0) }
        case let .bfloat16(values): return values.map(\.float)
        case let .float32(values): return values
        }
    }

    /// The elements widened to fp32 in [batch, heads, tokens, headDim] order.
    public func floatsBHND() -> [Float] {
        let values = floats()
        guard layout != .bhnd else { return values }
        return TensorLayout.bnhd.reorder(values, to: .bhnd, batch: batch, heads: heads, tokens: tokens, headDim: headDim)
    }

    /// Throws `nonFiniteInput` naming `name` at the first NaN or ±Inf.
    public func validateFinite(name: String) throws(AttentionError) {
        let index: Int?
        switch storage {
        case let .float16(values): index = values.firstIndex { !$0.isFinite }
        case let .bfloat16(values): index = values.firstIndex { !$0.float.isFinite }
        case let .float32(values): index = values.firstIndex { !$0.isFinite }
        }
        if let index { throw .nonFiniteInput(tensor: name, index: index) }
    }
}

extension AttentionTensor.Storage {
    /// Number of elements stored.
    public var count: Int {
        switch self {
        case let .float16(values): return values.count
        case let .bfloat16(values): return values.count
        case let .float32(values): return values.count
        }
    }
}

extension TensorLayout {
    /// Copies a [batch, heads, tokens, headDim] tensor stored in `self` order into `target` order.
    public func reorder<T>(_ values: [T], to target: TensorLayout, batch: Int, heads: Int, tokens: Int, headDim: Int) -> [T] {
        guard self != target, !values.isEmpty else { return values }
        let from = strides(heads: heads, tokens: tokens, headDim: headDim)
        let to = target.strides(heads: heads, tokens: tokens, headDim: headDim)
        var result = values
        for b in 0..<batch {
            for h in 0..<heads {
                for n in 0..<tokens {
                    let src = from.offset(batch: b, head: h, token: n)
                    let dst = to.offset(batch: b, head: h, token: n)
                    for d in 0..<headDim { result[dst + d] = values[src + d] }
                }
            }
        }
        return result
    }
}
