package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/scaling"
)

// validate returns the spec with defaults applied, or why it is refused: a bad spec is
// terminal until it changes.
func (r *KafkaPipelineReconciler) validate(kp *kpipev1.KafkaPipeline) (*kpipev1.KafkaPipelineSpec, error) {
	spec := kp.Spec.DeepCopy()
	spec.Default()
	errs := spec.Validate()
	if len(errs) == 0 && r.Image == "" && (spec.Template == nil || spec.Template.Image == "") {
		errs = append(errs, fieldRequiredImage())
	}
	if len(errs) == 0 {
		return spec, nil
	}
	return nil, errs.ToAggregate()
}

func fieldRequiredImage() *field.Error {
	return field.Required(field.NewPath("spec", "template", "image"), "no image: set template.image or run the operator with --pipeline-image")
}

// current is the pipeline's Deployment as this reconcile found it.
type current struct {
	exists   bool               // the Deployment exists
	replicas int32              // its replicas (0 when it does not exist)
	dep      *appsv1.Deployment // as read from the cache; nil when not there
}

// loadDeployment reads the current replica count from the cache. The informer cache can lag
// behind the operator's own writes, so once this process applied the Deployment the replica
// count it applied wins over a possibly stale read.
func (r *KafkaPipelineReconciler) loadDeployment(ctx context.Context, key types.NamespacedName, cache applyCache) (current, error) {
	dep := &appsv1.Deployment{}
	// The cache's own object, not a copy: the reconcile only reads the Deployment it found.
	err := r.Get(ctx, key, dep, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err) && cache.initialized:
		return current{exists: true, replicas: cache.applied}, nil // created, not in the cache yet
	case apierrors.IsNotFound(err):
		return current{}, nil
	case err != nil:
		return current{}, fmt.Errorf("get deployment: %w", err)
	}
	cur := current{exists: true, replicas: 1, dep: dep}
	if dep.Spec.Replicas != nil {
		cur.replicas = *dep.Spec.Replicas
	}
	if cache.initialized {
		cur.replicas = cache.applied // the cache may not show our last write yet
	}
	return cur, nil
}

// observation is one successful poll of Kafka, turned into lag, with what the scaling memory
// made of it.
type observation struct {
	partitions    int32
	topics        []kpipev1.TopicStatus
	lags          []scaling.PartitionLag
	lag           int64 // all partitions
	stalledLag    int64 // of stuck partitions: adds no replicas
	slowLag       int64 // of partitions slow on serial work: adds no replicas either
	needsConsumer bool

	stalled  []scaling.TopicPartition // stuck partitions: their lag does not add replicas
	progress bool                     // some committed offset moved
	signals  signals                  // health, resting, measured capacity (signals.go)

	lagSeconds          int64 // the largest of the topics'
	partitionLagSeconds map[scaling.TopicPartition]float64
}

// pollTimeout bounds how long a reconcile waits for a read of Kafka that another pipeline of
// the same cluster has in progress. Each network step has its own, shorter timeout.
const pollTimeout = 30 * time.Second

// observe polls Kafka through the shared reader, unless the pipeline is suspended (then it
// returns nothing). A failure is a *waitError: replicas stay as they are and status says why.
func (r *KafkaPipelineReconciler) observe(ctx context.Context, key types.NamespacedName, spec *kpipev1.KafkaPipelineSpec,
	conn lag.Connection, cur current, st *pipelineState, now time.Time) (*observation, *waitError) {
	if spec.Suspend {
		r.Lag.Release(key.String())
		return nil, nil
	}
	poll := spec.Scaling.PollInterval.Duration
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	res, err := r.Lag.Poll(ctx, lag.Query{
		Pipeline: key.String(), Conn: conn, Topics: spec.Topics, Group: spec.Group, MaxAge: poll / 2,
		ReadCommitted: spec.Kafka.IsolationLevel == kpipev1.ReadCommitted,
	})
	if err != nil {
		pollDuration.WithLabelValues("error").Observe(time.Since(start).Seconds())
		reason := ReasonKafkaUnreachable
		if errors.Is(err, lag.ErrTopicNotFound) {
			reason = ReasonTopicNotFound
			err = fmt.Errorf("%w (the operator never creates topics)", err)
		}
		kafkaErrors.WithLabelValues(key.Namespace, key.Name, reason).Inc()
		return nil, &waitError{reason: reason, err: err}
	}
	pollDuration.WithLabelValues("ok").Observe(time.Since(start).Seconds())
	obs := toObservation(spec, res)
	r.remember(&st.memory, spec, res, cur, obs, now)
	if st.lags == nil {
		st.lags = lagClock{}
	}
	obs.setLagSeconds(st.lags.observe(res, obs.lags, healthParams(spec, r.stallPolls(), now)))
	recordLag(key.Namespace, key.Name, spec.Group, obs)
	return obs, nil
}

// toObservation turns offsets into lag, per partition, per topic and in all.
func toObservation(spec *kpipev1.KafkaPipelineSpec, res *lag.Result) *observation {
	earliest := spec.InitialOffset == kpipev1.InitialOffsetEarliest
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
	for _, t := range spec.Topics {
		n := res.Partitions[t]
		obs.partitions += n
		obs.topics = append(obs.topics, kpipev1.TopicStatus{Name: t, Partitions: n, Lag: perTopic[t]})
	}
	return obs
}

// setLagSeconds puts the partitions' lag in seconds into the observation: per topic and in
// all, the largest, rounded to whole seconds.
func (obs *observation) setLagSeconds(perPartition map[scaling.TopicPartition]float64) {
	obs.partitionLagSeconds = perPartition
	perTopic := topicLagSeconds(perPartition)
	obs.lagSeconds = 0
	for i := range obs.topics {
		s := int64(math.Round(perTopic[obs.topics[i].Name]))
		obs.topics[i].LagSeconds = s
		obs.lagSeconds = max(obs.lagSeconds, s)
	}
}

// runtimeCommitInterval is how often `kpipe run` commits (the runtime's default commit
// interval): a committed offset trails the processed one by up to this much.
const runtimeCommitInterval = time.Second

// remember feeds one poll to the pipeline's scaling memory (stall tracking, rate samples) and
// completes the observation with what it tracks: the stalled partitions, their lag, and
// whether commits progress. The replicas that may have consumed are the Deployment's, or more
// while a rollout runs old and new pods side by side.
func (r *KafkaPipelineReconciler) remember(mem *scaling.Memory, spec *kpipev1.KafkaPipelineSpec, res *lag.Result, cur current, obs *observation, now time.Time) {
	threshold := r.stallPolls()
	p := scaling.Poll{Offsets: res.Offsets, NewestAt: res.NewestAt, CommittedAt: res.CommittedAt, Replicas: cur.replicas}
	if cur.dep != nil {
		p.Replicas = max(p.Replicas, cur.dep.Status.Replicas) // old pods of a rollout consume too
	}
	mem.Observe(scaling.Observation{
		Now: now, PollInterval: spec.Scaling.PollInterval.Duration, Poll: p, Lags: obs.lags,
		Consuming:  cur.dep != nil && cur.dep.Status.ReadyReplicas > 0 && cur.replicas > 0,
		StallPolls: threshold, CommitInterval: runtimeCommitInterval,
	})
	// The memory tracks committed offsets that stood still; the pods' records and the group's
	// state tell which of those are stuck (see scaling.Classify). Only stuck partitions'
	// lag is left out of scale-up: a slow one's keeps counting.
	obs.progress = mem.Progress()
	obs.signals = classifyPartitions(obs.lags, mem.StalledSet(), res, healthParams(spec, threshold, now), *spec.Scaling.LagPerReplica)
	obs.stalled = obs.signals.stuck
	obs.stalledLag, obs.slowLag = obs.signals.stuckLag, obs.signals.slowLag
	// What the pods measured of themselves, by how many replicas shared the work: the policy
	// plans with it (Input.MeasuredCapacity) and finds a throttling sink's ceiling in it.
	members := cur.replicas
	if res.Group != nil {
		members = int32(len(res.Group.Members))
	}
	mem.ObserveCapacity(now, members, obs.signals.capacity)
}

// stallPolls is the stall threshold in polls (StallPolls, default 6).
func (r *KafkaPipelineReconciler) stallPolls() int {
	if r.StallPolls <= 0 {
		return 6
	}
	return r.StallPolls
}
