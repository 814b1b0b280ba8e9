/// A JSON value as EFSC exchanges it: credentials, DID documents, templates and
/// bus payloads are all built from this type so that the same bytes are signed
/// and verified everywhere (see `JCS`).
///
/// Numbers are IEEE-754 doubles, because RFC 8785 (and I-JSON) define canonical
/// numbers that way; integers are exact up to 2^53.
public enum JSON: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var doubleValue: Double? {
        if case .number(let d) = self { return d }
        return nil
    }
    /// The value as an integer, only when it is a number with no fractional part
    /// that fits exactly in a double's 53-bit mantissa.
    public var intValue: Int? {
        guard case .number(let d) = self, d.rounded() == d, abs(d) <= 9_007_199_254_740_992 else { return nil }
        return Int(d)
    }
    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Member lookup on objects; `nil` for any other kind of value.
    public subscript(key: String) -> JSON? {
        get {
            if case .object(let o) = self { return o[key] }
            return nil
        }
        set {
            guard case .object(var o) = self else { return }
            o[key] = newValue
            self = .object(o)
        }
    }

    /// A short name of the value's kind, for error messages.
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON object that keeps its members in insertion order, so documents read
/// from users are printed back the way they wrote them. Equality ignores order.
///
/// Lookups are linear in small objects and hashed in large ones (an index
/// is kept from `indexedFrom` members on), so work on an object from the
/// network stays linear in its size: equality, hashing and building one
/// member by member included.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var keys: [String] = []
    public private(set) var values: [JSON] = []
    /// Key → position, once the object has `indexedFrom` members.
    private var lookup: [String: Int]? = nil
    static let indexedFrom = 32

    public init() {}

    public init(dictionaryLiteral elements: (String, JSON)...) {
        for (k, v) in elements { self[k] = v }
    }

    public init(_ pairs: [(String, JSON)]) {
        for (k, v) in pairs { self[k] = v }
    }

    /// Appends without a duplicate check; the parser uses it after its own check.
    @usableFromInline
    internal mutating func appendUnchecked(_ key: String, _ value: JSON) {
        keys.append(key)
        values.append(value)
        noteAppended()
    }

    private mutating func noteAppended() {
        if lookup != nil {
            lookup![keys[keys.count - 1]] = keys.count - 1
        } else if keys.count >= Self.indexedFrom {
            var l = [String: Int](minimumCapacity: keys.count * 2)
            for (i, k) in keys.enumerated() { l[k] = i }
            lookup = l
        }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    public func index(of key: String) -> Int? {
        if let l = lookup { return l[key] }
        return keys.firstIndex(of: key)
    }

    public subscript(key: String) -> JSON? {
        get {
            guard let i = index(of: key) else { return nil }
            return values[i]
        }
        set {
            if let i = index(of: key) {
                if let v = newValue {
                    values[i] = v
                } else {
                    keys.remove(at: i)
                    values.remove(at: i)
                    if lookup != nil {
                        if keys.count < Self.indexedFrom {
                            lookup = nil
                        } else {
                            lookup![key] = nil
                            for j in i..<keys.count { lookup![keys[j]] = j }
                        }
                    }
                }
            } else if let v = newValue {
                appendUnchecked(key, v)
            }
        }
    }

    public func makeIterator() -> Zip2Sequence<[String], [JSON]>.Iterator {
        zip(keys, values).makeIterator()
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (k, v) in lhs {
            guard let other = rhs[k], other == v else { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent: members in key order, so equal objects hash equally.
        for i in keys.indices.sorted(by: { keys[$0] < keys[$1] }) {
            hasher.combine(keys[i])
            hasher.combine(values[i])
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}
