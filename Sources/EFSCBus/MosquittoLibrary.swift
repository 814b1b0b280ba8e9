import CMosquitto

/// The process-wide libmosquitto library. `mosquitto_lib_init` must run once
/// before any client is created; this type makes that happen exactly once.
public enum MosquittoLibrary {
    private static let initialized: Bool = {
        mosquitto_lib_init() == MOSQ_ERR_SUCCESS.rawValue
    }()

    /// Initialises the library (idempotent); `false` if libmosquitto refused.
    @discardableResult
    public static func initialize() -> Bool { initialized }

    /// The linked libmosquitto version, e.g. "2.0.11".
    public static var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        var rev: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &rev)
        return "\(major).\(minor).\(rev)"
    }
}
