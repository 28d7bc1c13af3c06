// Package runtime is kpipe's pipeline runtime: the `kpipe run` command that runs inside a
// KafkaPipeline's pods, and a Go library for custom images with a handler of their own.
//
// # Shape
//
// A sarama consumer group (spec.kafka.rebalanceStrategy, default cooperative-sticky: one
// session while the replica is in the group, revoked partitions drain on their own; Range
// and RoundRobin: one session per rebalance) feeds a bounded
// buffer (spec.pool.buffer, default 256); a fixed pool of workers (spec.pool.size, default
// the CPUs available, runtime.GOMAXPROCS) takes messages from it and runs the processor.
// One sarama AsyncProducer, shared by all workers, writes forwarded messages and dead
// letters; its acks and errors are drained on a goroutine of their own.
//
// # Configuration
//
// The configuration is the KafkaPipeline spec itself, as JSON, in KPIPE_PIPELINE_SPEC (or a
// file given with --config). LoadConfig decodes it (a repeated field or a wrong type is an
// error; a field this runtime does not know is reported in Config.UnknownFields, logged once
// and exported, and ignored), applies the API's defaults and validates it with the API's
// rules, then reads the Secret
// files the spec refers to: ca.crt, tls.crt and tls.key in KPIPE_TLS_DIR (default
// /etc/kpipe/tls), username and password in KPIPE_SASL_DIR (default /etc/kpipe/sasl). Every
// problem is reported, one per line, before anything connects. KPIPE_PIPELINE_NAME and
// KPIPE_PIPELINE_NAMESPACE label logs and metrics; KPIPE_HTTP_ADDR (or --http-address,
// default :9090) is where /metrics, /healthz and /readyz are served.
//
// # Pod contract
//
// KPIPE_POD_CONTRACT is the pod contract version the operator requires of the pod. A runtime
// that implements an older one (kpipev1.PodContractVersion) refuses to start with a
// *ContractError naming both versions, also written to /dev/termination-log, which the
// operator shows on the pipeline (reason PodContractUnsupported). `kpipe run` checks it first;
// a custom main that does not use NewCommand calls CheckContract itself.
//
// # Ordering
//
//   - Partition: one message of a partition is processed at a time, in offset order.
//   - Key: messages with the same key (within a partition) are processed one at a time, in
//     offset order; different keys run in parallel, so parallelism is not capped by the
//     partition count. Messages without a key share one lane per partition.
//   - Unordered: any message on any free worker.
//
// For a Handler or the http processor, "processed" means the call returned. For the forward
// processor it means the message was handed to the producer: the producer keeps the order
// of one key (it goes to one output partition, one request in flight per broker), so the
// next message of the lane need not wait for the previous one's ack. A forward that fails
// and is retried can land after later messages of its key.
//
// # Delivery and offsets
//
// Delivery is at least once. A message is finished when its processor succeeded (for
// forward: when the broker acknowledged the write, acks=all) or when its dead letter was
// acknowledged. Per partition, only the end of the contiguous run of finished offsets is
// marked; marked offsets are committed every second and whenever a partition is released.
// Nothing past an unfinished message is ever committed. When a partition is revoked,
// messages not yet started are dropped (they will be consumed again by the new owner) and
// those in flight get up to WithDrainTimeout (default 10s) to finish; what finished is
// committed before the partition is released. Every commit carries, in each owned
// partition's commit metadata, a telemetry record for the operator (rate, busy share, in
// flight, state, replica: internal/telemetry), refreshed even when the offset did not move;
// a claimed partition with no commit gets the offset it starts at committed.
//
// Memory is bounded in bytes, not by lag nor by message size: a memory budget
// (WithMemoryBudget, else KPIPE_MEMORY_BUDGET, else half of the cgroup's memory limit, else
// 256 MiB) is split between sarama's fetches (sized per claimed partition at every
// rebalance, and counted decoded: what compressed fetches decode to beyond their share is
// taken from the pool's and the window's), the messages sarama delivered and not yet
// admitted, the pool (at most
// buffer + size messages and its share in bytes) and the producer window (at most
// WithProducerWindow messages, default 8192, and its share in bytes). A message larger than
// a share goes through alone. kpipe run sets GOMEMLIMIT to 85% of the memory limit unless it
// is set. docs/runtime.md has the numbers.
//
// # Retries and dead letters
//
// A failed message is retried with exponential backoff and jitter, from
// spec.retry.initialBackoff doubling up to spec.retry.maxBackoff, for spec.retry.maxAttempts
// attempts in all; an error wrapped with Permanent is not retried. After the last attempt it
// is written to spec.deadLetter.topic with its original key, value and headers, plus:
//
//	kpipe-error             the last error, as text
//	kpipe-source-topic      topic it was consumed from
//	kpipe-source-partition  its partition
//	kpipe-source-offset     its offset
//	kpipe-attempts          attempts made
//
// If the dead-letter write fails, it is retried with backoff until it succeeds and the
// offset is not committed meanwhile: nothing is dropped. Without spec.deadLetter, a message
// whose attempts are used up is retried every spec.retry.maxBackoff until it succeeds, and
// its partition does not advance.
//
// # Processors
//
// forward produces each message to spec.processor.forward.topic with its key, value and
// headers, partitioned by a hash of the key.
//
// http POSTs each message to spec.processor.http.url: the body is the value
// (Content-Type: application/octet-stream) and these headers describe it:
//
//	Kpipe-Topic, Kpipe-Partition, Kpipe-Offset   where the message comes from
//	Kpipe-Attempt                                 1 on the first try
//	Kpipe-Key                                     the key, if it is a valid header value
//	Kpipe-Key-Base64                              otherwise the key, standard base64
//	Kpipe-Header-<name>                           each Kafka header
//	Kpipe-Header-Base64-<name>                    a Kafka header whose value is not a valid header value
//
// A 2xx answer finishes the message; 408, 429, 5xx and transport errors are retried; any
// other status sends it to the dead-letter topic at once. Kafka headers whose names are not
// valid HTTP header names are not sent.
//
// handler runs a Handler registered with Register under spec.processor.handler.name, in a
// custom image whose main runs NewCommand (see the examples).
//
// # Idle, shutdown, health
//
// When the pipeline was in a consumer group session with nothing consumed for
// spec.idle.window (and nothing is in flight; time without a session does not count), the
// consumer group is left and the pool stopped; after spec.idle.penalty the pipeline joins again.
// When Run's context ends (SIGTERM for `kpipe run`), the runtime stops fetching, lets the
// messages in flight finish within the shutdown timeout (--shutdown-timeout, default 25s,
// below the pod's 30s grace period), waits for the producer's acks, commits, and leaves the
// group. /healthz answers while the process runs; /readyz answers 200 while a consumer group
// session is active or the pipeline is deliberately idle.
//
// # Metrics
//
//	kpipe_messages_consumed_total{topic}
//	kpipe_messages_processed_total{result="ok|dead_lettered|abandoned"}
//	kpipe_retries_total, kpipe_dead_lettered_total
//	kpipe_messages_in_flight
//	kpipe_messages_stalled (past retry.maxAttempts without a dead-letter topic)
//	kpipe_partitions_paused (fetching paused behind a message that has not finished)
//	kpipe_processing_seconds (histogram: consumed to finished, retries and acks included)
//	kpipe_committed_offset{topic,partition}
//	kpipe_idle, kpipe_idle_periods_total, kpipe_consumer_session_active
//	kpipe_spec_unknown_fields{field} (1 per spec field this runtime ignores)
//	kpipe_pod_contract_version (the pod contract this runtime implements)
//
// with the labels pipeline and namespace, on a registry of the pipeline's own, plus the Go
// and process collectors.
package runtime
