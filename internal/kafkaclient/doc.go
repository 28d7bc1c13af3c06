// Package kafkaclient is the one place where kpipe turns a KafkaPipeline's spec.kafka and the
// Secrets it references into a sarama client configuration. The operator (reading Secrets
// through the API) and the runtime (reading the same Secrets mounted as files) both build their
// clients here, and each adds only the settings of its own purpose on top of NewConfig.
//
// Errors name Secret keys and files, never their contents.
package kafkaclient
