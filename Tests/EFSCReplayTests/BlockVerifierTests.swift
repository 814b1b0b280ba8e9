import EFSCConsensus
import EFSCCore
import EFSCLedger
import Testing

@testable import EFSCReplay

/// A chain of certified blocks signed by a test network's node keys.
struct TestChain {
    let keys = (0..<4).map { _ in Ed25519SecretKey() }
    var network: TrustedNetwork { try! TrustedNetwork(network: "test", members: keys.map(\.publicKey), tccs: []) }

    func certify(_ b: inout Block, signers: [Int] = [0, 1, 2], view: UInt64 = 0, with: [Ed25519SecretKey]? = nil) {
        let isNull = b.transactions.isEmpty && b.header.proposer == keys.count
        let digest = isNull ? Digest.sha256([]) : b.hash
        b.certificateView = view
        b.certificate = signers.map { r in
            let bytes = PBFTCodec.signingBytes(group: b.header.group, sender: r, message: .commit(view: view, seq: b.header.height, digest: digest))
            return CertificateEntry(replica: r, signature: try! (with?[r] ?? keys[r]).sign(bytes))
        }
    }

    func block(_ height: UInt64, parent: [UInt8], txs: [[UInt8]] = [Array(#"{"op":"x"}"#.utf8)], group: String = "transaction") -> Block {
        var b = Block(
            header: BlockHeader(
                group: group, height: height, parentHash: parent, stateRoot: [UInt8](repeating: 0, count: 32), transactionsRoot: Block.transactionsRoot(txs),
                proposer: 0, view: 0, timestamp: 1000 + height),
            transactions: txs)
        certify(&b)
        return b
    }

    /// Blocks 1…n, linked.
    func chain(_ n: Int) -> [Block] {
        var out: [Block] = []
        var parent = [UInt8](repeating: 0, count: 32)
        for h in 1...UInt64(n) {
            let b = block(h, parent: parent)
            parent = b.hash
            out.append(b)
        }
        return out
    }
}

@Suite struct BlockVerifierTests {
    let t = TestChain()

    func refusal(_ bytes: [UInt8], height: UInt64 = 2, parent: (hash: [UInt8], anchor: UInt64)?) -> BlockRefusal.Code? {
        do {
            _ = try BlockVerifier(network: t.network).verify(bytes, group: "transaction", height: height, parent: parent)
            return nil
        } catch {
            return error.code
        }
    }

    @Test func aCertifiedLinkedBlockVerifies() throws {
        let c = t.chain(2)
        let v = try BlockVerifier(network: t.network).verify(c[1].encoded, group: "transaction", height: 2, parent: (c[0].hash, 0))
        #expect(v.hash == c[1].hash && v.signers == 3 && !v.isNull)
        let first = try BlockVerifier(network: t.network).verify(c[0].encoded, group: "transaction", height: 1, parent: nil)
        #expect(first.height == 1)
    }

    @Test func everyForgeryIsRefusedWithItsCode() {
        let c = t.chain(2)
        let parent = (c[0].hash, UInt64(0))
        #expect(refusal(Array(c[1].encoded.prefix(40)), parent: parent) == .malformed)
        #expect(refusal(c[1].encoded, height: 3, parent: parent) == .wrongHeight)
        #expect(refusal(t.block(2, parent: c[0].hash, group: "identity").encoded, parent: parent) == .wrongGroup)
        #expect(refusal(t.block(2, parent: Digest.sha256([7])).encoded, parent: parent) == .badParent)
        var tampered = c[1]
        tampered.transactions = [Array(#"{"op":"y"}"#.utf8)]
        #expect(refusal(tampered.encoded, parent: parent) == .badTransactionsRoot)
        // Consistent root, certificate of the original.
        tampered.header.transactionsRoot = Block.transactionsRoot(tampered.transactions)
        #expect(refusal(tampered.encoded, parent: parent) == .badCertificate)
        // Signed by keys outside the genesis.
        var stranger = t.block(2, parent: c[0].hash)
        t.certify(&stranger, with: (0..<4).map { _ in Ed25519SecretKey() })
        #expect(refusal(stranger.encoded, parent: parent) == .badCertificate)
        // 2f = 2 signatures, or one replica three times: not a quorum.
        var short = t.block(2, parent: c[0].hash)
        t.certify(&short, signers: [0, 1])
        #expect(refusal(short.encoded, parent: parent) == .badCertificate)
        var repeated = t.block(2, parent: c[0].hash)
        t.certify(&repeated, signers: [1, 1, 1])
        #expect(refusal(repeated.encoded, parent: parent) == .badCertificate)
        // A certificate of another view than the one signed.
        var otherView = t.block(2, parent: c[0].hash)
        t.certify(&otherView)
        otherView.certificateView = 5
        #expect(refusal(otherView.encoded, parent: parent) == .badCertificate)
        #expect(refusal([UInt8](repeating: 0x45, count: WireLimits.packetBytes + 1), parent: parent) == .tooLarge)
        // Block 1 must not name a parent.
        #expect(refusal(t.block(1, parent: Digest.sha256([1])).encoded, height: 1, parent: nil) == .badParent)
    }

    @Test func aNullBlockMustBeTheOneEveryNodeDerives() throws {
        let c = t.chain(1)
        func null(timestamp: UInt64 = 0, anchor: UInt64 = 0, view: UInt64 = 2) -> Block {
            var b = Block(
                header: BlockHeader(
                    group: "transaction", height: 2, parentHash: c[0].hash, stateRoot: [UInt8](repeating: 0, count: 32),
                    transactionsRoot: Block.transactionsRoot([]), proposer: 4, view: view, timestamp: timestamp, anchor: anchor),
                transactions: [])
            t.certify(&b, view: 2)
            return b
        }
        let v = try BlockVerifier(network: t.network).verify(null().encoded, group: "transaction", height: 2, parent: (c[0].hash, 0))
        #expect(v.isNull)
        #expect(refusal(null(timestamp: 5).encoded, parent: (c[0].hash, 0)) == .badNullBlock)
        #expect(refusal(null(anchor: 3).encoded, parent: (c[0].hash, 0)) == .badNullBlock)
        #expect(refusal(null(view: 1).encoded, parent: (c[0].hash, 0)) == .badNullBlock)
    }

    @Test func theGenesisMustNameThreeFPlusOneKeys() {
        #expect(throws: ReplayError.self) { try TrustedNetwork(network: "x", members: [t.keys[0].publicKey], tccs: []) }
        #expect(throws: ReplayError.self) { try TrustedNetwork(genesis: ["nodes": [["publicKeyMultibase": "zNotAKey"]]]) }
    }
}
