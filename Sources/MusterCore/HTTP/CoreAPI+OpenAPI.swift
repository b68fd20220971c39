import Foundation

extension CoreAPI {
    /// OpenAPI 3.1 built from the route table: every served path and method, its scope and its answers.
    func openAPIDocument() throws -> Data {
        var paths: [String: [String: Any]] = [:]
        for route in routes {
            var operation: [String: Any] = [
                "summary": route.summary,
                "operationId": route.method.rawValue.lowercased() + route.path.replacingOccurrences(of: "/", with: "_")
                    .replacingOccurrences(of: "{", with: "").replacingOccurrences(of: "}", with: "").replacingOccurrences(of: "-", with: "_")
                    .replacingOccurrences(of: ".", with: "_"),
                "responses": Dictionary(uniqueKeysWithValues: route.responses.map { code in
                    (String(code), code < 400 ? ["description": "OK"] as [String: Any]
                        : ["description": "Error", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]])
                }),
            ]
            if let scope = route.scope {
                operation["security"] = [["bearer": [scope.rawValue]]]
                operation["x-muster-scope"] = scope.rawValue
            } else {
                operation["security"] = [[String: [String]]]()
            }
            let parameters = route.path.split(separator: "/").filter { $0.hasPrefix("{") }.map { segment -> [String: Any] in
                ["name": String(segment.dropFirst().dropLast()), "in": "path", "required": true, "schema": ["type": "string"]]
            }
            if !parameters.isEmpty { operation["parameters"] = parameters }
            paths[route.path, default: [:]][route.method.rawValue.lowercased()] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": ["title": "Muster Core API", "version": "1"],
            "paths": paths,
            "components": [
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
                "schemas": ["Error": [
                    "type": "object", "required": ["error", "message"],
                    "properties": ["error": ["type": "string"], "message": ["type": "string"]],
                ]],
            ],
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }
}
