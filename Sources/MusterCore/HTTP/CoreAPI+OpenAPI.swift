import Foundation

extension CoreAPI {
    /// OpenAPI 3.1 built from the route table and each route's contract (`RouteContract`): every served path and
    /// method, its scope, parameters, request body and answers with their schemas.
    func openAPIDocument() throws -> Data {
        var paths: [String: [String: Any]] = [:]
        for route in routes {
            let key = "\(route.method.rawValue) \(route.path)"
            guard let contract = RouteContract.all[key] else {
                throw APIError(.internalError, "route \(key) has no OpenAPI contract")
            }
            var responses: [String: Any] = [:]
            for code in route.responses {
                if code < 400 {
                    var content: [String: Any] = [contract.success.media: ["schema": contract.success.schema]]
                    for alternative in contract.alternatives {
                        content[alternative.media] = ["schema": alternative.schema]
                    }
                    responses[String(code)] = ["description": "OK", "content": content]
                } else {
                    var response: [String: Any] = [
                        "description": Self.describe(code),
                        "content": ["application/json": ["schema": RouteContract.ref("Error")]],
                    ]
                    if code == 429 {
                        response["headers"] = [
                            "Retry-After": [
                                "description": "seconds to wait", "required": true, "schema": ["type": "integer"],
                            ]
                        ]
                    }
                    responses[String(code)] = response
                }
            }
            var operation: [String: Any] = [
                "summary": route.summary,
                "operationId": route.method.rawValue.lowercased()
                    + route.path.replacingOccurrences(of: "/", with: "_")
                    .replacingOccurrences(of: "{", with: "").replacingOccurrences(of: "}", with: "")
                    .replacingOccurrences(of: "-", with: "_")
                    .replacingOccurrences(of: ".", with: "_"),
                "responses": responses,
            ]
            if let scope = route.scope {
                operation["security"] = [["bearer": [scope.rawValue]]]
                operation["x-muster-scope"] = scope.rawValue
            } else {
                operation["security"] = [[String: [String]]]()
            }
            var parameters = route.path.split(separator: "/").filter { $0.hasPrefix("{") }.map {
                segment -> [String: Any] in
                [
                    "name": String(segment.dropFirst().dropLast()), "in": "path", "required": true,
                    "schema": ["type": "string"],
                ]
            }
            parameters += contract.query.map {
                ["name": $0.name, "in": "query", "required": false, "schema": $0.schema, "description": $0.description]
            }
            if !parameters.isEmpty { operation["parameters"] = parameters }
            if let body = contract.body {
                operation["requestBody"] = [
                    "required": body.required,
                    "content": ["application/json": ["schema": RouteContract.ref(body.schema)]],
                ]
            }
            paths[route.path, default: [:]][route.method.rawValue.lowercased()] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": ["title": "Muster Core API", "version": "1"],
            "paths": paths,
            "components": [
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
                "schemas": RouteContract.schemas,
            ],
        ]
        return try JSONSerialization.data(
            withJSONObject: document, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
    }

    static func describe(_ code: Int) -> String {
        switch code {
        case 400: "the request is malformed (the message names the field)"
        case 401: "no bearer token, or one Core does not know"
        case 403: "the token lacks the scope"
        case 404: "no such package"
        case 409: "conflict with the current state (or a live package holds the name)"
        case 410: "already downloaded: the token was revealed once"
        case 413: "request body over 64 KiB"
        case 422: "the request names something that does not exist (a poller)"
        case 429: "rate limited; see Retry-After"
        case 503: "the database does not answer"
        default: "error"
        }
    }
}
