package v1alpha1

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	topicRE     = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	handlerRE   = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`)
	supportedOO = []string{string(InitialOffsetLatest), string(InitialOffsetEarliest)}
)

// Validate checks a whole KafkaPipeline: its name, then its spec (see KafkaPipelineSpec.Validate).
func (kp *KafkaPipeline) Validate() field.ErrorList {
	var errs field.ErrorList
	if len(kp.Name) > MaxNameLength {
		errs = append(errs, field.TooLong(field.NewPath("metadata", "name"), kp.Name, MaxNameLength))
	}
	return append(errs, kp.Spec.Validate()...)
}

// Validate checks a spec against the same rules the CRD schema enforces, for configuration
// that does not pass through the API server (the runtime's input, the Go library). Defaults
// should be applied first. Every problem is reported, each naming its field under "spec".
func (s *KafkaPipelineSpec) Validate() field.ErrorList {
	p := field.NewPath("spec")
	errs := s.Kafka.validate(p.Child("kafka"))
	consumed, topicErrs := validateTopics(p.Child("topics"), s.Topics)
	errs = append(errs, topicErrs...)
	errs = append(errs, validateGroup(p.Child("group"), s.Group)...)
	if s.InitialOffset != InitialOffsetLatest && s.InitialOffset != InitialOffsetEarliest {
		errs = append(errs, field.NotSupported(p.Child("initialOffset"), s.InitialOffset, supportedOO))
	}
	errs = append(errs, s.Pool.validate(p.Child("pool"))...)
	errs = append(errs, s.Idle.validate(p.Child("idle"))...)
	errs = append(errs, s.Processor.validate(p.Child("processor"), consumed)...)
	errs = append(errs, s.validateDelivery(p)...)
	errs = append(errs, s.Retry.validate(p.Child("retry"))...)
	errs = append(errs, s.validateDeadLetter(p.Child("deadLetter", "topic"), consumed)...)
	errs = append(errs, s.Scaling.validate(p.Child("scaling"))...)
	errs = append(errs, s.validateMemoryBudget(p)...)
	return append(errs, s.validatePods(p)...)
}

func validateTopics(p *field.Path, topics []string) (map[string]bool, field.ErrorList) {
	var errs field.ErrorList
	switch {
	case len(topics) == 0:
		errs = append(errs, field.Required(p, "at least one topic is required"))
	case len(topics) > MaxTopics:
		errs = append(errs, field.TooMany(p, len(topics), MaxTopics))
	}
	seen := map[string]bool{}
	for i, t := range topics {
		errs = append(errs, validateTopic(p.Index(i), t)...)
		if seen[t] {
			errs = append(errs, field.Duplicate(p.Index(i), t))
		}
		seen[t] = true
	}
	return seen, errs
}

// validateGroup bounds the group in bytes, as Kafka does (the schema counts them with
// size(bytes(self))), and in characters, as the schema's maxLength does.
func validateGroup(p *field.Path, g string) field.ErrorList {
	switch {
	case strings.TrimSpace(g) == "":
		return field.ErrorList{field.Required(p, "group must not be blank")}
	case len(g) > MaxGroupBytes:
		return field.ErrorList{field.TooLong(p, g, MaxGroupBytes)}
	}
	return nil
}

func (s *KafkaPipelineSpec) validateDeadLetter(p *field.Path, consumed map[string]bool) field.ErrorList {
	if s.DeadLetter == nil {
		return nil
	}
	t := s.DeadLetter.Topic
	errs := validateTopic(p, t)
	if consumed[t] {
		errs = append(errs, field.Invalid(p, t, "deadLetter.topic must not be one of the consumed topics"))
	}
	if f := s.Processor.Forward; f != nil && f.Topic == t {
		errs = append(errs, field.Invalid(p, t, "deadLetter.topic must not be processor.forward.topic"))
	}
	return errs
}

// validatePods checks what shapes the pods: the replica count and the template.
func (s *KafkaPipelineSpec) validatePods(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Replicas != nil && (*s.Replicas < 0 || *s.Replicas > MaxReplicas) {
		errs = append(errs, field.Invalid(p.Child("replicas"), *s.Replicas, "must be between 0 and 1000"))
	}
	if s.Replicas != nil && s.Scaling.Mode != ScalingManual {
		errs = append(errs, field.Invalid(p.Child("replicas"), *s.Replicas,
			"replicas (what kubectl scale sets) is used in scaling.mode Manual only; in Auto the operator sets the replica count from lag: remove spec.replicas or set scaling.mode to Manual"))
	}
	if s.Processor.Handler != nil && (s.Template == nil || s.Template.Image == "") {
		errs = append(errs, field.Required(p.Child("template", "image"),
			"processor.handler needs template.image: an image built around the kpipe runtime that registers the handler"))
	}
	if s.Template != nil {
		errs = append(errs, s.Template.validate(p.Child("template"))...)
	}
	if b := s.DisruptionBudget; b != nil {
		errs = append(errs, b.validate(p.Child("disruptionBudget", "maxUnavailable"))...)
	}
	return errs
}

// maxUnavailablePercent is the form of a percentage maxUnavailable: 1% to 100%.
var maxUnavailablePercent = regexp.MustCompile(`^([1-9][0-9]?|100)%$`)

func (b *DisruptionBudgetSpec) validate(p *field.Path) field.ErrorList {
	v := b.MaxUnavailable
	if (v.Type == intstr.Int && v.IntVal >= 1) || (v.Type == intstr.String && maxUnavailablePercent.MatchString(v.StrVal)) {
		return nil
	}
	return field.ErrorList{field.Invalid(p, v.String(), "maxUnavailable must be a number of at least 1 or a percentage from 1% to 100%")}
}

// validate checks the template's bounds; the Kubernetes types inside it (resources, affinity,
// ...) are checked by the API server when the Deployment is applied.
func (t *PodTemplateOverrides) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(t.Image) > 1024 {
		errs = append(errs, field.TooLong(p.Child("image"), "", 1024))
	}
	switch t.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, field.NotSupported(p.Child("imagePullPolicy"), t.ImagePullPolicy,
			[]string{string(corev1.PullAlways), string(corev1.PullIfNotPresent), string(corev1.PullNever)}))
	}
	if len(t.ServiceAccountName) > 253 {
		errs = append(errs, field.TooLong(p.Child("serviceAccountName"), t.ServiceAccountName, 253))
	}
	if g := t.TerminationGracePeriodSeconds; g != nil && (*g < 1 || *g > 3600) {
		errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must be between 1 and 3600"))
	}
	if len(t.Env) > 256 {
		errs = append(errs, field.TooMany(p.Child("env"), len(t.Env), 256))
	}
	for i, e := range t.Env {
		if strings.HasPrefix(e.Name, "KPIPE_") {
			errs = append(errs, field.Invalid(p.Child("env").Index(i).Child("name"), e.Name,
				"environment variables starting with KPIPE_ are reserved for kpipe"))
		}
	}
	return errs
}

func (o *PoolSpec) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if o.Size != nil && (*o.Size < 1 || *o.Size > 4096) {
		errs = append(errs, field.Invalid(p.Child("size"), *o.Size, "must be between 1 and 4096"))
	}
	if o.Buffer == nil || *o.Buffer < 1 || *o.Buffer > 65536 {
		errs = append(errs, field.Invalid(p.Child("buffer"), ptrValue(o.Buffer), "must be between 1 and 65536"))
	}
	switch o.Ordering {
	case OrderingPartition, OrderingKey, OrderingUnordered:
	default:
		errs = append(errs, field.NotSupported(p.Child("ordering"), o.Ordering,
			[]string{string(OrderingPartition), string(OrderingKey), string(OrderingUnordered)}))
	}
	if b := o.MemoryBudget; b != nil && (b.Cmp(MinMemoryBudget) < 0 || b.Cmp(MaxMemoryBudget) > 0) {
		errs = append(errs, field.Invalid(p.Child("memoryBudget"), b.String(), "memoryBudget must be between 1Mi and 64Gi"))
	}
	return errs
}

// validateMemoryBudget refuses a memory budget above the container's explicit memory limit:
// the replica could never hold it.
func (s *KafkaPipelineSpec) validateMemoryBudget(p *field.Path) field.ErrorList {
	b := s.Pool.MemoryBudget
	if b == nil || s.Template == nil || s.Template.Resources == nil {
		return nil
	}
	if lim, ok := s.Template.Resources.Limits[corev1.ResourceMemory]; ok && b.Cmp(lim) > 0 {
		return field.ErrorList{field.Invalid(p.Child("pool", "memoryBudget"), b.String(),
			"memoryBudget must not be above template.resources.limits.memory ("+lim.String()+"); keep it at most half of the limit")}
	}
	return nil
}

func (i *IdleSpec) validate(p *field.Path) field.ErrorList {
	errs := positive(p.Child("window"), i.Window, MaxIdleWindow)
	errs = append(errs, positive(p.Child("penalty"), i.Penalty, MaxIdlePenalty)...)
	if len(errs) == 0 && i.Penalty.Duration < i.Window.Duration {
		errs = append(errs, field.Invalid(p.Child("penalty"), i.Penalty.Duration.String(), "idle.penalty must be at least idle.window"))
	}
	return errs
}

func (r *ProcessorSpec) validate(p *field.Path, consumed map[string]bool) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if r.Forward != nil {
		n++
		tp := p.Child("forward", "topic")
		errs = append(errs, validateTopic(tp, r.Forward.Topic)...)
		if consumed[r.Forward.Topic] {
			errs = append(errs, field.Invalid(tp, r.Forward.Topic, "processor.forward.topic must not be one of the consumed topics"))
		}
	}
	if r.HTTP != nil {
		n++
		errs = append(errs, validateURL(p.Child("http", "url"), r.HTTP.URL)...)
		errs = append(errs, positive(p.Child("http", "timeout"), r.HTTP.Timeout, MaxHTTPTimeout)...)
	}
	if r.Handler != nil {
		n++
		if !handlerRE.MatchString(r.Handler.Name) || len(r.Handler.Name) > 63 {
			errs = append(errs, field.Invalid(p.Child("handler", "name"), r.Handler.Name,
				"must be 1 to 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit"))
		}
	}
	if n != 1 {
		errs = append(errs, field.Invalid(p, n, "exactly one of processor.forward, processor.http or processor.handler must be set"))
	}
	return errs
}

// validateDelivery checks processor.forward.delivery and what ExactlyOnce needs of the
// consumer: a new owner of a partition must wait for the offsets a transaction of the last
// owner may still commit (KIP-447's stable offset fetch), which the Kafka client asks for only
// when it reads committed records; and an output written exactly once from records of aborted
// transactions would not be exactly once. ExactlyOnce also needs an eager rebalance strategy:
// its transactions commit the offsets of every partition of the session together, so far
// only where a rebalance ends the whole session (cooperative revocation inside a running
// session is not yet part of the transaction's design).
func (s *KafkaPipelineSpec) validateDelivery(p *field.Path) field.ErrorList {
	f := s.Processor.Forward
	if f == nil {
		return nil
	}
	dp := p.Child("processor", "forward", "delivery")
	switch f.Delivery {
	case DeliveryAtLeastOnce:
	case DeliveryExactlyOnce:
		var errs field.ErrorList
		if s.Kafka.IsolationLevel != ReadCommitted {
			errs = append(errs, field.Invalid(p.Child("kafka", "isolationLevel"), s.Kafka.IsolationLevel,
				"processor.forward.delivery ExactlyOnce needs kafka.isolationLevel ReadCommitted"))
		}
		if !s.Kafka.RebalanceStrategy.Eager() {
			errs = append(errs, field.Invalid(p.Child("kafka", "rebalanceStrategy"), s.Kafka.RebalanceStrategy,
				"processor.forward.delivery ExactlyOnce needs an eager kafka.rebalanceStrategy, Range or RoundRobin"))
		}
		return errs
	default:
		return field.ErrorList{field.NotSupported(dp, f.Delivery, []string{string(DeliveryAtLeastOnce), string(DeliveryExactlyOnce)})}
	}
	return nil
}

// validateURL is the schema's rules for processor.http.url: an absolute http(s) URL with a
// host, at most 2048 characters, without userinfo.
func validateURL(p *field.Path, s string) field.ErrorList {
	u, err := url.Parse(s)
	switch {
	case len(s) > 2048:
		return field.ErrorList{field.TooLong(p, "", 2048)}
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		return field.ErrorList{field.Invalid(p, s, "must be an absolute http:// or https:// URL")}
	case u.User != nil:
		return field.ErrorList{field.Invalid(p, u.Redacted(), "must not contain credentials (user:password@)")}
	}
	if port, err := strconv.Atoi(u.Port()); u.Port() != "" && (err != nil || port < 1 || port > 65535) {
		return field.ErrorList{field.Invalid(p, s, "the port must be from 1 to 65535")}
	}
	return nil
}

func (r *RetrySpec) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r.MaxAttempts == nil || *r.MaxAttempts < 1 || *r.MaxAttempts > 100 {
		errs = append(errs, field.Invalid(p.Child("maxAttempts"), ptrValue(r.MaxAttempts), "must be between 1 and 100"))
	}
	errs = append(errs, positive(p.Child("initialBackoff"), r.InitialBackoff, MaxBackoff)...)
	errs = append(errs, positive(p.Child("maxBackoff"), r.MaxBackoff, MaxBackoff)...)
	if len(errs) == 0 && r.MaxBackoff.Duration < r.InitialBackoff.Duration {
		errs = append(errs, field.Invalid(p.Child("maxBackoff"), r.MaxBackoff.Duration.String(), "retry.maxBackoff must be at least retry.initialBackoff"))
	}
	return errs
}

func (s *ScalingSpec) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Mode != ScalingAuto && s.Mode != ScalingManual {
		errs = append(errs, field.NotSupported(p.Child("mode"), s.Mode, []string{string(ScalingAuto), string(ScalingManual)}))
	}
	if s.MinReplicas != nil && (*s.MinReplicas < 0 || *s.MinReplicas > MaxReplicas) {
		errs = append(errs, field.Invalid(p.Child("minReplicas"), *s.MinReplicas, "must be between 0 and 1000"))
	}
	if s.MaxReplicas != nil && (*s.MaxReplicas < 1 || *s.MaxReplicas > MaxReplicas) {
		errs = append(errs, field.Invalid(p.Child("maxReplicas"), *s.MaxReplicas, "must be between 1 and 1000"))
	}
	if s.MinReplicas != nil && s.MaxReplicas != nil && *s.MaxReplicas < *s.MinReplicas {
		errs = append(errs, field.Invalid(p.Child("maxReplicas"), *s.MaxReplicas, "scaling.maxReplicas must be at least scaling.minReplicas"))
	}
	if s.LagPerReplica == nil || *s.LagPerReplica < 1 {
		errs = append(errs, field.Invalid(p.Child("lagPerReplica"), ptrValue(s.LagPerReplica), "must be 1 or more"))
	}
	if s.ActivationLag != nil && *s.ActivationLag < 0 {
		errs = append(errs, field.Invalid(p.Child("activationLag"), *s.ActivationLag, "must be 0 or more"))
	}
	errs = append(errs, between(p.Child("pollInterval"), s.PollInterval, MinPollInterval, MaxPollInterval)...)
	if s.ScaleDownStabilization != nil {
		errs = append(errs, between(p.Child("scaleDownStabilization"), s.ScaleDownStabilization, 0, MaxScaleDownStabilization)...)
	}
	if s.LagTimeTarget != nil {
		errs = append(errs, between(p.Child("lagTimeTarget"), s.LagTimeTarget, MinLagTimeTarget, MaxLagTimeTarget)...)
	}
	return errs
}

func validateTopic(p *field.Path, t string) field.ErrorList {
	switch {
	case t == "":
		return field.ErrorList{field.Required(p, "a topic name is required")}
	case len(t) > 249:
		return field.ErrorList{field.TooLong(p, t, 249)}
	case !topicRE.MatchString(t):
		return field.ErrorList{field.Invalid(p, t, "a topic name may hold only ASCII letters, digits, '.', '_' and '-'")}
	case t == "." || t == "..":
		return field.ErrorList{field.Invalid(p, t, "a topic name cannot be '.' or '..'")}
	}
	return nil
}

// ptrValue is *p for an error message, or "unset".
func ptrValue[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}
