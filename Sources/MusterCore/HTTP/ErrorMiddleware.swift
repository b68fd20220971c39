import Foundation
import Hummingbird
import Logging
import MusterStore
import NIOCore

/// Turns every failure into `{"error": CODE, "message": TEXT}` with the matching status, and counts requests.
/// Unexpected errors are logged here and answered 500 without internals.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = CoreRequestContext
    let metrics: CoreMetrics
    let logger: Logger
    /// The route templates served, to tell "no such path" (404) from "not this method" (405).
    let templates: [(method: String, path: String)]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let started = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = Self.response(for: map(error, request: request))
        }
        metrics.request(
            route: context.endpointPath ?? "unmatched", method: request.method.rawValue,
            status: response.status.code, duration: ContinuousClock.now - started
        )
        return response
    }

    func map(_ error: any Error, request: Request) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as DomainError:
            switch error.code {
            case .unavailable: logger.error("database unavailable", metadata: ["error": "\(error.message)"])
            case .internalFailure:
                logger.error(
                    "internal failure",
                    metadata: [
                        "path": "\(request.uri.path)", "error": "\(error.cause.map { "\($0)" } ?? error.message)",
                    ])
            default: break
            }
            return APIError(error)
        case is StoreError, is CoreError:
            // Routes that read the store directly (lists, the audit log) get the domain's view of its failures.
            return map(DomainError(error), request: request)
        case let error as HTTPError:
            switch error.status {
            case .notFound:
                let allowed = Self.mostSpecific(
                    templates.filter { Self.matches(template: $0.path, path: request.uri.path) }
                ).map(\.method)
                if !allowed.isEmpty {
                    var refusal = APIError(
                        .methodNotAllowed,
                        "\(request.method.rawValue) is not allowed on \(request.uri.path) (allowed: \(allowed.joined(separator: ", ")))"
                    )
                    refusal.allow = allowed
                    return refusal
                }
                return APIError(.notFound, "no such endpoint: \(request.method.rawValue) \(request.uri.path)")
            case .methodNotAllowed:
                return APIError(.methodNotAllowed, "\(request.method.rawValue) is not allowed on \(request.uri.path)")
            case .contentTooLarge: return APIError(.tooLarge, "request body is larger than 64 KiB")
            default:
                return APIError(
                    APIError.Code(name: "http_\(error.status.code)", status: error.status.code),
                    error.body ?? error.status.reasonPhrase)
            }
        case is NIOTooManyBytesError:
            return APIError(.tooLarge, "request body is larger than 64 KiB")
        default:
            logger.error("unexpected error", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return APIError(.internalError, "internal error; see the Core log")
        }
    }

    /// The matching templates with the most literal segments: `/api/edge-packages/bulk` is its own path, not
    /// one more `{id}`, so its Allow names its methods only.
    static func mostSpecific(_ matching: [(method: String, path: String)]) -> [(method: String, path: String)] {
        let literals = { (item: (method: String, path: String)) in
            item.path.split(separator: "/").filter { !$0.hasPrefix("{") }.count
        }
        guard let most = matching.map(literals).max() else { return [] }
        return matching.filter { literals($0) == most }
    }

    static func matches(template: String, path: String) -> Bool {
        let want = template.split(separator: "/")
        let have = path.split(separator: "/")
        return want.count == have.count && zip(want, have).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
    }

    static func response(for error: APIError) -> Response {
        let body = (try? APIJSON.encode(["error": error.code.name, "message": error.message])) ?? Data("{}".utf8)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retry = error.retryAfter { headers[.retryAfter] = String(retry) }
        if let allow = error.allow { headers[.allow] = allow.joined(separator: ", ") }
        return Response(
            status: .init(code: error.code.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
