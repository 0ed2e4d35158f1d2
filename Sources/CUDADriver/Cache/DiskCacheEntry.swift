import Foundation

/// The on-disk form of a cached kernel:
///
///     magic "INTFAKC1" (8 bytes) | format version UInt32 LE | payload length UInt64 LE
///     | SHA-256 of payload (32 bytes) | payload
///     payload = metadata length UInt64 LE | metadata JSON | cubin bytes
///
/// The checksum catches truncation and bit flips; the key digest inside the metadata
/// catches a file that was renamed or copied to the wrong name.
enum DiskCacheEntry {
    static let magic: [UInt8] = Array("INTFAKC1".utf8)
    static let formatVersion: UInt32 = 1
    static let headerSize = 8 + 4 + 8 + 32

    private struct Metadata: Codable {
        var keyDigest: String
        var architecture: String
        var log: String
        var report: PtxasReport
        var loweredNames: [String: String]
    }

    /// Why an entry could not be used.
    struct Corrupt: Error {
        let reason: String
    }

    static func encode(_ kernel: CompiledKernel, key: KernelCacheKey) throws -> [UInt8] {
        let metadata = Metadata(
            keyDigest: key.digest, architecture: kernel.architecture, log: kernel.log,
            report: kernel.report, loweredNames: kernel.loweredNames)
        let json = try JSONEncoder().encode(metadata)
        var payload = littleEndianBytes(UInt64(json.count))
        payload += json
        payload += kernel.cubin

        var entry = magic
        entry += littleEndianBytes(formatVersion)
        entry += littleEndianBytes(UInt64(payload.count))
        entry += SHA256.hash(payload)
        entry += payload
        return entry
    }

    static func decode(_ bytes: [UInt8], key: KernelCacheKey) throws(Corrupt) -> CompiledKernel {
        guard bytes.count >= headerSize else { throw Corrupt(reason: "shorter than its header") }
        guard Array(bytes[0..<8]) == magic else { throw Corrupt(reason: "bad magic") }
        guard readLittleEndian(bytes, at: 8, as: UInt32.self) == formatVersion else {
            throw Corrupt(reason: "format version differs")
        }
        let payloadLength = readLittleEndian(bytes, at: 12, as: UInt64.self)
        guard payloadLength == UInt64(bytes.count - headerSize) else {
            throw Corrupt(reason: "length \(bytes.count - headerSize) differs from recorded \(payloadLength)")
        }
        let payload = Array(bytes[headerSize...])
        guard SHA256.hash(payload) == Array(bytes[20..<52]) else { throw Corrupt(reason: "checksum mismatch") }

        guard payload.count >= 8 else { throw Corrupt(reason: "payload too short") }
        let metadataLength = readLittleEndian(payload, at: 0, as: UInt64.self)
        guard metadataLength <= UInt64(payload.count - 8) else { throw Corrupt(reason: "metadata length out of range") }
        let metadataEnd = 8 + Int(metadataLength)
        let metadata: Metadata
        do {
            metadata = try JSONDecoder().decode(Metadata.self, from: Data(payload[8..<metadataEnd]))
        } catch {
            throw Corrupt(reason: "metadata unreadable: \(error)")
        }
        guard metadata.keyDigest == key.digest else { throw Corrupt(reason: "entry belongs to another key") }
        return CompiledKernel(
            cubin: Array(payload[metadataEnd...]), log: metadata.log, report: metadata.report,
            architecture: metadata.architecture, loweredNames: metadata.loweredNames)
    }

    private static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    private static func readLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as: T.Type) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size {
            value |= T(bytes[offset + index]) << (8 * index)
        }
        return value
    }
}
