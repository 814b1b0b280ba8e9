import EFSCBus
import EFSCContracts
import EFSCCore
import EFSCIdentity
import EFSCLedger
import Foundation
import Testing

@testable import EFSCConsensus
@testable import EFSCNode

/// One test per class of hostile input a node must survive (the
/// hostile-clients issue): each feeds a real group runner (a real RocksDB
/// ledger, no broker: replies queue offline) what an anonymous client can
/// send, and checks the outcome: a refusal with its reason counted, nothing
/// pooled that should not be, no trap.
@Suite struct HostileInputTests {
    final class Harness {
        let dir: String
        let runner: GroupRunner
        var fatal: [String] = []

        init(group: String = "identity", config: (inout JSONObject) -> Void = { _ in }) throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-hostile-\(UUID().uuidString.prefix(8))").path
            runner = try GroupRunner.offline(group: group, dataDir: dir, adjust: config)
            runner.onFatal = { [unowned self] in self.fatal.append($0) }
        }

        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func send(_ payload: [UInt8], topic: String = Topics.tx("identity")) {
            let props = MQTTProperties(responseTopic: Topics.reply(clientID: "test"), correlationData: [1])
            runner.onTransaction(MQTTMessage(topic: topic, payload: payload, qos: .atLeastOnce, properties: props))
            runner.q.sync {}
        }

        var pooled: Int { runner.q.sync { runner.pool.count } }
        var refused: [String: Int] { runner.refusals.byReason }
    }

    static func registration(_ key: Ed25519SecretKey = Ed25519SecretKey(), nonce: Int = 0) throws -> ChainTransaction {
        let (did, _, op) = try EFSCDID.createOperation(network: "devnet", key: key)
        let method = "\(did)#key-1"
        return try ChainTransaction.make(group: "identity", sender: did, nonce: nonce, op: "did.register", args: ["operation": .object(op)], key: key, method: method)
    }

    // MARK: 1. traps on numbers from the network

    @Test func trapsOnNumbersFromTheNetwork() throws {
        let h = try Harness()
        for bad: JSON in [-1, -9_007_199_254_740_992, 1.5, "7", 1e300, .null] {
            #expect(throws: GroupRunner.QueryParameterError.self, "height \(bad.compactString())") { try h.runner.q.sync { try h.runner.query("block", ["height": bad]) } }
            #expect(throws: GroupRunner.QueryParameterError.self, "did at height \(bad.compactString())") {
                try h.runner.q.sync { try h.runner.query("did", ["did": "did:efsc:devnet:x", "height": bad]) }
            }
        }
        // Over the bus the same queries are answered with the reason and counted.
        let props = MQTTProperties(responseTopic: Topics.reply(clientID: "test"), correlationData: [1])
        h.runner.onQuery(MQTTMessage(topic: Topics.query("identity", "block"), payload: Array(#"{"params":{"height":-1}}"#.utf8), properties: props))
        h.runner.q.sync {}
        #expect(h.refused["bad-query"] == 1, "\(h.refused)")
        #expect(throws: GroupRunner.QueryParameterError.self) { try h.runner.q.sync { try h.runner.query("did", ["did": .string(String(repeating: "d", count: 100_000))]) } }
        // The largest exact integer is a height like any other: just not one this ledger has.
        #expect(throws: ContractError.self) { try h.runner.q.sync { try h.runner.query("block", ["height": 9_007_199_254_740_992]) } }
        // Sync requests with hostile bounds are refused without a reply, counted.
        for body in [#"{"from":-1}"#, #"{"from":0}"#, #"{"from":1e300}"#, #"{"from":1,"max":-5}"#, #"{"from":"x"}"#, "[]", "\u{0}"] {
            h.runner.onSyncRequest(MQTTMessage(topic: Topics.sync("identity", node: "node1"), payload: Array(body.utf8)))
            h.runner.q.sync {}
        }
        #expect((h.refused["bad-sync"] ?? 0) == 6, "\(h.refused)")
        // A negative nonce or a fractional one is an envelope error, not a trap.
        let key = Ed25519SecretKey()
        let (did, _, op) = try EFSCDID.createOperation(network: "devnet", key: key)
        let method = "\(did)#key-1"
        for nonce: JSON in [-1, 0.5, 1e300] {
            var tx = try ChainTransaction.make(group: "identity", sender: did, nonce: 0, op: "did.register", args: ["operation": .object(op)], key: key, method: method).json
            tx["nonce"] = nonce
            h.send(try JCS.canonicalize(.object(tx)))
        }
        #expect(h.pooled == 0 && (h.refused["bad-envelope"] ?? 0) == 3, "\(h.refused)")
    }

    // MARK: 2. unbounded work per message

    @Test(.timeLimit(.minutes(1))) func unboundedWorkPerMessage() throws {
        let h = try Harness()
        // A 200,000-character DID: refused by its length before any base58 decoding.
        let long = "did:efsc:devnet:" + String(repeating: "z", count: 200_000)
        let tx: JSON = ["group": "identity", "sender": .string(long), "nonce": 0, "op": "did.register", "args": ["operation": ["did": .string(long)]]]
        h.send(try JCS.canonicalize(tx))
        #expect(h.pooled == 0)
        #expect(Base58.decode(String(repeating: "2", count: 200_000)) == nil)
        #expect(throws: MultibaseError.tooLong(200_001)) { try Multibase.decodeRaw("z" + String(repeating: "2", count: 200_000)) }
        #expect(!DIDSyntax.isValid(long))
        // An object of 60,000 members parses, compares and canonicalizes in linear time.
        var text = "{"
        for i in 0..<60_000 { text += (i == 0 ? "" : ",") + "\"k\(i)\":\(i)" }
        text += "}"
        let a = try JSONParser.parse(text)
        let b = try JSONParser.parse(text)
        #expect(a == b)
        #expect(try JCS.canonicalize(a).count > 0)
        var o = a.objectValue!
        o["k59999"] = nil
        #expect(o["k59998"] == 59998 && o.count == 59_999)
        // Past the member limit: refused by the parser, with the limit named.
        var huge = "{"
        for i in 0...WireLimits.jsonMembers { huge += (i == 0 ? "" : ",") + "\"m\(i)\":0" }
        huge += "}"
        #expect(throws: JSONError.self) { try JSONParser.parse(huge) }
    }

    // MARK: 3. unbounded memory

    @Test func unboundedMemory_unsignedAndForgedTransactionsNeverReachThePool() throws {
        let h = try Harness()
        // Unsigned.
        let key = Ed25519SecretKey()
        var unsigned = try Self.registration(key).json
        unsigned["proof"] = nil
        h.send(try JCS.canonicalize(.object(unsigned)))
        // Signed by another key than the DID's.
        let good = try Self.registration(key)
        var forged = good.json
        var args = forged["args"]!.objectValue!
        var op = args["operation"]!.objectValue!
        op["note"] = "changed after signing"
        args["operation"] = .object(op)
        forged["args"] = .object(args)
        h.send(try JCS.canonicalize(.object(forged)))
        #expect(h.pooled == 0)
        #expect((h.refused["bad-signature"] ?? 0) + (h.refused["bad-envelope"] ?? 0) == 2, "\(h.refused)")
        // The genuine one is admitted, once.
        h.send(good.bytes)
        h.send(good.bytes)
        #expect(h.pooled == 1)
        // A sender not registered anywhere waits outside the pool, bounded, then is refused.
        let stranger = Ed25519SecretKey()
        let (did, _, _) = try EFSCDID.createOperation(network: "devnet", key: stranger)
        let method = "\(did)#key-1"
        let t = try ChainTransaction.make(group: "identity", sender: did, nonce: 1, op: "template.register", args: [:], key: stranger, method: method)
        h.send(t.bytes)
        #expect(h.pooled == 1 && h.runner.q.sync { h.runner.waiting.count } == 1)
        h.runner.q.sync { h.runner.reviewWaiting(now: DateTime.currentTime() + GroupRunner.unknownSenderHoldSeconds + 1) }
        #expect(h.runner.q.sync { h.runner.waiting.count } == 0 && h.refused["unknown-sender"] == 1, "\(h.refused)")
    }

    @Test func unboundedMemory_poolIsBoundedByBytesAndPerSender() throws {
        let h = try Harness { $0["poolPerSender"] = 2 }
        // Three transactions of one sender (all registrations of fresh DIDs are distinct senders, so use
        // the same DID with three nonces: the first is a registration, the others fail later, but each is signed).
        let key = Ed25519SecretKey()
        for n in 0..<3 { h.send(try Self.registration(key, nonce: n).bytes) }
        #expect(h.pooled == 2 && h.refused["sender-quota"] == 1, "\(h.refused)")
        let small = try Harness { $0["poolByteLimit"] = .number(Double(WireLimits.transactionBytes)) }
        var sent = 0
        while small.refused["pool-full"] == nil && sent < 1000 {
            small.send(try Self.registration().bytes)
            sent += 1
        }
        #expect(small.refused["pool-full"] == 1 && small.runner.q.sync { small.runner.poolBytes } <= WireLimits.transactionBytes)
    }

    @Test func unboundedMemory_queuedWorkIsBounded() throws {
        let bound = InboxBound(messages: 2, bytes: 100)
        #expect(bound.enter(40) && bound.enter(40))
        #expect(!bound.enter(1), "a third message is over the count")
        bound.leave(40)
        #expect(!bound.enter(70), "and 110 bytes over the bytes")
        #expect(bound.enter(60))
        // A group whose queue is full drops what arrives, counts it and answers requests.
        let h = try Harness()
        var taken = 0
        while h.runner.inbox.enter(0) { taken += 1 }
        h.send(try Self.registration().bytes)
        #expect(h.refused["overloaded"] == 1 && h.pooled == 0, "\(h.refused)")
        for _ in 0..<taken { h.runner.inbox.leave(0) }
        h.send(try Self.registration().bytes)
        #expect(h.pooled == 1)
    }

    // MARK: 4. size invariants

    @Test func sizeInvariants() throws {
        let h = try Harness()
        // A signed transaction whose canonical form is over the limit is refused at admission.
        let key = Ed25519SecretKey()
        let (did, _, op) = try EFSCDID.createOperation(network: "devnet", key: key)
        let method = "\(did)#key-1"
        var bigOp = op
        bigOp["padding"] = .string(String(repeating: "x", count: WireLimits.transactionBytes))
        let big = try ChainTransaction.make(group: "identity", sender: did, nonce: 0, op: "did.register", args: ["operation": .object(bigOp)], key: key, method: method)
        h.send(big.bytes)
        #expect(h.pooled == 0 && h.refused["too-large"] == 1, "\(h.refused)")
        // Numbers whose canonical form is longer than their text are measured canonically.
        var grown = try Self.registration(key).json
        grown["args"] = .object(["operation": .object(op), "n": .array(Array(repeating: 1e20, count: 12_000))])
        let text = JSON.object(grown).compactString().replacingOccurrences(of: "100000000000000000000", with: "1e20")
        #expect(text.utf8.count < WireLimits.transactionBytes)
        h.send(Array(text.utf8))
        #expect(h.pooled == 0 && h.refused["too-large"] == 2, "\(h.refused)")

        // A sync reply never exceeds the reply limit, whatever the blocks' sizes.
        let t = try Harness(group: "transaction")
        let ledger = t.runner.ledger
        for height in 1...3 {
            let txs = [Array(repeating: UInt8(ascii: "a"), count: 600_000)]
            let header = BlockHeader(
                group: "transaction", height: UInt64(height), parentHash: ledger.lastHash, stateRoot: ledger.stateRoot,
                transactionsRoot: Block.transactionsRoot(txs), proposer: 0, view: 0, timestamp: 1)
            _ = try ledger.commit(Block(header: header, transactions: txs), writes: [])
        }
        let sizes = GroupRunner.syncReplyBlocks(ledger: ledger, from: 1, max: 64)
        #expect(sizes.count == 1, "one 600 KB block fits a reply, two do not")
        #expect(sizes.reduce(4) { $0 + $1.count + 4 } <= WireLimits.replyBytes)
    }

    // MARK: 5. failures on the safety path

    @Test func failuresOnTheSafetyPathStopTheNode() throws {
        struct DiskFull: Error {}
        let h = try Harness()
        h.runner.persist = { _ in throw DiskFull() }
        let vote = SignedMessage(sender: 0, message: .prepare(view: 0, seq: 1, digest: Digest.sha256([1])), signature: [])
        let before = h.runner.q.sync { h.runner.consensusSent }
        h.runner.q.sync { h.runner.apply([.persist(h.runner.replica.durable), .broadcast(vote)]) }
        #expect(h.fatal.count == 1 && h.fatal[0].contains("cannot persist"), "\(h.fatal)")
        #expect(h.runner.q.sync { h.runner.consensusSent } == before, "the vote after a failed persist must not be sent")
        // A committed block the ledger refuses (wrong parent) stops the node too.
        let ledger = h.runner.ledger
        let header = BlockHeader(
            group: "identity", height: 1, parentHash: Digest.sha256([9]), stateRoot: ledger.stateRoot, transactionsRoot: Block.transactionsRoot([]),
            proposer: 1, view: 0, timestamp: 1)
        let body = Block(header: header, transactions: []).body
        h.runner.q.sync { h.runner.commit(CommittedBlock(seq: 1, view: 0, digest: Digest.sha256(body), payload: body, certificate: [])) }
        #expect(h.fatal.count == 2 && h.fatal[1].contains("cannot commit block 1"), "\(h.fatal)")
        #expect(ledger.height == 0)
    }
}
