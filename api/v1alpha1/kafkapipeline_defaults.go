package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults of the KafkaPipeline spec. The schema markers on the types carry the same values,
// and the API test suite checks that the API server and Default agree.
const (
	DefaultPoolBuffer             int32 = 256
	DefaultIdleWindow                   = time.Minute
	DefaultIdlePenalty                  = 5 * time.Minute
	DefaultHTTPTimeout                  = 5 * time.Second
	DefaultRetryMaxAttempts       int32 = 5
	DefaultRetryInitialBackoff          = 100 * time.Millisecond
	DefaultRetryMaxBackoff              = 10 * time.Second
	DefaultMinReplicas            int32 = 0
	DefaultMaxReplicas            int32 = 10
	DefaultLagPerReplica          int64 = 1000
	DefaultPollInterval                 = 10 * time.Second
	DefaultScaleDownStabilization       = 5 * time.Minute
	DefaultManualReplicas         int32 = 1
	DefaultTerminationGracePeriod int64 = 30
)

// Default fills every unset field that has a default, the way the API server does for an
// object it admits. It lets the runtime, tests and the Go library work with a spec that did
// not pass through the API server. pool.size stays unset: its default (the CPUs available)
// is only known inside the pod.
func (s *KafkaPipelineSpec) Default() {
	if s.Kafka.IsolationLevel == "" {
		s.Kafka.IsolationLevel = ReadUncommitted
	}
	if f := s.Processor.Forward; f != nil && f.Delivery == "" {
		f.Delivery = DeliveryAtLeastOnce
	}
	if s.InitialOffset == "" {
		s.InitialOffset = InitialOffsetLatest
	}
	if s.Kafka.RebalanceStrategy == "" {
		s.Kafka.RebalanceStrategy = RebalanceCooperativeSticky
	}
	defaultInt32(&s.Pool.Buffer, DefaultPoolBuffer)
	if s.Pool.Ordering == "" {
		s.Pool.Ordering = OrderingKey
	}
	defaultDuration(&s.Idle.Window, DefaultIdleWindow)
	defaultDuration(&s.Idle.Penalty, DefaultIdlePenalty)
	if s.Processor.HTTP != nil {
		defaultDuration(&s.Processor.HTTP.Timeout, DefaultHTTPTimeout)
	}
	defaultInt32(&s.Retry.MaxAttempts, DefaultRetryMaxAttempts)
	defaultDuration(&s.Retry.InitialBackoff, DefaultRetryInitialBackoff)
	defaultDuration(&s.Retry.MaxBackoff, DefaultRetryMaxBackoff)
	if s.Scaling.Mode == "" {
		s.Scaling.Mode = ScalingAuto
	}
	defaultInt32(&s.Scaling.MinReplicas, DefaultMinReplicas)
	defaultInt32(&s.Scaling.MaxReplicas, DefaultMaxReplicas)
	defaultInt64(&s.Scaling.LagPerReplica, DefaultLagPerReplica)
	defaultInt64(&s.Scaling.ActivationLag, 0)
	defaultDuration(&s.Scaling.PollInterval, DefaultPollInterval)
	defaultDuration(&s.Scaling.ScaleDownStabilization, DefaultScaleDownStabilization)
}

func defaultDuration(d **metav1.Duration, v time.Duration) {
	if *d == nil {
		*d = &metav1.Duration{Duration: v}
	}
}

func defaultInt32(p **int32, v int32) {
	if *p == nil {
		*p = &v
	}
}

func defaultInt64(p **int64, v int64) {
	if *p == nil {
		*p = &v
	}
}

// ManualReplicas is spec.replicas, or 1 when it is unset.
func (s *KafkaPipelineSpec) ManualReplicas() int32 {
	if s.Replicas == nil {
		return DefaultManualReplicas
	}
	return *s.Replicas
}

// TerminationGracePeriodSeconds is template.terminationGracePeriodSeconds, or 30.
func (s *KafkaPipelineSpec) TerminationGracePeriodSeconds() int64 {
	if s.Template == nil || s.Template.TerminationGracePeriodSeconds == nil {
		return DefaultTerminationGracePeriod
	}
	return *s.Template.TerminationGracePeriodSeconds
}
