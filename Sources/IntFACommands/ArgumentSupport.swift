import ArgumentParser
import IntFlashAttention

extension AttentionMethod: ExpressibleByArgument {}
extension InputDistribution: ExpressibleByArgument {}
extension TensorLayout: ExpressibleByArgument {}

/// Parses comma-separated lists such as `--seqlen 1024,2048`.
struct CommaSeparated<Element: ExpressibleByArgument & Sendable>: ExpressibleByArgument, Sendable {
    var values: [Element]

    init(_ values: [Element]) { self.values = values }

    init?(argument: String) {
        var values: [Element] = []
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            guard let value = Element(argument: part.trimmingCharacters(in: .whitespaces)) else { return nil }
            values.append(value)
        }
        guard !values.isEmpty else { return nil }
        self.values = values
    }

    var defaultValueDescription: String { values.map { "\($0)" }.joined(separator: ",") }
}

/// Turns a library error into a clean command-line failure (message, exit code 1).
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as AttentionError {
        throw ValidationFailure(message: error.description)
    }
}

/// The GPU engine of `device`, or a one-line failure: the driver's and NVRTC's search reports
/// run to many lines, which `intfa info` prints in full.
func openDevice(_ device: Int) throws -> CUDAAttention {
    do {
        return try CUDAAttention(device: device)
    } catch {
        let lines = error.description.split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.count > 1, var summary = lines.first.map(String.init) else {
            throw ValidationFailure(message: error.description)
        }
        // The loaders' reports end their first line with "; looked in:" before the list.
        if summary.hasSuffix("; looked in:") { summary.removeLast("; looked in:".count) }
        throw ValidationFailure(message: summary + " (intfa info shows where it looked)")
    }
}

/// An error whose description is the whole message shown to the user.
struct ValidationFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
