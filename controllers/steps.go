package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/render"
	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/kafkaclient"
)

// reconcileRun carries one reconcile's inputs and outputs from step to step.
type reconcileRun struct {
	kp   *kpipev1.KafkaPipeline
	spec kpipev1.KafkaPipelineSpec // defaults applied
	key  types.NamespacedName
	now  time.Time
	st   *pipelineState
	log  logr.Logger

	conn        lag.Connection
	secretsHash string

	exists  bool  // the Deployment exists
	current int32 // its replicas (0 when it does not exist)

	observed *observation
	pollErr  error

	desired  int32
	decision *scaling.Decision
	dep      *appsv1.Deployment // as applied
}

// observation is one successful poll of Kafka, turned into lag.
type observation struct {
	partitions    int32
	topics        []kpipev1.TopicStatus
	lags          []scaling.PartitionLag
	lag           int64 // all partitions
	stalledLag    int64
	needsConsumer bool
}

// validate applies defaults and checks the spec; a bad spec is terminal until it changes.
func (r *KafkaPipelineReconciler) validate(run *reconcileRun) error {
	run.spec = *run.kp.Spec.DeepCopy()
	run.spec.Default()
	errs := run.spec.Validate()
	if len(errs) == 0 && r.Image == "" && (run.spec.Template == nil || run.spec.Template.Image == "") {
		errs = append(errs, fieldRequiredImage())
	}
	if len(errs) == 0 {
		return nil
	}
	err := errs.ToAggregate()
	if conditionReason(run.kp, kpipev1.ConditionStalled) != ReasonInvalidSpec {
		r.event(run.kp, true, ReasonInvalidSpec, "Validate", "%s", err.Error())
	}
	markInvalid(run.kp, err.Error())
	run.kp.Status.ObservedGeneration = run.kp.Generation
	return err
}

// resolveSecrets reads the referenced Secrets, builds the lag reader's connection and hashes
// the Secrets' data for the pods' config hash. Values stay in memory; only names and keys
// appear in messages.
func (r *KafkaPipelineReconciler) resolveSecrets(ctx context.Context, run *reconcileRun) error {
	k := run.spec.Kafka
	run.conn = lag.Connection{BootstrapServers: k.BootstrapServers, Version: k.Version}
	var secrets []*corev1.Secret
	get := func(name string) (*corev1.Secret, error) {
		s := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: run.key.Namespace, Name: name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &waitError{reason: ReasonSecretNotFound, err: fmt.Errorf("secret %q not found in namespace %q", name, run.key.Namespace)}
			}
			return nil, &waitError{reason: ReasonSecretNotFound, err: fmt.Errorf("read secret %q: %w", name, err)}
		}
		secrets = append(secrets, s)
		return s, nil
	}
	if t := k.TLS; t != nil {
		var data map[string][]byte
		if t.SecretRef != nil {
			s, err := get(t.SecretRef.Name)
			if err != nil {
				return err
			}
			data = s.Data
		}
		cfg, err := kafkaclient.TLSFromSecret(data, t.InsecureSkipVerify)
		if err != nil {
			return &waitError{reason: ReasonSecretInvalid, err: fmt.Errorf("tls secret %q: %w", t.SecretRef.Name, err)}
		}
		run.conn.Credentials.TLS = cfg
	}
	if s := k.SASL; s != nil {
		sec, err := get(s.SecretRef.Name)
		if err != nil {
			return err
		}
		cfg, err := kafkaclient.SASLFromSecret(s.Mechanism, sec.Data)
		if err != nil {
			return &waitError{reason: ReasonSecretInvalid, err: fmt.Errorf("sasl secret %q: %w", s.SecretRef.Name, err)}
		}
		run.conn.Credentials.SASL = cfg
	}
	run.secretsHash = render.SecretsHash(secrets...)
	run.conn.AuthHash = run.secretsHash
	return nil
}

// loadDeployment reads the current replica count from the cache.
func (r *KafkaPipelineReconciler) loadDeployment(ctx context.Context, run *reconcileRun) error {
	dep := &appsv1.Deployment{}
	err := r.Get(ctx, run.key, dep)
	switch {
	case apierrors.IsNotFound(err) && run.st.initialized:
		run.exists, run.current = true, run.st.applied // created, not in the cache yet
		return nil
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get deployment: %w", err)
	}
	run.exists = true
	if dep.Spec.Replicas != nil {
		run.current = *dep.Spec.Replicas
	} else {
		run.current = 1
	}
	run.dep = dep
	if run.st.initialized {
		run.current = run.st.applied // the cache may not show our last write yet
	}
	return nil
}

// pollTimeout bounds how long a reconcile waits for a read of Kafka that another pipeline of
// the same cluster has in progress. Each network step has its own, shorter timeout.
const pollTimeout = 30 * time.Second

// observe polls Kafka through the shared reader, unless the pipeline is suspended. A failure
// is kept in run.pollErr: replicas stay as they are and status says why.
func (r *KafkaPipelineReconciler) observe(ctx context.Context, run *reconcileRun) {
	if run.spec.Suspend {
		r.Lag.Release(run.key.String())
		return
	}
	poll := run.spec.Scaling.PollInterval.Duration
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	res, err := r.Lag.Poll(ctx, lag.Query{
		Pipeline: run.key.String(), Conn: run.conn, Topics: run.spec.Topics, Group: run.spec.Group, MaxAge: poll / 2,
	})
	if err != nil {
		pollDuration.WithLabelValues("error").Observe(time.Since(start).Seconds())
		reason := ReasonKafkaUnreachable
		if errors.Is(err, lag.ErrTopicNotFound) {
			reason = ReasonTopicNotFound
			err = fmt.Errorf("%w (the operator never creates topics)", err)
		}
		kafkaErrors.WithLabelValues(run.key.Namespace, run.key.Name, reason).Inc()
		run.pollErr = &waitError{reason: reason, err: err}
		return
	}
	pollDuration.WithLabelValues("ok").Observe(time.Since(start).Seconds())
	run.observed = r.toObservation(run, res, poll)
}

// toObservation turns offsets into lag and updates the stall tracking. Stall counts advance at
// most once per half poll interval, so extra reconciles (a Deployment update) do not count as
// polls.
func (r *KafkaPipelineReconciler) toObservation(run *reconcileRun, res *lag.Result, poll time.Duration) *observation {
	earliest := run.spec.InitialOffset == kpipev1.InitialOffsetEarliest
	obs := &observation{}
	perTopic := map[string]int64{}
	for _, o := range res.Offsets {
		pl := scaling.Lag(o, earliest)
		obs.lags = append(obs.lags, pl)
		obs.lag += pl.Lag
		perTopic[o.Topic] += pl.Lag
		if pl.Reset && !earliest {
			obs.needsConsumer = true
		}
	}
	for _, t := range run.spec.Topics {
		n := res.Partitions[t]
		obs.partitions += n
		obs.topics = append(obs.topics, kpipev1.TopicStatus{Name: t, Partitions: n, Lag: perTopic[t]})
	}
	st := run.st
	if st.trackedAt.IsZero() || run.now.Sub(st.trackedAt) >= poll/2 {
		threshold := r.StallPolls
		if threshold <= 0 {
			threshold = 6
		}
		consuming := run.dep != nil && run.dep.Status.ReadyReplicas > 0 && run.current > 0
		s := scaling.TrackStalls(st.stall, obs.lags, consuming, threshold)
		st.stall, st.stalled, st.progress, st.trackedAt = s.State, s.Stalled, s.Progress, run.now
	}
	stalled := map[scaling.TopicPartition]bool{}
	for _, tp := range st.stalled {
		stalled[tp] = true
	}
	r.measureRates(run, res, stalled)
	for _, pl := range obs.lags {
		if stalled[pl.TopicPartition] {
			obs.stalledLag += pl.Lag
		}
	}
	recordLag(run.key.Namespace, run.key.Name, run.spec.Group, obs.lags, obs.lag, len(st.stalled))
	return obs
}

// runtimeCommitInterval is how often `kpipe run` commits (the runtime's default commit
// interval): a committed offset trails the processed one by up to this much.
const runtimeCommitInterval = time.Second

// measureRates compares this poll's offsets with the previous poll's: the produce rate of the
// partitions that are not stalled, and a per-replica rate sample for the capacity estimate.
// It uses only what the lag reader returned, with the times it read them; a shared read that
// was not refreshed since the previous poll measures nothing (no time between the reads).
func (r *KafkaPipelineReconciler) measureRates(run *reconcileRun, res *lag.Result, stalled map[scaling.TopicPartition]bool) {
	st := run.st
	cur := scaling.Poll{Offsets: res.Offsets, NewestAt: res.NewestAt, CommittedAt: res.CommittedAt, Replicas: run.current}
	if run.dep != nil {
		cur.Replicas = max(cur.Replicas, run.dep.Status.Replicas) // old pods of a rollout consume too
	}
	if st.lastPoll.NewestAt.IsZero() {
		st.lastPoll = cur
		return
	}
	// Extra reconciles (a Deployment update) and reads not refreshed since the previous poll
	// are not polls: commits land once a second, so a short interval is mostly noise. Keep
	// the previous poll, and remember that these replicas ran meanwhile.
	rates := scaling.MeasureRates(st.lastPoll, cur, stalled, runtimeCommitInterval)
	if !rates.OK || cur.CommittedAt.Sub(st.lastPoll.CommittedAt) < run.spec.Scaling.PollInterval.Duration/2 {
		st.lastPoll.Replicas = max(st.lastPoll.Replicas, cur.Replicas)
		return
	}
	st.capacity = st.capacity.Observe(run.now, rates.PerReplica)
	st.produce = rates.Produce
	st.lastPoll = cur
}

// decide sets run.desired: zero when suspended, spec.replicas in Manual mode, the scaling
// policy's answer in Auto mode, and the current count when Kafka could not be read.
func (r *KafkaPipelineReconciler) decide(run *reconcileRun) {
	spec := run.spec
	switch {
	case spec.Suspend:
		run.desired = 0
		run.st.zeroSince, run.st.history = nil, nil
	case spec.Scaling.Mode == kpipev1.ScalingManual:
		run.desired = spec.ManualReplicas()
		run.st.zeroSince, run.st.history = nil, nil
	case run.observed == nil && run.exists:
		run.desired = run.current // Kafka unreadable: leave replicas alone
	case run.observed == nil:
		run.desired = *spec.Scaling.MinReplicas
	default:
		d := scaling.Decide(r.policyInput(run))
		run.decision = &d
		run.st.history = d.History
		run.desired = d.Replicas
		run.st.idleSince = d.IdleSince
		// The replicas that may consume until the next poll: the old count while its pods
		// stop, the new one once they start.
		run.st.lastPoll.Replicas = max(run.st.lastPoll.Replicas, d.Replicas)
		switch {
		case d.Replicas > 0:
			run.st.zeroSince = nil
		case d.Reason == scaling.ReasonIdleToZero:
			now := run.now
			run.st.zeroSince = &now
		}
	}
	desiredReplicas.WithLabelValues(run.key.Namespace, run.key.Name).Set(float64(run.desired))
}

func (r *KafkaPipelineReconciler) policyInput(run *reconcileRun) scaling.Input {
	s := run.spec.Scaling
	kp := run.kp
	obs := run.observed
	if run.st.history == nil && run.current > 0 {
		// No memory of earlier polls (new leader, restart): hold the current count for one
		// stabilization window rather than scaling down at once.
		run.st.history = []scaling.Recommendation{{Time: run.now, Replicas: run.current}}
	}
	in := scaling.Input{
		Params: scaling.Params{
			MinReplicas: *s.MinReplicas, MaxReplicas: *s.MaxReplicas,
			LagPerReplica: *s.LagPerReplica, ActivationLag: *s.ActivationLag,
			IdleWindow: run.spec.Idle.Window.Duration, IdlePenalty: run.spec.Idle.Penalty.Duration,
			ScaleDownStabilization: s.ScaleDownStabilization.Duration,
			PollInterval:           s.PollInterval.Duration,
		},
		Now:           run.now,
		Partitions:    obs.partitions,
		Lag:           obs.lag - obs.stalledLag,
		StalledLag:    obs.stalledLag,
		Progress:      run.st.progress,
		NeedsConsumer: obs.needsConsumer,
		Current:       run.current,
		History:       run.st.history,
		ProduceRate:   run.st.produce,
		ReplicaRate:   run.st.capacity.Estimate(run.now),
	}
	if kp.Status.LastScaleTime != nil {
		in.LastScale = kp.Status.LastScaleTime.Time
	}
	if run.st.initialized {
		in.IdleSince, in.ZeroSince = run.st.idleSince, run.st.zeroSince
		return in
	}
	// A fresh process: take the idle clocks from the status.
	if kp.Status.IdleSince != nil {
		t := kp.Status.IdleSince.Time
		in.IdleSince = &t
	}
	// The penalty counts from the scale to zero the policy made for idleness.
	if run.current == 0 && kp.Status.LastScaleTime != nil {
		switch conditionReason(kp, kpipev1.ConditionIdle) {
		case scaling.ReasonIdleToZero, scaling.ReasonIdlePenalty:
			t := kp.Status.LastScaleTime.Time
			in.ZeroSince = &t
		}
	}
	return in
}

// applyDeployment writes the desired Deployment with server-side apply. With a missing
// Secret the reconcile stops before this step, so pods never point at a Secret that is gone.
func (r *KafkaPipelineReconciler) applyDeployment(ctx context.Context, run *reconcileRun) error {
	dep, err := render.Deployment(render.Input{Pipeline: run.kp, Image: r.Image, Replicas: run.desired, SecretsHash: run.secretsHash})
	if err != nil {
		return err
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(dep)
	if err != nil {
		return fmt.Errorf("convert deployment: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	raw, err := json.Marshal(u.Object) // map keys are sorted: a stable fingerprint
	if err != nil {
		return fmt.Errorf("encode deployment: %w", err)
	}
	sum := sha256.Sum256(raw)
	fingerprint := hex.EncodeToString(sum[:])
	st := run.st
	// The same intent as last time, and nobody changed the Deployment's spec since (its
	// generation is the one the last apply returned): the apply would be a no-op, skip the
	// request. Any other writer bumps the generation, and the next apply restores kpipe's fields.
	if st.initialized && run.dep != nil && fingerprint == st.fingerprint && run.dep.Generation == st.generation {
		run.kp.Status.ObservedGeneration = run.kp.Generation
		return nil
	}
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply deployment: %w", err)
	}
	applied := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, applied); err != nil {
		return fmt.Errorf("convert applied deployment: %w", err)
	}
	run.dep = applied
	run.kp.Status.ObservedGeneration = run.kp.Generation
	r.recordScale(run)
	st.initialized, st.applied = true, run.desired
	st.fingerprint, st.generation = fingerprint, applied.Generation
	return nil
}

// recordScale sets lastScaleTime and records an event when the replica count changed.
func (r *KafkaPipelineReconciler) recordScale(run *reconcileRun) {
	if run.desired == run.current && run.exists {
		return
	}
	if !run.exists && run.desired == 0 {
		return
	}
	kp := run.kp
	kp.Status.LastScaleTime = &metav1.Time{Time: run.now}
	reason, why := "Scaled", ""
	switch {
	case run.spec.Suspend:
		reason, why = ReasonSuspended, "spec.suspend is true"
	case run.spec.Scaling.Mode == kpipev1.ScalingManual:
		reason, why = ReasonScaledManually, "scaling.mode is Manual: spec.replicas"
	case run.decision != nil:
		reason, why = run.decision.Reason, run.decision.Message
	case run.pollErr != nil:
		why = "initial replicas (minReplicas) while Kafka cannot be read"
	}
	run.log.Info("scaled", "from", run.current, "to", run.desired, "reason", reason)
	r.event(kp, false, reason, "Scale", "scaled from %d to %d replicas: %s", run.current, run.desired, why)
}

// summarize writes the observed state and the conditions into the status.
func (r *KafkaPipelineReconciler) summarize(run *reconcileRun) {
	kp, st := run.kp, &run.kp.Status
	st.DesiredReplicas = run.desired
	st.Selector = metav1.FormatLabelSelector(run.dep.Spec.Selector)
	st.Replicas = run.dep.Status.Replicas
	st.ReadyReplicas = run.dep.Status.ReadyReplicas
	if obs := run.observed; obs != nil {
		st.Partitions, st.Lag, st.Topics = obs.partitions, obs.lag, obs.topics
	}
	r.summarizeIdle(run)
	r.summarizeStalled(run)
	switch {
	case run.pollErr != nil:
		// Ready is set by wait().
	case run.spec.Suspend:
		markReady(kp, ReasonSuspended, "suspended: scaled to zero, Kafka is not polled")
	case !deploymentReady(run.dep, run.desired):
		markWaiting(kp, ReasonReplicasNotReady, fmt.Sprintf("%d of %d replicas ready (Deployment applied, Kafka reachable, topics found)",
			run.dep.Status.ReadyReplicas, run.desired))
	default:
		markReady(kp, ReasonReady, fmt.Sprintf("Deployment applied with %d replicas, all ready; Kafka reachable; %d topics with %d partitions; lag %d",
			run.desired, len(run.spec.Topics), st.Partitions, st.Lag))
	}
}

func (r *KafkaPipelineReconciler) summarizeIdle(run *reconcileRun) {
	kp, st := run.kp, &run.kp.Status
	if run.spec.Suspend {
		setCondition(kp, kpipev1.ConditionIdle, metav1.ConditionTrue, ReasonSuspended, "suspended")
		return
	}
	obs := run.observed
	if obs == nil {
		return // nothing new observed: keep the last word
	}
	var idle bool
	var idleSince *time.Time
	reason, msg := ReasonActive, ""
	if d := run.decision; d != nil {
		idle, idleSince = d.Idle, d.IdleSince
		switch d.Reason {
		case scaling.ReasonIdleToZero, scaling.ReasonIdlePenalty, scaling.ReasonBelowActivation:
			reason, msg = d.Reason, d.Message
		}
	} else { // Manual mode: report idleness, scale nothing
		idle = obs.lag == 0 && !run.st.progress
		if idle {
			t := run.now
			if st.IdleSince != nil {
				t = st.IdleSince.Time
			}
			idleSince = &t
		}
	}
	if idle && msg == "" {
		reason = ReasonNoLag
		msg = fmt.Sprintf("no lag and no commit progress since %s", idleSince.UTC().Format(time.RFC3339))
		if run.decision != nil && *run.spec.Scaling.MinReplicas == 0 {
			msg += fmt.Sprintf("; scales to zero after the idle window %s", run.spec.Idle.Window.Duration)
		}
	}
	if idleSince != nil {
		st.IdleSince = &metav1.Time{Time: *idleSince}
	} else {
		st.IdleSince = nil
	}
	if idle {
		setCondition(kp, kpipev1.ConditionIdle, metav1.ConditionTrue, reason, msg)
		return
	}
	msg = fmt.Sprintf("lag %d", obs.lag)
	if run.st.progress {
		msg += ", commits progressing"
	}
	setCondition(kp, kpipev1.ConditionIdle, metav1.ConditionFalse, ReasonActive, msg)
}

func (r *KafkaPipelineReconciler) summarizeStalled(run *reconcileRun) {
	kp := run.kp
	stalled := run.st.stalled
	if run.spec.Suspend || run.observed == nil || len(stalled) == 0 {
		if run.spec.Suspend || run.observed != nil || conditionReason(kp, kpipev1.ConditionStalled) == ReasonInvalidSpec {
			setCondition(kp, kpipev1.ConditionStalled, metav1.ConditionFalse, ReasonProgressing, "no partition is stalled")
		}
		return
	}
	names := make([]string, 0, 5)
	for i, tp := range stalled {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(stalled)-5))
			break
		}
		names = append(names, tp.String())
	}
	threshold := r.StallPolls
	if threshold <= 0 {
		threshold = 6
	}
	setCondition(kp, kpipev1.ConditionStalled, metav1.ConditionTrue, ReasonStalledParts,
		fmt.Sprintf("%d partition(s) have lag and a committed offset that has not moved for %d polls: %s (their lag does not add replicas)",
			len(stalled), threshold, strings.Join(names, ", ")))
}

// deploymentReady is true when the Deployment controller has seen the latest spec and the
// wanted replicas are updated and ready.
func deploymentReady(dep *appsv1.Deployment, desired int32) bool {
	if desired == 0 {
		return true
	}
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas >= desired && s.ReadyReplicas >= desired
}

func equalStatus(a, b kpipev1.KafkaPipelineStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

func fieldRequiredImage() *field.Error {
	return field.Required(field.NewPath("spec", "template", "image"), "no image: set template.image or run the operator with --pipeline-image")
}
