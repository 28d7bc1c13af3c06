package kafkaclient

// The keys of the Secrets a KafkaPipeline references. They are part of the pod contract: the
// operator mounts each Secret whole, and the runtime reads these keys as files of the mount.
const (
	// KeyCACert holds the PEM CAs that sign the brokers' certificates (optional; the system's
	// roots otherwise).
	KeyCACert = "ca.crt"
	// KeyTLSCert and KeyTLSKey hold a client certificate and its key, for mutual TLS; set both
	// or neither.
	KeyTLSCert = "tls.crt"
	KeyTLSKey  = "tls.key"
	// KeyUsername and KeyPassword hold the SASL credentials.
	KeyUsername = "username"
	KeyPassword = "password"
)

// TLSKeys and SASLKeys list the keys each kind of Secret may hold.
var (
	TLSKeys  = []string{KeyCACert, KeyTLSCert, KeyTLSKey}
	SASLKeys = []string{KeyUsername, KeyPassword}
)
