import MusterErrors

/// Why the identity authority refused something; equality compares the code, users read the message.
public struct IdentityError: CodedError {
    /// What went wrong; a struct of constants so codes can grow.
    public struct Code: NamedErrorCode {
        public let name: String

        public static let csrMalformed = Code(name: "csrMalformed")
        public static let csrTooLarge = Code(name: "csrTooLarge")
        public static let csrBadSignature = Code(name: "csrBadSignature")
        public static let csrUnsupportedKey = Code(name: "csrUnsupportedKey")
        public static let csrWeakKey = Code(name: "csrWeakKey")
        public static let csrTooManyExtensions = Code(name: "csrTooManyExtensions")
        public static let csrRequestsCA = Code(name: "csrRequestsCA")
        public static let badLifetime = Code(name: "badLifetime")
        public static let certificateMalformed = Code(name: "certificateMalformed")
        public static let bundleMalformed = Code(name: "bundleMalformed")
        public static let chainInvalid = Code(name: "chainInvalid")
        public static let notAnSVID = Code(name: "notAnSVID")
        public static let wrongTrustDomain = Code(name: "wrongTrustDomain")
        public static let outsidePollerScope = Code(name: "outsidePollerScope")
        public static let tokenMalformed = Code(name: "tokenMalformed")
        public static let entryNotFound = Code(name: "entryNotFound")
        public static let storage = Code(name: "storage")
        public static let badAddress = Code(name: "badAddress")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

}
