import Foundation

// Usage: KernelSourceEmbedder OUTPUT.swift SOURCE...
// Writes `enum EmbeddedKernelSources` with one raw string per source file, keyed by
// file name, so `#include "x.cuh"` can be resolved from memory at compile time.
let arguments = CommandLine.arguments.dropFirst()
guard let outputPath = arguments.first else {
    FileHandle.standardError.write(Data("usage: KernelSourceEmbedder OUTPUT SOURCE...\n".utf8))
    exit(2)
}
var swift = "// Generated from the CUDA sources of this target. Do not edit.\n\n"
swift += "enum EmbeddedKernelSources {\n    static let files: [String: String] = [\n"
for path in arguments.dropFirst() {
    let url = URL(fileURLWithPath: path)
    let text: String
    do {
        text = try String(contentsOf: url, encoding: .utf8)
    } catch {
        FileHandle.standardError.write(Data("cannot read \(path): \(error)\n".utf8))
        exit(1)
    }
    // A raw string whose delimiter cannot occur in the source.
    var hashes = "#"
    while text.contains("\"" + hashes) { hashes += "#" }
    swift += "        \"\(url.lastPathComponent)\": \(hashes)\"\"\"\n\(text)\n\"\"\"\(hashes),\n"
}
swift += "    ]\n}\n"
do {
    try swift.write(toFile: outputPath, atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("cannot write \(outputPath): \(error)\n".utf8))
    exit(1)
}
