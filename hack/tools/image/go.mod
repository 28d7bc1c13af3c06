// Build-only module for `make image`: writes kpipe's container image (and the node suite's
// Kafka, pause and CoreDNS images) as tarballs without a Docker engine. Kept apart so the
// operator's go.mod does not carry go-containerregistry.
module github.com/kpipe-io/kpipe/hack/tools/image

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
