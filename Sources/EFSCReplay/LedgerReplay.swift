import EFSCChannel
import EFSCCore
import EFSCLedger
import Foundation

/// Where a replay reads blocks: a stored ledger (a node's data directory)
/// or the `history` query. Either way nothing is trusted before
/// `BlockVerifier` passed it.
public protocol BlockSource: AnyObject {
    /// The source's committed height of `group`.
    func height(_ group: String) async throws -> UInt64
    /// The encoded block at `height` (nil: the source does not have it).
    func block(_ group: String, _ height: UInt64) async throws -> Block?
}

/// Blocks of a node's data directory (`DIR/identity`, `DIR/transaction`), read-only use.
public final class LedgerSource: BlockSource {
    let ledgers: [String: Ledger]
    public init(dataDir: String) throws(ReplayError) {
        var l: [String: Ledger] = [:]
        for g in ReplayState.groups where FileManager.default.fileExists(atPath: "\(dataDir)/\(g)") {
            do { l[g] = try Ledger(path: "\(dataDir)/\(g)", group: g) } catch { throw ReplayError(.state, "cannot open the ledger \(dataDir)/\(g): \(error)") }
        }
        guard !l.isEmpty else { throw ReplayError(.state, "\(dataDir) holds no ledger (no identity/ or transaction/ directory)") }
        ledgers = l
    }
    public func height(_ group: String) async throws -> UInt64 { ledgers[group]?.height ?? 0 }
    public func block(_ group: String, _ height: UInt64) async throws -> Block? {
        do { return try ledgers[group]?.block(at: height) } catch { throw ReplayError(.badBlock, "block \(height) of \(group): \(error)", height: height) }
    }
}

/// Blocks of the `history` query, a page at a time.
public final class HistorySource: BlockSource {
    let chain: ChainClient
    let node: String?
    private var page: [String: [UInt64: Block]] = [:]
    public init(chain: ChainClient, node: String? = nil) {
        self.chain = chain
        self.node = node
    }
    public func height(_ group: String) async throws -> UInt64 {
        do {
            return try await chain.history(group, from: 1, max: 1, node: node).committedHeight
        } catch let e as HistoryError where e.code == .notCommitted {
            return e.height ?? 0
        }
    }
    public func block(_ group: String, _ height: UInt64) async throws -> Block? {
        if let b = page[group]?[height] { return b }
        let p = try await chain.history(group, from: height, node: node)
        page[group] = Dictionary(p.blocks.map { ($0.header.height, $0) }, uniquingKeysWith: { a, _ in a })
        return page[group]?[height]
    }
}

/// `efsc ledger replay`: re-executes the chain's blocks into a fresh
/// replay state and checks, at every height, that each block verifies
/// against the genesis and that the state root it certifies is the one
/// re-execution reached. The identity group is replayed first (the
/// transaction group reads it as of each block's anchor).
public enum LedgerReplay {
    public struct Report: Sendable {
        public var heights: [String: UInt64] = [:]
        public var stateRoots: [String: [UInt8]] = [:]
        public var transactions = 0
        /// Certified state roots that re-execution reproduced.
        public var rootsChecked = 0
        /// The first failure: its group, height and why.
        public var failure: (group: String, height: UInt64, error: ReplayError)?
    }

    public static func run(
        source: BlockSource, network: TrustedNetwork, stateDir: String, groups: [String] = ReplayState.groups, until: UInt64? = nil,
        progress: (String, UInt64) -> Void = { _, _ in }
    ) async throws -> Report {
        var state: ReplayState! = try ReplayState(dir: stateDir, network: network)
        defer { state = nil }
        let verifier = BlockVerifier(network: network)
        var report = Report()
        let order = ReplayState.groups.filter { groups.contains($0) || ($0 == "identity" && groups.contains("transaction")) }
        for g in order {
            let top = min(try await source.height(g), until ?? .max)
            var parent: (hash: [UInt8], anchor: UInt64)? = state.height(g) > 0 ? (state.lastHash(g), state.lastAnchor(g)) : nil
            var h = state.height(g) + 1
            while h <= top {
                do {
                    guard let b = try await source.block(g, h) else { throw ReplayError(.badBlock, "block \(h) of \(g) is missing from the source", height: h) }
                    let v: VerifiedBlock
                    do { v = try verifier.verify(b, group: g, height: h, parent: parent) } catch {
                        throw ReplayError(.badBlock, "block \(h) of \(g) does not verify: \(error)", height: h)
                    }
                    let e = try state.execute(v)
                    try state.commit(v, e)
                    if h > 1 { report.rootsChecked += 1 }
                    report.transactions += v.block.transactions.count
                    parent = (v.hash, v.block.header.anchor)
                } catch let e as ReplayError {
                    report.failure = (g, e.height ?? h, e)
                    break
                }
                progress(g, h)
                h += 1
            }
            report.heights[g] = state.height(g)
            report.stateRoots[g] = state.stateRoot(g)
            if report.failure != nil { break }
        }
        return report
    }
}
