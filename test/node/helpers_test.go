package node

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/render"
)

// pipelineManifest is a KafkaPipeline in the restricted namespace, reading topic and forwarding
// to topic-out, logged in with the Secret kafka-user. spec is the rest of its spec.
func pipelineManifest(name, topic, spec string) string {
	return fmt.Sprintf(`apiVersion: kpipe.io/v1alpha1
kind: KafkaPipeline
metadata: {name: %s, namespace: %s}
spec:
  kafka:
    bootstrapServers: [%q]
    sasl: {mechanism: SCRAM-SHA-512, secretRef: {name: kafka-user}}
  topics: [%s]
  group: %s
  initialOffset: Earliest
  processor: {forward: {topic: %s-out}}
%s`, name, appNS, bootstrap, topic, name, topic, spec)
}

func getPipeline(g Gomega, name string) *kpipev1.KafkaPipeline {
	var kp kpipev1.KafkaPipeline
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: appNS, Name: name}, &kp)).To(Succeed())
	return &kp
}

// pods are a pipeline's pods that are not being deleted.
func pods(g Gomega, name string) []corev1.Pod {
	var list corev1.PodList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(appNS), client.MatchingLabels(render.SelectorLabels(name)))).To(Succeed())
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyPods waits for n ready pods of a pipeline and returns their names.
func readyPods(g Gomega, name string, n int) []string {
	ps := pods(g, name)
	g.Expect(ps).To(HaveLen(n), "%d pods of %s", n, name)
	var names []string
	for i := range ps {
		g.Expect(ready(&ps[i])).To(BeTrue(), "pod %s ready", ps[i].Name)
		names = append(names, ps[i].Name)
	}
	return names
}

// expectDrained: the pipeline reports no lag, the group committed n offsets, and values [0, n)
// are all on topic-out.
func expectDrained(name, topic string, n int) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		committed, err := kafka.committed(name, topic)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(getPipeline(g, name).Status.Lag).To(BeZero(), "lag; committed %d of %d", committed, n)
		g.Expect(committed).To(BeEquivalentTo(n), "the group committed every offset")
		dups := expectForwarded(g, topic+"-out", n)
		GinkgoWriter.Printf("%s: %d messages forwarded, none lost, %d duplicates\n", name, n, dups)
	}).Should(Succeed())
}

// traffic produces [from, to) in chunks of 500 every 100ms in the background; wait returns the
// first error.
func traffic(topic string, from, to int) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		for i := from; i < to; i += 500 {
			if err := kafka.produce(topic, i, min(i+500, to)); err != nil {
				done <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		done <- nil
	}()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Minute):
			return fmt.Errorf("producing %s [%d, %d) took over 2 minutes", topic, from, to)
		}
	}
}

// killContainer sends SIGKILL to the main process of a pod's first container, found through
// the CRI (crictl inspect), as the OOM killer or a crash would end it.
func killContainer(p *corev1.Pod) {
	GinkgoHelper()
	Expect(p.Status.ContainerStatuses).NotTo(BeEmpty())
	id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	crictl := filepath.Join(os.Getenv("KPIPE_NODE_BIN"), "crictl")
	sock := "unix://" + filepath.Join(os.Getenv("KPIPE_NODE_DIR"), "containerd", "containerd.sock")
	out, err := exec.CommandContext(ctx, crictl, "--runtime-endpoint", sock, "inspect", "-o", "json", id).Output()
	Expect(err).NotTo(HaveOccurred(), "crictl inspect %s", id)
	var info struct {
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	Expect(json.Unmarshal(out, &info)).To(Succeed())
	Expect(info.Info.Pid).To(BeNumerically(">", 1))
	Expect(syscall.Kill(info.Info.Pid, syscall.SIGKILL)).To(Succeed())
	GinkgoWriter.Printf("kill -9 %d (container %s of pod %s)\n", info.Info.Pid, id[:12], p.Name)
}

// sampler records, every 250ms, a Deployment's replica counts and the images its pods run.
type sampler struct {
	mu                    sync.Mutex
	maxReplicas, maxReady int32
	seq                   []int32 // distinct successive spec.replicas values
	images                map[string]bool
	pods                  map[string]bool // every pod seen
	stop, done            chan struct{}
}

func sample(key types.NamespacedName) *sampler {
	s := &sampler{images: map[string]bool{}, pods: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			s.observe(key)
		}
	}()
	return s
}

func (s *sampler) observe(key types.NamespacedName) {
	var d appsv1.Deployment
	if k8s.Get(ctx, key, &d) != nil || d.Spec.Replicas == nil {
		return
	}
	var list corev1.PodList
	_ = k8s.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingLabels(render.SelectorLabels(key.Name)))
	s.mu.Lock()
	defer s.mu.Unlock()
	r := *d.Spec.Replicas
	s.maxReplicas = max(s.maxReplicas, r)
	s.maxReady = max(s.maxReady, d.Status.ReadyReplicas)
	if len(s.seq) == 0 || s.seq[len(s.seq)-1] != r {
		s.seq = append(s.seq, r)
	}
	for _, p := range list.Items {
		s.pods[p.Name] = true
		for _, c := range p.Spec.Containers {
			s.images[c.Image] = true
		}
	}
}

func (s *sampler) podsSeen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pods)
}

func (s *sampler) get() (maxReplicas, maxReady int32, seq []int32, images []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.images {
		images = append(images, i)
	}
	return s.maxReplicas, s.maxReady, append([]int32(nil), s.seq...), images
}

func (s *sampler) close() { close(s.stop); <-s.done }
