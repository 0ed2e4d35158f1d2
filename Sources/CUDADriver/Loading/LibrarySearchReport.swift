/// One place where a library was looked for, and what happened there.
public struct LibrarySearchAttempt: Sendable, Equatable, CustomStringConvertible {
    /// What happened at one place.
    public enum Outcome: Sendable, Equatable {
        /// The library was loaded from here and has every symbol needed.
        case loaded
        /// Nothing to load here (missing folder or file, or an empty environment variable).
        case notFound(String)
        /// A file was there but `dlopen` refused it; the associated text is `dlerror()`'s.
        case loadFailed(String)
        /// The library loaded but lacks a required symbol (too old, or the wrong library).
        case missingSymbol(String)
    }

    /// The place, e.g. `INTFA_NVRTC=/x: /x/libnvrtc.so.13` or `libcuda.so.1 (loader path)`.
    public var place: String
    /// What happened there.
    public var outcome: Outcome

    /// Creates an attempt from its fields.
    public init(place: String, outcome: Outcome) {
        self.place = place
        self.outcome = outcome
    }

    /// `place: outcome`, one line for reports.
    public var description: String {
        switch outcome {
        case .loaded: return "\(place): loaded"
        case let .notFound(why): return "\(place): not found (\(why))"
        case let .loadFailed(text): return "\(place): dlopen failed: \(text)"
        case let .missingSymbol(name): return "\(place): missing symbol \(name)"
        }
    }
}

/// The full story of one library search: where the library came from, if anywhere, and
/// every place tried before, so `intfa info` can say "where it looked and why not".
public struct LibrarySearchReport: Sendable, Equatable {
    /// The path (or loader name) that was loaded, nil when the search failed.
    public var loadedFrom: String?
    /// Every place tried, in order.
    public var attempts: [LibrarySearchAttempt]

    /// Creates a report from its fields.
    public init(loadedFrom: String?, attempts: [LibrarySearchAttempt]) {
        self.loadedFrom = loadedFrom
        self.attempts = attempts
    }

    /// One line per attempt, for error messages and diagnostics.
    public var summary: String {
        attempts.map { "  " + $0.description }.joined(separator: "\n")
    }
}
