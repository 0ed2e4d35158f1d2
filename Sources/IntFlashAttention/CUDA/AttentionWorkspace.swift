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

/// Workspace buffers in device memory, read by kernels on any stream of one context.
struct ContextWorkspaceMemory: WorkspaceMemory {
    let context: CUDAContext
    func allocate(byteCount: Int) throws(CUDAError) -> DeviceBuffer { try DeviceBuffer(context: context, byteCount: byteCount) }
    func address(of buffer: DeviceBuffer) throws(CUDAError) -> UInt64 { try buffer.pointer().address }
    func byteCount(of buffer: DeviceBuffer) -> Int { buffer.byteCount }
    func waitForQueuedWork() throws(CUDAError) { try context.synchronize() }
}

/// The buffers of an attention call's workspace.
enum WorkspaceSlot: CaseIterable {
    case qCodes, qScales, kCodes, kScales, vCodes, vScales
    case qMean, qAmax, kMean, kAmax, vMean, vAmax
    case statsPartials
    /// The fp16 method's marks of offending inputs (the quantized form keeps them after its scales).
    case rowMarks, keyMarks
    /// Decode's fp32 partial outputs and log-sum-exps, one set per split of the keys.
    case decodePartials
    /// A packed variable-length batch padded into a dense one: its inputs, output, channel
    /// statistics and sequence offsets.
    case paddedBatch
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

/// Device memory a caller lends one call for its intermediate buffers (quantized codes and
/// scales, channel statistics, fp16 copies of bf16 inputs), so that the call allocates
/// nothing: size it with ``CUDAAttention/workspaceByteCount(_:problem:inputType:)``. The
/// call's kernels use it until they finish on the call's stream.
public struct DeviceWorkspace: Sendable, Hashable {
    /// Device address of the first byte.
    public var address: UInt64
    /// Bytes available from `address`.
    public var byteCount: Int

    /// Lends `byteCount` bytes of device memory at `address`.
    public init(address: UInt64, byteCount: Int) {
        self.address = address
        self.byteCount = byteCount
    }

    /// Slot offsets are multiples of this (and the address is rounded up to it first).
    static let alignment = 256

    /// The address of each requested slot, laid out in order; throws when it does not fit.
    func addresses(for requests: [(WorkspaceSlot, Int)]) throws(AttentionError) -> [WorkspaceSlot: UInt64] {
        let required = Self.byteCount(for: requests)
        guard required <= byteCount else { throw .workspaceTooSmall(required: required, provided: byteCount) }
        let a = UInt64(Self.alignment)
        var next = (address + a - 1) / a * a
        var result: [WorkspaceSlot: UInt64] = [:]
        for (slot, bytes) in requests {
            result[slot] = next
            next += UInt64((bytes + Self.alignment - 1) / Self.alignment * Self.alignment)
        }
        return result
    }

    /// Bytes that hold `requests` at any address (alignment slack included).
    static func byteCount(for requests: [(WorkspaceSlot, Int)]) -> Int {
        guard !requests.isEmpty else { return 0 }
        return requests.reduce(alignment) { $0 + ($1.1 + alignment - 1) / alignment * alignment }
    }
}
