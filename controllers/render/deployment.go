// Package render builds the Deployment that runs a KafkaPipeline. It is a pure function of the
// pipeline, the default image, the replica count and a hash of the referenced Secrets, so it
// is tested with tables and the reconciler only applies what it returns.
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

const (
	// ContainerName is the name of the pipeline container.
	ContainerName = "pipeline"
	// NameLabel is the recommended Kubernetes label for the application's name.
	NameLabel = "app.kubernetes.io/name"
	// InstanceLabel is the recommended label for the instance: the pipeline's name.
	InstanceLabel = "app.kubernetes.io/instance"
	// ManagedByLabel is the recommended label for the tool that manages the object.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// AppName is the value of NameLabel on every pipeline pod.
	AppName = "kpipe-pipeline"

	// SpecGenerationAnnotation and SecretsHashAnnotation, on the Deployment (not its pods, so
	// writing them restarts nothing), record the pipeline generation and the Secrets the
	// Deployment was rendered from. A pod template that changes while both stay the same was
	// changed by the operator's own rendering (an operator upgrade), and is rolled out paced.
	SpecGenerationAnnotation = "kpipe.io/spec-generation"
	// SecretsHashAnnotation is the hash of the referenced Secrets (see SpecGenerationAnnotation).
	SecretsHashAnnotation = "kpipe.io/secrets-hash"

	// NonRootID is the user and group the pods run as (distroless "nonroot").
	NonRootID int64 = 65532

	tlsVolume  = "kafka-tls"
	saslVolume = "kafka-sasl"
	// httpHeadersVolume holds spec.processor.http.headersSecretRef.
	httpHeadersVolume = "http-headers"
	tmpVolume         = "tmp"
)

// Default resources of the pipeline container, as documented on template.resources.
var (
	DefaultCPURequest    = resource.MustParse("100m")
	DefaultMemoryRequest = resource.MustParse("128Mi")
	DefaultMemoryLimit   = resource.MustParse("512Mi")
	// TmpSizeLimit bounds the writable /tmp of a pipeline pod (the root filesystem is read-only):
	// the runtime writes nothing there, a handler only scratch files, and a pod that fills it is
	// evicted instead of filling the node's disk.
	TmpSizeLimit = resource.MustParse("64Mi")
)

// Input is everything the Deployment depends on.
type Input struct {
	// Pipeline is the KafkaPipeline; its spec need not be defaulted.
	Pipeline *kpipev1.KafkaPipeline
	// Image is the operator's own image, used unless template.image is set.
	Image string
	// Replicas is the replica count the reconciler decided on.
	Replicas int32
	// SecretsHash is a hash of the referenced Secrets' data ("" when none are referenced). It
	// goes into the config hash so that a rotated Secret rolls the pods.
	SecretsHash string
}

// Labels are the labels of a pipeline's Deployment and pods.
func Labels(name string) map[string]string {
	return map[string]string{
		NameLabel:             AppName,
		InstanceLabel:         name,
		ManagedByLabel:        "kpipe",
		kpipev1.PipelineLabel: name,
	}
}

// SelectorLabels are the labels the Deployment selects its pods by. They never change for a
// pipeline: a Deployment's selector is immutable.
func SelectorLabels(name string) map[string]string {
	return map[string]string{kpipev1.PipelineLabel: name}
}

// RuntimeSpec is the configuration `kpipe run` reads from KPIPE_PIPELINE_SPEC: the spec with
// defaults applied, without the pod template (it shapes the pod, not the runtime), and without
// replicas, suspend and scaling, which only the operator acts on (keeping them out means
// `kubectl scale`, or a new maxReplicas or lagTimeTarget, does not roll the pods: every pod
// restart is a rebalance). Scaling is rendered as its defaults, so that the spec validates
// in any runtime.
func RuntimeSpec(spec *kpipev1.KafkaPipelineSpec) kpipev1.KafkaPipelineSpec {
	s := *spec.DeepCopy()
	s.Scaling = kpipev1.ScalingSpec{} // the defaults, whatever the user set: it still validates
	s.Default()
	s.Template = nil
	s.Replicas = nil
	s.Suspend = false
	return s
}

// Deployment renders the Deployment of a pipeline. It fails only when the spec cannot be
// serialised or no image is known.
func Deployment(in Input) (*appsv1.Deployment, error) {
	kp := in.Pipeline
	tpl := kp.Spec.Template
	if tpl == nil {
		tpl = &kpipev1.PodTemplateOverrides{}
	}
	image := in.Image
	if tpl.Image != "" {
		image = tpl.Image
	}
	if image == "" {
		return nil, fmt.Errorf("no image: set template.image or run the operator with --pipeline-image")
	}
	env, volumes, mounts, err := wiring(kp, tpl)
	if err != nil {
		return nil, err
	}
	podSpec := podSpec(kp, tpl, container(kp, tpl, image, env, mounts), volumes)

	podLabels := map[string]string{}
	podAnnotations := map[string]string{}
	if md := tpl.Metadata; md != nil {
		maps.Copy(podLabels, md.Labels)
		maps.Copy(podAnnotations, md.Annotations)
	}
	maps.Copy(podLabels, Labels(kp.Name)) // kpipe's labels win: the selector must match
	podAnnotations[kpipev1.ConfigHashAnnotation] = configHash(podSpec, podLabels, podAnnotations, in.SecretsHash)

	meta := childMeta(kp)
	meta.Annotations = map[string]string{SpecGenerationAnnotation: strconv.FormatInt(kp.Generation, 10)}
	if in.SecretsHash != "" {
		meta.Annotations[SecretsHashAnnotation] = in.SecretsHash
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas:             new(in.Replicas),
			Selector:             &metav1.LabelSelector{MatchLabels: SelectorLabels(kp.Name)},
			RevisionHistoryLimit: ptr.To[int32](3),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
				Spec:       podSpec,
			},
		},
	}, nil
}

// wiring is the container's environment, the pod's volumes and the container's mounts: the
// runtime's configuration, /tmp, the Secret volumes, then the user's environment.
func wiring(kp *kpipev1.KafkaPipeline, tpl *kpipev1.PodTemplateOverrides) ([]corev1.EnvVar, []corev1.Volume, []corev1.VolumeMount, error) {
	rs := RuntimeSpec(&kp.Spec)
	specJSON, err := json.Marshal(rs)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode pipeline spec: %w", err)
	}
	contract, _ := RequiredContract(&rs)
	env := []corev1.EnvVar{
		{Name: kpipev1.EnvPipelineSpec, Value: string(specJSON)},
		{Name: kpipev1.EnvPodContract, Value: strconv.Itoa(contract)},
		{Name: kpipev1.EnvPipelineName, Value: kp.Name},
		{Name: kpipev1.EnvPipelineNamespace, Value: kp.Namespace},
		{Name: kpipev1.EnvHTTPAddr, Value: fmt.Sprintf(":%d", kpipev1.HTTPPort)},
	}
	volumes := []corev1.Volume{{Name: tmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &TmpSizeLimit}}}}
	mounts := []corev1.VolumeMount{{Name: tmpVolume, MountPath: "/tmp"}}
	for _, m := range secretMounts(&kp.Spec) {
		env = append(env, corev1.EnvVar{Name: m.env, Value: m.path})
		volumes = append(volumes, secretVolume(m.volume, m.secret))
		mounts = append(mounts, corev1.VolumeMount{Name: m.volume, MountPath: m.path, ReadOnly: true})
	}
	env = append(env, userEnv(tpl.Env)...)
	return env, volumes, mounts, nil
}

// secretMount is a referenced Secret as the pods see it: a volume mounted at a path of the pod
// contract, which an environment variable hands to the runtime.
type secretMount struct{ volume, secret, path, env string }

// secretMounts are the Secrets the spec references, in a fixed order.
func secretMounts(spec *kpipev1.KafkaPipelineSpec) []secretMount {
	var out []secretMount
	if t := spec.Kafka.TLS; t != nil && t.SecretRef != nil {
		out = append(out, secretMount{tlsVolume, t.SecretRef.Name, kpipev1.TLSMountPath, kpipev1.EnvTLSDir})
	}
	if s := spec.Kafka.SASL; s != nil {
		out = append(out, secretMount{saslVolume, s.SecretRef.Name, kpipev1.SASLMountPath, kpipev1.EnvSASLDir})
	}
	if h := spec.Processor.HTTP; h != nil && h.HeadersSecretRef != nil {
		out = append(out, secretMount{httpHeadersVolume, h.HeadersSecretRef.Name, kpipev1.HTTPHeadersMountPath, kpipev1.EnvHTTPHeadersDir})
	}
	return out
}

// container is the pipeline container: `kpipe run`, probes, resources, locked down.
func container(kp *kpipev1.KafkaPipeline, tpl *kpipev1.PodTemplateOverrides, image string, env []corev1.EnvVar, mounts []corev1.VolumeMount) corev1.Container {
	res := resources(tpl.Resources)
	fitBudget(&res, kp.Spec.Pool.MemoryBudget, tpl.Resources)
	return corev1.Container{
		Name:            ContainerName,
		Image:           image,
		ImagePullPolicy: tpl.ImagePullPolicy,
		Args:            []string{"run", "--shutdown-timeout=" + ShutdownTimeout(kp.Spec.TerminationGracePeriodSeconds()).String()},
		Env:             env,
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: kpipev1.HTTPPort, Protocol: corev1.ProtocolTCP}},
		Resources:       res,
		VolumeMounts:    mounts,
		ReadinessProbe:  probe("/readyz", 5, 3),
		LivenessProbe:   probe("/healthz", 10, 3),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             new(true),
			ReadOnlyRootFilesystem:   new(true),
			AllowPrivilegeEscalation: new(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		// A runtime that refuses the pod writes why to the termination message (the log's tail
		// otherwise); the operator reads it back into the pipeline's status.
		TerminationMessagePath:   kpipev1.TerminationMessagePath,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// podSpec is the pod around the container, with the template's scheduling overrides.
func podSpec(kp *kpipev1.KafkaPipeline, tpl *kpipev1.PodTemplateOverrides, c corev1.Container, volumes []corev1.Volume) corev1.PodSpec {
	return corev1.PodSpec{
		Containers:                    []corev1.Container{c},
		Volumes:                       volumes,
		TerminationGracePeriodSeconds: new(kp.Spec.TerminationGracePeriodSeconds()),
		ServiceAccountName:            tpl.ServiceAccountName,
		AutomountServiceAccountToken:  new(false),
		ImagePullSecrets:              tpl.ImagePullSecrets,
		NodeSelector:                  tpl.NodeSelector,
		Tolerations:                   tpl.Tolerations,
		Affinity:                      tpl.Affinity,
		TopologySpreadConstraints:     tpl.TopologySpreadConstraints,
		PriorityClassName:             tpl.PriorityClassName,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   new(true),
			RunAsUser:      new(NonRootID),
			RunAsGroup:     new(NonRootID),
			FSGroup:        new(NonRootID),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func secretVolume(name, secret string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName:  secret,
		DefaultMode: ptr.To[int32](0o440), // readable by the pod's fsGroup, not by others
	}}}
}

// ShutdownTimeout is how long `kpipe run` drains after SIGTERM for a pod grace period: a sixth
// of it (at least a second) is left for flushing the producer, committing and leaving the
// group before the kubelet kills the container. 30s gives 25s.
func ShutdownTimeout(graceSeconds int64) time.Duration {
	drain := graceSeconds - max(1, graceSeconds/6)
	return time.Duration(max(drain, 1)) * time.Second
}

func probe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
		TimeoutSeconds:   2,
	}
}

// userEnv drops names reserved for kpipe; the schema refuses them already, this keeps a spec
// that bypassed it from overriding the operator's configuration.
func userEnv(env []corev1.EnvVar) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, e := range env {
		if strings.HasPrefix(e.Name, "KPIPE_") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// resources merges the user's requests and limits over the defaults, per resource name.
func resources(user *corev1.ResourceRequirements) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: DefaultCPURequest, corev1.ResourceMemory: DefaultMemoryRequest},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: DefaultMemoryLimit},
	}
	if user == nil {
		return r
	}
	maps.Copy(r.Requests, user.Requests)
	maps.Copy(r.Limits, user.Limits)
	// A request above the default limit would make the pod invalid: raise the limit with it.
	for name, req := range r.Requests {
		if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
			if _, userLimit := user.Limits[name]; !userLimit {
				r.Limits[name] = req
			}
		}
	}
	r.Claims = user.Claims
	return r
}

// fitBudget raises the memory limit to twice spec.pool.memoryBudget when it is lower and the
// user did not set it: the runtime's budget is meant to be half of its limit. An explicit
// limit below the budget is refused by Validate.
func fitBudget(r *corev1.ResourceRequirements, budget *resource.Quantity, user *corev1.ResourceRequirements) {
	if budget == nil {
		return
	}
	if user != nil {
		if _, set := user.Limits[corev1.ResourceMemory]; set {
			return
		}
	}
	want := resource.NewQuantity(2*budget.Value(), resource.BinarySI)
	if lim, ok := r.Limits[corev1.ResourceMemory]; !ok || lim.Cmp(*want) < 0 {
		r.Limits[corev1.ResourceMemory] = *want
	}
}

// configHash hashes everything that should roll the pods when it changes.
func configHash(spec corev1.PodSpec, labels, annotations map[string]string, secretsHash string) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(spec) // a PodSpec always encodes
	for _, m := range []map[string]string{labels, annotations} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			_ = enc.Encode([2]string{k, m[k]})
		}
	}
	_ = enc.Encode(secretsHash)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// SecretsHash hashes the data of the referenced Secrets, in order: names, keys and values
// go in, only the digest comes out.
func SecretsHash(secrets ...*corev1.Secret) string {
	if len(secrets) == 0 {
		return ""
	}
	h := sha256.New()
	for _, s := range secrets {
		_, _ = fmt.Fprintf(h, "secret %q %d\n", s.Name, len(s.Data))
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			_, _ = fmt.Fprintf(h, "%q %d\n", k, len(s.Data[k]))
			h.Write(s.Data[k])
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
