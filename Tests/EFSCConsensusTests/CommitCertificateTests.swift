import EFSCCore
import Testing

@testable import EFSCConsensus

/// What a TCC or a replay tool checks of a block's commit certificate:
/// 2f+1 distinct members' signatures over commit(view, seq, digest).
@Suite struct CommitCertificateTests {
    let keys = (0..<4).map { _ in Ed25519SecretKey() }
    var members: [Ed25519PublicKey] { keys.map(\.publicKey) }
    let digest = Digest.sha256([1, 2, 3])

    func entry(_ i: Int, view: UInt64 = 2, seq: UInt64 = 9, digest: [UInt8]? = nil, group: String = "transaction") -> (replica: Int, signature: [UInt8]) {
        let m = PBFTMessage.commit(view: view, seq: seq, digest: digest ?? self.digest)
        return (i, try! keys[i].sign(PBFTCodec.signingBytes(group: group, sender: i, message: m)))
    }

    func signers(_ entries: [(replica: Int, signature: [UInt8])]) -> Int {
        CommitCertificate.validSigners(group: "transaction", view: 2, seq: 9, digest: digest, entries: entries, members: members)
    }

    @Test func quorumOfDistinctValidSignatures() {
        #expect(signers([entry(0), entry(1), entry(3)]) == 3)
        #expect(CommitCertificate.isQuorum(3, members: 4) && !CommitCertificate.isQuorum(2, members: 4))
        // One member three times is one signer.
        #expect(signers([entry(1), entry(1), entry(1)]) == 1)
        // Signatures over another view, height, digest or group do not count.
        #expect(signers([entry(0, view: 3), entry(1, seq: 10), entry(2, digest: Digest.sha256([9])), entry(3, group: "identity")]) == 0)
        // Only the first n entries are looked at, each member's first one:
        // unknown replicas and junk there count for nothing.
        #expect(signers([(7, [1]), (-1, []), (2, Array(repeating: 0, count: 64))] + [entry(0), entry(1), entry(2)]) == 1)
        #expect(signers([entry(0), entry(1), entry(2)] + Array(repeating: (replica: 3, signature: [UInt8](repeating: 0, count: 64)), count: 10_000)) == 3)
    }
}
