import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What the CLI exits with (DESIGN.md): 0 ok, 1 error, 2 usage, 3 auth, 4 not found, 5 conflict.
enum ExitCode: Int32 {
    case ok = 0
    case error = 1
    case usage = 2
    case auth = 3
    case notFound = 4
    case conflict = 5
}

/// A failure the CLI reports as one line on stderr with its exit code.
struct CLIError: Error {
    let code: ExitCode
    let message: String
}

/// A thin client of Core's HTTP API.
struct CoreClient {
    let base: URL
    let token: String?

    init(core: String, token: String?) throws {
        guard let url = URL(string: core), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil
        else {
            throw CLIError(
                code: .usage, message: "--core must be an http(s) URL, e.g. http://127.0.0.1:8080 (got '\(core)')")
        }
        base = url
        self.token = token
    }

    func request(_ method: String, _ path: String, query: [String: String?] = [:], body: [String: Any]? = nil) throws
        -> URLRequest
    {
        var components = URLComponents(url: base.appendingPathComponent(path), resolvingAgainstBaseURL: false)!
        let items = query.compactMap { key, value in value.map { URLQueryItem(name: key, value: $0) } }.sorted {
            $0.name < $1.name
        }
        if !items.isEmpty { components.queryItems = items }
        var request = URLRequest(url: components.url!)
        request.httpMethod = method
        request.timeoutInterval = 30
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        return request
    }

    /// Sends a request and returns the body of a 2xx answer; anything else becomes a CLIError with Core's message.
    func send(_ request: URLRequest) async throws -> Data {
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw CLIError(
                code: .error, message: "cannot reach Core at \(base.absoluteString): \(error.localizedDescription)")
        }
        guard let http = response as? HTTPURLResponse else {
            throw CLIError(code: .error, message: "Core sent no HTTP response")
        }
        guard (200..<300).contains(http.statusCode) else {
            throw Self.failure(
                status: http.statusCode, body: data, retryAfter: http.value(forHTTPHeaderField: "Retry-After"))
        }
        return data
    }

    func json(_ method: String, _ path: String, query: [String: String?] = [:], body: [String: Any]? = nil) async throws
        -> Any
    {
        let data = try await send(try request(method, path, query: query, body: body))
        guard let object = try? JSONSerialization.jsonObject(with: data) else {
            throw CLIError(code: .error, message: "Core answered with something that is not JSON")
        }
        return object
    }

    static func failure(status: Int, body: Data, retryAfter: String?) -> CLIError {
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        var message = (object?["message"] as? String) ?? "HTTP \(status)"
        if let retryAfter { message += " (retry after \(retryAfter) s)" }
        switch status {
        case 401, 403: return CLIError(code: .auth, message: message)
        case 404: return CLIError(code: .notFound, message: message)
        case 409, 410: return CLIError(code: .conflict, message: message)
        case 400, 422: return CLIError(code: .usage, message: message)
        default: return CLIError(code: .error, message: message)
        }
    }
}

/// Streams a response body to a callback as it arrives (server-sent events).
final class StreamDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // Safe: URLSession calls a delegate on its own serial delegate queue only.
    var onData: (Data) -> Void = { _ in }
    var status = 0
    var errorBody = Data()
    var finished: (((any Error)?) -> Void)?

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        status = (response as? HTTPURLResponse)?.statusCode ?? 0
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        if (200..<300).contains(status) { onData(data) } else { errorBody.append(data) }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        finished?(error)
    }
}
