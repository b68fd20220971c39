import MusterErrors

/// Why the identity authority refused something; equality compares the code, users read the message.
public typealias IdentityError = Failure<IdentityErrorCode>

/// What the identity authority refused; a struct of constants so codes can grow.
public struct IdentityErrorCode: NamedErrorCode {
    public let name: String

    public static let csrMalformed = IdentityErrorCode(name: "csrMalformed")
    public static let csrTooLarge = IdentityErrorCode(name: "csrTooLarge")
    public static let csrBadSignature = IdentityErrorCode(name: "csrBadSignature")
    public static let csrUnsupportedKey = IdentityErrorCode(name: "csrUnsupportedKey")
    public static let csrWeakKey = IdentityErrorCode(name: "csrWeakKey")
    public static let csrTooManyExtensions = IdentityErrorCode(name: "csrTooManyExtensions")
    public static let csrRequestsCA = IdentityErrorCode(name: "csrRequestsCA")
    public static let badLifetime = IdentityErrorCode(name: "badLifetime")
    public static let certificateMalformed = IdentityErrorCode(name: "certificateMalformed")
    public static let bundleMalformed = IdentityErrorCode(name: "bundleMalformed")
    public static let chainInvalid = IdentityErrorCode(name: "chainInvalid")
    public static let notAnSVID = IdentityErrorCode(name: "notAnSVID")
    public static let wrongTrustDomain = IdentityErrorCode(name: "wrongTrustDomain")
    public static let outsidePollerScope = IdentityErrorCode(name: "outsidePollerScope")
    public static let tokenMalformed = IdentityErrorCode(name: "tokenMalformed")
    public static let entryNotFound = IdentityErrorCode(name: "entryNotFound")
    public static let storage = IdentityErrorCode(name: "storage")
    public static let badAddress = IdentityErrorCode(name: "badAddress")
    public static let factsInvalid = IdentityErrorCode(name: "factsInvalid")
    public static let selectorUnsupported = IdentityErrorCode(name: "selectorUnsupported")
}
