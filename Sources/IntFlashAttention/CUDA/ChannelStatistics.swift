/// Channel statistics a caller supplies instead of having ``CUDAAttention`` measure them, so
/// that shards of one sequence quantize exactly as the whole sequence would (context
/// parallelism: reduce each shard's sums and maxima across ranks first). fp32 [B, Hkv, D]
/// device buffers, contiguous.
public struct ChannelStatistics: Sendable, Hashable {
    /// K's mean over all tokens per channel: what the `int8` scheme's smoothing subtracts.
    public var keyMean: UInt64
    /// V's max |v| over all tokens per channel: the amax of V's per-channel (or, for
    /// `int8-paper`, per-tensor) scales.
    public var valueAmax: UInt64

    /// Creates statistics from the two device addresses.
    public init(keyMean: UInt64, valueAmax: UInt64) {
        self.keyMean = keyMean
        self.valueAmax = valueAmax
    }
}
