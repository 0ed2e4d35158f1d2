import Foundation

/// Reads and writes NumPy `.npy` files holding attention tensors: little-endian fp16 or fp32,
/// C order, shape [H, N, D] (batch 1) or [B, H, N, D].
public enum NPYFile {
    private static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// Loads `path` as a BHND tensor.
    public static func read(path: String) throws(AttentionError) -> AttentionTensor {
        guard FileManager.default.fileExists(atPath: path) else { throw .io(path: path, reason: "no such file") }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try parse([UInt8](data), path: path)
    }

    /// Parses the bytes of a `.npy` file; `path` only names the file in errors.
    public static func parse(_ bytes: [UInt8], path: String) throws(AttentionError) -> AttentionTensor {
        func fail(_ reason: String) -> AttentionError { .malformedNPY(path: path, reason: reason) }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw fail("missing the NPY magic bytes") }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw fail("unsupported format version \(major)")
        }
        let dataStart = headerStart + headerLength
        guard bytes.count >= dataStart,
              let header = String(bytes: bytes[headerStart..<dataStart], encoding: .utf8)
        else { throw fail("truncated header") }

        let descr = try field("descr", in: header, path: path)
        let elementType: ElementType
        switch descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")) {
        case "<f2", "|f2", "=f2": elementType = .float16
        case "<f4", "=f4": elementType = .float32
        case let other: throw fail("dtype \(other) is not supported (use little-endian float16 or float32)")
        }
        let order = try field("fortran_order", in: header, path: path)
        guard order.hasPrefix("False") else { throw fail("Fortran-ordered arrays are not supported") }
        let shapeText = try field("shape", in: header, path: path)
        let shape = try parseShape(shapeText, path: path)
        guard shape.count == 3 || shape.count == 4 else {
            throw fail("shape \(shape) has rank \(shape.count); expected [H, N, D] or [B, H, N, D]")
        }
        let dims = shape.count == 3 ? [1] + shape : shape
        // A header may claim any shape: sizes are checked before they are trusted.
        guard let count = CheckedSize.product(dims), let byteCount = CheckedSize.product(count, elementType.size) else {
            throw fail("shape \(shape) has more elements than memory can hold")
        }
        guard bytes.count - dataStart >= byteCount else {
            throw fail("truncated data: \(bytes.count - dataStart) bytes for \(count) elements of \(elementType.size) bytes")
        }
        let payload = bytes[dataStart..<(dataStart + byteCount)]
        let storage: AttentionTensor.Storage = payload.withUnsafeBytes { raw in
            if elementType == .float16 {
                return .float16((0..<count).map { Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian) })
            }
            return .float32((0..<count).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) })
        }
        return try AttentionTensor(storage: storage, batch: dims[0], heads: dims[1], tokens: dims[2], headDim: dims[3])
    }

    /// Encodes a tensor (its own layout's dims, fp16 or fp32; bf16 is widened to fp32) as `.npy` bytes.
    public static func encode(_ tensor: AttentionTensor) -> [UInt8] {
        let dims = tensor.layout == .bhnd
            ? [tensor.batch, tensor.heads, tensor.tokens, tensor.headDim]
            : [tensor.batch, tensor.tokens, tensor.heads, tensor.headDim]
        let descr = tensor.elementType == .float16 ? "<f2" : "<f4"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims.map(String.init).joined(separator: ", ")),), }"
        // Pad so the data starts on a 64-byte boundary, ending with a newline.
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes = magic + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        switch tensor.storage {
        case let .float16(values):
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        case .bfloat16, .float32:
            for v in tensor.floats() { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        }
        return bytes
    }

    private static func field(_ key: String, in header: String, path: String) throws(AttentionError) -> String {
        guard let range = header.range(of: "'\(key)':") ?? header.range(of: "\"\(key)\":") else {
            throw .malformedNPY(path: path, reason: "header has no '\(key)' field")
        }
        let rest = header[range.upperBound...].drop { $0 == " " }
        if key == "shape" {
            guard let close = rest.firstIndex(of: ")") else {
                throw .malformedNPY(path: path, reason: "unterminated shape")
            }
            return String(rest[...close])
        }
        return String(rest.prefix { $0 != "," && $0 != "}" })
    }

    private static func parseShape(_ text: String, path: String) throws(AttentionError) -> [Int] {
        let inner = text.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
        var dims: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let value = Int(trimmed), value >= 0 else {
                throw .malformedNPY(path: path, reason: "bad shape \(text)")
            }
            dims.append(value)
        }
        return dims
    }
}
