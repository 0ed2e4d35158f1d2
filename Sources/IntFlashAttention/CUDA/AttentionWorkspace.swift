import CUDADriver

/// Device memory an attention call needs besides its inputs and output: the quantized
/// codes and scales, per-channel statistics, and fp16 copies of bf16 inputs. Buffers grow
/// to the largest problem seen and are reused, so repeated calls allocate nothing.
final class AttentionWorkspace {
    enum Slot: CaseIterable {
        case qCodes, qScales, kCodes, kScales, vCodes, vScales
        case qMean, qAmax, kMean, kAmax, vMean, vAmax
        case statsPartials
    }

    private let context: CUDAContext
    private var buffers: [Slot: DeviceBuffer] = [:]

    init(context: CUDAContext) { self.context = context }

    /// The address of `slot`, holding at least `byteCount` bytes.
    func address(_ slot: Slot, byteCount: Int) throws(CUDAError) -> UInt64 {
        if let buffer = buffers[slot], buffer.byteCount >= byteCount {
            return try buffer.pointer().address
        }
        buffers[slot] = nil  // free the smaller buffer before allocating its replacement
        let buffer = try DeviceBuffer(context: context, byteCount: max(byteCount, 256))
        buffers[slot] = buffer
        return try buffer.pointer().address
    }
}
