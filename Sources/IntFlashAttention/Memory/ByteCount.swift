/// A number of bytes as messages show it: exact, then in binary units, e.g.
/// `34359738400 bytes (32.0 GiB)`.
struct ByteCount: CustomStringConvertible {
    var bytes: Int

    init(_ bytes: Int) { self.bytes = bytes }

    var description: String {
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes), unit = -1
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        guard unit >= 0 else { return "\(bytes) bytes" }
        let rounded = (value * 10).rounded() / 10
        return "\(bytes) bytes (\(rounded) \(units[unit]))"
    }
}
