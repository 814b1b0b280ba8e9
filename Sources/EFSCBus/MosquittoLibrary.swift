import CMosquitto

/// The process-wide libmosquitto library. `mosquitto_lib_init` must run once
/// before any client is created; this type makes that happen exactly once.
public enum MosquittoLibrary {
    private static let initialized: Bool = {
        mosquitto_lib_init() == Int32(MOSQ_ERR_SUCCESS.rawValue)
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

    /// libmosquitto's text for one of its error numbers.
    static func errorText(_ code: Int32) -> String {
        String(cString: mosquitto_strerror(code))
    }

    /// The MQTT v5 reason string for a reason code (e.g. 0x87 → "Not authorized").
    public static func reasonText(_ code: Int) -> String {
        String(cString: mosquitto_reason_string(Int32(code)))
    }
}
