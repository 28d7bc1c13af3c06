package render

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

func pipeline(mut ...func(*kpipev1.KafkaPipeline)) *kpipev1.KafkaPipeline {
	kp := &kpipev1.KafkaPipeline{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop", UID: "uid-1"},
		Spec: kpipev1.KafkaPipelineSpec{
			Kafka:     kpipev1.KafkaConnection{BootstrapServers: []string{"kafka:9092"}},
			Topics:    []string{"orders"},
			Group:     "orders-enricher",
			Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: "orders-out"}},
		},
	}
	for _, m := range mut {
		m(kp)
	}
	return kp
}

func tpl(kp *kpipev1.KafkaPipeline) *kpipev1.PodTemplateOverrides {
	if kp.Spec.Template == nil {
		kp.Spec.Template = &kpipev1.PodTemplateOverrides{}
	}
	return kp.Spec.Template
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func TestDeployment(t *testing.T) {
	cases := []struct {
		name    string
		in      Input
		check   func(t *testing.T, d *appsv1.Deployment)
		wantErr string
	}{
		{
			name: "defaults: image, args, labels, selector, owner, replicas",
			in:   Input{Pipeline: pipeline(), Image: "kpipe:1", Replicas: 3},
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				if c.Image != "kpipe:1" || strings.Join(c.Args, " ") != "run --shutdown-timeout=25s" {
					t.Errorf("image %q args %v", c.Image, c.Args)
				}
				if *d.Spec.Replicas != 3 {
					t.Errorf("replicas %d", *d.Spec.Replicas)
				}
				if got := metav1.FormatLabelSelector(d.Spec.Selector); got != "kpipe.io/pipeline=orders" {
					t.Errorf("selector %q", got)
				}
				for _, l := range []map[string]string{d.Labels, d.Spec.Template.Labels} {
					if l[NameLabel] != "kpipe-pipeline" || l[InstanceLabel] != "orders" || l[kpipev1.PipelineLabel] != "orders" {
						t.Errorf("labels %v", l)
					}
				}
				or := d.OwnerReferences[0]
				if or.Kind != "KafkaPipeline" || or.UID != "uid-1" || !*or.Controller {
					t.Errorf("owner %+v", or)
				}
				if *d.Spec.Template.Spec.TerminationGracePeriodSeconds != 30 {
					t.Errorf("grace %d", *d.Spec.Template.Spec.TerminationGracePeriodSeconds)
				}
				if c.Ports[0].ContainerPort != kpipev1.HTTPPort || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
					t.Errorf("ports %v readiness %v liveness %v", c.Ports, c.ReadinessProbe.HTTPGet, c.LivenessProbe.HTTPGet)
				}
			},
		},
		{
			name: "pipeline configuration: defaulted spec without template, name, namespace",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
				tpl(kp).Image = "custom:2"
				kp.Spec.Replicas = ptr.To[int32](4)
			}), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				env := envOf(d.Spec.Template.Spec.Containers[0])
				spec, err := kpipev1.ParseSpec([]byte(env[kpipev1.EnvPipelineSpec].Value))
				if err != nil {
					t.Fatal(err)
				}
				if spec.Template != nil || spec.Replicas != nil || spec.Scaling.LagPerReplica == nil || *spec.Scaling.LagPerReplica != kpipev1.DefaultLagPerReplica {
					t.Errorf("template %v replicas %v in the runtime spec, scaling %+v not the defaults", spec.Template, spec.Replicas, spec.Scaling)
				}
				if errs := spec.Validate(); len(errs) > 0 {
					t.Errorf("runtime spec does not validate: %v", errs)
				}
				if spec.Idle.Window == nil || spec.Pool.Ordering != kpipev1.OrderingKey || spec.InitialOffset != kpipev1.InitialOffsetLatest {
					t.Errorf("defaults not applied: %+v", spec)
				}
				if env[kpipev1.EnvPipelineName].Value != "orders" || env[kpipev1.EnvPipelineNamespace].Value != "shop" {
					t.Errorf("name/namespace env %v", env)
				}
				if env[kpipev1.EnvHTTPAddr].Value != ":9090" {
					t.Errorf("http addr %v", env[kpipev1.EnvHTTPAddr])
				}
				if _, ok := env[kpipev1.EnvTLSDir]; ok {
					t.Error("TLS dir without TLS")
				}
				if d.Spec.Template.Spec.Containers[0].Image != "custom:2" {
					t.Errorf("template.image not used")
				}
			},
		},
		{
			name: "pod contract: the required version, the termination message, the inputs on the Deployment",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) { kp.Generation = 7 }),
				Image: "kpipe:1", Replicas: 1, SecretsHash: "abc"},
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				rs := RuntimeSpec(&pipeline().Spec)
				want, _ := RequiredContract(&rs)
				if got := envOf(c)[kpipev1.EnvPodContract].Value; got != strconv.Itoa(want) || want < 1 {
					t.Errorf("%s = %q, want %d", kpipev1.EnvPodContract, got, want)
				}
				if c.TerminationMessagePath != kpipev1.TerminationMessagePath || c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
					t.Errorf("termination message %q %q", c.TerminationMessagePath, c.TerminationMessagePolicy)
				}
				if d.Annotations[SpecGenerationAnnotation] != "7" || d.Annotations[SecretsHashAnnotation] != "abc" {
					t.Errorf("deployment annotations %v", d.Annotations)
				}
				if _, ok := d.Spec.Template.Annotations[SpecGenerationAnnotation]; ok {
					t.Error("the spec generation is on the pod template: scaling spec.replicas would roll the pods")
				}
			},
		},
		{
			name: "TLS and SASL Secrets are mounted by reference, never copied",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Kafka.TLS = &kpipev1.TLSSpec{SecretRef: &kpipev1.SecretReference{Name: "kafka-tls"}}
				kp.Spec.Kafka.SASL = &kpipev1.SASLSpec{Mechanism: kpipev1.SASLSCRAMSHA512, SecretRef: kpipev1.SecretReference{Name: "kafka-user"}}
			}), Image: "kpipe:1", Replicas: 1, SecretsHash: "abc"},
			check: func(t *testing.T, d *appsv1.Deployment) {
				ps := d.Spec.Template.Spec
				vols := map[string]string{}
				for _, v := range ps.Volumes {
					if v.Secret != nil {
						vols[v.Secret.SecretName] = v.Name
					}
				}
				if vols["kafka-tls"] == "" || vols["kafka-user"] == "" {
					t.Fatalf("secret volumes %v", vols)
				}
				for _, v := range ps.Volumes {
					if v.Name == tmpVolume && (v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Cmp(TmpSizeLimit) != 0) {
						t.Errorf("/tmp is not an emptyDir of %s: %+v", TmpSizeLimit.String(), v.VolumeSource)
					}
				}
				mounts := map[string]string{}
				for _, m := range ps.Containers[0].VolumeMounts {
					mounts[m.Name] = m.MountPath
					if m.Name != tmpVolume && !m.ReadOnly {
						t.Errorf("mount %s writable", m.Name)
					}
				}
				if mounts[vols["kafka-tls"]] != kpipev1.TLSMountPath || mounts[vols["kafka-user"]] != kpipev1.SASLMountPath {
					t.Errorf("mounts %v", mounts)
				}
				env := envOf(ps.Containers[0])
				if env[kpipev1.EnvTLSDir].Value != kpipev1.TLSMountPath || env[kpipev1.EnvSASLDir].Value != kpipev1.SASLMountPath {
					t.Errorf("env %v", env)
				}
				for _, e := range ps.Containers[0].Env {
					if e.ValueFrom != nil {
						t.Errorf("env %s from a secret key", e.Name)
					}
				}
			},
		},
		{
			name: "pod security",
			in:   Input{Pipeline: pipeline(), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				sc := d.Spec.Template.Spec.Containers[0].SecurityContext
				if !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
					len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("container security context %+v", sc)
				}
				psc := d.Spec.Template.Spec.SecurityContext
				if !*psc.RunAsNonRoot || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("pod security context %+v", psc)
				}
				if *d.Spec.Template.Spec.AutomountServiceAccountToken {
					t.Error("service account token mounted")
				}
			},
		},
		{
			name: "default resources",
			in:   Input{Pipeline: pipeline(), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				r := d.Spec.Template.Spec.Containers[0].Resources
				if r.Requests.Cpu().String() != "100m" || r.Requests.Memory().String() != "128Mi" || r.Limits.Memory().String() != "512Mi" {
					t.Errorf("resources %v", r)
				}
				if _, ok := r.Limits[corev1.ResourceCPU]; ok {
					t.Error("a CPU limit by default")
				}
			},
		},
		{
			name: "resource overrides merge per resource",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
				tpl(kp).Resources = &corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				}
			}), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				r := d.Spec.Template.Spec.Containers[0].Resources
				if r.Requests.Cpu().String() != "100m" || r.Requests.Memory().String() != "1Gi" ||
					r.Limits.Cpu().String() != "2" || r.Limits.Memory().String() != "1Gi" {
					t.Errorf("resources %v", r)
				}
			},
		},
		{
			name: "a memory budget raises the default limit to twice the budget",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Pool.MemoryBudget = new(resource.MustParse("1Gi"))
			}), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if got := d.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String(); got != "2Gi" {
					t.Errorf("memory limit %s, want 2Gi", got)
				}
			},
		},
		{
			name: "a small memory budget keeps the default limit",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Pool.MemoryBudget = new(resource.MustParse("64Mi"))
			}), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if got := d.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String(); got != "512Mi" {
					t.Errorf("memory limit %s, want 512Mi", got)
				}
			},
		},
		{
			name: "a memory budget leaves an explicit limit alone",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Pool.MemoryBudget = new(resource.MustParse("1Gi"))
				tpl(kp).Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1536Mi")}}
			}), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if got := d.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String(); got != "1536Mi" {
					t.Errorf("memory limit %s, want 1536Mi", got)
				}
			},
		},
		{
			name: "scheduling and pod overrides",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
				t := tpl(kp)
				t.NodeSelector = map[string]string{"pool": "kafka"}
				t.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
				t.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
				t.ServiceAccountName = "pipelines"
				t.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
				t.PriorityClassName = "high"
				t.ImagePullPolicy = corev1.PullAlways
				t.TerminationGracePeriodSeconds = ptr.To[int64](120)
				t.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "KPIPE_PIPELINE_SPEC", Value: "hijack"}}
				t.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone"}}
			}), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				ps := d.Spec.Template.Spec
				if ps.NodeSelector["pool"] != "kafka" || len(ps.Tolerations) != 1 || ps.Affinity == nil || ps.ServiceAccountName != "pipelines" ||
					ps.ImagePullSecrets[0].Name != "regcred" || ps.PriorityClassName != "high" || *ps.TerminationGracePeriodSeconds != 120 ||
					ps.Containers[0].ImagePullPolicy != corev1.PullAlways || len(ps.TopologySpreadConstraints) != 1 {
					t.Errorf("overrides not applied: %+v", ps)
				}
				if args := strings.Join(ps.Containers[0].Args, " "); args != "run --shutdown-timeout=1m40s" {
					t.Errorf("the runtime's drain does not follow the 120s grace period: %s", args)
				}
				env := envOf(ps.Containers[0])
				if env["LOG_LEVEL"].Value != "debug" {
					t.Errorf("user env missing")
				}
				if strings.Contains(env[kpipev1.EnvPipelineSpec].Value, "hijack") || env[kpipev1.EnvPipelineSpec].Value == "hijack" {
					t.Errorf("reserved env overridden")
				}
				n := 0
				for _, e := range ps.Containers[0].Env {
					if e.Name == kpipev1.EnvPipelineSpec {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%d %s entries", n, kpipev1.EnvPipelineSpec)
				}
			},
		},
		{
			name: "user labels and annotations cannot replace the selector label",
			in: Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
				tpl(kp).Metadata = &kpipev1.PodMetadata{
					Labels:      map[string]string{kpipev1.PipelineLabel: "other", "team": "shop"},
					Annotations: map[string]string{"prometheus.io/scrape": "true", kpipev1.ConfigHashAnnotation: "fixed"},
				}
			}), Image: "kpipe:1", Replicas: 1},
			check: func(t *testing.T, d *appsv1.Deployment) {
				l := d.Spec.Template.Labels
				if l[kpipev1.PipelineLabel] != "orders" || l["team"] != "shop" {
					t.Errorf("labels %v", l)
				}
				a := d.Spec.Template.Annotations
				if a["prometheus.io/scrape"] != "true" || a[kpipev1.ConfigHashAnnotation] == "fixed" || a[kpipev1.ConfigHashAnnotation] == "" {
					t.Errorf("annotations %v", a)
				}
				sel, _ := metav1.LabelSelectorAsSelector(d.Spec.Selector)
				if !sel.Matches(labelsSet(l)) {
					t.Error("selector does not match the pod labels")
				}
			},
		},
		{
			name:    "no image anywhere",
			in:      Input{Pipeline: pipeline(), Replicas: 1},
			wantErr: "no image",
		},
		{
			name: "zero replicas",
			in:   Input{Pipeline: pipeline(), Image: "kpipe:1", Replicas: 0},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if *d.Spec.Replicas != 0 {
					t.Errorf("replicas %d", *d.Spec.Replicas)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := c.in.Pipeline.DeepCopy()
			d, err := Deployment(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, d)
			after, _ := json.Marshal(c.in.Pipeline)
			want, _ := json.Marshal(before)
			if string(after) != string(want) {
				t.Error("Deployment modified its input")
			}
		})
	}
}

type labelsSet map[string]string

func (l labelsSet) Has(k string) bool   { _, ok := l[k]; return ok }
func (l labelsSet) Get(k string) string { return l[k] }
func (l labelsSet) Lookup(k string) (string, bool) {
	v, ok := l[k]
	return v, ok
}

func TestConfigHash(t *testing.T) {
	hash := func(in Input) string {
		d, err := Deployment(in)
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Annotations[kpipev1.ConfigHashAnnotation]
	}
	base := Input{Pipeline: pipeline(), Image: "kpipe:1", Replicas: 1, SecretsHash: "s1"}
	h0 := hash(base)
	cases := []struct {
		name   string
		in     Input
		change bool
	}{
		{"same input, same hash", base, false},
		{"replicas do not roll the pods", Input{Pipeline: pipeline(), Image: "kpipe:1", Replicas: 7, SecretsHash: "s1"}, false},
		{"spec.replicas (kubectl scale) does not roll the pods", Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) { kp.Spec.Replicas = ptr.To[int32](5) }), Image: "kpipe:1", Replicas: 1, SecretsHash: "s1"}, false},
		{"a scaling change does not roll the pods", Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.MaxReplicas = ptr.To[int32](3)
			kp.Spec.Scaling.LagTimeTarget = &metav1.Duration{Duration: time.Minute}
		}), Image: "kpipe:1", Replicas: 1, SecretsHash: "s1"}, false},
		{"a rotated Secret rolls the pods", Input{Pipeline: pipeline(), Image: "kpipe:1", Replicas: 1, SecretsHash: "s2"}, true},
		{"a spec change rolls the pods", Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) { kp.Spec.Topics = []string{"orders", "refunds"} }), Image: "kpipe:1", Replicas: 1, SecretsHash: "s1"}, true},
		{"a new image rolls the pods", Input{Pipeline: pipeline(), Image: "kpipe:2", Replicas: 1, SecretsHash: "s1"}, true},
		{"a pod label rolls the pods", Input{Pipeline: pipeline(func(kp *kpipev1.KafkaPipeline) {
			tpl(kp).Metadata = &kpipev1.PodMetadata{Labels: map[string]string{"a": "b"}}
		}), Image: "kpipe:1", Replicas: 1, SecretsHash: "s1"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := hash(c.in); (got != h0) != c.change {
				t.Errorf("hash %s vs %s, want change=%v", got, h0, c.change)
			}
		})
	}
}

func TestSecretsHash(t *testing.T) {
	s := func(name, k, v string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{k: []byte(v)}}
	}
	a := SecretsHash(s("u", "password", "hunter2"))
	if a == "" || strings.Contains(a, "hunter2") {
		t.Fatalf("hash %q", a)
	}
	if a == SecretsHash(s("u", "password", "hunter3")) {
		t.Error("a changed value keeps the hash")
	}
	if a != SecretsHash(s("u", "password", "hunter2")) {
		t.Error("hash not stable")
	}
	if SecretsHash() != "" {
		t.Error("no secrets, non-empty hash")
	}
}

func TestShutdownTimeoutFitsTheGracePeriod(t *testing.T) {
	for _, tc := range []struct {
		grace int64
		want  time.Duration
	}{{30, 25 * time.Second}, {120, 100 * time.Second}, {6, 5 * time.Second}, {2, time.Second}, {1, time.Second}} {
		if got := ShutdownTimeout(tc.grace); got != tc.want {
			t.Errorf("grace %ds: drain %s, want %s", tc.grace, got, tc.want)
		}
		if tc.grace > 1 && ShutdownTimeout(tc.grace) >= time.Duration(tc.grace)*time.Second {
			t.Errorf("grace %ds: the drain leaves no time to commit", tc.grace)
		}
	}
}
