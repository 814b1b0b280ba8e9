/// The access model of topics.md (its ACL column) as dynamic-security roles,
/// in one place: what every account may do, what a node, a TCC and a
/// party may do besides, and what each account may do on topics that name
/// it (its reply topic, its presence, a party's channel halves) — a role of
/// its own, as Mosquitto 2.0's plugin has no `%u` patterns.
public enum BrokerRoles {
    public enum Kind: String, Sendable, CaseIterable {
        case node, tcc, party, observer
    }

    public static let everyoneRole = "efsc-everyone"
    public static func role(_ kind: Kind) -> String { "efsc-\(kind.rawValue)" }
    public static func ownRole(_ account: String) -> String { "efsc-own-\(account)" }

    /// Every account: submit transactions, query, read blocks, chain and
    /// TCC status, and everyone's presence.
    public static let everyone: [BrokerACL] =
        BrokerACL.write(Topics.tx("+")) + BrokerACL.write(Topics.queryAll) + BrokerACL.read(Topics.blocks("+", node: "+"))
        + BrokerACL.read(Topics.status("+", node: "+")) + BrokerACL.read(Topics.tccStatus("+")) + BrokerACL.read(Topics.presenceAll)

    /// What a kind of account may do besides.
    public static func acls(_ kind: Kind) -> [BrokerACL] {
        switch kind {
        case .node:
            // Read every chain topic; write direct messages and sync
            // requests to any node (a node's own broadcast topics — pbft,
            // blocks, status — are in its own role); queries (also through
            // their shared subscription); replies to anyone; channel-control events.
            return BrokerACL.read(Topics.chainAll) + BrokerACL.write(Topics.direct("+", to: "+")) + BrokerACL.write(Topics.sync("+", node: "+"))
                + BrokerACL.read(Topics.queryAll) + BrokerACL.read("$share/+/" + Topics.queryAll)
                + BrokerACL.write(Topics.replyAll) + BrokerACL.write(Topics.tccControlAll)
        case .tcc:
            return BrokerACL.read(Topics.tccControlAll) + BrokerACL.read("$share/+/" + Topics.tccControlAll)
                + BrokerACL.read(Topics.channelUpAll()) + BrokerACL.write(Topics.channelDownAll) + BrokerACL.write(Topics.replyAll)
        case .party, .observer:
            return []
        }
    }

    /// What `account` may do on topics that name it.
    public static func own(_ account: String, _ kind: Kind) -> [BrokerACL] {
        var acls = BrokerACL.read(Topics.reply(clientID: account)) + BrokerACL.write(Topics.presence(account))
        if kind == .party {
            acls += BrokerACL.write(Topics.channelUp("+", party: account)) + BrokerACL.read(Topics.channelDown("+", party: account))
        }
        if kind == .tcc { acls += BrokerACL.write(Topics.tccStatus(account)) }
        if kind == .node {
            // Only node K broadcasts as node K (consensus, blocks, status).
            acls += BrokerACL.write(Topics.pbft("+", from: account)) + BrokerACL.write(Topics.blocks("+", node: account))
                + BrokerACL.write(Topics.status("+", node: account))
        }
        return acls
    }
}

extension DynamicSecurity {
    /// Creates the shared roles (once per broker configuration).
    public func installRoles() async throws {
        try await createRole(BrokerRoles.everyoneRole, BrokerRoles.everyone)
        for k in [BrokerRoles.Kind.node, .tcc] { try await createRole(BrokerRoles.role(k), BrokerRoles.acls(k)) }
    }

    /// An account of `kind` with its own role: usable at once, no restart.
    public func addAccount(_ name: String, password: String, kind: BrokerRoles.Kind) async throws {
        try await createRole(BrokerRoles.ownRole(name), BrokerRoles.own(name, kind))
        var roles = [BrokerRoles.everyoneRole, BrokerRoles.ownRole(name)]
        if kind == .node || kind == .tcc { roles.append(BrokerRoles.role(kind)) }
        try await createClient(name, password: password, roles: roles)
    }

    /// A new password for an account (credential rotation); its current
    /// connection is dropped, so it must log in again with the new one.
    public func rotatePassword(_ name: String, password: String) async throws {
        try await execute([
            ["command": "setClientPassword", "username": .string(name), "password": .string(password)],
            ["command": "disableClient", "username": .string(name)], ["command": "enableClient", "username": .string(name)],
        ])
    }

    /// Removes an account: its clients are disconnected at once and refused from then on.
    public func removeAccount(_ name: String) async throws {
        try await deleteClient(name)
        try await deleteRole(BrokerRoles.ownRole(name))
    }
}
