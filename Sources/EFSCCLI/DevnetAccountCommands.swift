import ArgumentParser
import EFSCChannel
import EFSCCore
import EFSCDevnet

extension DevnetCommand {
    /// `efsc devnet add-party`: a party's broker account at runtime.
    struct AddParty: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-party", abstract: "Create a party's broker account (no broker restart) and write its connection profile.",
            discussion: """
                The account is named after the party's DID (its last part, the {party} segment of channel topics) and \\
                has the party role of topics.md: submit transactions, query, read blocks and statuses, and its own \\
                channel halves (write up, read down), reply and presence topics — nothing else. Writes \\
                DIR/parties/NAME.json (mode 600: TLS URL, user name, password, CA, client certificate and key) for \\
                --network of every client command; commands given --network DIR and a party identity find it themselves. \\
                The broker may be running (the account works at once) or stopped (it is kept for the next start). \\
                Exit 1 if the DID is malformed, the name is taken or reserved (admin, operator, client, nodeK, tccK).
                """)
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Option(name: .long, help: "The party's DID.") var did: String?
        @Option(name: .long, help: "A party identity file (JSON with `did`, as `efsc did create` writes) instead of --did.") var identity: String?
        @Flag(name: .long, help: "Print JSON: {account, did, profile}.") var json = false

        func run() async throws {
            try await exitOnError(code: 1) {
                let d: String
                if let did { d = did } else if let identity {
                    guard let v = try Output.readJSON(identity)["did"]?.stringValue else { throw CLIError("\(identity) has no `did`") }
                    d = v
                } else {
                    throw CLIError("give --did or --identity")
                }
                let a = try await Devnet(dir: dir).addParty(did: d)
                if json {
                    Output.line(JSON.object(["account": .string(a.name), "did": .string(a.did), "profile": .string(a.profilePath)]).compactString())
                } else {
                    Output.line("party \(a.name) added; profile \(a.profilePath)")
                }
            }
        }
    }

    /// `efsc devnet remove-party`: revoke a party's access at once.
    struct RemoveParty: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove-party", abstract: "Delete a party's broker account: its connection is dropped at once and it cannot log in again.")
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Argument(help: "The party's account name or DID.") var party: String

        func run() async throws {
            try await exitOnError(code: 1) {
                let name = try await Devnet(dir: dir).removeParty(party)
                Output.line("party \(name) removed")
            }
        }
    }

    /// `efsc devnet rotate`: new credentials for one account.
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "New password and client certificate for a node, TCC, party, client or operator account.",
            discussion: """
                The broker takes the new password at once and drops the account's current connection; the files its \\
                configuration or profile names are rewritten (mode 600). A running node or TCC is restarted with them; \\
                a party or client uses its rewritten profile from its next command.
                """)
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Argument(help: "Account: nodeK, tccK, a party's name, client or operator.") var account: String

        func run() async throws {
            try await exitOnError(code: 1) {
                let files = try await Devnet(dir: dir).rotate(account)
                Output.line("\(account): new credentials in \(files.joined(separator: ", "))")
            }
        }
    }
}
