import EFSCConsensus
import EFSCCore
import EFSCLedger

/// Where a group's PBFT replica keeps its durable state, in the ledger's
/// metadata.
///
/// The replica asks to persist several times per block (prepare vote, commit
/// vote, execution), and its prepared certificates carry whole blocks of up
/// to `GroupRunner.maxBlockBytes`. Writing those blocks with every vote made
/// the write-ahead log several times the size of the chain. So the state is
/// stored without blocks: a block the ledger holds comes back from the
/// ledger, and a block not yet committed is written once, under its digest,
/// when it first appears in a certificate, and deleted once the ledger has
/// it. Either way a restarted replica gets whole, digest-checked
/// pre-prepares back for its view-change messages.
final class ConsensusStore {
    let ledger: Ledger
    static let stateKey = "pbft"
    static let payloadPrefix = "pbft-payload/"
    /// Digests of the uncommitted blocks stored, with their sequence numbers.
    private(set) var storedPayloads: [[UInt8]: UInt64] = [:]

    init(ledger: Ledger) { self.ledger = ledger }

    /// The state as stored: every prepared certificate keeps its digest and
    /// signatures, none keeps its block.
    static func slim(_ d: PBFTDurableState) -> PBFTDurableState {
        var out = d
        for (seq, cert) in d.prepared where !cert.payload.isEmpty {
            guard case .prePrepare(let v, let q, let dg, _) = cert.prePrepare.message else { continue }
            let pp = SignedMessage(sender: cert.prePrepare.sender, message: .prePrepare(view: v, seq: q, digest: dg, payload: []), signature: cert.prePrepare.signature)
            out.prepared[seq] = PreparedCertificate(prePrepare: pp, prepares: cert.prepares)
        }
        return out
    }

    static func payloadKey(_ digest: [UInt8]) -> String { payloadPrefix + Hex.encode(digest) }

    /// Stores `d` (synced). New uncommitted blocks go in the same write;
    /// blocks the ledger now holds, or no certificate names, are dropped.
    func save(_ d: PBFTDurableState) throws {
        var puts: [(String, [UInt8])] = [(Self.stateKey, PBFTCodec.encode(durable: Self.slim(d)))]
        var keep: Set<[UInt8]> = []
        let height = ledger.height
        for (seq, cert) in d.prepared where seq > height && !cert.payload.isEmpty {
            keep.insert(cert.digest)
            if storedPayloads[cert.digest] == nil {
                puts.append((Self.payloadKey(cert.digest), cert.payload))
                storedPayloads[cert.digest] = seq
            }
        }
        let drop = storedPayloads.filter { !keep.contains($0.key) }
        for k in drop.keys { storedPayloads.removeValue(forKey: k) }
        try ledger.writeMeta(puts: puts, deletes: drop.keys.map(Self.payloadKey))
    }

    /// The stored state with its blocks put back (from the ledger, or from
    /// the uncommitted blocks stored beside it), each checked against its
    /// digest. A certificate whose block is found nowhere stays digest-only.
    /// Stored blocks no certificate names any more are deleted.
    func load() throws -> PBFTDurableState {
        guard let bytes = try ledger.getMeta(Self.stateKey) else { return PBFTDurableState() }
        var d = try PBFTCodec.decodeDurable(bytes)
        for (seq, cert) in d.prepared where cert.payload.isEmpty && cert.digest != Digest.sha256([]) {
            guard case .prePrepare(let v, let q, let dg, _) = cert.prePrepare.message else { continue }
            var body: [UInt8]? = nil
            if let b = try? ledger.block(at: seq), Digest.sha256(b.body) == dg {
                body = b.body
            } else if let p = try ledger.getMeta(Self.payloadKey(dg)), Digest.sha256(p) == dg {
                body = p
                storedPayloads[dg] = seq
            }
            guard let body else { continue }
            let pp = SignedMessage(sender: cert.prePrepare.sender, message: .prePrepare(view: v, seq: q, digest: dg, payload: body), signature: cert.prePrepare.signature)
            d.prepared[seq] = PreparedCertificate(prePrepare: pp, prepares: cert.prepares)
        }
        // A crash between storing a block and the save that drops it (a view
        // change that abandoned the block) leaves it behind: remove those.
        let wanted = Set(storedPayloads.keys.map(Self.payloadKey))
        let orphans = ledger.metaKeys(prefix: Self.payloadPrefix).filter { !wanted.contains($0) }
        if !orphans.isEmpty { try ledger.writeMeta(puts: [], deletes: orphans) }
        return d
    }
}
