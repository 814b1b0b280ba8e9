import EFSCConsensus
import EFSCContracts
import EFSCCore
import EFSCLedger

/// What a replica checks of a proposed block before it prepares it: every
/// rule the ledger applies at commit, judged on the same parent, so a
/// committed block is never one the ledger refuses.
extension GroupRunner {
    /// Largest proposed block: `maxBlockBytes` of transactions (with their
    /// length prefixes) plus the header.
    static let maxProposalBytes = maxBlockBytes + 1024

    /// The block proposed at `proposal.seq`: its structure (`checkedBlock`),
    /// then — once its parent has executed here — parent hash, the state
    /// root it names (this ledger's root after the parent) and its anchor
    /// (not below the parent's; on the transaction group at most the
    /// identity height this node committed, waited for within
    /// `WireLimits.anchorLead`). A held proposal is asked about again every
    /// tick; its structure was checked once (`checkedProposal`).
    func judge(_ proposal: PBFTProposal) -> PBFTValidation {
        let b: Block
        if let c = checkedProposal, c.digest == proposal.digest, c.seq == proposal.seq, c.view == proposal.view {
            b = c.block
        } else {
            switch checkedBlock(proposal) {
            case .failure(let refusal): return .invalid(refusal.reason)
            case .success(let block):
                b = block
                checkedProposal = (proposal.digest, proposal.seq, proposal.view, block)
            }
        }
        let h = b.header
        // The rest depends on the parent: wait until it has executed here.
        guard deferred.isEmpty, ledger.height + 1 == proposal.seq else { return .notYet }
        guard h.parentHash == ledger.lastHash else { return .invalid("its parent is not block \(ledger.height) (\(Hex.encode(ledger.lastHash).prefix(16))…)") }
        guard h.stateRoot == ledger.stateRoot else {
            return .invalid("state root \(Hex.encode(h.stateRoot).prefix(16))… is not this ledger's after block \(ledger.height)")
        }
        guard h.anchor >= lastAnchor else { return .invalid("anchor \(h.anchor) below its parent's \(lastAnchor)") }
        if group != "identity" {
            let ih = identityHeight() ?? 0
            if h.anchor > ih {
                return h.anchor - ih > WireLimits.anchorLead
                    ? .invalid("anchor \(h.anchor) is more than \(WireLimits.anchorLead) above this node's identity height \(ih)") : .notYet
            }
        }
        return .valid
    }

    struct ProposalRefusal: Error {
        let reason: String
    }

    /// What needs no state: size, encoding, group, height, transaction count
    /// and sizes, proposer of its view, transactions root, anchor range.
    func checkedBlock(_ proposal: PBFTProposal) -> Result<Block, ProposalRefusal> {
        func refuse(_ why: String) -> Result<Block, ProposalRefusal> { .failure(ProposalRefusal(reason: why)) }
        let payload = proposal.payload
        guard payload.count <= Self.maxProposalBytes else { return refuse("a block of \(payload.count) bytes (limit \(Self.maxProposalBytes))") }
        let b: Block
        do { b = try Block(decoding: payload) } catch { return refuse("the block does not decode: \(error)") }
        let h = b.header
        guard h.group == group else { return refuse("a block of group \(h.group)") }
        guard h.height == proposal.seq else { return refuse("a block of height \(h.height) at sequence \(proposal.seq)") }
        guard b.transactions.count <= config.maxTransactionsPerBlock else {
            return refuse("\(b.transactions.count) transactions (limit \(config.maxTransactionsPerBlock))")
        }
        if let big = b.transactions.first(where: { $0.count > WireLimits.transactionBytes }) {
            return refuse("a transaction of \(big.count) bytes (limit \(WireLimits.transactionBytes))")
        }
        guard h.view <= proposal.view, h.proposer == Int(h.view % UInt64(config.members.count)) else {
            return refuse("proposer \(h.proposer) of view \(h.view) is not that view's primary (or the view is after \(proposal.view))")
        }
        guard h.transactionsRoot == Block.transactionsRoot(b.transactions) else { return refuse("the transactions root does not match the transactions") }
        if group == "identity" {
            guard h.anchor == 0 else { return refuse("an identity block with anchor \(h.anchor)") }
        } else if h.anchor > WireLimits.consensusMaxNumber {
            return refuse("anchor \(h.anchor) out of range")
        }
        return .success(b)
    }

    /// Executes a committed block's transactions on the ledger's state (at
    /// the block's anchor of the identity group): its state writes, evidence
    /// index entries and receipts. Transactions this node pooled are not parsed again.
    func run(_ block: Block, txHashes: [[UInt8]]) -> (writes: [StateWrite], evidenceIndex: [StateWrite], receipts: [(ChainTransaction, Receipt)]) {
        executionAnchor = block.header.anchor
        let state = ContractState(ledger: ledger)
        let txs: [(ChainTransaction, Contracts.SignerKey?)?] = block.transactions.enumerated().map { i, t in
            if let pi = poolIndex[txHashes[i]], pool[pi].bytes == t { return (pool[pi].tx, pool[pi].signer) }
            guard let j = try? JSONParser.parse(t), let o = j.objectValue else { return nil }
            return (ChainTransaction(json: o, blockBytes: t), nil)
        }
        state.reserve(writes: Contracts.plannedWrites(txs.compactMap { $0?.0 }))
        var receipts: [(ChainTransaction, Receipt)] = []
        for (i, t) in txs.enumerated() {
            guard let (tx, signer) = t else { continue }
            receipts.append((tx, contracts.execute(tx, state: state, height: block.header.height, index: i, admitted: signer)))
        }
        return (state.writes, state.evidenceIndex, receipts)
    }
}
