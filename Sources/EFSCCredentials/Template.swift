import EFSCCore
import EFSCIdentity

/// One problem found when checking a claim against a template, with the
/// JSON path of the field (e.g. `$.settlementStrategy.period`).
public struct TemplateViolation: Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

/// Why a template itself is unusable.
public enum TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String)
    case unknownTemplate(id: String, version: Int?)
    case extensionConflict(String)

    public var description: String {
        switch self {
        case .invalid(let m): return "invalid template: \(m)"
        case .unknownTemplate(let id, let v): return "unknown template '\(id)'" + (v.map { " version \($0)" } ?? "")
        case .extensionConflict(let m): return "template extension conflict: \(m)"
        }
    }
}

/// The definition of one claim field (the paper's CPT field definitions).
public enum FieldType: String, Sendable, CaseIterable {
    case string, integer, number, boolean, object, array
}

/// Formats a string field can require.
public enum FieldFormat: String, Sendable, CaseIterable {
    case dateTime = "date-time"
    case did
}

public struct FieldSpec: Sendable, Equatable {
    public var type: FieldType
    public var required: Bool
    public var description: String?
    public var enumValues: [JSON]?
    public var minimum: Double?
    public var maximum: Double?
    public var minLength: Int?
    public var maxLength: Int?
    public var pattern: String?
    public var format: FieldFormat?
    /// Sub-fields of an object field; `nil` means any members are accepted.
    public var properties: [(String, FieldSpec)]?
    /// Element definition of an array field.
    public var items: Box?
    public var minItems: Int?
    public var maxItems: Int?

    /// Boxes the recursive `items` definition.
    public final class Box: Sendable, Equatable {
        public let spec: FieldSpec
        public init(_ spec: FieldSpec) { self.spec = spec }
        public static func == (a: Box, b: Box) -> Bool { a.spec == b.spec }
    }

    public init(
        _ type: FieldType, required: Bool = false, description: String? = nil, enumValues: [JSON]? = nil,
        minimum: Double? = nil, maximum: Double? = nil, minLength: Int? = nil, maxLength: Int? = nil,
        pattern: String? = nil, format: FieldFormat? = nil, properties: [(String, FieldSpec)]? = nil,
        items: FieldSpec? = nil, minItems: Int? = nil, maxItems: Int? = nil
    ) {
        self.type = type
        self.required = required
        self.description = description
        self.enumValues = enumValues
        self.minimum = minimum
        self.maximum = maximum
        self.minLength = minLength
        self.maxLength = maxLength
        self.pattern = pattern
        self.format = format
        self.properties = properties
        self.items = items.map(Box.init)
        self.minItems = minItems
        self.maxItems = maxItems
    }

    public static func == (a: FieldSpec, b: FieldSpec) -> Bool {
        a.json == b.json
    }

    public var json: JSON {
        var o = JSONObject()
        o["type"] = .string(type.rawValue)
        if required { o["required"] = true }
        if let d = description { o["description"] = .string(d) }
        if let e = enumValues { o["enum"] = .array(e) }
        if let v = minimum { o["minimum"] = .number(v) }
        if let v = maximum { o["maximum"] = .number(v) }
        if let v = minLength { o["minLength"] = .number(Double(v)) }
        if let v = maxLength { o["maxLength"] = .number(Double(v)) }
        if let v = pattern { o["pattern"] = .string(v) }
        if let v = format { o["format"] = .string(v.rawValue) }
        if let p = properties { o["properties"] = .object(JSONObject(p.map { ($0.0, $0.1.json) })) }
        if let i = items { o["items"] = i.spec.json }
        if let v = minItems { o["minItems"] = .number(Double(v)) }
        if let v = maxItems { o["maxItems"] = .number(Double(v)) }
        return .object(o)
    }

    public init(json: JSON, path: String) throws(TemplateError) {
        guard let o = json.objectValue else { throw .invalid("\(path) must be an object") }
        let known: Set<String> = [
            "type", "required", "description", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "format",
            "properties", "items", "minItems", "maxItems",
        ]
        for k in o.keys where !known.contains(k) { throw .invalid("\(path) has unknown attribute '\(k)'") }
        guard let ts = o["type"]?.stringValue else { throw .invalid("\(path) has no 'type'") }
        guard let t = FieldType(rawValue: ts) else {
            throw .invalid("\(path) has type '\(ts)'; expected one of string, integer, number, boolean, object, array")
        }
        func int(_ k: String) throws(TemplateError) -> Int? {
            guard let v = o[k] else { return nil }
            guard let i = v.intValue, i >= 0 else { throw .invalid("\(path).\(k) must be a non-negative integer") }
            return i
        }
        func num(_ k: String) throws(TemplateError) -> Double? {
            guard let v = o[k] else { return nil }
            guard let d = v.doubleValue else { throw .invalid("\(path).\(k) must be a number") }
            return d
        }
        var required = false
        if let r = o["required"] {
            guard let b = r.boolValue else { throw .invalid("\(path).required must be a boolean") }
            required = b
        }
        var format: FieldFormat? = nil
        if let f = o["format"] {
            guard let s = f.stringValue, let ff = FieldFormat(rawValue: s) else {
                throw .invalid("\(path).format must be 'date-time' or 'did'")
            }
            guard t == .string else { throw .invalid("\(path).format applies to string fields only") }
            format = ff
        }
        var pattern: String? = nil
        if let p = o["pattern"] {
            guard let s = p.stringValue else { throw .invalid("\(path).pattern must be a string") }
            // Compiled by the linear-time matcher, which refuses what it cannot match safely.
            do { _ = try TemplatePattern(s) } catch { throw .invalid("\(path).pattern is not usable: \(error.message)") }
            pattern = s
        }
        var props: [(String, FieldSpec)]? = nil
        if let p = o["properties"] {
            guard t == .object, let po = p.objectValue else { throw .invalid("\(path).properties applies to object fields and must be an object") }
            var list: [(String, FieldSpec)] = []
            for (k, v) in po { list.append((k, try FieldSpec(json: v, path: "\(path).properties.\(k)"))) }
            props = list
        }
        var items: FieldSpec? = nil
        if let i = o["items"] {
            guard t == .array else { throw .invalid("\(path).items applies to array fields only") }
            items = try FieldSpec(json: i, path: "\(path).items")
        }
        var enumValues: [JSON]? = nil
        if let e = o["enum"] {
            guard let a = e.arrayValue, !a.isEmpty else { throw .invalid("\(path).enum must be a non-empty list") }
            enumValues = a
        }
        self.init(
            t, required: required, description: o["description"]?.stringValue, enumValues: enumValues,
            minimum: try num("minimum"), maximum: try num("maximum"), minLength: try int("minLength"),
            maxLength: try int("maxLength"), pattern: pattern, format: format, properties: props, items: items,
            minItems: try int("minItems"), maxItems: try int("maxItems"))
        if let a = minimum, let b = maximum, a > b { throw .invalid("\(path): minimum \(a) exceeds maximum \(b)") }
        if let a = minLength, let b = maxLength, a > b { throw .invalid("\(path): minLength exceeds maxLength") }
        if let a = minItems, let b = maxItems, a > b { throw .invalid("\(path): minItems exceeds maxItems") }
        if let ev = enumValues {
            for (i, v) in ev.enumerated() where !FieldSpec.matchesType(v, type) {
                throw .invalid("\(path).enum[\(i)] is not of type \(type.rawValue)")
            }
        }
    }

    static func matchesType(_ v: JSON, _ t: FieldType) -> Bool {
        switch (t, v) {
        case (.string, .string), (.number, .number), (.boolean, .bool), (.object, .object), (.array, .array): return true
        case (.integer, .number(let d)): return d.rounded() == d && abs(d) <= 9_007_199_254_740_992
        default: return false
        }
    }

    /// Appends every violation of `value` at `path`.
    public func validate(_ value: JSON, path: String, into out: inout [TemplateViolation]) {
        guard Self.matchesType(value, type) else {
            out.append(.init(path: path, message: "expected \(type == .integer ? "an integer" : "a \(type.rawValue)"), got \(value.kindName)"))
            return
        }
        if let e = enumValues, !e.contains(value) {
            out.append(.init(path: path, message: "must be one of \(JSON.array(e).compactString())"))
        }
        switch value {
        case .number(let d):
            if let m = minimum, d < m { out.append(.init(path: path, message: "must be ≥ \(JCS.formatNumber(m)), got \(JCS.formatNumber(d))")) }
            if let m = maximum, d > m { out.append(.init(path: path, message: "must be ≤ \(JCS.formatNumber(m)), got \(JCS.formatNumber(d))")) }
        case .string(let s):
            let n = s.count
            if let m = minLength, n < m { out.append(.init(path: path, message: "must be at least \(m) characters, got \(n)")) }
            if let m = maxLength, n > m { out.append(.init(path: path, message: "must be at most \(m) characters, got \(n)")) }
            if let p = pattern {
                do {
                    switch try TemplatePattern(p).matches(s) {
                    case true?: break
                    case false?: out.append(.init(path: path, message: "does not match pattern \(p)"))
                    case nil:
                        out.append(.init(path: path, message: "is longer than \(WireLimits.patternSubjectLength) characters, the most a pattern is matched against"))
                    }
                } catch {
                    out.append(.init(path: path, message: "the template's pattern is not usable: \(error.message)"))
                }
            }
            switch format {
            case .dateTime?:
                if DateTime.parse(s) == nil { out.append(.init(path: path, message: "must be an RFC 3339 date-time, got \"\(s)\"")) }
            case .did?:
                if !DIDSyntax.isValid(s) { out.append(.init(path: path, message: "must be a DID, got \"\(s)\"")) }
            case nil: break
            }
        case .array(let a):
            if let m = minItems, a.count < m { out.append(.init(path: path, message: "must have at least \(m) items, got \(a.count)")) }
            if let m = maxItems, a.count > m { out.append(.init(path: path, message: "must have at most \(m) items, got \(a.count)")) }
            if let it = items?.spec {
                for (i, e) in a.enumerated() { it.validate(e, path: "\(path)[\(i)]", into: &out) }
            }
        case .object(let o):
            if let props = properties { Template.validateMembers(o, fields: props, path: path, allowID: false, into: &out) }
        default: break
        }
    }
}

/// A claim template (the paper's CPT): the fields a TIC or TST claim must
/// carry. Providers register their own, usually extending a base template.
public struct Template: Sendable, Equatable {
    public enum Kind: String, Sendable { case tit = "TIT", tst = "TST", other = "Other" }

    public var id: String
    public var version: Int
    public var owner: String
    public var title: String
    public var kind: Kind
    /// The base template this one extends (id, version).
    public var extends: (id: String, version: Int)?
    /// Own fields, in declaration order (base fields not repeated).
    public var fields: [(String, FieldSpec)]
    /// All fields, base first, after resolving `extends`.
    public private(set) var effectiveFields: [(String, FieldSpec)]

    public init(
        id: String, version: Int, owner: String, title: String, kind: Kind, extends: (id: String, version: Int)? = nil,
        fields: [(String, FieldSpec)], base: Template? = nil
    ) throws(TemplateError) {
        self.id = id
        self.version = version
        self.owner = owner
        self.title = title
        self.kind = kind
        self.extends = extends
        self.fields = fields
        self.effectiveFields = fields
        try check(base: base)
    }

    public static func == (a: Template, b: Template) -> Bool { a.json == b.json }

    private mutating func check(base: Template?) throws(TemplateError) {
        guard !id.isEmpty, id.utf8.count <= 200 else { throw .invalid("id must be 1-200 characters") }
        guard version >= 1 else { throw .invalid("version must be ≥ 1") }
        guard DIDSyntax.isValid(owner) else { throw .invalid("owner '\(owner)' is not a DID") }
        var names = Set<String>()
        for (n, _) in fields {
            guard n != "id" else { throw .invalid("field name 'id' is reserved for the credential subject") }
            guard names.insert(n).inserted else { throw .invalid("duplicate field '\(n)'") }
        }
        if let ext = extends {
            guard let base else { throw .unknownTemplate(id: ext.id, version: ext.version) }
            guard base.id == ext.id, base.version == ext.version else {
                throw .invalid("extends \(ext.id) v\(ext.version) but was given \(base.id) v\(base.version)")
            }
            if kind != base.kind && kind != .other { throw .extensionConflict("a \(kind.rawValue) cannot extend a \(base.kind.rawValue)") }
            kind = base.kind
            // A provider adds fields; it can never drop or redefine a base field.
            var merged = base.effectiveFields
            let baseNames = Set(base.effectiveFields.map(\.0))
            for (n, s) in fields {
                if baseNames.contains(n) {
                    throw .extensionConflict("field '\(n)' is defined by base template \(base.id) and cannot be redefined or dropped")
                }
                merged.append((n, s))
            }
            effectiveFields = merged
        }
    }

    public var json: JSON {
        var o = JSONObject()
        o["id"] = .string(id)
        o["version"] = .number(Double(version))
        o["owner"] = .string(owner)
        o["title"] = .string(title)
        o["kind"] = .string(kind.rawValue)
        if let e = extends { o["extends"] = ["id": .string(e.id), "version": .number(Double(e.version))] }
        o["fields"] = .object(JSONObject(fields.map { ($0.0, $0.1.json) }))
        return .object(o)
    }

    /// Parses a template document; `resolveBase` supplies the template named by `extends`.
    public init(json: JSON, resolveBase: (String, Int) -> Template? = { BaseTemplates.lookup(id: $0, version: $1) }) throws(TemplateError) {
        guard let o = json.objectValue else { throw .invalid("template must be a JSON object") }
        guard let id = o["id"]?.stringValue else { throw .invalid("missing 'id'") }
        guard let version = o["version"]?.intValue else { throw .invalid("missing or non-integer 'version'") }
        guard let owner = o["owner"]?.stringValue else { throw .invalid("missing 'owner'") }
        let title = o["title"]?.stringValue ?? id
        let kind = Kind(rawValue: o["kind"]?.stringValue ?? "Other") ?? .other
        guard let fo = o["fields"]?.objectValue else { throw .invalid("missing 'fields' object") }
        var fields: [(String, FieldSpec)] = []
        for (k, v) in fo { fields.append((k, try FieldSpec(json: v, path: "fields.\(k)"))) }
        var ext: (id: String, version: Int)? = nil
        var base: Template? = nil
        if let e = o["extends"] {
            guard let eid = e["id"]?.stringValue, let ev = e["version"]?.intValue else {
                throw .invalid("'extends' must be {\"id\": ..., \"version\": ...}")
            }
            ext = (eid, ev)
            guard let b = resolveBase(eid, ev) else { throw .unknownTemplate(id: eid, version: ev) }
            base = b
        }
        try self.init(id: id, version: version, owner: owner, title: title, kind: kind, extends: ext, fields: fields, base: base)
    }

    /// Every violation of `claim` against this template's effective fields.
    /// Unknown fields are violations too: a settlement carries nothing the
    /// template does not define (except the subject `id`).
    public func validate(_ claim: JSON) -> [TemplateViolation] {
        guard let o = claim.objectValue else { return [.init(path: "$", message: "claim must be an object, got \(claim.kindName)")] }
        var out: [TemplateViolation] = []
        Self.validateMembers(o, fields: effectiveFields, path: "$", allowID: true, into: &out)
        return out
    }

    static func validateMembers(_ o: JSONObject, fields: [(String, FieldSpec)], path: String, allowID: Bool, into out: inout [TemplateViolation]) {
        for (name, spec) in fields {
            if let v = o[name] {
                spec.validate(v, path: "\(path).\(name)", into: &out)
            } else if spec.required {
                out.append(.init(path: "\(path).\(name)", message: "required field is missing"))
            }
        }
        for k in o.keys where !(allowID && k == "id") && !fields.contains(where: { $0.0 == k }) {
            out.append(.init(path: "\(path).\(k)", message: "field is not defined by the template"))
        }
    }
}
