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
    /// Digests of the uncommitted blocks stored.
    private(set) var storedPayloads: Set<[UInt8]> = []

    init(ledger: Ledger) { self.ledger = ledger }

    /// The state as stored: every prepared certificate keeps its digest and
    /// signatures, none keeps its block.
    static func slim(_ d: PBFTDurableState) -> PBFTDurableState {
        var out = d
        for (seq, cert) in d.prepared where !cert.payload.isEmpty { out.prepared[seq] = with(cert, payload: []) }
        return out
    }

    /// `cert` with its pre-prepare carrying `payload` (signatures unchanged:
    /// they sign the digest, not the block).
    static func with(_ cert: PreparedCertificate, payload: [UInt8]) -> PreparedCertificate {
        guard case .prePrepare(let v, let q, let dg, _) = cert.prePrepare.message else { return cert }
        let pp = SignedMessage(sender: cert.prePrepare.sender, message: .prePrepare(view: v, seq: q, digest: dg, payload: payload), signature: cert.prePrepare.signature)
        return PreparedCertificate(prePrepare: pp, prepares: cert.prepares)
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
            if storedPayloads.insert(cert.digest).inserted { puts.append((Self.payloadKey(cert.digest), cert.payload)) }
        }
        let drop = storedPayloads.subtracting(keep)
        storedPayloads.subtract(drop)
        try ledger.writeMeta(puts: puts, deletes: drop.map(Self.payloadKey))
    }

    /// The stored state with its blocks put back (from the ledger, or from
    /// the uncommitted blocks stored beside it), each checked against its
    /// digest. A certificate whose block is found nowhere stays digest-only.
    /// Stored blocks no certificate names any more are deleted.
    func load() throws -> PBFTDurableState {
        guard let bytes = try ledger.getMeta(Self.stateKey) else { return PBFTDurableState() }
        var d = try PBFTCodec.decodeDurable(bytes)
        for (seq, cert) in d.prepared where cert.payload.isEmpty && cert.digest != Digest.sha256([]) {
            let dg = cert.digest
            if let b = try? ledger.block(at: seq), Digest.sha256(b.body) == dg {
                d.prepared[seq] = Self.with(cert, payload: b.body)
            } else if let p = try ledger.getMeta(Self.payloadKey(dg)), Digest.sha256(p) == dg {
                d.prepared[seq] = Self.with(cert, payload: p)
                storedPayloads.insert(dg)
            }
        }
        // A crash between storing a block and the save that drops it (a view
        // change that abandoned the block) leaves it behind: remove those.
        let wanted = Set(storedPayloads.map(Self.payloadKey))
        let orphans = ledger.metaKeys(prefix: Self.payloadPrefix).filter { !wanted.contains($0) }
        if !orphans.isEmpty { try ledger.writeMeta(puts: [], deletes: orphans) }
        return d
    }
}
