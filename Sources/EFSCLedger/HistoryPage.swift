import EFSCCore

/// Why bytes are not a `HistoryPage`.
public struct HistoryPageError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { "history page: \(message)" }
}

/// One reply of the `history` query (topics.md `HistoryPage`, binary):
/// committed blocks of one group, consecutive from the requested height,
/// each with its commit certificate, and the serving node's height.
///
///     "EH" 0x01 | committedHeight u64 | count u32 | count × (length u32 | Block)
///
/// Paged by bytes: a page never exceeds `WireLimits.replyBytes`, nor holds
/// more than `WireLimits.historyBlocks` blocks.
public struct HistoryPage: Sendable {
    public static let magic: [UInt8] = [0x45, 0x48, 1]
    /// The MQTT content type of a page (errors are `application/json`).
    public static let contentType = "application/efsc-history"
    /// The serving node's committed height when it answered.
    public var committedHeight: UInt64
    public var blocks: [Block]

    public init(committedHeight: UInt64, blocks: [Block]) {
        self.committedHeight = committedHeight
        self.blocks = blocks
    }

    /// The page of `ledger` from height `from`: as many consecutive blocks
    /// as fit `maxBytes` (at least one when `from` is committed and its block
    /// fits) and `max`.
    public static func encode(ledger: Ledger, from: UInt64, max: Int, maxBytes: Int = WireLimits.replyBytes) -> [UInt8] {
        let height = ledger.height
        var out = magic
        Block.put(&out, height, 8)
        let blocks = ledger.encodedBlocks(from: from, max: Swift.min(max, WireLimits.historyBlocks), byteBudget: maxBytes - out.count - 4)
        Block.put(&out, UInt64(blocks.count), 4)
        for e in blocks {
            Block.put(&out, UInt64(e.count), 4)
            out += e
        }
        return out
    }

    /// Decodes a page; never traps. Refuses a wrong magic, more than
    /// `WireLimits.historyBlocks` blocks, lengths past the data, blocks that
    /// do not decode or are not consecutive heights of one group, and
    /// trailing bytes.
    public init(decoding b: [UInt8]) throws(HistoryPageError) {
        guard b.count <= WireLimits.packetBytes else { throw HistoryPageError(message: "\(b.count) bytes exceeds the packet limit") }
        var i = 0
        func uint(_ n: Int) throws(HistoryPageError) -> UInt64 {
            guard i + n <= b.count else { throw HistoryPageError(message: "truncated at byte \(i)") }
            defer { i += n }
            return b[i..<(i + n)].reduce(0) { $0 << 8 | UInt64($1) }
        }
        guard b.count >= 3, Array(b.prefix(3)) == Self.magic else { throw HistoryPageError(message: "bad magic or version") }
        i = 3
        committedHeight = try uint(8)
        let count = Int(try uint(4))
        guard count <= WireLimits.historyBlocks else { throw HistoryPageError(message: "\(count) blocks exceeds \(WireLimits.historyBlocks)") }
        blocks = []
        for k in 0..<count {
            let len = Int(try uint(4))
            guard len <= b.count - i else { throw HistoryPageError(message: "block \(k) length \(len) exceeds the data") }
            let block: Block
            do { block = try Block(decoding: Array(b[i..<(i + len)])) } catch { throw HistoryPageError(message: "block \(k): \(error)") }
            i += len
            if let prev = blocks.last {
                guard block.header.group == prev.header.group, block.header.height == prev.header.height + 1 else {
                    throw HistoryPageError(message: "block \(k) (height \(block.header.height)) does not follow height \(prev.header.height) of its group")
                }
            }
            blocks.append(block)
        }
        guard i == b.count else { throw HistoryPageError(message: "\(b.count - i) trailing bytes") }
    }
}
