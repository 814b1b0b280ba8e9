import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCLedger
import EFSCStore
import Foundation

/// What re-executing one verified block produced, not yet committed: the
/// receipts (nil for a transaction that is no JSON object, which nodes skip)
/// and the state writes the ledger commits.
public struct Execution {
    public let receipts: [Receipt?]
    let writes: [StateWrite]
    let evidenceIndex: [StateWrite]
    let txHashes: [[UInt8]]
}

/// A replay tool's own copy of the chain state: one RocksDB ledger per
/// group in `dir` (`dir/identity`, `dir/transaction`), filled by
/// re-executing verified blocks with the nodes' contracts, so receipts come
/// from the certified transactions, not from any node. Before a block
/// executes, the state root it names (the root after its parent) must be
/// the root re-execution reached here: otherwise that is a divergence at
/// the parent's height. The transaction group executes against the
/// identity group as of each block's anchor, as nodes do.
public final class ReplayState {
    public let dir: String
    let network: TrustedNetwork
    private var ledgers: [String: Ledger] = [:]
    private var contracts: [String: Contracts] = [:]
    private var executionAnchor: UInt64 = .max
    /// DID histories of the identity group as of one height (rebuilding
    /// one verifies its operations' signatures).
    private var didCache: (height: UInt64, entries: [String: DIDHistory?]) = (0, [:])

    public static let groups = ["identity", "transaction"]

    public init(dir: String, network: TrustedNetwork) throws(ReplayError) {
        self.dir = dir
        self.network = network
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for g in Self.groups { ledgers[g] = try Ledger(path: "\(dir)/\(g)", group: g, durability: .unlogged) }
        } catch {
            throw ReplayError(.state, "cannot open the replay state in \(dir): \(error)")
        }
        for g in Self.groups {
            contracts[g] = Contracts(
                group: g, tccs: Set(network.tccs),
                resolveDID: { [unowned self] did in g == "identity" ? nil : self.identityHistory(did) },
                resolveTemplate: { [unowned self] id, v in
                    guard g != "identity", let l = self.ledgers["identity"] else { return nil }
                    return Contracts.template(id, version: v, atHeight: self.executionAnchor, state: ContractState(ledger: l))
                })
        }
    }

    func identityHistory(_ did: String) -> DIDHistory? {
        guard let l = ledgers["identity"] else { return nil }
        let h = min(executionAnchor, l.height)
        if didCache.height == h, let c = didCache.entries[did] { return c }
        if didCache.height != h || didCache.entries.count > 10_000 { didCache = (h, [:]) }
        let v = Contracts.history(did, atHeight: h, state: ContractState(ledger: l))
        didCache.entries[did] = v
        return v
    }

    public func height(_ group: String) -> UInt64 { ledgers[group]?.height ?? 0 }
    public func lastHash(_ group: String) -> [UInt8] { ledgers[group]?.lastHash ?? [UInt8](repeating: 0, count: 32) }
    public func stateRoot(_ group: String) -> [UInt8] { ledgers[group]?.stateRoot ?? [UInt8](repeating: 0, count: 32) }
    /// The anchor of the last executed block (0 before any).
    public func lastAnchor(_ group: String) -> UInt64 {
        guard let l = ledgers[group], l.height > 0 else { return 0 }
        return (try? l.block(at: l.height))?.header.anchor ?? 0
    }

    /// The identity height a block needs executed first (its anchor), if
    /// the identity state is not there yet.
    public func identityNeeded(_ b: Block) -> UInt64? {
        guard b.header.group != "identity", b.header.anchor > height("identity") else { return nil }
        return b.header.anchor
    }

    /// Re-executes `v` on the state after its parent.
    public func execute(_ v: VerifiedBlock) throws(ReplayError) -> Execution {
        let g = v.group
        guard let ledger = ledgers[g], let c = contracts[g] else { throw ReplayError(.usage, "no replay state for group \(g)") }
        guard v.height == ledger.height + 1, v.block.header.parentHash == ledger.lastHash else {
            throw ReplayError(.state, "block \(v.height) of \(g) is not the next one of the replay state (at \(ledger.height)); remove \(dir) to start it over", height: v.height)
        }
        guard v.block.header.stateRoot == ledger.stateRoot else {
            throw ReplayError(
                .divergence,
                "divergence in \(g) at height \(v.height - 1): re-executing blocks 1…\(v.height - 1) gives state root \(Hex.encode(ledger.stateRoot)), block \(v.height) certifies \(Hex.encode(v.block.header.stateRoot))",
                height: v.height - 1)
        }
        if let need = identityNeeded(v.block) {
            throw ReplayError(.usage, "block \(v.height) of \(g) executes at identity height \(need); the replay state has \(height("identity"))", height: v.height)
        }
        executionAnchor = g == "identity" ? .max : v.block.header.anchor
        let state = ContractState(ledger: ledger)
        let txHashes = v.block.transactions.map { Digest.sha256($0) }
        let txs: [ChainTransaction?] = v.block.transactions.map { t in
            // Canonical text (what blocks carry) is kept as it is, with where its
            // proof is, so the proof is checked without canonicalizing again.
            if let r = try? ChainTransaction(received: t, maxBytes: max(t.count, 1)), r.bytes == t { return r }
            guard let j = try? JSONParser.parse(t), let o = j.objectValue else { return nil }
            return ChainTransaction(json: o, blockBytes: t)
        }
        state.reserve(writes: Contracts.plannedWrites(txs.compactMap { $0 }))
        var receipts: [Receipt?] = []
        receipts.reserveCapacity(txs.count)
        for (i, t) in txs.enumerated() {
            receipts.append(t.map { c.execute($0, state: state, height: v.height, index: i) })
        }
        return Execution(receipts: receipts, writes: state.writes, evidenceIndex: state.evidenceIndex, txHashes: txHashes)
    }

    /// Commits an executed block to the replay state.
    public func commit(_ v: VerifiedBlock, _ e: Execution) throws(ReplayError) {
        guard let ledger = ledgers[v.group] else { throw ReplayError(.usage, "no replay state for group \(v.group)") }
        do {
            try ledger.commit(v.block, writes: e.writes, evidenceIndex: e.evidenceIndex, txHashes: e.txHashes)
        } catch {
            throw ReplayError(.state, "cannot commit block \(v.height) of \(v.group) to the replay state in \(dir): \(error)", height: v.height)
        }
    }

    /// Moves the state from memory to table files (its writes are not
    /// logged; what a crash loses before this is re-executed).
    public func flush() throws(ReplayError) {
        for (g, l) in ledgers {
            do { try l.flush() } catch { throw ReplayError(.state, "cannot flush the replay state of \(g) in \(dir): \(error)") }
        }
    }

    /// A block the replay state holds (a restarted consumer's last one).
    public func block(_ group: String, at h: UInt64) -> Block? { try? ledgers[group]?.block(at: h) }
}
