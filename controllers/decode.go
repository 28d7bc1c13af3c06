package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// One object never stops the operator. A typed informer decodes every KafkaPipeline of a
// list into the Go type; a single stored value the decoder rejects (a duration that overflows
// metav1.Duration, a string where an int now belongs after a CRD change) fails the whole list,
// so the cache never syncs and no pipeline in any namespace is reconciled. The operator
// therefore caches KafkaPipelines as unstructured objects (JSON into maps, which never fails)
// and converts one pipeline to the typed object at the start of its own reconcile. A pipeline
// that does not convert is Stalled with reason SpecUndecodable, naming the field; its
// Deployment is left as it is (see Reconcile), and every other pipeline goes on.
//
// Cost: one informer, as before (no metadata-only watch beside it, no uncached GET per
// reconcile); the cached maps take more memory than typed structs, and each reconcile pays
// one conversion (tens of microseconds), small next to its Kafka poll.

// pipelineObject is an empty unstructured KafkaPipeline, for the cache, the watch and reads.
func pipelineObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(kpipev1.GroupVersion.WithKind("KafkaPipeline"))
	return u
}

// pipelineList is an empty unstructured KafkaPipelineList.
func pipelineList() *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(kpipev1.GroupVersion.WithKind("KafkaPipelineList"))
	return l
}

// reader is where pipelines are read: the manager's cache (set up by SetupWithManager; the
// client would read unstructured objects from the API server), or the client in unit tests.
func (r *KafkaPipelineReconciler) reader() client.Reader {
	if r.pipelines != nil {
		return r.pipelines
	}
	return r.Client
}

// getPipeline reads a pipeline as stored, without decoding it into the typed object.
func (r *KafkaPipelineReconciler) getPipeline(ctx context.Context, key types.NamespacedName) (*unstructured.Unstructured, error) {
	u := pipelineObject()
	// The cache's own object, not a copy (a steady poll at 10 000 pipelines spent a tenth of
	// its CPU copying): nothing writes to it. The status patch clones it before setting the
	// status, and decoding only reads it.
	if err := r.reader().Get(ctx, key, u, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	return u, nil
}

// load reads a pipeline from the cache and decodes it; decodeErr says why its spec does not
// decode. kp is nil when there is nothing to reconcile: the pipeline is gone or being deleted
// (what was held for it is forgotten; its Deployment goes with it by owner reference), or it
// could not be read (err).
func (r *KafkaPipelineReconciler) load(ctx context.Context, key types.NamespacedName) (
	stored *unstructured.Unstructured, kp *kpipev1.KafkaPipeline, decodeErr, err error) {
	stored, err = r.getPipeline(ctx, key)
	switch {
	case apierrors.IsNotFound(err):
		r.forget(key)
		return nil, nil, nil, nil
	case err != nil:
		return nil, nil, nil, err
	case !stored.GetDeletionTimestamp().IsZero():
		r.forget(key)
		return nil, nil, nil, nil
	}
	kp, decodeErr = r.decodeCached(key, stored)
	if kp == nil {
		return nil, nil, nil, reconcile.TerminalError(decodeErr) // not even its metadata decodes
	}
	return stored, kp, decodeErr, nil
}

// decodePipeline converts a stored pipeline into the typed object. When its spec does not
// convert, it returns the pipeline without a spec (metadata and, when it converts, status),
// and an error naming the field. It returns nil only when not even the metadata converts.
func decodePipeline(u *unstructured.Unstructured) (*kpipev1.KafkaPipeline, error) {
	kp := &kpipev1.KafkaPipeline{}
	err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, kp)
	if err == nil {
		return kp, nil
	}
	path, why := "spec", err
	if spec, ok := u.Object["spec"].(map[string]any); ok {
		if p, e := locate([]string{"spec"}, spec); p != nil {
			path, why = strings.Join(p, "."), e
		}
	}
	err = fmt.Errorf("%s: %w (the stored object does not decode into %s: fix or remove the field)", path, why, kpipev1.GroupVersion)
	obj := maps.Clone(u.Object)
	delete(obj, "spec")
	kp = &kpipev1.KafkaPipeline{}
	if runtime.DefaultUnstructuredConverter.FromUnstructured(obj, kp) == nil {
		return kp, err
	}
	delete(obj, "status") // a status that does not decode either starts over
	kp = &kpipev1.KafkaPipeline{}
	if runtime.DefaultUnstructuredConverter.FromUnstructured(obj, kp) == nil {
		return kp, err
	}
	return nil, err
}

// locate returns the path of the deepest field under path whose value alone does not convert,
// and the conversion's error; nil when every field converts on its own.
func locate(path []string, m map[string]any) ([]string, error) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := append(slices.Clone(path), k)
		obj := map[string]any{}
		if err := unstructured.SetNestedField(obj, m[k], p...); err != nil {
			continue
		}
		err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &kpipev1.KafkaPipeline{})
		if err == nil {
			continue
		}
		if child, ok := m[k].(map[string]any); ok {
			if deeper, e := locate(p, child); deeper != nil {
				return deeper, e
			}
		}
		return p, err
	}
	return nil, nil
}
