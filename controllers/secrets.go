package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/render"
	"github.com/kpipe-io/kpipe/internal/httpheaders"
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
func (r *KafkaPipelineReconciler) resolveSecrets(ctx context.Context, key types.NamespacedName, spec *kpipev1.KafkaPipelineSpec,
	st *pipelineState) (secrets, *waitError) {
	k := spec.Kafka
	out := secrets{conn: lag.Connection{BootstrapServers: k.BootstrapServers, Version: k.Version}}
	var read []*corev1.Secret
	if t := k.TLS; t != nil {
		var data map[string][]byte
		if t.SecretRef != nil {
			s, err := r.readSecret(ctx, st, types.NamespacedName{Namespace: key.Namespace, Name: t.SecretRef.Name})
			if err != nil {
				return out, err
			}
			read, data = append(read, s), s.Data
		}
		cfg, cerr := kafkaclient.TLSFromSecret(data, t.InsecureSkipVerify)
		if cerr != nil {
			return out, &waitError{reason: ReasonSecretInvalid, err: fmt.Errorf("tls secret %q: %w", t.SecretRef.Name, cerr)}
		}
		out.conn.Credentials.TLS = cfg
	}
	if s := k.SASL; s != nil {
		sec, err := r.readSecret(ctx, st, types.NamespacedName{Namespace: key.Namespace, Name: s.SecretRef.Name})
		if err != nil {
			return out, err
		}
		read = append(read, sec)
		cfg, cerr := kafkaclient.SASLFromSecret(s.Mechanism, sec.Data)
		if cerr != nil {
			return out, &waitError{reason: ReasonSecretInvalid, err: fmt.Errorf("sasl secret %q: %w", s.SecretRef.Name, cerr)}
		}
		out.conn.Credentials.SASL = cfg
	}
	// The Kafka credentials identify the lag reader's client; the headers Secret does not.
	out.conn.AuthHash = render.SecretsHash(read...)
	if h := spec.Processor.HTTP; h != nil && h.HeadersSecretRef != nil {
		sec, err := r.readSecret(ctx, st, types.NamespacedName{Namespace: key.Namespace, Name: h.HeadersSecretRef.Name})
		if err != nil {
			return out, err
		}
		read = append(read, sec) // in the pods' config hash: a rotation rolls them
		if _, herr := httpheaders.FromSecret(sec.Data); herr != nil {
			return out, &waitError{reason: ReasonSecretInvalid, err: fmt.Errorf("http headers secret %q: %w", h.HeadersSecretRef.Name, herr)}
		}
	}
	out.hash = render.SecretsHash(read...)
	return out, nil
}

// readSecret reads one Secret. Secrets are not in the manager's cache (see manager.New), only
// their metadata: when the metadata says the Secret still has the resourceVersion this
// pipeline read last, that copy is used and the API server is not asked; otherwise the Secret
// is read from it. A change of the Secret also wakes the pipeline (setup.go), by which time
// the metadata shows it. Under SecretOptIn the labels are checked first, in the metadata, so
// nothing is read from a Secret that has not opted in; they are checked again on the Secret
// read, in case the label went in between.
func (r *KafkaPipelineReconciler) readSecret(ctx context.Context, st *pipelineState, key types.NamespacedName) (*corev1.Secret, *waitError) {
	m, err := r.secretMetadata(ctx, key)
	switch {
	case err != nil && (r.SecretOptIn || !apierrors.IsNotFound(err)):
		return nil, secretReadError(key, err)
	case r.SecretOptIn && !optedIn(m):
		return nil, notOptedIn(key)
	case err == nil && st.secrets[key.Name] != nil && st.secrets[key.Name].ResourceVersion == m.ResourceVersion:
		return st.secrets[key.Name], nil
	}
	s := &corev1.Secret{}
	if err := r.Get(ctx, key, s); err != nil {
		return nil, secretReadError(key, err)
	}
	if r.SecretOptIn && !optedIn(s) {
		return nil, notOptedIn(key)
	}
	if st.secrets == nil {
		st.secrets = map[string]*corev1.Secret{}
	}
	st.secrets[key.Name] = s
	return s, nil
}

// secretMetadata reads a Secret's metadata from the metadata-only cache. Without one (a
// reconciler not set up with a manager) it says not found, and the Secret is read.
func (r *KafkaPipelineReconciler) secretMetadata(ctx context.Context, key types.NamespacedName) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if r.secretMeta == nil {
		return nil, apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	if err := r.secretMeta.Get(ctx, key, m); err != nil {
		return nil, err
	}
	return m, nil
}

func secretReadError(key types.NamespacedName, err error) *waitError {
	if apierrors.IsNotFound(err) {
		return &waitError{reason: ReasonSecretNotFound, err: fmt.Errorf("secret %q not found in namespace %q", key.Name, key.Namespace)}
	}
	return &waitError{reason: ReasonSecretNotFound, err: fmt.Errorf("read secret %q: %w", key.Name, err)}
}

func optedIn(obj metav1.Object) bool {
	return obj.GetLabels()[kpipev1.SecretOptInLabel] == kpipev1.SecretOptInValue
}

func notOptedIn(key types.NamespacedName) *waitError {
	return &waitError{reason: ReasonSecretNotOptedIn, err: fmt.Errorf(
		"secret %q has not opted in: the operator runs with --secret-opt-in and uses only Secrets labelled %s=%s; add the label to let pipelines use it",
		key.Name, kpipev1.SecretOptInLabel, kpipev1.SecretOptInValue)}
}
