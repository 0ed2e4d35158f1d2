import Foundation

/// Where NVRTC is looked for, in order (see ``candidates(in:)``).
enum NVRTCCandidates {
    /// File names of the NVRTC library inside a folder, newest major version first.
    static let fileNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]

    /// The override variable: a path to the library file, or to the folder holding it.
    static let overrideVariable = "INTFA_NVRTC"

    /// The search list for `context`:
    /// 1. `INTFA_NVRTC` (file or folder). When set it is the *only* candidate: an explicit
    ///    override that silently fell back to another NVRTC would hide mistakes.
    /// 2. `$CUDA_HOME/lib64`, `$CUDA_PATH/lib64`.
    /// 3. `/usr/local/cuda/lib64`, `/usr/local/cuda-13*/lib64`, `/usr/local/cuda-12*/lib64`,
    ///    `/opt/cuda/lib64`.
    /// 4. `/usr/lib/x86_64-linux-gnu`, `/usr/lib64`.
    /// 5. The pip package's `nvidia/cu13/lib` (and CUDA 12's `nvidia/cuda_nvrtc/lib`):
    ///    `.tools/nvrtc` under the working directory and the executable's ancestors, then
    ///    Python site-packages folders that are cheap to find.
    /// 6. `libnvrtc.so.13`, `libnvrtc.so.12`, `libnvrtc.so` through the loader's path.
    static func candidates(in context: LibrarySearchContext) -> [LibraryCandidate] {
        let env = context.environment
        if let override = env[overrideVariable], !override.isEmpty {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: override, isDirectory: &isDirectory)
            let origin = "\(overrideVariable)=\(override)"
            if exists, isDirectory.boolValue {
                return [.folder(path: override, origin: origin)]
            }
            return [.file(path: override, origin: origin)]
        }

        var list: [LibraryCandidate] = []
        for variable in ["CUDA_HOME", "CUDA_PATH"] {
            if let root = env[variable], !root.isEmpty {
                list.append(.folder(path: root + "/lib64", origin: "$\(variable)"))
            }
        }

        list.append(.folder(path: "/usr/local/cuda/lib64", origin: "CUDA toolkit"))
        for prefix in ["cuda-13", "cuda-12"] {
            let roots = LibrarySearch.subfolders(of: "/usr/local", withPrefix: prefix)
            if roots.isEmpty {
                list.append(.absentGroup(description: "CUDA toolkit: /usr/local/\(prefix)*/lib64", why: "no match"))
            }
            list += roots.map { .folder(path: $0 + "/lib64", origin: "CUDA toolkit") }
        }
        list.append(.folder(path: "/opt/cuda/lib64", origin: "CUDA toolkit"))
        list.append(.folder(path: "/usr/lib/x86_64-linux-gnu", origin: "system"))
        list.append(.folder(path: "/usr/lib64", origin: "system"))

        list += toolsFolders(in: context)
        list += pythonPackageFolders(in: context)

        list += fileNames.map { .loaderName($0) }
        return list
    }

    /// The pip package's library folders below one `site-packages` (or `.tools/nvrtc`).
    private static func packageLibraryFolders(under root: String) -> [String] {
        [root + "/nvidia/cu13/lib", root + "/nvidia/cuda_nvrtc/lib"]
    }

    /// `.tools/nvrtc/...` under the working directory and under every ancestor of the
    /// executable (a test or `intfa` binary inside `.build`, below the repository root).
    private static func toolsFolders(in context: LibrarySearchContext) -> [LibraryCandidate] {
        var roots = [context.currentDirectory]
        if let executable = context.executablePath {
            var folder = URL(fileURLWithPath: executable).standardizedFileURL.deletingLastPathComponent().path
            while !folder.isEmpty, folder != "/" {
                roots.append(folder)
                folder = (folder as NSString).deletingLastPathComponent
            }
        }
        var seen = Set<String>()
        var found: [LibraryCandidate] = []
        for root in roots where seen.insert(root).inserted {
            for folder in packageLibraryFolders(under: root + "/.tools/nvrtc")
            where FileManager.default.fileExists(atPath: folder) {
                found.append(.folder(path: folder, origin: ".tools/nvrtc"))
            }
        }
        if found.isEmpty {
            found.append(.absentGroup(
                description: ".tools/nvrtc/nvidia/cu13/lib under \(context.currentDirectory) and the executable's folders",
                why: "no such folder"))
        }
        return found
    }

    /// `nvidia/cu13/lib` inside Python site-packages folders found by cheap prefix matches.
    private static func pythonPackageFolders(in context: LibrarySearchContext) -> [LibraryCandidate] {
        var patterns = [
            "/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages",
            "/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
            "/opt/*/.venv/lib/python3*/site-packages", "/opt/conda/lib/python3*/site-packages",
        ]
        if let home = context.homeDirectory, !home.isEmpty {
            patterns.append(home + "/.local/lib/python3*/site-packages")
            patterns.append(home + "/.pyenv/versions/*/lib/python3*/site-packages")
        }
        for variable in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
            if let root = context.environment[variable], !root.isEmpty {
                patterns.insert(root + "/lib/python3*/site-packages", at: 0)
            }
        }
        var found: [LibraryCandidate] = []
        for pattern in patterns {
            for sitePackages in LibrarySearch.expand(pattern) {
                for folder in packageLibraryFolders(under: sitePackages)
                where FileManager.default.fileExists(atPath: folder) {
                    found.append(.folder(path: folder, origin: "python package"))
                }
            }
        }
        if found.isEmpty {
            found.append(.absentGroup(
                description: "python site-packages nvidia/cu13/lib (\(patterns.count) site-packages patterns)",
                why: "no nvidia-cuda-nvrtc package found"))
        }
        return found
    }
}
