// Package config holds kpipe's install manifests; its test renders them with kustomize, as
// `kubectl apply -k` would, and checks what must agree across files.
package config

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// envImage is the manager's environment variable naming the pipeline pods' image.
const envImage = "KPIPE_IMAGE"

// kustomize renders dir with the kubectl that `make envtest` provides.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run through `make test`, which provides kubectl")
	}
	cmd := exec.Command(filepath.Join(assets, "kubectl"), "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	var objs []*unstructured.Unstructured
	for doc := range strings.SplitSeq(string(out), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("decode %s output: %v", dir, err)
		}
		objs = append(objs, u)
	}
	return objs
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in the rendered manifests", kind, name)
	return nil
}

// managerImages returns the manager container's image and its KPIPE_IMAGE, the image of the
// pipeline pods.
func managerImages(t *testing.T, objs []*unstructured.Unstructured) (image, pipelineImage string) {
	t.Helper()
	dep := &appsv1.Deployment{}
	u := find(t, objs, "Deployment", "kpipe-manager")
	if err := runtimeConvert(u.Object, dep); err != nil {
		t.Fatal(err)
	}
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name != "manager" {
			continue
		}
		for _, e := range c.Env {
			if e.Name == envImage {
				return c.Image, e.Value
			}
		}
		t.Fatalf("the manager container has no %s", envImage)
	}
	t.Fatal("no manager container")
	return "", ""
}

func runtimeConvert(obj map[string]any, into any) error {
	b, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(b, into)
}

// TestOneImage: the image set in config/default, or by an overlay on top of it, is the image of
// both the manager and the pipeline pods.
func TestOneImage(t *testing.T) {
	image, pipelineImage := managerImages(t, kustomize(t, "default"))
	if image != pipelineImage || image != "ghcr.io/kpipe-io/kpipe:dev" {
		t.Fatalf("config/default: manager image %q, %s %q; want both ghcr.io/kpipe-io/kpipe:dev", image, envImage, pipelineImage)
	}

	overlay := t.TempDir()
	def, err := filepath.Abs("default")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(overlay, def)
	if err != nil {
		t.Fatal(err)
	}
	k := "resources: [" + rel + "]\nimages:\n  - name: ghcr.io/kpipe-io/kpipe\n    newName: registry.example/team/kpipe\n    newTag: v9\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	image, pipelineImage = managerImages(t, kustomize(t, overlay))
	if image != pipelineImage || image != "registry.example/team/kpipe:v9" {
		t.Fatalf("overlay: manager image %q, %s %q; want both registry.example/team/kpipe:v9", image, envImage, pipelineImage)
	}
}

// TestPodMonitorPort: the PodMonitor scrapes the port that pipeline pods name.
func TestPodMonitorPort(t *testing.T) {
	mon := find(t, kustomize(t, "prometheus"), "PodMonitor", "kpipe-pipelines")
	endpoints, _, _ := unstructured.NestedSlice(mon.Object, "spec", "podMetricsEndpoints")
	if len(endpoints) != 1 {
		t.Fatalf("want one podMetricsEndpoint, got %v", endpoints)
	}
	port, _ := endpoints[0].(map[string]any)["port"].(string)

	kp := &kpipev1.KafkaPipeline{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: kpipev1.KafkaPipelineSpec{
			Kafka:     kpipev1.KafkaConnection{BootstrapServers: []string{"kafka:9092"}},
			Topics:    []string{"in"},
			Group:     "g",
			Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: "out"}},
		},
	}
	dep, err := render.Deployment(render.Input{Pipeline: kp, Image: "kpipe:test", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		names = append(names, p.Name)
		if p.Name == port && p.ContainerPort == kpipev1.HTTPPort && p.Protocol == corev1.ProtocolTCP {
			return
		}
	}
	t.Fatalf("the PodMonitor scrapes port %q; pipeline pods name theirs %v", port, names)
}
