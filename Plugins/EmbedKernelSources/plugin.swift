import Foundation
import PackagePlugin

/// Embeds every `.cu` and `.cuh` file of a target into one generated Swift file,
/// so kernels stay real CUDA sources while the built binary carries them.
@main
struct EmbedKernelSources: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let sources = target.sourceFiles
            .map(\.url)
            .filter { ["cu", "cuh"].contains($0.pathExtension) }
            .sorted { $0.path < $1.path }
        guard !sources.isEmpty else { return [] }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedKernelSources.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(sources.count) CUDA kernel sources",
                executable: try context.tool(named: "KernelSourceEmbedder").url,
                arguments: [output.path] + sources.map(\.path),
                inputFiles: sources,
                outputFiles: [output]
            )
        ]
    }
}
