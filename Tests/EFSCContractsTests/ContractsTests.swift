import EFSCCore
import EFSCCredentials
import EFSCIdentity
import Testing
@testable import EFSCContracts

/// A party with a did:efsc and a signing key.
struct Party {
    let key = Ed25519SecretKey()
    let did: String
    let create: JSONObject
    var nonce = 0
    init() throws {
        let (d, _, op) = try EFSCDID.createOperation(network: "test", key: key)
        did = d
        create = op
    }
    var method: String { "\(did)#key-1" }
    mutating func tx(_ group: String, _ op: String, _ args: JSONObject) throws -> ChainTransaction {
        nonce += 1
        return try ChainTransaction.make(group: group, sender: did, nonce: nonce, op: op, args: args, key: key, method: method)
    }
}

@Suite struct IdentityContractTests {
    @Test func registerRotateDeactivate() throws {
        var alice = try Party()
        let state = ContractState()
        let c = Contracts(group: "identity") { _ in nil }
        let r = c.execute(try alice.tx("identity", "did.register", ["operation": .object(alice.create)]), state: state, height: 1)
        #expect(r.ok, "\(r.error ?? "")")
        // Registering again is refused, with a reason.
        let again = c.execute(try alice.tx("identity", "did.register", ["operation": .object(alice.create)]), state: state, height: 1)
        #expect(again.error == "DID \(alice.did) is already registered")
        // Rotate to a new key, signed by the current key.
        let doc = c.history(alice.did, state)!.current.document
        let newKey = Ed25519SecretKey()
        let (_, rot) = try EFSCDID.rotateOperation(current: doc, version: 1, currentKey: alice.key, currentMethod: alice.method, newKey: newKey)
        #expect(c.execute(try alice.tx("identity", "did.update", ["operation": .object(rot)]), state: state, height: 2).ok)
        // Resolution at a height sees the history as it was then.
        #expect(Contracts.history(alice.did, atHeight: 1, state: state)?.current.version == 1)
        #expect(Contracts.history(alice.did, atHeight: 2, state: state)?.current.version == 2)
        #expect(Contracts.history(alice.did, atHeight: 0, state: state) == nil)
        // The old key no longer signs transactions.
        let stale = c.execute(try alice.tx("identity", "template.register", [:]), state: state, height: 3)
        #expect(stale.error?.hasPrefix("bad signature") == true)
        #expect(c.history(alice.did, state)?.current.version == 2)
    }

    @Test func rejectionsSayWhy() throws {
        var alice = try Party()
        var mallory = try Party()
        let state = ContractState()
        let c = Contracts(group: "identity") { _ in nil }
        let reg = try alice.tx("identity", "did.register", ["operation": .object(alice.create)])
        #expect(c.execute(reg, state: state, height: 1).ok)
        // Replay of the same transaction (same nonce).
        #expect(c.execute(reg, state: state, height: 2).error == "replayed nonce 1")
        // Unknown sender.
        #expect(c.execute(try mallory.tx("identity", "template.register", [:]), state: state, height: 2).error == "unknown DID \(mallory.did)")
        // Registering someone else's DID.
        let steal = try mallory.tx("identity", "did.register", ["operation": .object(alice.create)])
        #expect(c.execute(steal, state: state, height: 2).error?.contains("is not the DID being registered") == true)
        // A tampered transaction.
        var t = try alice.tx("identity", "did.update", ["operation": [:]]).json
        t["nonce"] = 99
        #expect(c.execute(ChainTransaction(json: t), state: state, height: 2).error?.hasPrefix("bad signature") == true)
        // The same taken from a block (the proof checked by canonicalizing the document).
        let fromBlock = ChainTransaction(json: t, blockBytes: try JCS.canonicalize(.object(t)))
        #expect(c.execute(fromBlock, state: state, height: 2).error?.hasPrefix("bad signature") == true)
        // Wrong group and unknown op.
        #expect(c.execute(try alice.tx("transaction", "did.update", [:]), state: state, height: 2).error?.contains("not 'identity'") == true)
        #expect(c.execute(try alice.tx("identity", "mint.coins", [:]), state: state, height: 2).error == "unknown operation 'mint.coins' for group identity")
        // A deactivated DID can do nothing more.
        let doc = c.history(alice.did, state)!.current.document
        let de = try EFSCDID.deactivateOperation(current: doc, version: 1, signer: alice.key, signerMethod: alice.method)
        #expect(c.execute(try alice.tx("identity", "did.deactivate", ["operation": .object(de)]), state: state, height: 3).ok)
        #expect(c.execute(try alice.tx("identity", "template.register", [:]), state: state, height: 4).error == "DID \(alice.did) is deactivated")
        // A rejected transaction leaves no writes behind (its nonce included).
        let before = state.writes
        _ = c.execute(try mallory.tx("identity", "template.register", [:]), state: state, height: 5)
        #expect(state.writes == before)
    }

    @Test func templatesAreOwnerOnlyAndVersioned() throws {
        var p = try Party()
        var q = try Party()
        let state = ContractState()
        let c = Contracts(group: "identity") { _ in nil }
        #expect(c.execute(try p.tx("identity", "did.register", ["operation": .object(p.create)]), state: state, height: 1).ok)
        #expect(c.execute(try q.tx("identity", "did.register", ["operation": .object(q.create)]), state: state, height: 1).ok)
        let t1 = try ProviderTemplates.timeOfDayTIT(owner: p.did)
        #expect(c.execute(try p.tx("identity", "template.register", ["template": t1.json]), state: state, height: 2).ok)
        #expect(c.execute(try p.tx("identity", "template.register", ["template": t1.json]), state: state, height: 2).error?.contains("already exists") == true)
        let t2 = try ProviderTemplates.timeOfDayTIT(owner: p.did, version: 2)
        #expect(c.execute(try q.tx("identity", "template.register", ["template": t2.json]), state: state, height: 3).error?.contains("only the owner") == true)
        #expect(c.execute(try p.tx("identity", "template.register", ["template": t2.json]), state: state, height: 3).ok)
        let t4 = try ProviderTemplates.timeOfDayTIT(owner: p.did, version: 4)
        #expect(c.execute(try p.tx("identity", "template.register", ["template": t4.json]), state: state, height: 4).error?.contains("no version 3") == true)
        let builtin = BaseTemplates.tit.json
        var fake = builtin.objectValue!
        fake["owner"] = .string(p.did)
        #expect(c.execute(try p.tx("identity", "template.register", ["template": .object(fake)]), state: state, height: 4).error?.contains("built-in") == true)
    }
}

@Suite struct TransactionContractTests {
    func setup() throws -> (Contracts, ContractState, Party, Party, Party) {
        let provider = try Party()
        let consumer = try Party()
        let tcc = try Party()
        var histories: [String: DIDHistory] = [:]
        for p in [provider, consumer, tcc] { histories[p.did] = try DIDHistory(create: p.create) }
        let c = Contracts(group: "transaction", tccs: [tcc.did]) { histories[$0] }
        return (c, ContractState(), provider, consumer, tcc)
    }

    @Test func offersAndMatchmaking() throws {
        var (c, state, provider, _, _) = try setup()
        func offer(_ id: String, _ type: String, _ price: Double, _ cap: Int, mem: Double = 80) throws -> Receipt {
            c.execute(
                try provider.tx(
                    "transaction", "offer.publish",
                    ["offerId": .string(id), "computingPower": ["resourceType": .string(type), "memoryGiB": .number(mem)], "unitPrice": .number(price), "capacity": .number(Double(cap))]),
                state: state, height: 1)
        }
        #expect(try offer("b", "gpu", 10, 8).ok)
        #expect(try offer("a", "gpu", 10, 4).ok)
        #expect(try offer("c", "gpu", 7, 1).ok)
        #expect(try offer("d", "cpu", 1, 100).ok)
        #expect(try offer("e", "gpu", 25, 16).ok)
        #expect(try offer("f", "gpu", 9, 8, mem: 16).ok)
        #expect(try offer("bad", "gpu", -1, 1).error == "unitPrice must be a number ≥ 0")
        let m = try Contracts.match(["resourceType": "gpu", "quantity": 2, "maxUnitPrice": 20, "durationHours": 3, "minMemoryGiB": 40], state: state)
        // c lacks capacity, e is too dear, f too small, d is a CPU; a and b tie on cost → id order.
        #expect(m.map { $0["offerId"]?.stringValue } == ["a", "b"])
        #expect(m.first?["totalCost"]?.doubleValue == 60)
        #expect(throws: ContractError.self) { try Contracts.match(["resourceType": "gpu", "quantity": 0], state: state) }
    }

    /// A transaction's bytes are made member by member; they must be exactly
    /// JCS of the whole object, and without the proof exactly what it signs.
    @Test func transactionBytesAreCanonicalAndTheProofSignsTheRest() throws {
        var p = try Party()
        let tx = try p.tx("transaction", "evidence.submit", ["items": [["channelId": "é-ch", "sequence": 1, "tscHash": "ab"]], "x": 1.5])
        #expect(tx.bytes == (try JCS.canonicalize(.object(tx.json))))
        var unsigned = tx.json
        unsigned["proof"] = nil
        #expect(tx.unsignedHash == Digest.sha256(try JCS.canonicalize(.object(unsigned))))
        let proof = try #require(tx.json["proof"]?.objectValue)
        try EddsaJcs2022.verifyProof(document: tx.json, proof: proof, key: p.key.publicKey)
        // Parsed back from the wire, the same bytes and the same unsigned hash.
        let back = ChainTransaction(json: try #require(try JSONParser.parse(tx.bytes).objectValue))
        #expect(back.bytes == tx.bytes && back.unsignedHash == tx.unsignedHash)
        // The proof as the first member, the only member, or absent.
        for o: JSONObject in [["proof": ["a": 1], "zeta": [1, 2]], ["proof": "p"], ["a": 1, "b": ["c": true]], [:]] {
            let t = ChainTransaction(json: o)
            #expect(t.bytes == (try JCS.canonicalize(.object(o))))
            var rest = o
            rest["proof"] = nil
            #expect(t.unsignedHash == (o["proof"] == nil ? nil : Digest.sha256(try JCS.canonicalize(.object(rest)))))
        }
        // Received as text: canonical text is kept as the bytes (no second
        // serialization), the proof member found in place; other text is
        // made canonical. Either way the same bytes, hash and unsigned hash.
        let pretty = Array(JSON.object(tx.json).prettyString().utf8)
        for text in [tx.bytes, pretty] {
            let r = try #require(try ChainTransaction(received: text))
            #expect(r.bytes == tx.bytes && r.hash == tx.hash && r.unsignedHash == tx.unsignedHash)
        }
        for o: JSONObject in [["proof": ["a": 1], "zeta": [1, 2]], ["proof": "p"], ["a": 1, "b": ["c": true]], [:]] {
            let canonical = try JCS.canonicalize(.object(o))
            let r = try #require(try ChainTransaction(received: canonical))
            #expect(r.bytes == canonical && r.unsignedHash == ChainTransaction(json: o).unsignedHash)
        }
        #expect(try ChainTransaction(received: Array("[1]".utf8)) == nil)
        #expect(throws: JSONError.self) { try ChainTransaction(received: Array("{\"a\"".utf8)) }
        // Bytes taken from a block as they are: no shortcut, the proof is checked the long way.
        #expect(ChainTransaction(json: tx.json, blockBytes: tx.bytes).unsignedHash == nil)
    }

    @Test func evidenceLocationBytesRoundTripAndReadJSONRecords() {
        let a = EvidenceLocation(height: 1 << 40, tx: 255, index: 4095)
        let b = EvidenceLocation(height: 7, tx: 0, index: 3, sequence: 1 << 33)
        #expect(a.encoded.count == 17 && b.encoded.count == 25)
        // The stored bytes, pinned: format, height u64, tx u32, index u32, sequence u64, big-endian.
        #expect(b.encoded == [1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0])
        #expect(a.encoded == [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 15, 255])
        #expect(EvidenceLocation(decoding: a.encoded) == a)
        #expect(EvidenceLocation(decoding: b.encoded) == b)
        // Ledgers written before the byte format hold JSON records.
        #expect(EvidenceLocation(decoding: Array(#"{"height":7,"index":3,"sequence":9,"tx":0}"#.utf8)) == EvidenceLocation(height: 7, tx: 0, index: 3, sequence: 9))
        #expect(EvidenceLocation(decoding: Array(#"{"height":7,"index":3,"tx":0}"#.utf8))?.sequence == nil)
        // Anything else is not a location.
        #expect(EvidenceLocation(decoding: []) == nil)
        #expect(EvidenceLocation(decoding: Array(a.encoded.dropLast())) == nil)
        #expect(EvidenceLocation(decoding: [2] + Array(a.encoded.dropFirst())) == nil)
        #expect(EvidenceLocation(decoding: Array(#"{"height":-1,"index":3,"tx":0}"#.utf8)) == nil)
        #expect(EvidenceLocation(decoding: Array(#"{"height":"#.utf8)) == nil)
    }

    @Test func evidenceSupersedesAndRejectsStale() throws {
        var (c, state, provider, _, tcc) = try setup()
        let h1 = Hex.encode(Digest.sha256([1]))
        let h2 = Hex.encode(Digest.sha256([2]))
        #expect(c.execute(try tcc.tx("transaction", "evidence.submit", ["channelId": "ch-1", "sequence": 10, "tscHash": .string(h1)]), state: state, height: 5).ok)
        func location(_ key: String) -> EvidenceLocation? { state.getBytes(key).flatMap(EvidenceLocation.init(decoding:)) }
        // The credential-hash index: the latest entry for a hash.
        func indexed(_ hex: String) -> EvidenceLocation? {
            state.evidenceIndex.last { $0.key == Hex.decode(hex) }?.value.flatMap(EvidenceLocation.init(decoding:))
        }
        #expect(location("evidence/ch-1")?.sequence == 10)
        let stale = c.execute(try tcc.tx("transaction", "evidence.submit", ["channelId": "ch-1", "sequence": 10, "tscHash": .string(h2)]), state: state, height: 6)
        #expect(stale.error == "item 0: stale sequence 10 for channel ch-1 (on chain: 10)")
        // A batch: all items or none.
        let batchTx = try tcc.tx(
            "transaction", "evidence.submit",
            ["items": [["channelId": "ch-1", "sequence": 20, "tscHash": .string(h2)], ["channelId": "ch-2", "sequence": 1, "tscHash": .string(h1)]]])
        let batch = c.execute(batchTx, state: state, height: 7, index: 3)
        #expect(batch.ok)
        #expect(location("evidence/ch-1")?.sequence == 20)
        #expect(indexed(h2)?.height == 7)
        // The state keeps where the evidence is; the record comes back whole from its transaction.
        #expect(location("evidence/ch-2") == EvidenceLocation(height: 7, tx: 3, index: 1, sequence: 1))
        #expect(indexed(h1) == EvidenceLocation(height: 7, tx: 3, index: 1))
        let rec = try Contracts.evidenceRecord(try #require(indexed(h1)), transaction: batchTx.bytes)
        #expect(
            rec == [
                "channelId": "ch-2", "sequence": 1, "tscHash": .string(h1), "tcc": .string(tcc.did), "height": 7,
                "txHash": .string(Hex.encode(batchTx.hash)), "index": 1,
            ])
        #expect(throws: ContractError.self) { try Contracts.evidenceRecord(EvidenceLocation(height: 7, tx: 3, index: 2), transaction: batchTx.bytes) }
        #expect(throws: ContractError.self) { try Contracts.evidenceRecord(EvidenceLocation(height: 7, tx: 3, index: 0), transaction: Array("not json".utf8)) }
        let partlyStale = c.execute(
            try tcc.tx(
                "transaction", "evidence.submit",
                ["items": [["channelId": "ch-3", "sequence": 1, "tscHash": .string(h1)], ["channelId": "ch-2", "sequence": 1, "tscHash": .string(h1)]]]),
            state: state, height: 8)
        #expect(!partlyStale.ok)
        #expect(state.getBytes("evidence/ch-3") == nil)
        // A rejected transaction indexes nothing: one entry per accepted evidence so far.
        #expect(state.evidenceIndex.count == 3)
        #expect(state.getBytes("evidence-hash/\(h1)") == nil)
        // Only TCCs submit evidence.
        #expect(c.execute(try provider.tx("transaction", "evidence.submit", ["channelId": "ch-9", "sequence": 1, "tscHash": .string(h1)]), state: state, height: 9).error == "\(provider.did) is not a TCC of this network")
        #expect(c.execute(try tcc.tx("transaction", "evidence.submit", ["channelId": "ch-9", "sequence": 1, "tscHash": "zz"]), state: state, height: 9).error == "item 0: tscHash must be 64 hex digits")
    }

    /// The column form of a batch (what TCCs submit): same checks, same
    /// index and records as items, and malformed columns refused by name.
    @Test func evidenceColumnsIndexLikeItemsAndRefuseBadShapes() throws {
        var (c, state, _, _, tcc) = try setup()
        let hs = (0..<3).map { Hex.encode(Digest.sha256([UInt8($0)])) }
        let args = EvidenceBatch.args([("col-a", 1, hs[0]), ("col-b", 4, hs[1]), ("col-c", 2, hs[2])])
        #expect(args["channelIds"] == ["col-a", "col-b", "col-c"] && args["tscHashes"]?.stringValue == hs.joined())
        #expect(EvidenceBatch.args([("one", 1, hs[0])]) == ["channelId": "one", "sequence": 1, "tscHash": .string(hs[0])])
        let tx = try tcc.tx("transaction", "evidence.submit", args)
        // A block's planned writes: one per evidence plus the nonce, in every form.
        let single = try tcc.tx("transaction", "evidence.submit", EvidenceBatch.args([("one", 1, hs[0])]))
        let items = try tcc.tx("transaction", "evidence.submit", ["items": [["channelId": "i", "sequence": 1, "tscHash": .string(hs[0])], ["channelId": "j", "sequence": 1, "tscHash": .string(hs[1])]]])
        #expect(Contracts.plannedWrites([tx]) == 4 && Contracts.plannedWrites([single]) == 2 && Contracts.plannedWrites([items]) == 3)
        #expect(Contracts.plannedWrites([tx, single, items]) == 9 && Contracts.plannedWrites([]) == 0)
        let r = c.execute(tx, state: state, height: 4, index: 2)
        #expect(r.ok, "\(r.error ?? "")")
        #expect(r.result?["evidences"]?.intValue == 3)
        #expect(state.getBytes("evidence/col-b").flatMap(EvidenceLocation.init(decoding:)) == EvidenceLocation(height: 4, tx: 2, index: 1, sequence: 4))
        #expect(state.evidenceIndex.map(\.key) == hs.map { Hex.decode($0)! })
        let rec = try Contracts.evidenceRecord(EvidenceLocation(height: 4, tx: 2, index: 2), transaction: tx.bytes)
        #expect(
            rec == [
                "channelId": "col-c", "sequence": 2, "tscHash": .string(hs[2]), "tcc": .string(tcc.did), "height": 4, "txHash": .string(Hex.encode(tx.hash)),
                "index": 2,
            ])
        #expect(throws: ContractError.self) { try Contracts.evidenceRecord(EvidenceLocation(height: 4, tx: 2, index: 3), transaction: tx.bytes) }
        // Per-item checks name the item, as for items.
        let stale = c.execute(try tcc.tx("transaction", "evidence.submit", EvidenceBatch.args([("col-d", 1, hs[0]), ("col-b", 4, hs[1])])), state: state, height: 5)
        #expect(stale.error == "item 1: stale sequence 4 for channel col-b (on chain: 4)")
        #expect(state.getBytes("evidence/col-d") == nil)
        let h2 = hs[0] + hs[1]
        let refusals: [(JSONObject, String)] = [
            (["channelIds": ["x", "y"], "sequences": [1], "tscHashes": .string(h2)], "channelIds and sequences must be arrays of one length, 1-4096, with tscHashes a string"),
            (["channelIds": [], "sequences": [], "tscHashes": ""], "channelIds and sequences must be arrays of one length, 1-4096, with tscHashes a string"),
            (["channelIds": ["x", "y"], "sequences": [1, 2]], "channelIds and sequences must be arrays of one length, 1-4096, with tscHashes a string"),
            (["channelIds": ["x", "y"], "sequences": [1, 2], "tscHashes": .string(hs[0])], "tscHashes must be 64 hex digits per evidence, concatenated (128 for 2)"),
            (["channelIds": ["x"], "sequences": [1], "tscHashes": .string(String(repeating: "z", count: 64))], "tscHashes must be 64 hex digits per evidence, concatenated (64 for 1)"),
            (["channelIds": ["x"], "sequences": [1], "tscHashes": .string(hs[0]), "items": []], "give evidences as one, as items or as columns (channelIds, sequences, tscHashes), not mixed"),
            (["channelIds": [1, "y"], "sequences": [1, 2], "tscHashes": .string(h2)], "item 0: channelId is missing"),
            (["channelIds": ["x", "y"], "sequences": [1, 0], "tscHashes": .string(h2)], "item 1: sequence must be ≥ 1"),
        ]
        for (a, why) in refusals {
            #expect(c.execute(try tcc.tx("transaction", "evidence.submit", a), state: state, height: 6).error == why)
        }
    }

    @Test func nonceWindowAcceptsLateOnceAndRejectsReplays() throws {
        var p = try Party()
        let state = ContractState()
        let c = Contracts(group: "identity") { _ in nil }
        let reg = try ChainTransaction.make(group: "identity", sender: p.did, nonce: 10, op: "did.register", args: ["operation": .object(p.create)], key: p.key, method: p.method)
        #expect(c.execute(reg, state: state, height: 1).ok)
        func t(_ n: Int) throws -> ChainTransaction {
            try ChainTransaction.make(group: "identity", sender: p.did, nonce: n, op: "template.register", args: ["template": try ProviderTemplates.timeOfDayTIT(owner: p.did, id: "urn:t:\(n)").json], key: p.key, method: p.method)
        }
        #expect(c.execute(try t(12), state: state, height: 2).ok)
        #expect(c.execute(try t(11), state: state, height: 2).ok)  // late, accepted once
        #expect(c.execute(try t(11), state: state, height: 3).error == "replayed nonce 11")
        #expect(c.execute(try t(2000), state: state, height: 3).ok)
        #expect(c.execute(try t(12), state: state, height: 4).error == "stale nonce 12 (more than 1024 below 2000)")
        #expect(c.execute(try t(1999), state: state, height: 4).ok)
        #expect(c.execute(try t(2000), state: state, height: 4).error == "replayed nonce 2000")
        p.nonce = 0
    }

    @Test func writesComeInKeyByteOrder() {
        let s = ContractState()
        for k in ["b", "é", "ab", "a", "Z", "a\u{0}", "e"] { s.set(k, 1) }
        let keys = s.writes.map(\.key)
        #expect(keys == [Array("Z".utf8), Array("a".utf8), Array("a\u{0}".utf8), Array("ab".utf8), Array("b".utf8), Array("e".utf8), Array("é".utf8)])
        // Canonically equivalent but different bytes: two keys, as in RocksDB.
        s.set("e\u{301}", 2)
        #expect(s.writes.count == 8)
        #expect(s.get("é") == 1 && s.get("e\u{301}") == 2)
        #expect(s.scan(prefix: "e").map(\.0).map { Array($0.utf8) } == [Array("e".utf8), Array("e\u{301}".utf8)])
    }

    @Test func undoRestoresDeletesAndOverwrites() {
        let s = ContractState(memory: ["a": 1])
        s.set("a", nil)
        s.set("b", 2)
        let m = s.mark()
        s.set("a", 3)
        s.set("b", nil)
        s.set("c", 4)
        s.reset(m)
        #expect(s.get("a") == nil)
        #expect(s.get("b") == 2)
        #expect(s.get("c") == nil)
        #expect(s.writes.map { String(decoding: $0.key, as: UTF8.self) } == ["a", "b"])
        #expect(s.writes[0].value == nil)
    }

    @Test func ticRecordOpensAChannel() async throws {
        var provider = try Party()
        var consumer = try Party()
        var stranger = try Party()
        var histories: [String: DIDHistory] = [:]
        let resolver = LocalDIDResolver()
        for p in [provider, consumer, stranger] {
            let h = try DIDHistory(create: p.create)
            histories[p.did] = h
            resolver.add(h)
        }
        let tit = try ProviderTemplates.timeOfDayTIT(owner: provider.did)
        let c = Contracts(group: "transaction", resolveDID: { histories[$0] }, resolveTemplate: { id, v in id == tit.id && v == tit.version ? tit : nil })
        let state = ContractState()
        let offer: JSONObject = ["offerId": "gpu-1", "computingPower": ["resourceType": "gpu"], "unitPrice": 12.5, "capacity": 3]
        #expect(c.execute(try provider.tx("transaction", "offer.publish", offer), state: state, height: 1).ok)
        func tic(units: Int) async throws -> VerifiableCredential {
            var claim = ProviderTemplates.sampleTITClaim(provider: provider.did, consumer: consumer.did)
            claim["computingPower"] = ["resourceType": "gpu", "units": .number(Double(units))]
            let app = try TIC.apply(claim: .object(claim), template: tit, consumerKey: consumer.key, consumerMethod: consumer.method)
            return try await TIC.issue(application: app, providerKey: provider.key, providerMethod: provider.method, resolver: resolver, templates: LocalTemplateStore([tit]))
        }
        let t = try await tic(units: 2)
        let r = c.execute(try consumer.tx("transaction", "tic.record", ["tic": .object(t.json), "offerId": "gpu-1"]), state: state, height: 2)
        #expect(r.ok, "\(r.error ?? "")")
        let ch = try #require(r.result?["channelId"]?.stringValue)
        #expect(state.get("channel/\(ch)")?["state"] == "open")
        #expect(state.get("offer/gpu-1")?["remaining"]?.intValue == 1)
        #expect(c.execute(try provider.tx("transaction", "tic.record", ["tic": .object(t.json), "offerId": "gpu-1"]), state: state, height: 3).error == "this TIC is already recorded")
        let big = try await tic(units: 2)
        #expect(c.execute(try consumer.tx("transaction", "tic.record", ["tic": .object(big.json), "offerId": "gpu-1"]), state: state, height: 3).error == "offer gpu-1 has 1 units left, the TIC needs 2")
        #expect(c.execute(try stranger.tx("transaction", "tic.record", ["tic": .object(big.json), "offerId": "gpu-1"]), state: state, height: 3).error == "only a party of the TIC can record it")
        var forged = try await tic(units: 1).json
        var subject = forged["credentialSubject"]!.objectValue!
        subject["unitPrice"] = 0.01
        forged["credentialSubject"] = .object(subject)
        let fr = c.execute(try consumer.tx("transaction", "tic.record", ["tic": .object(forged), "offerId": "gpu-1"]), state: state, height: 4)
        #expect(fr.error?.hasPrefix("provider proof:") == true, "\(fr.error ?? "")")
        _ = (provider.nonce, consumer.nonce, stranger.nonce)
    }

    @Test func channelCloseUnilateralChallengeFinalizeAndCooperative() async throws {
        var provider = try Party()
        var consumer = try Party()
        var tcc = try Party()
        var histories: [String: DIDHistory] = [:]
        let resolver = LocalDIDResolver()
        for p in [provider, consumer, tcc] {
            let h = try DIDHistory(create: p.create)
            histories[p.did] = h
            resolver.add(h)
        }
        let c = Contracts(group: "transaction", tccs: [tcc.did], resolveDID: { histories[$0] })
        let state = ContractState()
        func open(_ id: String) {
            state.set("channel/\(id)", ["channelId": .string(id), "providerDid": .string(provider.did), "consumerDid": .string(consumer.did), "state": "open"])
        }
        func tsc(_ ch: String, _ seq: Int, final: Bool = false) async throws -> JSON {
            var claim: JSON = [
                "providerDid": .string(provider.did), "consumerDid": .string(consumer.did), "channelId": .string(ch), "sequence": .number(Double(seq)),
                "usage": 1, "fee": 12.5, "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T11:00:00Z", "encryptionMethod": "none",
            ]
            if final, case .object(var o) = claim {
                o["final"] = true
                claim = .object(o)
            }
            let p = try TSC.propose(claim: claim, template: BaseTemplates.tst, tccDID: tcc.did, providerKey: provider.key, providerMethod: provider.method)
            let j = try await TSC.countersign(p, consumerKey: consumer.key, consumerMethod: consumer.method, resolver: resolver, templates: LocalTemplateStore())
            return .object(try await TSC.issue(j, tccKey: tcc.key, tccMethod: tcc.method, resolver: resolver, templates: LocalTemplateStore()).json)
        }
        open("ch-a")
        let t3 = try await tsc("ch-a", 3)
        let t5 = try await tsc("ch-a", 5)
        // The provider closes unilaterally with an old TSC; the consumer answers with a newer one.
        let close = c.execute(try provider.tx("transaction", "channel.close", ["channelId": "ch-a", "kind": "unilateral", "tsc": t3]), state: state, height: 100)
        #expect(close.ok, "\(close.error ?? "")")
        #expect(close.result?["challengeUntil"]?.intValue == 110)
        #expect(c.execute(try consumer.tx("transaction", "channel.finalize", ["channelId": "ch-a"]), state: state, height: 105).error?.contains("runs until height 110") == true)
        #expect(c.execute(try consumer.tx("transaction", "channel.challenge", ["channelId": "ch-a", "tsc": t3]), state: state, height: 105).error == "stale TSC 3: the close already holds 3")
        #expect(c.execute(try consumer.tx("transaction", "channel.challenge", ["channelId": "ch-a", "tsc": t5]), state: state, height: 106).ok)
        #expect(c.execute(try tcc.tx("transaction", "channel.finalize", ["channelId": "ch-a"]), state: state, height: 120).error == "only a party of channel ch-a can do this")
        let fin = c.execute(try provider.tx("transaction", "channel.finalize", ["channelId": "ch-a"]), state: state, height: 111)
        #expect(fin.ok)
        #expect(state.get("channel/ch-a")?["state"] == "closed")
        #expect(state.get("channel/ch-a")?["finalSequence"]?.intValue == 5)
        // Cooperative close is final at once; a TSC of another channel is refused.
        open("ch-b")
        #expect(c.execute(try consumer.tx("transaction", "channel.close", ["channelId": "ch-b", "kind": "cooperative", "tsc": t5]), state: state, height: 200).error == "the TSC is for another channel or other parties")
        let tb = try await tsc("ch-b", 9)
        #expect(c.execute(try consumer.tx("transaction", "channel.close", ["channelId": "ch-b", "kind": "cooperative", "tsc": tb]), state: state, height: 200).error?.hasPrefix("a cooperative close needs the final TSC") == true)
        // Only the TCC (or a party) may record it; the TCC only cooperatively.
        #expect(c.execute(try tcc.tx("transaction", "channel.close", ["channelId": "ch-b", "kind": "unilateral", "tsc": tb]), state: state, height: 200).error == "only a party of channel ch-b can do this")
        let tf = try await tsc("ch-b", 10, final: true)
        #expect(c.execute(try tcc.tx("transaction", "channel.close", ["channelId": "ch-b", "kind": "cooperative", "tsc": tf]), state: state, height: 200).ok)
        #expect(state.get("channel/ch-b")?["state"] == "closed")
        #expect(state.get("channel/ch-b")?["closedBy"]?.stringValue == tcc.did)
        // A forged TSC (fee changed) fails its proofs.
        open("ch-c")
        var forged = try await tsc("ch-c", 1).objectValue!
        var sub = forged["credentialSubject"]!.objectValue!
        sub["fee"] = 0
        forged["credentialSubject"] = .object(sub)
        #expect(c.execute(try provider.tx("transaction", "channel.close", ["channelId": "ch-c", "tsc": .object(forged)]), state: state, height: 300).error?.hasPrefix("TSC proof by") == true)
        _ = (provider.nonce, consumer.nonce, tcc.nonce)
    }
}
