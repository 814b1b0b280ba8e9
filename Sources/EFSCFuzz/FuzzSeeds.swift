import EFSCBus
import EFSCConsensus
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCLedger

/// Real messages of each kind, as starting points for the fuzzers (written
/// to `fuzz/corpus/<target>/seed-*` by `make fuzz-seeds`).
public enum FuzzSeeds {
    /// Programs for the replica harness: a normal round (pre-prepare,
    /// prepares, commits, execute), a view change with new-view, and a mix.
    static var replicaSeeds: [(name: String, bytes: [UInt8])] {
        // Group of 4, replica 1. Each instruction: opcode (0–4 message),
        // then view, sequence, sender selectors and the message kind.
        let prePrepare: [UInt8] = [0, 1, 2, 0, 0, 0, 3, 0, 0, 0, 2]
        let prepare2: [UInt8] = [1, 1, 2, 2, 1, 1, 2]
        let prepare3: [UInt8] = [1, 1, 2, 3, 1, 1, 2]
        let commit: [UInt8] = [2, 1, 2, 0, 2, 1, 2]
        let round: [UInt8] = [0, 1] + prePrepare + prepare2 + prepare3 + commit + [2, 1, 2, 2, 2, 1, 2] + [8]
        let viewChange: [UInt8] = [0, 1] + [7, 1] + Array(repeating: 11, count: 6) + [3, 2, 1, 2, 5, 0, 0, 1, 2] + [3, 2, 1, 1, 5, 0, 1, 2]
        let mixed: [UInt8] = round + [11, 7] + [4, 7, 7, 1, 5, 0] + [4, 5, 1, 3, 4, 1, 3, 9, 9] + [10] + round.dropFirst(2)
        return [("round", round), ("view-change", viewChange), ("mixed", mixed)]
    }


    public static func all() throws -> [FuzzTarget: [(name: String, bytes: [UInt8])]] {
        let key = try Ed25519SecretKey(seed: Array(repeating: 9, count: 32))
        let (did, _, op) = try EFSCDID.createOperation(network: "devnet", key: key, created: "2024-01-01T00:00:00Z")
        let method = "\(did)#key-1"
        func tx(_ group: String, _ op: String, _ args: JSONObject, nonce: Int = 1) throws -> [UInt8] {
            try ChainTransaction.make(group: group, sender: did, nonce: nonce, op: op, args: args, key: key, method: method, created: "2024-01-01T00:00:00Z").bytes
        }
        let register = try tx("identity", "did.register", ["operation": .object(op)], nonce: 0)
        let evidence = try tx("transaction", "evidence.submit", EvidenceBatch.args([("ch-1", 3, String(repeating: "ab", count: 32)), ("ch-2", 1, String(repeating: "cd", count: 32))]))
        let offer = try tx("transaction", "offer.publish", ["offerId": "gpu", "computingPower": ["resourceType": "gpu"], "unitPrice": 2.5, "capacity": 4])
        let template = try tx("identity", "template.register", ["template": try ProviderTemplates.timeOfDayTIT(owner: did).json])
        let header = BlockHeader(
            group: "transaction", height: 3, parentHash: Digest.sha256([1]), stateRoot: Digest.sha256([2]), transactionsRoot: Block.transactionsRoot([evidence]),
            proposer: 1, view: 0, timestamp: 1_700_000_000_000, anchor: 2)
        var block = Block(header: header, transactions: [evidence])
        block.certificateView = 0
        block.certificate = [CertificateEntry(replica: 1, signature: Array(repeating: 5, count: 64))]
        let encoded = block.encoded
        var sync: [UInt8] = [0, 0, 0, 1]
        sync += [UInt8(encoded.count >> 24 & 0xff), UInt8(encoded.count >> 16 & 0xff), UInt8(encoded.count >> 8 & 0xff), UInt8(encoded.count & 0xff)] + encoded
        let vote = SignedMessage(sender: 2, message: .prepare(view: 1, seq: 3, digest: Digest.sha256([3])), signature: Array(repeating: 1, count: 64))
        let tic = ProviderTemplates.sampleTITClaim(provider: did, consumer: DIDKey.did(for: key.publicKey), period: 60, evidenceEvery: 5)
        let ticDoc: JSON = ["credentialSubject": .object(tic), "claim": ["sequence": 1, "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:01:00Z", "usage": 0.5]]
        let hello: JSON = ["type": "hello", "channelId": "ch-1", "did": .string(did)]
        func json(_ j: JSON) throws -> [UInt8] { try JCS.canonicalize(j) }
        return [
            .transaction: [("did-register", register), ("evidence-columns", evidence), ("offer", offer), ("template", template)],
            .query: [
                ("block", [5] + Array(#"{"params":{"height":1}}"#.utf8)), ("did", [0] + Array(#"{"params":{"did":"\#(did)","height":0}}"#.utf8)),
                ("evidence", [4] + Array(#"{"params":{"tscHash":"\#(String(repeating: "0", count: 64))"}}"#.utf8)),
                ("match", [3] + Array(#"{"params":{"resourceType":"gpu","quantity":2,"durationHours":1}}"#.utf8)),
                ("sync", [2] + Array(#"{"from":1,"max":64}"#.utf8)),
            ],
            .block: [("block", encoded), ("sync-reply", sync), ("prepare", PBFTCodec.encode(group: "transaction", vote))],
            .channel: [("tic-and-claim", try json(ticDoc)), ("hello", try json(hello)), ("template", try json(try ProviderTemplates.timeOfDayTIT(owner: did).json))],
            .base58: [("did", Array(did.utf8)), ("key", Array(key.publicKey.multibase.utf8)), ("did-key", Array(DIDKey.did(for: key.publicKey).utf8))],
            .replica: replicaSeeds,
            .pattern: [
                ("did", Array("^did:efsc:[a-z0-9-]{1,32}:[1-9A-HJ-NP-Za-km-z]+$\u{0}did:efsc:devnet:3xYz".utf8)),
                ("alternation", Array("^(ab|cd)*e?$\u{0}abcde".utf8)), ("classes", Array("[^\\d\\s]{2,5}\u{0}ab12".utf8)),
            ],
        ]
    }
}
