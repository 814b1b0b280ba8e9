import EFSCCore

/// The built-in base templates of the paper: TIT (transaction initiation)
/// and TST (transaction settlement). Providers extend them with their own
/// fields; every TIC and TSC claim carries at least these fields.
public enum BaseTemplates {
    /// Owner of the built-in templates (the network itself).
    public static let systemOwner = "did:efsc:system:base"
    public static let titID = "urn:efsc:template:tit"
    public static let tstID = "urn:efsc:template:tst"

    static let did = FieldSpec(.string, required: true, format: .did)

    public static let tit: Template = try! Template(
        id: titID, version: 1, owner: systemOwner, title: "Transaction Initiation Template", kind: .tit,
        fields: [
            ("providerDid", FieldSpec(.string, required: true, description: "DID of the computing-power provider", format: .did)),
            ("consumerDid", FieldSpec(.string, required: true, description: "DID of the consumer", format: .did)),
            (
                "computingPower",
                FieldSpec(
                    .object, required: true, description: "computing-power specification",
                    properties: [
                        ("resourceType", FieldSpec(.string, required: true, description: "e.g. cpu, gpu, npu, fpga", minLength: 1, maxLength: 64)),
                        ("units", FieldSpec(.integer, required: true, description: "number of units bought", minimum: 1)),
                        ("model", FieldSpec(.string, description: "hardware model", maxLength: 128)),
                        ("memoryGiB", FieldSpec(.number, description: "memory per unit, GiB", minimum: 0)),
                        ("region", FieldSpec(.string, description: "where the resource runs", maxLength: 128)),
                    ])
            ),
            ("unitPrice", FieldSpec(.number, required: true, description: "price per unit-hour", minimum: 0)),
            ("currency", FieldSpec(.string, description: "ISO 4217 code; default CNY", minLength: 3, maxLength: 3)),
            (
                "settlementStrategy",
                FieldSpec(
                    .object, required: true, description: "settlement period and on-chain evidence policy",
                    properties: [
                        ("period", FieldSpec(.integer, required: true, description: "seconds between settlements", minimum: 1)),
                        ("evidenceEvery", FieldSpec(.integer, required: true, description: "N: settlements per on-chain evidence", minimum: 1)),
                        ("evidenceEveryMax", FieldSpec(.integer, description: "upper bound for adaptive N", minimum: 1)),
                    ])
            ),
            ("initialPricing", FieldSpec(.number, required: true, description: "initial (opening) fee", minimum: 0)),
            ("settlementTemplateId", FieldSpec(.string, required: true, description: "id of the TST used for settlements", minLength: 1)),
            ("settlementTemplateVersion", FieldSpec(.integer, description: "version of that TST; default 1", minimum: 1)),
            ("encryptionMethod", FieldSpec(.string, required: true, description: "channel encryption, e.g. HPKE-X25519-SHA256-ChaCha20Poly1305", minLength: 1)),
        ])

    public static let tst: Template = try! Template(
        id: tstID, version: 1, owner: systemOwner, title: "Transaction Settlement Template", kind: .tst,
        fields: [
            ("providerDid", FieldSpec(.string, required: true, format: .did)),
            ("consumerDid", FieldSpec(.string, required: true, format: .did)),
            ("channelId", FieldSpec(.string, required: true, minLength: 1, maxLength: 128)),
            ("sequence", FieldSpec(.integer, required: true, description: "1 for the first settlement, +1 each time", minimum: 1)),
            ("usage", FieldSpec(.number, required: true, description: "unit-hours consumed in this period", minimum: 0)),
            ("fee", FieldSpec(.number, required: true, description: "fee for this period", minimum: 0)),
            ("start", FieldSpec(.string, required: true, format: .dateTime)),
            ("end", FieldSpec(.string, required: true, format: .dateTime)),
            ("encryptionMethod", FieldSpec(.string, required: true, minLength: 1)),
            ("final", FieldSpec(.boolean, description: "true on the last settlement: both parties agree to close the channel cooperatively")),
        ])

    public static var all: [Template] { [tit, tst] }

    public static func lookup(id: String, version: Int) -> Template? {
        all.first { $0.id == id && $0.version == version }
    }
}

/// Where verifiers find templates by (id, version): built-ins plus those
/// registered on the identity chain or loaded from files.
public protocol TemplateStore: Sendable {
    func template(id: String, version: Int) async throws -> Template
}

/// Templates held in memory (built-ins always present).
public final class LocalTemplateStore: TemplateStore, @unchecked Sendable {
    private var templates: [String: Template] = [:]
    private let lock = Lock()

    public init(_ extra: [Template] = []) {
        for t in BaseTemplates.all + extra { templates["\(t.id)#\(t.version)"] = t }
    }

    public func add(_ t: Template) { lock.withLock { templates["\(t.id)#\(t.version)"] = t } }

    public func template(id: String, version: Int) async throws -> Template {
        guard let t = lock.withLock({ templates["\(id)#\(version)"] }) else { throw TemplateError.unknownTemplate(id: id, version: version) }
        return t
    }

    /// A synchronous lookup for base resolution while parsing.
    public func lookup(id: String, version: Int) -> Template? { lock.withLock { templates["\(id)#\(version)"] } }
}

