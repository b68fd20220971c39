import Foundation
import MusterArchive
import MusterEdge
import MusterIdentity
import MusterStore

extension PackageService {
    /// Builds the tar.gz with the clear join token (the only place it is ever revealed), then erases the
    /// sealed token and moves Created → Delivered in one conditional update: a second download gets 410.
    public func download(id: String, by principal: Principal) async throws -> (fileName: String, archive: [UInt8]) {
        try await DomainError.mapping { try await downloadPackage(id: id, by: principal) }
    }

    private func downloadPackage(id: String, by principal: Principal) async throws -> (
        fileName: String, archive: [UInt8]
    ) {
        guard let record = try await store.package(id: id) else {
            throw DomainError(.notFound, "no package with id \(id)")
        }
        guard record.downloadedAt == nil, let sealed = record.tokenCiphertext else {
            if record.status.isTerminal || record.status == .activated {
                throw DomainError(
                    .conflict, "package \(id) is \(record.status.rawValue); there is nothing left to download")
            }
            throw DomainError(
                .gone,
                "package \(id) was already downloaded; its join token is shown once — revoke it and create a new package"
            )
        }
        guard record.status == .created || record.status == .delivered else {
            throw DomainError(
                .conflict, "package \(id) is \(record.status.rawValue); there is nothing left to download")
        }
        let now = Clock.nowMillis()
        guard record.expiresAt > now else {
            throw DomainError(.conflict, "package \(id) expired at \(Timestamp.text(record.expiresAt))")
        }
        let token = try sealer.open(sealed, packageID: id)
        let archive = try await archive(for: record, token: token)

        let audit = AuditRecord(
            at: now, actor: principal.name, sourceIP: principal.sourceIP, action: "package.download",
            targetType: "package", targetID: id)
        let type = record.status == .created ? "package.delivered" : "package.downloaded"
        if let refusal = await markDownloaded(id: id, event: type, at: now, audit: audit) {
            // Another download (here or on another replica) won the conditional update.
            if refusal.code == .conflict, try await store.package(id: id)?.downloadedAt != nil {
                throw DomainError(
                    .gone,
                    "package \(id) was already downloaded; its join token is shown once — revoke it and create a new package"
                )
            }
            throw refusal
        }
        logger.info("package downloaded", metadata: ["package": "\(id)", "actor": "\(principal.name)"])
        return ("muster-\(record.componentType.rawValue)-\(record.name).tar.gz", archive)
    }

    /// Moves the package to Delivered for its one download; the refusal if the move did not happen.
    func markDownloaded(id: String, event type: String, at now: Int64, audit: AuditRecord) async -> DomainError? {
        do {
            _ = try await transition(type, at: now) { event in
                try await store.markDownloaded(id: id, at: now, audit: audit, event: event)
            }
            return nil
        } catch {
            return DomainError(error)
        }
    }

    func archive(for record: PackageRecord, token: JoinToken) async throws -> [UInt8] {
        let pollerAddress =
            (try await record.pollerName.asyncMap { try await store.poller(named: $0)?.advertiseAddress } ?? nil)
            .flatMap { try? HostPort.validateAdvertised($0).text }
        let connect = record.componentType == .poller ? identity.advertise : (pollerAddress ?? "")
        let manifest = PackageManifest(
            id: record.id, name: record.name, type: record.componentType.rawValue, trustDomain: identity.trustDomain,
            spiffeID: record.spiffeID, expiresAt: Timestamp.text(record.expiresAt), connect: connect,
            caPin: identity.caPin, pollerID: record.pollerName
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let program = record.componentType == .poller ? "muster-poller" : "muster-agent"
        let env =
            [
                "MUSTER_PACKAGE_ID=\(record.id)", "MUSTER_COMPONENT_TYPE=\(record.componentType.rawValue)",
                "MUSTER_SPIFFE_ID=\(record.spiffeID)", "MUSTER_TRUST_DOMAIN=\(identity.trustDomain)",
                record.componentType == .poller ? "MUSTER_CORE_ADDRESS=\(connect)" : "MUSTER_POLLER_ADDRESS=\(connect)",
                "MUSTER_CA_PIN=\(identity.caPin)", "MUSTER_TOKEN_FILE=join-token",
            ].joined(separator: "\n") + "\n"
        let readme = """
            Muster \(record.componentType.rawValue) package "\(record.name)" (\(record.id))
            Identity: \(record.spiffeID)
            Expires:  \(Timestamp.text(record.expiresAt)) — the join token works once, before then.

            Install on the edge host:
                \(program) install --package THIS_FILE.tar.gz
            \(record.componentType == .poller ? "    muster-poller run" : "or join directly from this folder:\n    " + (joinCommand(record, pollerAddress: pollerAddress) ?? ""))

            join-token is a secret (mode 0600): keep it off shared disks and delete the archive once installed.
            The server is verified with bundle.pem / the CA pin \(identity.caPin); never trust on first use.

            """
        return try TarGz.write([
            ArchiveFile(name: "manifest.json", contents: Array(try encoder.encode(manifest)) + [0x0a]),
            ArchiveFile(name: "join-token", text: token.secret + "\n", mode: 0o600),
            ArchiveFile(name: "bundle.pem", text: try identity.bundle.pem()),
            ArchiveFile(name: "bundle.spiffe.json", contents: Array(try identity.bundle.spiffeJSON())),
            ArchiveFile(name: "\(program).env", text: env),
            ArchiveFile(name: "README.txt", text: readme),
        ])
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        switch self {
        case .some(let value): return try await transform(value)
        case .none: return nil
        }
    }
}
