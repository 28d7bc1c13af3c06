package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/render"
	"github.com/kpipe-io/kpipe/internal/kafkaclient"
)

// secrets is what the referenced Secrets give a reconcile: the lag reader's connection, with
// its credentials, and a hash of the Secrets' data for the pods' config hash.
type secrets struct {
	conn lag.Connection
	hash string
}

// resolveSecrets reads the referenced Secrets and builds the lag reader's connection. Values
// stay in memory; only names and keys appear in messages. A missing or unusable Secret is
// what the pipeline waits for; what was resolved before it is returned with it.
func (r *KafkaPipelineReconciler) resolveSecrets(ctx context.Context, key types.NamespacedName, spec *kpipev1.KafkaPipelineSpec) (secrets, *waitError) {
	k := spec.Kafka
	out := secrets{conn: lag.Connection{BootstrapServers: k.BootstrapServers, Version: k.Version}}
	var read []*corev1.Secret
	get := func(name string) (*corev1.Secret, *waitError) {
		s := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &waitError{reason: ReasonSecretNotFound, err: fmt.Errorf("secret %q not found in namespace %q", name, key.Namespace)}
			}
			return nil, &waitError{reason: ReasonSecretNotFound, err: fmt.Errorf("read secret %q: %w", name, err)}
		}
		read = append(read, s)
		return s, nil
	}
	if t := k.TLS; t != nil {
		var data map[string][]byte
		if t.SecretRef != nil {
			s, err := get(t.SecretRef.Name)
			if err != nil {
				return out, err
			}
			data = s.Data
		}
		cfg, cerr := kafkaclient.TLSFromSecret(data, t.InsecureSkipVerify)
		if cerr != nil {
			return out, &waitError{reason: ReasonSecretInvalid, err: fmt.Errorf("tls secret %q: %w", t.SecretRef.Name, cerr)}
		}
		out.conn.Credentials.TLS = cfg
	}
	if s := k.SASL; s != nil {
		sec, err := get(s.SecretRef.Name)
		if err != nil {
			return out, err
		}
		cfg, cerr := kafkaclient.SASLFromSecret(s.Mechanism, sec.Data)
		if cerr != nil {
			return out, &waitError{reason: ReasonSecretInvalid, err: fmt.Errorf("sasl secret %q: %w", s.SecretRef.Name, cerr)}
		}
		out.conn.Credentials.SASL = cfg
	}
	out.hash = render.SecretsHash(read...)
	out.conn.AuthHash = out.hash
	return out, nil
}
