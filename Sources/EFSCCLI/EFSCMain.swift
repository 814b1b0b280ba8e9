import ArgumentParser
import EFSCBus
import EFSCCore

/// The `efsc` command: every tool of the EFSC system under one binary.
public struct EFSCCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "efsc",
        abstract: "EFSC: efficient, flexible and secure trading of computing power.",
        discussion: """
            Credentials are W3C VC 2.0 documents with Data Integrity eddsa-jcs-2022 proofs.
            Every command prints one-line errors and exits non-zero on failure.
            """,
        version: "0.1.0",
        subcommands: [
            KeyCommand.self, JSONCommand.self, VCCommand.self, DIDCommand.self, TemplateCommand.self,
            TICCommand.self, TSCCommand.self, OfferCommand.self, TradeCommand.self, BusCommand.self, LedgerCommand.self, NodeCommand.self, TCCCommand.self, DevnetCommand.self, ChainCommand.self, BenchCommand.self, DemoCommand.self, VersionCommand.self,
        ])

    public init() {}
}

/// `efsc version`: versions of EFSC and the linked C libraries.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print versions of EFSC and its libraries.")
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        let v: JSON = ["efsc": "0.1.0", "libmosquitto": .string(MosquittoLibrary.version)]
        if json { Output.line(v.compactString()) } else { Output.line("efsc 0.1.0 (libmosquitto \(MosquittoLibrary.version))") }
    }
}

/// Entry point used by the `efsc` executable.
public enum EFSCMain {
    public static func main() async {

        await EFSCCommand.main()
    }
}

/// Nodes build and drop buffers of hundreds of kilobytes per block
/// (pre-prepares, block bodies, write batches). glibc serves those with fresh
/// mmap'd or trimmed pages that the kernel must zero on every touch, which
/// cost a node ≈ 9 % of its CPU in page faults. Keep freed memory for reuse.
/// (Nodes only: for the TCC and the parties it showed no gain.)
func keepFreedMemory() {
    #if os(Linux)
    // <malloc.h> is not in the Glibc module; these are its stable values.
    let M_TRIM_THRESHOLD: Int32 = -1
    let M_MMAP_THRESHOLD: Int32 = -3
    _ = glibcMallopt(M_MMAP_THRESHOLD, 32 << 20)
    _ = glibcMallopt(M_TRIM_THRESHOLD, 128 << 20)
    #endif
}

#if os(Linux)
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
