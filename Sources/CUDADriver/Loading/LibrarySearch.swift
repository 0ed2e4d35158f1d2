import Foundation

/// A place a library may be loaded from.
enum LibraryCandidate: Sendable, Equatable {
    /// A specific file; `origin` says why it is on the list (e.g. `INTFA_NVRTC`).
    case file(path: String, origin: String)
    /// A folder to look in for one of the library's file names.
    case folder(path: String, origin: String)
    /// A bare name left to the dynamic loader's own search path.
    case loaderName(String)
    /// A group of places that did not exist, recorded as one line to keep reports short.
    case absentGroup(description: String, why: String)
}

/// Finds and loads a shared library from an ordered candidate list, recording every
/// attempt. Generic over the symbol table `API` built from the loaded library.
enum LibrarySearch {
    /// Tries each candidate in order; returns the first library from which `resolve`
    /// builds a complete symbol table, plus the report of every attempt.
    ///
    /// - Parameters:
    ///   - fileNames: names to look for inside folder candidates, preferred first.
    ///   - preload: called with a folder before a library in it is opened (NVRTC's
    ///     builtins library must be loaded from the same folder).
    static func load<API>(
        candidates: [LibraryCandidate],
        fileNames: [String],
        preload: (String) -> Void = { _ in },
        resolve: (DynamicLibrary) throws(MissingSymbol) -> API
    ) -> (api: API?, report: LibrarySearchReport) {
        var attempts: [LibrarySearchAttempt] = []
        let fileManager = FileManager.default

        func attempt(path: String, place: String, folder: String?) -> API? {
            if let folder { preload(folder) }
            switch DynamicLibrary.open(path) {
            case let .failure(failure):
                attempts.append(LibrarySearchAttempt(place: place, outcome: .loadFailed(failure.text)))
                return nil
            case let .success(library):
                do throws(MissingSymbol) {
                    let api = try resolve(library)
                    attempts.append(LibrarySearchAttempt(place: place, outcome: .loaded))
                    return api
                } catch {
                    library.closeUnused()
                    attempts.append(LibrarySearchAttempt(place: place, outcome: .missingSymbol(error.name)))
                    return nil
                }
            }
        }

        for candidate in candidates {
            switch candidate {
            case let .absentGroup(description, why):
                attempts.append(LibrarySearchAttempt(place: description, outcome: .notFound(why)))

            case let .loaderName(name):
                if let api = attempt(path: name, place: "\(name) (loader search path)", folder: nil) {
                    return (api, LibrarySearchReport(loadedFrom: name, attempts: attempts))
                }

            case let .file(path, origin):
                let place = "\(origin): \(path)"
                guard fileManager.fileExists(atPath: path) else {
                    attempts.append(LibrarySearchAttempt(place: place, outcome: .notFound("no such file")))
                    continue
                }
                let folder = (path as NSString).deletingLastPathComponent
                if let api = attempt(path: path, place: place, folder: folder) {
                    return (api, LibrarySearchReport(loadedFrom: path, attempts: attempts))
                }

            case let .folder(path, origin):
                var isDirectory: ObjCBool = false
                guard fileManager.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                    attempts.append(LibrarySearchAttempt(place: "\(origin): \(path)", outcome: .notFound("no such folder")))
                    continue
                }
                let present = fileNames.filter { fileManager.fileExists(atPath: path + "/" + $0) }
                if present.isEmpty {
                    attempts.append(LibrarySearchAttempt(
                        place: "\(origin): \(path)",
                        outcome: .notFound("folder has none of \(fileNames.joined(separator: ", "))")))
                    continue
                }
                for name in present {
                    let file = path + "/" + name
                    if let api = attempt(path: file, place: "\(origin): \(file)", folder: path) {
                        return (api, LibrarySearchReport(loadedFrom: file, attempts: attempts))
                    }
                }
            }
        }
        return (nil, LibrarySearchReport(loadedFrom: nil, attempts: attempts))
    }

    /// Sub-folders of `parent` whose names start with `prefix`, newest-looking first
    /// (a cheap stand-in for shell globbing such as `/usr/local/cuda-13*`).
    static func subfolders(of parent: String, withPrefix prefix: String) -> [String] {
        // `parent` is "" for the root folder, so that joining gives "/name".
        let listed = parent.isEmpty ? "/" : parent
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: listed) else { return [] }
        return names.filter { $0.hasPrefix(prefix) }.sorted(by: >).map { parent + "/" + $0 }
    }

    /// Expands a path whose components may end in `*` (prefix match only), e.g.
    /// `/usr/lib/python3*/site-packages`. Components without `*` must exist.
    static func expand(_ pattern: String) -> [String] {
        var paths = [""]
        for component in pattern.split(separator: "/", omittingEmptySubsequences: true) {
            var next: [String] = []
            for base in paths {
                if component.hasSuffix("*") {
                    next += subfolders(of: base, withPrefix: String(component.dropLast()))
                } else {
                    let path = base + "/" + component
                    if FileManager.default.fileExists(atPath: path) { next.append(path) }
                }
            }
            paths = next
            if paths.isEmpty { break }
        }
        return paths
    }
}
