import ArgumentParser
import CUDADriver
import Foundation
import IntFlashAttention

/// `intfa info`: what this machine offers to each backend.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the CPU kernels in use, the CUDA driver and devices, and NVRTC.",
        discussion: """
            NVRTC is looked for in INTFA_NVRTC (a file or folder; when set, the only place \
            tried), CUDA_HOME and CUDA_PATH, the toolkit's standard folders, the \
            nvidia-cuda-nvrtc Python package, then the loader's path. INTFA_CPU_ISA \
            (scalar, avx2, avxvnni, avx512) lowers the CPU kernels' instruction set; any other \
            value makes CPU calls fail with an error naming it.
            """
    )

    func run() {
        let supported = CPUKernelISA.allCases.filter(\.isSupported).map(\.rawValue)
        print("CPU kernels: \(CPUKernelISA.selected.rawValue) (supported: \(supported.joined(separator: ", ")))")
        do throws(AttentionError) {
            _ = try CPUKernelISA.fromEnvironment()
        } catch {
            print("warning: \(error); CPU calls refuse to run until it is fixed or unset")
        }
        print("CPU threads: \(ProcessInfo.processInfo.activeProcessorCount)")
        print(CUDAEnvironment.probe().summary)
    }
}
