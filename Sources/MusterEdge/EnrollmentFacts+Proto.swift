import MusterIdentity
import MusterProto

/// A machine's claimed facts to and from their wire form (agent → poller → Core).
extension EnrollmentFacts {
    public init(_ claimed: Muster_Onboarding_V1_ClaimedFacts) {
        self.init(
            machineID: claimed.machineID, hostname: claimed.hostname, fqdn: claimed.fqdn, addresses: claimed.addresses,
            os: claimed.os, kernel: claimed.kernel, arch: claimed.arch)
    }

    public var proto: Muster_Onboarding_V1_ClaimedFacts {
        var claimed = Muster_Onboarding_V1_ClaimedFacts()
        claimed.machineID = machineID
        claimed.hostname = hostname
        claimed.fqdn = fqdn
        claimed.addresses = addresses
        claimed.os = os
        claimed.kernel = kernel
        claimed.arch = arch
        return claimed
    }
}
