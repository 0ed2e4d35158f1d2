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

/// An error whose description is the whole message shown to the user.
struct ValidationFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
