import Foundation

/// Prints `records` as one JSON array on standard output.
func printJSON<Record: Encodable>(_ records: [Record]) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let data = try encoder.encode(records)
    print(String(decoding: data, as: UTF8.self))
}

/// Writes a progress line to standard error, overwriting the previous one on a terminal.
struct ProgressLine {
    private let isTerminal = isatty(STDERR_FILENO) != 0
    var enabled = true

    func update(_ text: String) {
        guard enabled else { return }
        let line = isTerminal ? "\r\u{1B}[K" + text : text + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled, isTerminal else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
