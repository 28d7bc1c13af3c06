package v1alpha1

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	topicRE     = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	serverRE    = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?):[0-9]{1,5}$`)
	versionRE   = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	secretRE    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	handlerRE   = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$`)
	supportedOO = []string{string(InitialOffsetLatest), string(InitialOffsetEarliest)}
)

// Validate checks a spec against the same rules the CRD schema enforces, for configuration
// that does not pass through the API server (the runtime's input, the Go library). Defaults
// should be applied first. Every problem is reported, each naming its field under "spec".
func (s *KafkaPipelineSpec) Validate() field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")

	errs = append(errs, s.Kafka.validate(p.Child("kafka"))...)

	tp := p.Child("topics")
	switch {
	case len(s.Topics) == 0:
		errs = append(errs, field.Required(tp, "at least one topic is required"))
	case len(s.Topics) > 64:
		errs = append(errs, field.TooMany(tp, len(s.Topics), 64))
	}
	seen := map[string]bool{}
	for i, t := range s.Topics {
		errs = append(errs, validateTopic(tp.Index(i), t)...)
		if seen[t] {
			errs = append(errs, field.Duplicate(tp.Index(i), t))
		}
		seen[t] = true
	}

	gp := p.Child("group")
	switch {
	case strings.TrimSpace(s.Group) == "":
		errs = append(errs, field.Required(gp, "group must not be blank"))
	case len(s.Group) > 255:
		errs = append(errs, field.TooLong(gp, s.Group, 255))
	}

	if s.InitialOffset != InitialOffsetLatest && s.InitialOffset != InitialOffsetEarliest {
		errs = append(errs, field.NotSupported(p.Child("initialOffset"), s.InitialOffset, supportedOO))
	}

	errs = append(errs, s.Pool.validate(p.Child("pool"))...)
	errs = append(errs, s.Idle.validate(p.Child("idle"))...)
	errs = append(errs, s.Processor.validate(p.Child("processor"), seen)...)
	errs = append(errs, s.Retry.validate(p.Child("retry"))...)
	if s.DeadLetter != nil {
		dp := p.Child("deadLetter", "topic")
		errs = append(errs, validateTopic(dp, s.DeadLetter.Topic)...)
		if seen[s.DeadLetter.Topic] {
			errs = append(errs, field.Invalid(dp, s.DeadLetter.Topic, "deadLetter.topic must not be one of the consumed topics"))
		}
	}
	errs = append(errs, s.Scaling.validate(p.Child("scaling"))...)
	if s.Replicas != nil && *s.Replicas < 0 {
		errs = append(errs, field.Invalid(p.Child("replicas"), *s.Replicas, "must be 0 or more"))
	}
	if s.Processor.Handler != nil && (s.Template == nil || s.Template.Image == "") {
		errs = append(errs, field.Required(p.Child("template", "image"),
			"processor.handler needs template.image: an image built around the kpipe runtime that registers the handler"))
	}
	if s.Template != nil {
		for i, e := range s.Template.Env {
			if strings.HasPrefix(e.Name, "KPIPE_") {
				errs = append(errs, field.Invalid(p.Child("template", "env").Index(i).Child("name"), e.Name,
					"environment variables starting with KPIPE_ are reserved for kpipe"))
			}
		}
	}
	return errs
}

func (k *KafkaConnection) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	bp := p.Child("bootstrapServers")
	if len(k.BootstrapServers) == 0 {
		errs = append(errs, field.Required(bp, "at least one host:port is required"))
	}
	for i, s := range k.BootstrapServers {
		if !serverRE.MatchString(s) {
			errs = append(errs, field.Invalid(bp.Index(i), s, "must be host:port"))
		}
	}
	if k.Version != "" && !versionRE.MatchString(k.Version) {
		errs = append(errs, field.Invalid(p.Child("version"), k.Version, "must look like 3.6.0"))
	}
	if k.TLS != nil && k.TLS.SecretRef != nil {
		errs = append(errs, validateSecretRef(p.Child("tls", "secretRef", "name"), k.TLS.SecretRef.Name)...)
	}
	if k.SASL != nil {
		switch k.SASL.Mechanism {
		case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
		default:
			errs = append(errs, field.NotSupported(p.Child("sasl", "mechanism"), k.SASL.Mechanism,
				[]string{string(SASLPlain), string(SASLSCRAMSHA256), string(SASLSCRAMSHA512)}))
		}
		errs = append(errs, validateSecretRef(p.Child("sasl", "secretRef", "name"), k.SASL.SecretRef.Name)...)
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
	return errs
}

func (i *IdleSpec) validate(p *field.Path) field.ErrorList {
	errs := positive(p.Child("window"), i.Window, 0)
	errs = append(errs, positive(p.Child("penalty"), i.Penalty, 0)...)
	if len(errs) == 0 && i.Window != nil && i.Penalty != nil && i.Penalty.Duration < i.Window.Duration {
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
		up := p.Child("http", "url")
		if u, err := url.Parse(r.HTTP.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			errs = append(errs, field.Invalid(up, r.HTTP.URL, "must be an absolute http:// or https:// URL"))
		}
		errs = append(errs, positive(p.Child("http", "timeout"), r.HTTP.Timeout, 0)...)
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

func (r *RetrySpec) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r.MaxAttempts == nil || *r.MaxAttempts < 1 || *r.MaxAttempts > 100 {
		errs = append(errs, field.Invalid(p.Child("maxAttempts"), ptrValue(r.MaxAttempts), "must be between 1 and 100"))
	}
	errs = append(errs, positive(p.Child("initialBackoff"), r.InitialBackoff, 0)...)
	errs = append(errs, positive(p.Child("maxBackoff"), r.MaxBackoff, 0)...)
	if len(errs) == 0 && r.InitialBackoff != nil && r.MaxBackoff != nil && r.MaxBackoff.Duration < r.InitialBackoff.Duration {
		errs = append(errs, field.Invalid(p.Child("maxBackoff"), r.MaxBackoff.Duration.String(), "retry.maxBackoff must be at least retry.initialBackoff"))
	}
	return errs
}

func (s *ScalingSpec) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Mode != ScalingAuto && s.Mode != ScalingManual {
		errs = append(errs, field.NotSupported(p.Child("mode"), s.Mode, []string{string(ScalingAuto), string(ScalingManual)}))
	}
	if s.MinReplicas != nil && *s.MinReplicas < 0 {
		errs = append(errs, field.Invalid(p.Child("minReplicas"), *s.MinReplicas, "must be 0 or more"))
	}
	if s.MaxReplicas != nil && (*s.MaxReplicas < 1 || *s.MaxReplicas > 1000) {
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
	errs = append(errs, positive(p.Child("pollInterval"), s.PollInterval, time.Second)...)
	if d := s.ScaleDownStabilization; d != nil && d.Duration < 0 {
		errs = append(errs, field.Invalid(p.Child("scaleDownStabilization"), d.Duration.String(), "must not be negative"))
	}
	return errs
}

// positive reports a duration that is unset-but-required, not above zero, or below least.
func positive(p *field.Path, d *metav1.Duration, least time.Duration) field.ErrorList {
	switch {
	case d == nil:
		return field.ErrorList{field.Required(p, "a duration is required")}
	case d.Duration <= 0:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be a positive duration")}
	case d.Duration < least:
		return field.ErrorList{field.Invalid(p, d.Duration.String(), fmt.Sprintf("must be at least %s", least))}
	}
	return nil
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

func validateSecretRef(p *field.Path, name string) field.ErrorList {
	if name == "" || len(name) > 253 || !secretRE.MatchString(name) {
		return field.ErrorList{field.Invalid(p, name, "must be the name of a Secret in the pipeline's namespace")}
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
