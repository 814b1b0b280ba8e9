import ArgumentParser
import EFSCBus
import EFSCChannel
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import Foundation

/// Signing and submitting one contract operation as a DID.
struct SenderOptions: ParsableArguments {
    @OptionGroup var brokerOptions: BrokerOptions
    @Option(name: .long, help: "Identity file of the sender (did, verificationMethod, secretKeyMultibase), instead of the next three.")
    var identity: String?
    @Option(name: .long, help: "secretKeyMultibase of the sender's DID key.") var secretKey: String?
    @Option(name: .customLong("did"), help: "Sender DID (its key is <did>#key-1 unless --verification-method).") var didOption: String?
    @Option(name: .long, help: "Verification method of the key.") var verificationMethod: String?

    /// The sender's DID, key and verification method from --identity or the separate options.
    func signer() throws -> (did: String, key: Ed25519SecretKey, method: String) {
        if let identity {
            do {
                let p = try PartyIdentity(json: try Output.readJSON(identity))
                return (p.did, p.key, p.verificationMethod)
            } catch let e as ChainError { throw CLIError("\(identity): \(e.message)") }
        }
        guard let sk = secretKey, let d = didOption else { throw CLIError("give --identity FILE, or --did and --secret-key") }
        do { return (d, try Ed25519SecretKey(multibase: sk), verificationMethod ?? "\(d)#key-1") } catch { throw CLIError("--secret-key: \(error)") }
    }

    var did: String { (try? signer().did) ?? didOption ?? "?" }
    @Option(name: .long, help: "Seconds to wait for the receipt.") var timeout: Double = 20
    @Flag(name: .long, help: "Print the receipt as JSON.") var json = false

    /// Signs `op` with a time-based nonce (microseconds), submits it and waits for the receipt.
    func send(group: String, op: String, args: JSONObject) async throws -> JSON {
        let (did, key, method) = try signer()
        let nonce = Int(DateTime.currentTime() * 1_000_000)
        let tx = try ChainTransaction.make(group: group, sender: did, nonce: nonce, op: op, args: args, key: key, method: method)
        // As the sender's own account when the devnet has one for it.
        return try await brokerOptions.requestJSON(Topics.tx(group), payload: tx.bytes, timeout: timeout, clientPrefix: "efsc-send", party: PartyName.of(did))
    }

    func report(_ r: JSON, what: String) throws {
        if json {
            Output.line(r.compactString())
        } else if r["status"]?.stringValue == "committed" {
            Output.line("\(what): committed at height \(r["height"]?.intValue ?? 0)")
        } else {
            Output.line("\(what): rejected: \(r["error"]?.stringValue ?? r.compactString())")
        }
        if r["status"]?.stringValue != "committed" { throw ExitCode(1) }
    }
}

extension DIDCommand {
    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a did:efsc on the identity chain from its create operation (`did create --log F`).",
            discussion: "Exit status: 0 committed, 1 rejected or no receipt.")
        @OptionGroup var sender: SenderOptions
        @Option(name: .long, help: "Operation log written by `efsc did create --log` (its first entry is the create operation); default: the `operation` of the --identity file.")
        var log: String?

        func run() async throws {
            let r = try await exitOnError(code: 1) { () async throws -> JSON in
                let op: JSONObject
                if let log {
                    guard let o = try Output.readJSON(log).arrayValue?.first?.objectValue else { throw CLIError("\(log) holds no create operation") }
                    op = o
                } else if let f = sender.identity, let o = try Output.readJSON(f)["operation"]?.objectValue {
                    op = o
                } else {
                    throw CLIError("give --log FILE, or an --identity file that holds the create operation")
                }
                return try await sender.send(group: "identity", op: "did.register", args: ["operation": .object(op)])
            }
            try sender.report(r, what: "did.register \(sender.did)")
        }
    }
}

extension TemplateCommand {
    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a template (or a new version) on the identity chain; owner only.")
        @OptionGroup var sender: SenderOptions
        @Argument(help: "Template JSON file.") var file: String

        func run() async throws {
            let r = try await exitOnError(code: 1) { try await sender.send(group: "identity", op: "template.register", args: ["template": try Output.readJSON(file)]) }
            try sender.report(r, what: "template.register")
        }
    }
}

/// `efsc offer publish|list|match`.
struct OfferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "offer", abstract: "Publish offers and match demands on the transaction chain.",
        subcommands: [Publish.self, ChainCommand.OffersQuery.List.self, ChainCommand.OffersQuery.Match.self])

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish (or update) an offer: specification, unit-hour price and capacity.")
        @OptionGroup var sender: SenderOptions
        @Option(name: .long, help: "Offer id (1-128 characters).") var offerId: String
        @Option(name: .long, help: "Resource type, e.g. gpu.") var resourceType: String
        @Option(name: .long, help: "Hardware model.") var model: String?
        @Option(name: .long, help: "Memory per unit, GiB.") var memoryGib: Double?
        @Option(name: .long, help: "Price per unit-hour.") var unitPrice: Double
        @Option(name: .long, help: "Units offered (R_s).") var capacity: Int
        @Option(name: .long, help: "TIT id to trade under.") var templateId: String?
        @Option(name: .long, help: "TIT version.") var templateVersion: Int?

        func run() async throws {
            var spec: JSONObject = ["resourceType": .string(resourceType)]
            if let m = model { spec["model"] = .string(m) }
            if let m = memoryGib { spec["memoryGiB"] = .number(m) }
            var args: JSONObject = ["offerId": .string(offerId), "computingPower": .object(spec), "unitPrice": .number(unitPrice), "capacity": .number(Double(capacity))]
            if let t = templateId { args["templateId"] = .string(t) }
            if let v = templateVersion { args["templateVersion"] = .number(Double(v)) }
            let a = args
            let r = try await exitOnError(code: 1) { try await sender.send(group: "transaction", op: "offer.publish", args: a) }
            try sender.report(r, what: "offer.publish \(offerId)")
        }
    }
}

extension TICCommand {
    struct Record: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record an issued TIC on the transaction chain against an offer; prints the opened channel.",
            discussion: "Exit status: 0 committed (the channel is open and a TCC is told), 1 rejected.")
        @OptionGroup var sender: SenderOptions
        @Option(name: .long, help: "Offer the TIC buys from.") var offerId: String
        @Argument(help: "TIC JSON file.") var file: String

        func run() async throws {
            let r = try await exitOnError(code: 1) {
                try await sender.send(group: "transaction", op: "tic.record", args: ["tic": try Output.readJSON(file), "offerId": .string(offerId)])
            }
            if !sender.json, r["status"]?.stringValue == "committed" {
                Output.line("tic.record: channel \(r["result"]?["channelId"]?.stringValue ?? "?") open at height \(r["height"]?.intValue ?? 0)")
                return
            }
            try sender.report(r, what: "tic.record")
        }
    }
}
