// Package scaling holds kpipe's pure scaling decisions: how much lag each partition has, which
// partitions are stalled, and how many replicas a pipeline should run. Nothing here talks to
// Kafka or Kubernetes; the reconciler gathers the inputs and applies the outputs.
package scaling

import (
	"fmt"
	"time"
)

// Params are a pipeline's scaling settings, defaults applied.
type Params struct {
	MinReplicas            int32
	MaxReplicas            int32
	LagPerReplica          int64
	ActivationLag          int64
	IdleWindow             time.Duration
	IdlePenalty            time.Duration
	ScaleDownStabilization time.Duration
	// PollInterval is how often Kafka is polled. A scale change settles for two poll
	// intervals (see Input.LastScale), and the settling rule projects the lag one poll ahead.
	PollInterval time.Duration
	// LagTimeTarget, when not zero, asks for the replicas that bring the lag under this many
	// seconds of work while keeping up with the produce rate: (lag / target + produce rate)
	// over the per-replica capacity (spec.scaling.lagTimeTarget). Zero: no time target.
	LagTimeTarget time.Duration
	// CommitInterval is how often the pods commit. A committed offset trails the processed
	// one by up to this much, so that much of the produce rate is lag even when the replicas
	// keep up; with a per-replica capacity known, the lag rules leave it out. Zero: not known,
	// all lag counts.
	CommitInterval time.Duration
}

// Recommendation is the replica count the policy wanted at one poll.
type Recommendation struct {
	Time     time.Time
	Replicas int32
}

// Input is everything one decision depends on.
type Input struct {
	Params Params
	Now    time.Time
	// Partitions is the number of partitions across the consumed topics.
	Partitions int32
	// Assignment is how the group's assignor spreads them: it decides how many replicas get
	// a partition (the cap) and how many the busiest gets (the partition rounding).
	Assignment Assignment
	// Lag is the lag of the partitions that are not stalled; it drives scaling.
	Lag int64
	// StalledLag is the lag of stalled partitions. It keeps the pipeline awake but never drives
	// a scale-up by itself: more replicas do not unstick a partition.
	StalledLag int64
	// SlowLag is the lag of partitions whose pods report them slow (old in-flight work, still
	// progressing: one key's serial work, a handler that takes minutes) beyond one replica's
	// worth each (SlowLagBeyondOneReplica; the rest is in Lag). Like stalled lag it keeps the
	// pipeline awake and one replica running, and it adds no replicas: a partition is owned by
	// one replica whatever their count. Unlike stalled lag it is not a failure.
	SlowLag int64
	// Progress is true when some committed offset moved since the previous poll.
	Progress bool
	// NeedsConsumer is true when some partition has no usable committed offset and the group
	// starts from the Latest offset: a consumer must run to establish the group's position,
	// because one started later would skip what was produced in between. It keeps (or wakes)
	// one replica, never more.
	NeedsConsumer bool
	// Current is the replica count of the Deployment now.
	Current int32
	// IdleSince is when the pipeline was first seen idle (no lag, no progress), or nil.
	IdleSince *time.Time
	// ZeroSince is when the policy scaled the pipeline to zero for being idle, or nil when it
	// is not at zero for that reason. The idle penalty counts from it.
	ZeroSince *time.Time
	// History holds earlier recommendations, for the scale-down stabilization window.
	History []Recommendation

	// ProduceRate is the growth of the log-end offsets of the partitions that are not
	// stalled, in messages per second, between the last two polls (zero when unknown).
	ProduceRate float64
	// ReplicaRate is the estimated number of messages per second one replica processes (the
	// highest per-replica commit rate measured recently, see Capacity), or zero when unknown.
	// The rate floor and the settling rule apply only when it is known.
	ReplicaRate float64
	// LastScale is when the replica count last changed, or zero when unknown.
	LastScale time.Time

	// MeasuredCapacity is what one replica can process, in messages per second, as the pods
	// report it in their telemetry (processed rate over busy fraction), 0 when unknown. Unlike
	// ReplicaRate it is not a lower bound: when known it is used as is, in place of
	// ReplicaRate, by every rule that needs a per-replica rate. When more replicas lowered it
	// (a sink that throttles), MaxThroughput says so.
	MeasuredCapacity float64
	// MaxThroughput is the most messages per second the pipeline processed whatever its
	// replicas, when more replicas were measured to add nothing (each processing less, the
	// total flat: a throttling sink, a shared downstream), 0 when no such ceiling is known.
	// No rule asks for more replicas than reach it at MeasuredCapacity (see Throughput).
	MaxThroughput float64
}

// Reasons of a decision. They are used as event reasons and in the Idle condition.
const (
	ReasonScaledUp        = "ScaledUp"
	ReasonScaledDown      = "ScaledDown"
	ReasonSteady          = "Steady"
	ReasonStabilizing     = "ScaleDownStabilizing"
	ReasonIdleToZero      = "ScaledToZero"
	ReasonIdlePenalty     = "IdlePenalty"
	ReasonBelowActivation = "BelowActivationLag"
	ReasonActivated       = "Activated"
	ReasonSettling        = "SettlingAfterScale"
)

// Decision is the outcome of one poll.
type Decision struct {
	// Replicas is the replica count to apply.
	Replicas int32
	// Recommendation is what this poll asked for, bounds and partition rounding applied,
	// before stabilization: the lag's count (after settling and the scale-up to keep up), or
	// the rate floor when that is higher. Only the lag's count enters History.
	Recommendation int32
	// Reason is one of the Reason constants; Message says why in words.
	Reason  string
	Message string
	// Idle is true while the pipeline has no lag and no commit progress, or rests at zero.
	Idle bool
	// IdleSince is the new value of status.idleSince.
	IdleSince *time.Time
	// History is the recommendation history to keep for the next poll.
	History []Recommendation
}

// Decide computes the replica count for one poll:
//
//   - ceil(lag / lagPerReplica), within [minReplicas, min(maxReplicas, partitions)] (a
//     minReplicas above the partition count is honoured: those replicas are standbys);
//   - rounded down to the fewest replicas that give the busiest replica the same number of
//     partitions (for 10 partitions only 1, 2, 3, 4, 5 and 10 are used);
//   - settling: within two poll intervals of a scale change, lag the rebalance explains
//     (produce rate x time since the change, plus the current replicas' share) does not add
//     replicas while the current replicas keep up with the produce rate;
//   - when the lag asks for more replicas than run now and they cannot keep up with the
//     produce rate, the scale-up goes at least to the replicas that do;
//   - scale-ups are immediate; a scale-down goes to the highest recommendation made within the
//     stabilization window, and never below the replicas that keep up with the produce rate
//     at the estimated per-replica rate (the rate floor, capped at the current count);
//   - with minReplicas 0: to zero once the pipeline has been idle (no lag, no commit progress)
//     for the idle window; at zero it stays for the idle penalty, then wakes when the lag is
//     above activationLag.
func Decide(in Input) Decision {
	p := in.Params
	total := in.Lag + in.StalledLag + in.SlowLag
	idle := total == 0 && !in.Progress
	d := Decision{}
	if idle {
		d.Idle, d.IdleSince = true, orNow(in.IdleSince, in.Now)
	}

	if in.Current == 0 && p.MinReplicas == 0 {
		return decideAtZero(in, d, total)
	}

	ps := spread{in.Partitions, in.Assignment}
	upper := upperBound(p, ps)
	c := capacityOf(in, ps, upper)
	raw, w := wanted(in, c, ps, upper)
	// Rate floor: lag alone reads near zero whenever the replicas keep up, and would scale a
	// steady load down until they no longer do. A scale-down never goes below the replicas
	// that keep up with the current produce rate. The floor holds replicas, it never adds any
	// (lag does that), so an underestimated per-replica rate cannot push a pipeline up; it is
	// not part of the stabilization history, so once the produce rate drops the count falls to
	// what lag asked for within the window.
	if !idle && w.keepUp > 0 && in.Current > 0 {
		w.floor = bound(min(w.keepUp, in.Current), p, ps)
	}
	if in.StalledLag+in.SlowLag > 0 && raw == 0 {
		raw = 1 // someone must keep owning the stalled or slow partitions
	}
	if raw == 0 && w.floor == 0 && p.MinReplicas == 0 {
		if !in.NeedsConsumer && d.IdleSince != nil && in.Now.Sub(*d.IdleSince) >= p.IdleWindow {
			d.Replicas, d.Recommendation, d.Reason = 0, 0, ReasonIdleToZero
			d.Message = fmt.Sprintf("no lag and no commit progress for %s (idle window %s): scaling to zero",
				in.Now.Sub(*d.IdleSince).Round(time.Millisecond), p.IdleWindow)
			d.History = nil
			return d
		}
		raw = 1 // keep one replica until the idle window confirms the pipeline is idle
	}
	w.rec = bound(raw, p, ps)
	d.History = stabilize(in.History, in.Now, p.ScaleDownStabilization, w.rec)
	w.stabilized = stabilized(d.History, in.Now, p.ScaleDownStabilization, p.PollInterval, in.Current, w.rec)
	if c.useful < upper {
		// The window remembers counts asked before the ceiling was known; they add nothing.
		w.stabilized = min(w.stabilized, max(bound(c.useful, p, ps), w.rec))
	}
	d.Recommendation = max(w.rec, w.floor)
	d.Replicas = max(w.stabilized, w.floor)
	d.Reason, d.Message = explain(in, d.Replicas, w)
	return d
}

// wanted is the count the lag rules ask for, before bounds, rounding and stabilization: the
// lag (the commit trail left out) or the lag time target, held while a scale change settles,
// raised to the keep-up replicas when the current ones cannot keep up, and capped at a
// measured throughput ceiling. w holds how it got there, and the keep-up replicas.
func wanted(in Input, c capacity, ps spread, upper int32) (int32, wants) {
	w := wants{lag: ceilDiv(in.Lag-c.trail, in.Params.LagPerReplica)}
	// What keeps up with the produce rate at the per-replica capacity (0: unknown).
	if c.perReplica > 0 && in.ProduceRate > 0 {
		w.keepUp = min(rateReplicas(in.ProduceRate*c.headroom, c.perReplica, ps, upper), c.useful)
	}
	raw := max(w.lag, lagTimeReplicas(in, c, ps, upper, &w))
	raw, w.settling = settle(in, raw, w.keepUp)
	// Scale-up to keep up: when the lag asks for more replicas than run now (or, with a
	// measured capacity, the produce rate alone) and the current replicas cannot keep up with
	// the produce rate, the scale-up goes at least to the keep-up replicas, rather than to a
	// count that rounding leaves as busy as now.
	if !w.settling && (w.lag > in.Current || in.MeasuredCapacity > 0) && w.keepUp > in.Current && w.keepUp > raw {
		raw, w.rateUp = w.keepUp, true
	}
	// A measured throughput ceiling: replicas beyond those that reach it add nothing.
	if c.useful < upper && raw > c.useful {
		raw, w.ceiling = c.useful, true
	}
	return raw, w
}

// orNow is t, or now when t is nil.
func orNow(t *time.Time, now time.Time) *time.Time {
	if t != nil {
		return t
	}
	return &now
}

// wants is how Decide arrived at its count, for explain.
type wants struct {
	lag        int32 // ceil(lag / lagPerReplica)
	rec        int32 // the recommendation, bounds and rounding applied
	floor      int32 // the rate floor, or 0
	stabilized int32 // the highest recommendation within the stabilization window
	target     int32 // the replicas the lag time target asks for, or 0
	keepUp     int32 // the replicas that keep up with the produce rate, or 0 when unknown
	settling   bool  // lag held back while a scale change settles
	rateUp     bool  // scaled up to the replicas that keep up with the produce rate
	ceiling    bool  // capped at the replicas that reach the measured throughput ceiling
}

// settle is the settling rule. A scale change pauses consumption while the group rebalances,
// and lag builds up meanwhile; at the next poll that lag says nothing yet about whether the new
// count keeps up. Within two poll intervals of a change, lag up to what the produce rate builds
// in the time since the change (plus the replicas' own share) does not add replicas, provided
// the current replicas keep up with the produce rate. Lag beyond that, or a produce rate they
// cannot keep up with, scales up as usual. It returns the count to go on with and whether the
// rule held it.
func settle(in Input, raw, keepUp int32) (int32, bool) {
	p := in.Params
	if raw > in.Current && in.Current > 0 && in.perReplica() > 0 && !in.LastScale.IsZero() &&
		in.Now.Sub(in.LastScale) < 2*p.PollInterval && keepUp <= in.Current {
		explained := in.ProduceRate*in.Now.Sub(in.LastScale).Seconds() + float64(in.Current)*float64(p.LagPerReplica)
		if float64(in.Lag) <= explained {
			return in.Current, true
		}
	}
	return raw, false
}

// explain is the reason and message of a decision for replicas.
func explain(in Input, replicas int32, w wants) (string, string) {
	p := in.Params
	why := fmt.Sprintf("lag %d (lagPerReplica %d) over %d partitions wants %d", in.Lag, p.LagPerReplica, in.Partitions, w.rec)
	if w.rateUp {
		why += fmt.Sprintf("; %d replicas cannot keep up with the produce rate %.0f msg/s at %.0f msg/s each", in.Current, in.ProduceRate, in.perReplica())
	}
	if w.floor > w.rec {
		why += fmt.Sprintf("; produce rate %.0f msg/s at %.0f msg/s per replica holds %d", in.ProduceRate, in.perReplica(), w.floor)
	}
	if w.target > w.lag {
		why += fmt.Sprintf("; lagTimeTarget %s at %.0f msg/s per replica (produce rate %.0f msg/s) wants %d", p.LagTimeTarget, in.perReplica(), in.ProduceRate, w.target)
	}
	if w.ceiling {
		why += fmt.Sprintf("; the pipeline processed at most %.0f msg/s whatever its replicas: more than %d add nothing", in.MaxThroughput, w.rec)
	}
	if in.StalledLag > 0 {
		why += fmt.Sprintf("; %d lag on stalled partitions does not add replicas", in.StalledLag)
	}
	if in.SlowLag > 0 {
		why += fmt.Sprintf("; %d lag on slow partitions (serial work) does not add replicas", in.SlowLag)
	}
	switch {
	case w.settling && replicas == in.Current:
		return ReasonSettling, fmt.Sprintf("lag %d (lagPerReplica %d) would want %d, but the scale change at %s is settling: the rebalance explains up to %.0f msg/s x %s, and %d replicas at %.0f msg/s each keep up with the produce rate",
			in.Lag, p.LagPerReplica, bound(w.lag, p, spread{in.Partitions, in.Assignment}), in.LastScale.UTC().Format(time.RFC3339), in.ProduceRate,
			in.Now.Sub(in.LastScale).Round(time.Second), in.Current, in.perReplica())
	case replicas > in.Current:
		return ReasonScaledUp, why
	case replicas < in.Current:
		return ReasonScaledDown, why + fmt.Sprintf(" (highest within the %s stabilization window)", p.ScaleDownStabilization)
	case w.stabilized < in.Current:
		return ReasonSteady, why + fmt.Sprintf("; the produce rate holds %d", replicas)
	case w.rec < in.Current:
		return ReasonStabilizing, why + fmt.Sprintf("; holding %d within the %s stabilization window", replicas, p.ScaleDownStabilization)
	default:
		return ReasonSteady, why
	}
}

func decideAtZero(in Input, d Decision, total int64) Decision {
	p := in.Params
	d.Idle = true
	if d.IdleSince == nil {
		d.IdleSince = in.IdleSince
		if d.IdleSince == nil {
			now := in.Now
			d.IdleSince = &now
		}
	}
	if in.ZeroSince != nil && in.Now.Sub(*in.ZeroSince) < p.IdlePenalty {
		d.Reason = ReasonIdlePenalty
		d.Message = fmt.Sprintf("resting at zero for the idle penalty %s (since %s), lag %d",
			p.IdlePenalty, in.ZeroSince.UTC().Format(time.RFC3339), total)
		return d
	}
	if total <= p.ActivationLag && in.NeedsConsumer {
		d.Replicas, d.Recommendation = 1, 1
		d.Reason = ReasonActivated
		d.Message = "a partition has no committed offset and initialOffset is Latest: waking one replica to establish the group's position"
		d.History = []Recommendation{{Time: in.Now, Replicas: 1}}
		return d
	}
	if total <= p.ActivationLag {
		d.Reason = ReasonBelowActivation
		d.Message = fmt.Sprintf("lag %d is not above activationLag %d: staying at zero", total, p.ActivationLag)
		return d
	}
	// Stalled partitions cannot exist at zero replicas (nobody consumes), so all lag counts.
	rec := bound(max(ceilDiv(total, p.LagPerReplica), 1), p, spread{in.Partitions, in.Assignment})
	d.Replicas, d.Recommendation = rec, rec
	d.Reason = ReasonActivated
	d.Message = fmt.Sprintf("lag %d is above activationLag %d: waking up with %d replicas", total, p.ActivationLag, rec)
	d.Idle, d.IdleSince = false, nil
	d.History = []Recommendation{{Time: in.Now, Replicas: rec}}
	return d
}
