import ArgumentParser
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCSDK
import Foundation

/// A party on the bus: its identity file and a broker connection.
struct PartyOptions: ParsableArguments {
    @OptionGroup var brokerOptions: BrokerOptions
    @Option(name: .long, help: "Identity file (did, verificationMethod, secretKeyMultibase, operation), as `efsc did create` prints it.")
    var identity: String
    @Option(name: .long, help: "Seconds to wait for each chain reply.") var timeout: Double = 20

    func load() throws -> PartyIdentity {
        do { return try PartyIdentity(json: try Output.readJSON(identity)) } catch let e as ChainError { throw CLIError("\(identity): \(e.message)") }
    }

    func trader(prefix: String, rideThrough: Bool = false) async throws -> Trader {
        let me = try load()
        let bus = try await brokerOptions.connect(
            clientPrefix: "\(prefix)-\(PartyName.of(me.did).prefix(8))", party: PartyName.of(me.did), requireParty: true, rideThrough: rideThrough)
        return Trader(chain: ChainClient(bus: bus, timeout: timeout), identity: me)
    }
}

/// Where a party keeps its channels: `DIR/<channel>/tic.json` and one file per TSC.
struct WalletOptions: ParsableArguments {
    @Option(name: .long, help: "Wallet directory: DIR/<channel>/tic.json and DIR/<channel>/<sequence>.json per TSC.") var wallet = "efsc-wallet"

    func store() throws -> TSCStore { try TSCStore(directory: wallet) }

    func tic(_ channel: String) throws -> VerifiableCredential {
        let p = "\(wallet)/\(channel)/tic.json"
        guard FileManager.default.fileExists(atPath: p) else { throw CLIError("no TIC for channel \(channel) in \(wallet) (run `efsc trade start` or copy the TIC to \(p))") }
        return VerifiableCredential(json: try Output.readObject(p, what: "TIC"))
    }
}

extension DIDCommand {
    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rotate the DID's key on the identity chain (signed by the current key); rewrites the identity file.",
            discussion: "The old identity file is kept as FILE.old. Exit status: 0 rotated, 1 rejected or unreachable.")
        @OptionGroup var party: PartyOptions
        @Flag(name: .long, help: "Print JSON: did, verificationMethod.") var json = false

        func run() async throws {
            try await exitOnError(code: 1) {
                let t = try await party.trader(prefix: "efsc-rotate")
                defer { Task { await t.chain.bus.disconnect() } }
                let n = try await t.rotate(to: Ed25519SecretKey())
                try? FileManager.default.removeItem(atPath: party.identity + ".old")
                try FileManager.default.copyItem(atPath: party.identity, toPath: party.identity + ".old")
                try Output.write(party.identity, n.json.prettyString() + "\n")
                chmod(party.identity, 0o600)
                if json {
                    Output.line(JSON.object(["did": .string(n.did), "verificationMethod": .string(n.verificationMethod)]).compactString())
                } else {
                    Output.line("\(n.did) now signs with \(n.verificationMethod)")
                }
            }
        }
    }
}

/// `efsc trade start|settle|close|show`: a whole trade over the bus.
struct TradeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trade", abstract: "Start a trade (TIC on chain → channel), settle through the TCC, close, and show a channel.",
        subcommands: [Start.self, Settle.self, Close.self, Show.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Consumer: apply for a TIC against an offer, have it issued, record it on chain; prints the channel.",
            discussion: """
                The provider issues the TIC with --provider-identity (both keys at hand, as in demos), or the consumer
                records a TIC the provider already issued (--tic FILE, e.g. from `efsc tic issue`). The TIC goes to
                WALLET/<channel>/tic.json. JSON keys: channelId, ticHash, offerId, units, height.
                """)
        @OptionGroup var party: PartyOptions
        @OptionGroup var walletOptions: WalletOptions
        @Option(name: .long, help: "Offer to buy from.") var offer: String
        @Option(name: .long, help: "An issued TIC to record instead of applying.") var tic: String?
        @Option(name: .long, help: "Provider identity file, to issue the TIC here.") var providerIdentity: String?
        @Option(name: .long, help: "Claim JSON to apply with (default: built from the offer and the options below).") var claim: String?
        @Option(name: .long, help: "Units to buy.") var units = 1
        @Option(name: .long, help: "Settlement period, seconds.") var period = 60
        @Option(name: .long, help: "N: settlements per on-chain evidence.") var evidenceEvery = 10
        @Option(name: .long, help: "Upper bound for adaptive N.") var evidenceEveryMax = 100
        @Option(name: .long, help: "TIT id (default: the offer's, else the built-in TIT).") var templateId: String?
        @Option(name: .long, help: "TIT version.") var templateVersion: Int?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            try await exitOnError(code: 1) {
                let t = try await party.trader(prefix: "efsc-trade")
                defer { Task { await t.chain.bus.disconnect() } }
                let issued: VerifiableCredential
                if let tic {
                    issued = VerifiableCredential(json: try Output.readObject(tic, what: "TIC"))
                } else {
                    guard let pf = providerIdentity else { throw CLIError("give --tic FILE (issued by the provider) or --provider-identity FILE") }
                    let offers = try await t.offers()
                    guard let o = offers.first(where: { $0["offerId"]?.stringValue == offer }) else { throw CLIError("unknown offer \(offer)") }
                    let tid = templateId ?? o["templateId"]?.stringValue ?? BaseTemplates.titID
                    let tv = templateVersion ?? o["templateVersion"]?.intValue ?? 1
                    let tit = try await ChainTemplateStore(chain: t.chain).template(id: tid, version: tv)
                    var c: JSONObject
                    if let claim {
                        c = try Output.readObject(claim, what: "claim")
                    } else {
                        c = [
                            "providerDid": o["provider"] ?? .null, "consumerDid": .string(t.me.did),
                            "computingPower": .object((o["computingPower"]?.objectValue ?? [:]).merging(["units": .number(Double(units))])),
                            "unitPrice": o["unitPrice"] ?? .null, "currency": "CNY",
                            "settlementStrategy": [
                                "period": .number(Double(period)), "evidenceEvery": .number(Double(evidenceEvery)),
                                "evidenceEveryMax": .number(Double(max(evidenceEvery, evidenceEveryMax))),
                            ],
                            "initialPricing": 0, "settlementTemplateId": .string(BaseTemplates.tstID), "settlementTemplateVersion": 1,
                            "encryptionMethod": "HPKE-X25519-SHA256-ChaCha20Poly1305",
                        ]
                    }
                    let app = try t.apply(claim: c, template: tit)
                    let provider = Trader(chain: t.chain, identity: try PartyIdentity(json: try Output.readJSON(pf)))
                    issued = try await provider.issue(app)
                }
                let ch = try await t.record(tic: issued, offerId: offer)
                guard let id = ch["channelId"]?.stringValue else { throw CLIError("the chain returned no channel id") }
                try FileManager.default.createDirectory(atPath: "\(walletOptions.wallet)/\(id)", withIntermediateDirectories: true)
                try Output.write("\(walletOptions.wallet)/\(id)/tic.json", JSON.object(issued.json).prettyString() + "\n")
                if json {
                    Output.line(JSON.object(["channelId": .string(id), "ticHash": ch["ticHash"] ?? .null, "offerId": .string(offer), "units": ch["units"] ?? .null]).compactString())
                } else {
                    Output.line("channel \(id) open (TIC in \(walletOptions.wallet)/\(id)/tic.json)")
                }
            }
        }
    }

    struct Settle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join a channel (DID challenge) and settle: the provider proposes, the consumer countersigns.",
            discussion: """
                The role follows from the identity and the TIC. The provider proposes --count settlements of --usage
                unit-hours each, one per settlement period (or back to back with --no-wait, the periods then lying in
                the past); the consumer countersigns every proposal that matches the TIC until --count TSCs arrived,
                the channel closes, or --idle seconds pass without progress. Every TSC is checked and kept in the wallet.
                Both ride through a broker restart (publishes are queued, up to 1000, and the connection is retried
                every 1–5 s), a lost message and a TCC restart: without its TSC after --retry seconds the provider
                sends the same proposal again, and either party authenticates again when the TCC no longer knows it.
                No TSC is issued twice. --usage defaults to the most the TIC allows per period (units × period),
                at most 0.01 unit-hours.
                Exit status: 0 done; 1 refused (the reason is printed), or no progress for --idle seconds.
                JSON keys: channelId, role, lastSequence, settled, tscs (files).
                """)
        @OptionGroup var party: PartyOptions
        @OptionGroup var walletOptions: WalletOptions
        @Option(name: .long, help: "Channel id.") var channel: String
        @Option(name: .long, help: "Settlements to make (provider) or to wait for (consumer).") var count = 1
        @Option(name: .long, help: "Unit-hours used per period (provider; default: the TIC's most per period, at most 0.01).") var usage: Double?
        @Flag(name: .long, help: "Provider: propose the last one as final (cooperative close).") var final = false
        @Flag(name: .long, help: "Provider: do not wait a period between settlements.") var noWait = false
        @Option(name: .long, help: "Seconds without progress before giving up.") var idle = 60.0
        @Option(name: .long, help: "Provider: seconds without the TSC before proposing the same settlement again.") var retry = 5.0
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            try await exitOnError(code: 1) {
                guard idle > 0, retry > 0, usage.map({ $0 >= 0 }) ?? true else { throw CLIError("--idle and --retry must be > 0, --usage ≥ 0") }
                let t = try await party.trader(prefix: "efsc-settle", rideThrough: true)
                defer { Task { await t.chain.bus.disconnect() } }
                let store = try walletOptions.store()
                let s = try t.session(channel: channel, tic: try walletOptions.tic(channel), store: store)
                let perPeriod = (Double(s.terms.units) * Double(s.terms.period) / 3600 * 1e6).rounded(.down) / 1e6
                let usage = self.usage ?? min(0.01, perPeriod)
                // Read before opening: once admitted, a consumer countersigns
                // what the provider proposes, so TSCs may arrive before
                // `open` returns, and they count towards --count.
                let startSeq = s.lastSequence
                try await s.open(timeout: idle)
                if s.role == .provider {
                    let first = noWait ? DateTime.currentTime() - Double(s.terms.period * (count + 1)) : nil
                    for i in 0..<count {
                        if !noWait && i > 0 { try await Task.sleep(nanoseconds: UInt64(s.terms.period) * 1_000_000_000) }
                        _ = try await s.settle(usage: usage, final: final && i == count - 1, firstStart: first, timeout: idle, retryEvery: retry)
                        if !json { FileHandle.standardError.write(Data("settled \(s.lastSequence)\n".utf8)) }
                    }
                } else {
                    var target = startSeq + count
                    while s.lastSequence < target {
                        let before = s.lastSequence
                        do {
                            _ = try await s.waitFor(sequence: before + 1, timeout: idle)
                        } catch {
                            if s.closedState != nil { break }
                            throw error
                        }
                        if s.latest?.subject?["final"]?.boolValue == true { target = s.lastSequence }
                    }
                }
                let files = store.sequences(channel: channel).filter { $0 > startSeq }.map { "\(walletOptions.wallet)/\(channel)/\(String(format: "%08d", $0)).json" }
                if json {
                    Output.line(
                        JSON.object([
                            "channelId": .string(channel), "role": .string(s.role.rawValue), "lastSequence": .number(Double(s.lastSequence)),
                            "settled": .number(Double(s.lastSequence - startSeq)), "tscs": .array(files.map(JSON.string)),
                        ]).compactString())
                } else {
                    Output.line("\(s.role.rawValue): channel \(channel) at sequence \(s.lastSequence) (\(s.lastSequence - startSeq) new TSCs in \(walletOptions.wallet)/\(channel))")
                }
                await s.detach()
            }
        }
    }

    struct Close: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close a channel unilaterally with the latest TSC in the wallet, challenge a close, or finalize it.",
            discussion: """
                --unilateral submits channel.close with the wallet's latest TSC and opens a challenge window of blocks;
                --challenge presents the wallet's latest TSC against a close holding an older one; --finalize waits the
                window out and makes the close final (it may be combined with the others). A cooperative close is a
                final settlement: `efsc trade settle --final` by the provider while the consumer settles.
                JSON: the channel record (state, finalSequence, closeKind, challengeUntil, ...).
                """)
        @OptionGroup var party: PartyOptions
        @OptionGroup var walletOptions: WalletOptions
        @Option(name: .long, help: "Channel id.") var channel: String
        @Flag(name: .long, help: "Close with the latest TSC held.") var unilateral = false
        @Flag(name: .long, help: "Challenge a pending close with the latest TSC held.") var challenge = false
        @Flag(name: .long, help: "Wait for the challenge window and finalize.") var finalize = false
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            try await exitOnError(code: 1) {
                guard unilateral || challenge || finalize else { throw CLIError("choose --unilateral, --challenge and/or --finalize") }
                let t = try await party.trader(prefix: "efsc-close")
                defer { Task { await t.chain.bus.disconnect() } }
                var rec = JSON.null
                if unilateral || challenge {
                    guard let (_, tsc) = try walletOptions.store().latest(channel: channel) else { throw CLIError("no TSC of \(channel) in \(walletOptions.wallet)") }
                    rec = unilateral ? try await t.closeUnilaterally(channel: channel, tsc: tsc) : try await t.challenge(channel: channel, tsc: tsc)
                }
                if finalize { rec = try await t.finalize(channel: channel, timeout: party.timeout * 3) }
                if json {
                    Output.line(rec.compactString())
                } else {
                    Output.line("channel \(channel): \(rec["state"]?.stringValue ?? "?"), final sequence \(rec["finalSequence"]?.intValue ?? 0)\(rec["challengeUntil"]?.intValue.map { ", challenge window until height \($0)" } ?? "")")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a channel: its record on chain, its latest evidence, and the TSCs in the wallet.",
            discussion: "JSON keys: channel (chain record), evidence (or null), walletSequences.")
        @OptionGroup var brokerOptions: BrokerOptions
        @OptionGroup var walletOptions: WalletOptions
        @Option(name: .long, help: "Channel id.") var channel: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            try await exitOnError(code: 1) {
                let bus = try await brokerOptions.connect(clientPrefix: "efsc-show")
                defer { Task { await bus.disconnect() } }
                let chain = ChainClient(bus: bus)
                let rec = try await chain.channel(channel)
                let ev = try? await chain.query("transaction", "evidence", ["channelId": .string(channel)])
                let seqs = (try? walletOptions.store().sequences(channel: channel)) ?? []
                if json {
                    Output.line(JSON.object(["channel": rec, "evidence": ev ?? .null, "walletSequences": .array(seqs.map { .number(Double($0)) })]).compactString())
                } else {
                    Output.line("channel \(channel): \(rec["state"]?.stringValue ?? "?") (opened at height \(rec["openedAt"]?.intValue ?? 0))")
                    Output.line("  provider \(rec["providerDid"]?.stringValue ?? "?"), consumer \(rec["consumerDid"]?.stringValue ?? "?"), units \(rec["units"]?.intValue ?? 0)")
                    Output.line("  evidence: \(ev.map { "sequence \($0["sequence"]?.intValue ?? 0) at height \($0["height"]?.intValue ?? 0)" } ?? "none yet")")
                    Output.line("  wallet: \(seqs.count) TSC(s)\(seqs.last.map { ", latest sequence \($0)" } ?? "")")
                }
            }
        }
    }
}

extension JSONObject {
    func merging(_ other: JSONObject) -> JSONObject {
        var o = self
        for (k, v) in other { o[k] = v }
        return o
    }
}
