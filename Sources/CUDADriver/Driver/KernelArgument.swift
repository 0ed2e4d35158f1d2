/// A value that can be passed to a kernel parameter: its bytes are copied at launch.
///
/// Conforming types: `Int32`, `UInt32`, `Int64`, `UInt64`, `Float`, `Double`, `Int16`,
/// `UInt16`, `Int8`, `UInt8`, ``DevicePointer``, ``DeviceBuffer`` (its base address) and
/// ``KernelStruct`` (any plain struct by value). Swift's `Int` deliberately does not
/// conform: a kernel's `int` is 32 bits, and silently passing 64 would shift every later
/// parameter.
public protocol KernelArgument {
    /// The parameter's bytes and the alignment the kernel expects for them.
    var kernelArgumentBytes: KernelArgumentBytes { get }
}

/// The bytes of one kernel parameter, copied so the argument's lifetime does not matter.
public struct KernelArgumentBytes: Sendable, Equatable {
    /// The value's bytes, as laid out in memory.
    public var bytes: [UInt8]
    /// The value's alignment in bytes.
    public var alignment: Int

    /// Copies the bytes of `value`.
    public init<T: BitwiseCopyable>(copying value: T) {
        bytes = Swift.withUnsafeBytes(of: value) { Array($0) }
        alignment = MemoryLayout<T>.alignment
    }

    /// The given bytes, with their alignment.
    public init(bytes: [UInt8], alignment: Int) {
        self.bytes = bytes
        self.alignment = alignment
    }
}

/// A C struct of one fixed-size array (`struct { T value[count]; }`) passed by value: the
/// given elements, then zeros up to `count`. How a kernel takes a short table (a batch's
/// offsets, say) in its parameters, with no device memory to fill first.
public struct KernelArray<Element: BitwiseCopyable>: KernelArgument {
    /// The elements; at most `count` of them are passed.
    public var elements: [Element]
    /// The array's length in the kernel's struct.
    public var count: Int

    /// `elements`, zero-filled to `count`.
    public init(_ elements: [Element], count: Int) {
        self.elements = elements
        self.count = count
    }

    public var kernelArgumentBytes: KernelArgumentBytes {
        let size = count * MemoryLayout<Element>.stride
        var bytes = elements.prefix(count).withUnsafeBytes { Array($0) }
        bytes += [UInt8](repeating: 0, count: size - bytes.count)
        return KernelArgumentBytes(bytes: bytes, alignment: MemoryLayout<Element>.alignment)
    }
}

extension KernelArgument where Self: BitwiseCopyable {
    /// The value's own bytes and alignment.
    public var kernelArgumentBytes: KernelArgumentBytes { KernelArgumentBytes(copying: self) }
}

extension Int8: KernelArgument {}
extension UInt8: KernelArgument {}
extension Int16: KernelArgument {}
extension UInt16: KernelArgument {}
extension Int32: KernelArgument {}
extension UInt32: KernelArgument {}
extension Int64: KernelArgument {}
extension UInt64: KernelArgument {}
extension Float: KernelArgument {}
extension Double: KernelArgument {}

/// A device address passed as a kernel's `T*` parameter.
public struct DevicePointer: KernelArgument, BitwiseCopyable, Sendable, Hashable {
    /// The raw device address (`CUdeviceptr`).
    public var address: UInt64

    /// Wraps a device address.
    public init(address: UInt64) {
        self.address = address
    }

    /// The address as a 64-bit pointer parameter.
    public var kernelArgumentBytes: KernelArgumentBytes { KernelArgumentBytes(copying: address) }
}

extension DeviceBuffer: KernelArgument {
    /// The buffer's base address as a pointer parameter.
    public var kernelArgumentBytes: KernelArgumentBytes { KernelArgumentBytes(copying: address) }
}

/// A plain struct passed to a kernel by value, e.g. a flat parameter block.
///
/// The Swift struct must mirror the kernel's C struct field for field: Swift lays out a
/// struct of scalars in declaration order with natural alignment, as C does, but add
/// explicit padding fields where the C side has them and check `MemoryLayout<T>.size`.
public struct KernelStruct<T: BitwiseCopyable>: KernelArgument {
    /// The struct passed by value.
    public var value: T

    /// Wraps `value`.
    public init(_ value: T) {
        self.value = value
    }

    /// The struct's bytes, with its alignment.
    public var kernelArgumentBytes: KernelArgumentBytes { KernelArgumentBytes(copying: value) }
}

/// Copies each argument's bytes into its own aligned heap block and hands `body` the
/// `void**` array `cuLaunchKernel` wants; the blocks are freed when `body` returns
/// (the driver copies parameter values at launch).
func withKernelParameterArray<R>(
    _ arguments: [any KernelArgument],
    _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> R
) -> R {
    let packed = arguments.map(\.kernelArgumentBytes)
    var blocks: [UnsafeMutableRawPointer?] = []
    blocks.reserveCapacity(packed.count)
    defer { blocks.forEach { $0?.deallocate() } }
    for argument in packed {
        let block = UnsafeMutableRawPointer.allocate(
            byteCount: max(argument.bytes.count, 1), alignment: max(argument.alignment, 1))
        argument.bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { block.copyMemory(from: base, byteCount: source.count) }
        }
        blocks.append(block)
    }
    if blocks.isEmpty { return body(nil) }
    return blocks.withUnsafeMutableBufferPointer { body($0.baseAddress) }
}
