package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestReadSecretOnlyWhenItChanged: a poll whose Secret kept its resourceVersion (as the
// metadata cache reports it) reads nothing from the API server; a new resourceVersion, or no
// metadata yet, reads the Secret.
func TestReadSecretOnlyWhenItChanged(t *testing.T) {
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "shop", Name: "kafka-user"}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Data: map[string][]byte{"username": []byte("alice"), "password": []byte("one")}}
	gets := 0
	api := fake.NewClientBuilder().WithObjects(secret).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok {
				gets++
			}
			return c.Get(ctx, k, obj, opts...)
		},
	}).Build()
	r := &KafkaPipelineReconciler{Client: api, secretMeta: api}
	st := &pipelineState{}
	read := func() string {
		t.Helper()
		s, werr := r.readSecret(ctx, st, key)
		if werr != nil {
			t.Fatal(werr.err)
		}
		return string(s.Data["password"])
	}
	if read() != "one" || gets != 1 {
		t.Fatalf("first read: %d GETs of the Secret, want 1", gets)
	}
	for range 5 {
		read()
	}
	if gets != 1 {
		t.Fatalf("5 polls of an unchanged Secret cost %d more GETs, want 0", gets-1)
	}
	stored := &corev1.Secret{}
	if err := api.Get(ctx, key, stored); err != nil {
		t.Fatal(err)
	}
	stored.Data["password"] = []byte("two")
	if err := api.Update(ctx, stored); err != nil {
		t.Fatal(err)
	}
	gets = 0
	if read() != "two" || gets != 1 {
		t.Fatalf("after a rotation: password %q with %d GETs, want the new one with 1", read(), gets)
	}
	r.secretMeta = nil // no metadata cache: always read
	gets = 0
	read()
	read()
	if gets != 2 {
		t.Fatalf("without metadata: %d GETs for 2 polls, want 2", gets)
	}
}
