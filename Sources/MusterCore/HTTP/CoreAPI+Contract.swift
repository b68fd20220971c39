import Foundation

/// What `/openapi.json` says of each route beyond its path, method, scope and status codes: its query
/// parameters, its request body and the body of its success answer. Kept by route key (`METHOD path`) beside
/// the route table; `openAPIDocument()` refuses a route without one, so the two cannot drift apart.
struct RouteContract {
    /// A query parameter: name, JSON schema, description.
    struct Parameter {
        let name: String
        let schema: [String: Any]
        let description: String
    }

    var query: [Parameter] = []
    /// The request body's schema (`application/json`), and whether a body is required.
    var body: (schema: String, required: Bool)?
    /// The success answer: a media type and its schema.
    var success: (media: String, schema: [String: Any])
    /// Other media types the success answer may take (chosen by a query parameter).
    var alternatives: [(media: String, schema: [String: Any])] = []

    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }
    static func list(of name: String) -> [String: Any] {
        [
            "type": "object", "required": ["items", "next_cursor"], "additionalProperties": false,
            "properties": [
                "items": ["type": "array", "items": ref(name)], "next_cursor": ["type": ["string", "null"]],
            ],
        ]
    }

    static var limit: Parameter {
        Parameter(
            name: "limit", schema: ["type": "integer", "minimum": 1, "maximum": 1000],
            description: "page size (default 100)")
    }
    static func text(_ name: String, _ description: String) -> Parameter {
        Parameter(name: name, schema: ["type": "string", "maxLength": 256], description: description)
    }

    static var all: [String: RouteContract] {
        [
            "POST /api/edge-packages": RouteContract(
                body: ("PackageCreate", true), success: ("application/json", ref("Package"))),
            "POST /api/edge-packages/bulk": RouteContract(
                body: ("PackageBulkCreate", true),
                success: (
                    "application/json",
                    [
                        "type": "object", "required": ["items"], "additionalProperties": false,
                        "properties": ["items": ["type": "array", "items": ref("Package")]],
                    ]
                )),
            "GET /api/edge-packages": RouteContract(
                query: [
                    Parameter(
                        name: "status",
                        schema: [
                            "type": "string", "enum": ["created", "delivered", "activated", "expired", "revoked"],
                        ], description: "only this status"),
                    Parameter(
                        name: "type", schema: ["type": "string", "enum": ["poller", "agent", "checker"]],
                        description: "only this component type"),
                    Parameter(
                        name: "component_type", schema: ["type": "string", "enum": ["poller", "agent", "checker"]],
                        description: "same as type"),
                    text("poller", "only packages of this poller (its name)"), text("poller_id", "same as poller"),
                    text("site", "only this site"),
                    limit, text("cursor", "next_cursor of the previous page"),
                ], success: ("application/json", list(of: "Package"))),
            "GET /api/edge-packages/{id}": RouteContract(success: ("application/json", ref("Package"))),
            "GET /api/edge-packages/{id}/download": RouteContract(
                success: ("application/gzip", ["type": "string", "format": "binary"])),
            "POST /api/edge-packages/{id}/revoke": RouteContract(
                body: ("Revoke", false), success: ("application/json", ref("Package"))),
            "GET /api/pollers": RouteContract(success: ("application/json", list(of: "Poller"))),
            "GET /api/enrollments": RouteContract(
                query: [
                    Parameter(
                        name: "status",
                        schema: ["type": "string", "enum": ["pending", "approved", "denied", "expired", "activated"]],
                        description: "only this status"),
                    text("poller", "only requests this poller relayed (its name)"), text("poller_id", "same as poller"),
                    limit, text("cursor", "next_cursor of the previous page"),
                ], success: ("application/json", list(of: "Enrollment"))),
            "GET /api/enrollments/{id}": RouteContract(success: ("application/json", ref("Enrollment"))),
            "POST /api/enrollments/{id}/approve": RouteContract(
                body: ("EnrollmentApprove", false), success: ("application/json", ref("Enrollment"))),
            "POST /api/enrollments/{id}/deny": RouteContract(
                body: ("EnrollmentDeny", true), success: ("application/json", ref("Enrollment"))),
            "GET /api/audit": RouteContract(
                query: [
                    text("actor", "only this actor (token:NAME, poller:NAME, anonymous, system:reaper)"),
                    text("action", "only this action"),
                    text("target", "only this target id"), text("target_id", "same as target"),
                    Parameter(
                        name: "outcome", schema: ["type": "string", "enum": ["ok", "denied", "late"]],
                        description: "only this outcome"),
                    Parameter(
                        name: "since", schema: ["type": "string", "format": "date-time"],
                        description: "RFC 3339, inclusive"),
                    Parameter(
                        name: "until", schema: ["type": "string", "format": "date-time"],
                        description: "RFC 3339, exclusive"),
                    limit,
                    Parameter(
                        name: "cursor", schema: ["type": "string", "pattern": "^[0-9]{1,18}$"],
                        description: "next_cursor of the previous page"),
                ], success: ("application/json", list(of: "AuditRow"))),
            "GET /api/events": RouteContract(
                query: [
                    Parameter(
                        name: "after", schema: ["type": "integer", "minimum": 0],
                        description: "resume after this event id (or send Last-Event-ID)")
                ], success: ("text/event-stream", ["type": "string"])),
            "GET /api/trust-bundle": RouteContract(
                query: [
                    Parameter(
                        name: "format", schema: ["type": "string", "enum": ["pem", "spiffe"]],
                        description: "pem (default) or spiffe (a JWK set)")
                ], success: ("application/x-pem-file", ["type": "string"]),
                alternatives: [("application/json", ref("SpiffeBundle"))]),
            "GET /healthz": RouteContract(success: ("application/json", ref("Status"))),
            "GET /readyz": RouteContract(success: ("application/json", ref("Status"))),
            "GET /metrics": RouteContract(success: ("text/plain", ["type": "string"])),
            "GET /openapi.json": RouteContract(success: ("application/json", ["type": "object"])),
        ]
    }

    /// Printable text: no C0/C1 control characters (ESC, NUL, CR, DEL, …); newlines only where `multiline`.
    static func printable(maxLength: Int, minLength: Int = 0, multiline: Bool = false, nullable: Bool = false)
        -> [String: Any]
    {
        [
            "type": nullable ? ["string", "null"] as Any : "string", "minLength": minLength, "maxLength": maxLength,
            "pattern": multiline
                ? "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$" : "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        ]
    }

    static var name: [String: Any] {
        [
            "type": "string", "pattern": "^(?!\\.{1,2}$)[a-z0-9._-]{1,63}$",
            "description": "[a-z0-9._-], 1–63, not . or ..",
        ]
    }
    static var time: [String: Any] { ["type": "string", "format": "date-time"] }
    /// A package's or an approval's Workload API selectors: at most 32 `type:value` strings.
    static var selectors: [String: Any] {
        [
            "type": ["array", "null"], "maxItems": 32,
            "items": [
                "type": "string", "maxLength": 256,
                "pattern": "^unix:(uid|gid):[0-9]{1,10}$|^unix:(user|group):[!-9;-~]{1,64}$",
                "description": "unix:uid:N, unix:gid:N, unix:user:NAME or unix:group:NAME (the Workload API's callers)",
            ],
        ]
    }
    static var optionalTime: [String: Any] { ["type": ["string", "null"], "format": "date-time"] }
    static var optionalText: [String: Any] { ["type": ["string", "null"]] }

    /// The JSON schemas of every body the API reads or writes.
    static var schemas: [String: Any] {
        [
            "Error": [
                "type": "object", "required": ["error", "message"],
                "properties": ["error": ["type": "string"], "message": ["type": "string"]],
            ],
            "Status": ["type": "object", "required": ["status"], "properties": ["status": ["type": "string"]]],
            "SpiffeBundle": [
                "type": "object", "required": ["keys", "spiffe_sequence", "spiffe_refresh_hint"],
                "properties": [
                    "keys": ["type": "array", "items": ["type": "object", "required": ["kty", "use", "x5c"]]],
                    "spiffe_sequence": ["type": "integer"], "spiffe_refresh_hint": ["type": "integer"],
                ],
            ],
            "PackageCreate": [
                "type": "object", "required": ["name", "component_type"], "additionalProperties": false,
                // An agent or checker names its poller; a poller names none.
                "allOf": [
                    [
                        "if": ["properties": ["component_type": ["enum": ["agent", "checker"]]]],
                        "then": ["required": ["poller_id"], "properties": ["poller_id": name]],
                    ],
                    [
                        "if": ["properties": ["component_type": ["const": "poller"]]],
                        "then": ["properties": ["poller_id": ["type": "null"]]],
                    ],
                ],
                "properties": [
                    "name": name,
                    "component_type": ["type": "string", "enum": ["poller", "agent", "checker"]],
                    "poller_id": [
                        "type": ["string", "null"],
                        "description": "the poller's name; agents and checkers only, and required for them",
                    ],
                    "site": printable(maxLength: 128, minLength: 1, nullable: true),
                    "ttl_seconds": ["type": ["integer", "null"], "minimum": 60, "maximum": 86_400],
                    "selectors": selectors,
                    "notes": printable(maxLength: 4096, multiline: true, nullable: true),
                    "metadata": [
                        "type": ["object", "null"], "maxProperties": 64,
                        "additionalProperties": printable(maxLength: 4096),
                        "propertyNames": printable(maxLength: 256),
                    ],
                ],
            ],
            "PackageBulkCreate": [
                "type": "object", "required": ["items"], "additionalProperties": false,
                "properties": [
                    "items": [
                        "type": "array", "minItems": 1, "maxItems": 1000, "items": ref("PackageCreate"),
                    ]
                ],
            ],
            "Revoke": [
                "type": "object", "additionalProperties": false,
                "properties": [
                    "reason": [
                        "type": ["string", "null"], "maxLength": 1024,
                        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
                    ]
                ],
            ],
            "Package": [
                "type": "object", "additionalProperties": false,
                "required": [
                    "id", "name", "component_type", "status", "spiffe_id", "poller_id", "site", "selectors", "notes",
                    "ttl_seconds",
                    "created_by", "created_at", "expires_at", "delivered_at", "delivered_via", "downloaded_at",
                    "activated_at",
                    "activated_from_ip", "activated_spiffe_id", "expired_at", "revoked_at", "revoked_by",
                    "revoke_reason", "join_command",
                ],
                "properties": [
                    "id": ["type": "string"], "name": ["type": "string"],
                    "component_type": ["type": "string", "enum": ["poller", "agent", "checker"]],
                    "status": ["type": "string", "enum": ["created", "delivered", "activated", "expired", "revoked"]],
                    "spiffe_id": ["type": "string", "pattern": "^spiffe://"], "poller_id": optionalText,
                    "site": ["type": "string"],
                    "selectors": ["type": "array", "items": ["type": "string"]], "notes": ["type": "string"],
                    "ttl_seconds": ["type": "integer"],
                    "created_by": ["type": "string"], "created_at": time, "expires_at": time,
                    "delivered_at": optionalTime,
                    "delivered_via": [
                        "type": ["string", "null"], "enum": ["download", "poller", "enrollment", NSNull()],
                    ],
                    "downloaded_at": optionalTime,
                    "activated_at": optionalTime, "activated_from_ip": optionalText,
                    "activated_spiffe_id": optionalText,
                    "expired_at": optionalTime, "revoked_at": optionalTime, "revoked_by": optionalText,
                    "revoke_reason": optionalText,
                    "join_command": optionalText,
                ],
            ],
            "EnrollmentApprove": [
                "type": "object", "additionalProperties": false,
                "properties": [
                    "name": ["anyOf": [name, ["type": "null"]]],
                    "site": printable(maxLength: 128, minLength: 1, nullable: true),
                    "selectors": selectors,
                    "notes": printable(maxLength: 4096, multiline: true, nullable: true),
                    "revoke_previous": ["type": ["boolean", "null"]],
                ],
            ],
            "EnrollmentDeny": [
                "type": "object", "additionalProperties": false, "required": ["reason"],
                "properties": ["reason": printable(maxLength: 1024, minLength: 1)],
            ],
            "Enrollment": [
                "type": "object", "additionalProperties": false,
                "required": [
                    "id", "status", "component_type", "poller_id", "requested_name", "suggested_name", "claimed",
                    "observed", "key_fingerprint", "key_fingerprint_short", "warnings", "requested_at", "expires_at",
                    "decided_at", "decided_by", "decision_reason", "name", "spiffe_id", "package_id", "activated_at",
                ],
                "properties": [
                    "id": ["type": "string"],
                    "status": ["type": "string", "enum": ["pending", "approved", "denied", "expired", "activated"]],
                    "component_type": ["type": "string", "enum": ["agent", "checker"]],
                    "poller_id": ["type": "string"], "requested_name": ["type": "string"],
                    "suggested_name": ["type": "string"],
                    "claimed": [
                        "type": "object",
                        "required": ["machine_id", "hostname", "fqdn", "addresses", "os", "kernel", "arch"],
                        "properties": [
                            "machine_id": ["type": "string"], "hostname": ["type": "string"],
                            "fqdn": ["type": "string"],
                            "addresses": ["type": "array", "items": ["type": "string"]], "os": ["type": "string"],
                            "kernel": ["type": "string"], "arch": ["type": "string"],
                        ],
                    ],
                    "observed": [
                        "type": "object", "required": ["source_address", "poller_id", "received_at"],
                        "properties": [
                            "source_address": ["type": "string"], "poller_id": ["type": "string"],
                            "received_at": time,
                        ],
                    ],
                    "key_fingerprint": ["type": "string", "pattern": "^sha256:[0-9a-f]{64}$"],
                    "key_fingerprint_short": ["type": "string"],
                    "warnings": [
                        "type": "array",
                        "items": [
                            "type": "object", "required": ["code", "message"],
                            "properties": ["code": ["type": "string"], "message": ["type": "string"]],
                        ],
                    ],
                    "requested_at": time, "expires_at": time, "decided_at": optionalTime, "decided_by": optionalText,
                    "decision_reason": optionalText, "name": optionalText, "spiffe_id": optionalText,
                    "package_id": optionalText, "activated_at": optionalTime,
                ],
            ],
            "Poller": [
                "type": "object", "additionalProperties": false,
                "required": [
                    "name", "spiffe_id", "site", "package_id", "status", "advertise_address", "last_contact_at",
                    "last_contact_from", "created_at",
                ],
                "properties": [
                    "name": ["type": "string"], "spiffe_id": ["type": "string"], "site": ["type": "string"],
                    "package_id": ["type": "string"],
                    "status": ["type": "string", "enum": ["pending", "active", "revoked"]],
                    "advertise_address": optionalText,
                    "last_contact_at": optionalTime, "last_contact_from": optionalText, "created_at": time,
                ],
            ],
            "AuditRow": [
                "type": "object", "additionalProperties": false,
                "required": [
                    "id", "at", "actor", "source_ip", "action", "target_type", "target_id", "outcome", "reason",
                    "details",
                ],
                "properties": [
                    "id": ["type": "integer"], "at": time, "actor": ["type": "string"], "source_ip": optionalText,
                    "action": ["type": "string"],
                    "target_type": ["type": "string"], "target_id": optionalText,
                    "outcome": ["type": "string", "enum": ["ok", "denied", "late"]],
                    "reason": optionalText, "details": ["type": "object", "additionalProperties": ["type": "string"]],
                ],
            ],
        ]
    }
}
