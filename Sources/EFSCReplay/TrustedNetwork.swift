import EFSCCore
import Foundation

/// What a replay tool trusts: the network's genesis as `efsc devnet init`
/// writes it (`network.json`): the node keys in replica order (`nodes`,
/// each `publicKeyMultibase`), the TCC DIDs (`tccs`) that alone may submit
/// evidence, and the network name. Blocks count only with a commit
/// certificate of 2f+1 of these keys; the broker and single nodes are not trusted.
public struct TrustedNetwork: Sendable {
    public let network: String
    public let members: [Ed25519PublicKey]
    public let tccs: [String]

    public init(network: String, members: [Ed25519PublicKey], tccs: [String]) throws(ReplayError) {
        guard members.count >= 4, members.count <= WireLimits.maxReplicas, (members.count - 1) % 3 == 0 else {
            throw ReplayError(.genesis, "the genesis must name n = 3f+1 node keys, 4 ≤ n ≤ \(WireLimits.maxReplicas); it names \(members.count)")
        }
        self.network = network
        self.members = members
        self.tccs = tccs
    }

    /// From a genesis document (`network.json`).
    public init(genesis j: JSON) throws(ReplayError) {
        guard let nodes = j["nodes"]?.arrayValue ?? j["members"]?.arrayValue else { throw ReplayError(.genesis, "the genesis has no 'nodes' list") }
        var keys: [Ed25519PublicKey] = []
        for (i, n) in nodes.enumerated() {
            guard let mb = n["publicKeyMultibase"]?.stringValue, let k = try? Ed25519PublicKey(multibase: mb) else {
                throw ReplayError(.genesis, "node \(i + 1) of the genesis has no valid publicKeyMultibase")
            }
            keys.append(k)
        }
        let tccs = (j["tccs"]?.arrayValue ?? []).compactMap(\.stringValue)
        try self.init(network: j["network"]?.stringValue ?? "", members: keys, tccs: tccs)
    }

    /// From a genesis file, or a network directory holding `network.json`.
    public init(path: String) throws(ReplayError) {
        var isDir: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue ? "\(path)/network.json" : path
        guard let data = FileManager.default.contents(atPath: file) else { throw ReplayError(.genesis, "cannot read the genesis \(file)") }
        let j: JSON
        do { j = try JSONParser.parse(Array(data)) } catch { throw ReplayError(.genesis, "\(file) is not JSON: \(error)") }
        try self.init(genesis: j)
    }

    public var f: Int { (members.count - 1) / 3 }
    /// Signatures a commit certificate needs: 2f+1.
    public var quorum: Int { 2 * f + 1 }
}
