import CUDADriver

/// Where workspace buffers come from, and how to wait for the work that reads them.
protocol WorkspaceMemory {
    /// Freed when the last reference goes.
    associatedtype Buffer: AnyObject
    func allocate(byteCount: Int) throws(CUDAError) -> Buffer
    func address(of buffer: Buffer) throws(CUDAError) -> UInt64
    func byteCount(of buffer: Buffer) -> Int
    /// Returns once every queued kernel that may read a workspace buffer has finished.
    func waitForQueuedWork() throws(CUDAError)
}

/// Workspace buffers in device memory, read by kernels queued on one stream.
struct StreamWorkspaceMemory: WorkspaceMemory {
    let context: CUDAContext
    let stream: CUDAStream
    func allocate(byteCount: Int) throws(CUDAError) -> DeviceBuffer { try DeviceBuffer(context: context, byteCount: byteCount) }
    func address(of buffer: DeviceBuffer) throws(CUDAError) -> UInt64 { try buffer.pointer().address }
    func byteCount(of buffer: DeviceBuffer) -> Int { buffer.byteCount }
    func waitForQueuedWork() throws(CUDAError) { try stream.synchronize() }
}

/// The buffers of an attention call's workspace.
enum WorkspaceSlot: CaseIterable {
    case qCodes, qScales, kCodes, kScales, vCodes, vScales
    case qMean, qAmax, kMean, kAmax, vMean, vAmax
    case statsPartials
}

/// Device memory an attention call needs besides its inputs and output: the quantized
/// codes and scales, per-channel statistics, and fp16 copies of bf16 inputs. Buffers grow
/// to the largest problem seen and are reused, so repeated calls allocate nothing.
final class AttentionWorkspace<Memory: WorkspaceMemory> {
    typealias Slot = WorkspaceSlot

    private let memory: Memory
    private var buffers: [Slot: Memory.Buffer] = [:]

    init(memory: Memory) { self.memory = memory }

    /// The address of `slot`, holding at least `byteCount` bytes. Growing a slot first waits
    /// for the queued work: an earlier call's kernels may still read the buffer it replaces.
    func address(_ slot: Slot, byteCount: Int) throws(CUDAError) -> UInt64 {
        if let buffer = buffers[slot] {
            if memory.byteCount(of: buffer) >= byteCount { return try memory.address(of: buffer) }
            try memory.waitForQueuedWork()
            buffers[slot] = nil  // free the smaller buffer before allocating its replacement
        }
        let buffer = try memory.allocate(byteCount: max(byteCount, 256))
        buffers[slot] = buffer
        return try memory.address(of: buffer)
    }
}
