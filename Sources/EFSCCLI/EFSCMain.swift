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
            TICCommand.self, TSCCommand.self, OfferCommand.self, TradeCommand.self, BusCommand.self, LedgerCommand.self, NodeCommand.self, TCCCommand.self, DevnetCommand.self, ChainCommand.self, EventsCommand.self, BenchCommand.self, DemoCommand.self, VersionCommand.self,
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
