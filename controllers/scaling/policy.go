// Package scaling holds kpipe's pure scaling decisions: how much lag each partition has, which
// partitions are stalled, and how many replicas a pipeline should run. Nothing here talks to
// Kafka or Kubernetes; the reconciler gathers the inputs and applies the outputs.
package scaling

import (
	"fmt"
	"math"
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
	// MeasuredCapacity is msg/s per replica measured from the pods' telemetry (rate/busy); 0 = unknown.
	MeasuredCapacity float64
	// LastScale is when the replica count last changed, or zero when unknown.
	LastScale time.Time
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
	total := in.Lag + in.StalledLag
	idle := total == 0 && !in.Progress
	d := Decision{}
	if idle {
		d.Idle, d.IdleSince = true, orNow(in.IdleSince, in.Now)
	}

	if in.Current == 0 && p.MinReplicas == 0 {
		return decideAtZero(in, d, total)
	}

	w := wants{lag: ceilDiv(in.Lag, p.LagPerReplica)}
	ps := spread{in.Partitions, in.Assignment}
	upper := upperBound(p, ps)
	// What keeps up with the produce rate at the estimated per-replica rate (0: unknown).
	var keepUp int32
	if in.ReplicaRate > 0 && in.ProduceRate > 0 {
		keepUp = rateReplicas(in.ProduceRate, in.ReplicaRate, ps, upper)
	}
	raw := w.lag
	raw, w.settling = settle(in, raw, keepUp)
	// Scale-up to keep up: when the lag asks for more replicas than run now and the current
	// replicas cannot keep up with the produce rate, the scale-up goes at least to the keep-up
	// replicas, rather than to a count that rounding leaves as busy as now.
	if !w.settling && w.lag > in.Current && keepUp > in.Current && keepUp > raw {
		raw, w.rateUp = keepUp, true
	}
	// Rate floor: lag alone reads near zero whenever the replicas keep up, and would scale a
	// steady load down until they no longer do. A scale-down never goes below the replicas
	// that keep up with the current produce rate. The floor holds replicas, it never adds any
	// (lag does that), so an underestimated per-replica rate cannot push a pipeline up; it is
	// not part of the stabilization history, so once the produce rate drops the count falls to
	// what lag asked for within the window.
	if !idle && keepUp > 0 && in.Current > 0 {
		w.floor = bound(min(keepUp, in.Current), p, ps)
	}
	if in.StalledLag > 0 && raw == 0 {
		raw = 1 // someone must keep owning the stalled partitions
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
	w.stabilized = maxRecommendation(d.History)
	d.Recommendation = max(w.rec, w.floor)
	d.Replicas = max(w.stabilized, w.floor)
	d.Reason, d.Message = explain(in, d.Replicas, w)
	return d
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
	settling   bool  // lag held back while a scale change settles
	rateUp     bool  // scaled up to the replicas that keep up with the produce rate
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
	if raw > in.Current && in.Current > 0 && in.ReplicaRate > 0 && !in.LastScale.IsZero() &&
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
		why += fmt.Sprintf("; %d replicas cannot keep up with the produce rate %.0f msg/s at %.0f msg/s each", in.Current, in.ProduceRate, in.ReplicaRate)
	}
	if w.floor > w.rec {
		why += fmt.Sprintf("; produce rate %.0f msg/s at %.0f msg/s per replica holds %d", in.ProduceRate, in.ReplicaRate, w.floor)
	}
	if in.StalledLag > 0 {
		why += fmt.Sprintf("; %d lag on stalled partitions does not add replicas", in.StalledLag)
	}
	switch {
	case w.settling && replicas == in.Current:
		return ReasonSettling, fmt.Sprintf("lag %d (lagPerReplica %d) would want %d, but the scale change at %s is settling: the rebalance explains up to %.0f msg/s x %s, and %d replicas at %.0f msg/s each keep up with the produce rate",
			in.Lag, p.LagPerReplica, bound(w.lag, p, spread{in.Partitions, in.Assignment}), in.LastScale.UTC().Format(time.RFC3339), in.ProduceRate,
			in.Now.Sub(in.LastScale).Round(time.Second), in.Current, in.ReplicaRate)
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

// ceilDiv is ceil(lag/per) as an int32, saturating; lag below zero counts as zero.
func ceilDiv(lag, per int64) int32 {
	if lag <= 0 {
		return 0
	}
	if per <= 0 {
		per = 1
	}
	n := lag / per
	if lag%per != 0 {
		n++
	}
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}

// upperBound is min(maxReplicas, the replicas that get a partition) (maxReplicas when the
// partitions are unknown).
func upperBound(p Params, ps spread) int32 {
	if c := ps.cap(); c > 0 && c < p.MaxReplicas {
		return c
	}
	return p.MaxReplicas
}

// RateReplicas is the fewest replicas, up to upper, with which the busiest replica keeps up
// with the produce rate: it owns ceil(partitions / n) partitions of produce / partitions
// messages per second each (the traffic spread evenly, as the default partitioner does), and
// processes perReplica messages per second. upper when none does.
func RateReplicas(produce, perReplica float64, partitions, upper int32) int32 {
	return rateReplicas(produce, perReplica, spread{total: partitions}, upper)
}

func rateReplicas(produce, perReplica float64, ps spread, upper int32) int32 {
	if produce <= 0 {
		return 0
	}
	if perReplica <= 0 || upper <= 0 {
		return max(upper, 0)
	}
	if ps.total <= 0 {
		ps = spread{total: upper}
	}
	perPartition := produce / float64(ps.total)
	for n := int32(1); n < upper; n++ {
		if float64(ps.busiest(n))*perPartition <= perReplica {
			return n
		}
	}
	return upper
}

// bound applies [min, min(max, replicas that get a partition)] and the partition rounding.
func bound(n int32, p Params, ps spread) int32 {
	upper := upperBound(p, ps)
	if n > upper {
		n = upper
	}
	if n < p.MinReplicas {
		n = p.MinReplicas
	}
	if n > ps.cap() || ps.cap() <= 0 {
		return n // above the replicas that get a partition only because of minReplicas: leave it
	}
	return efficientReplicas(n, ps, p.MinReplicas)
}

// EfficientReplicas is the fewest replicas, at least floor (and at least 1), that give the
// busiest replica as few partitions as n replicas do: ceil(partitions/m) == ceil(partitions/n).
// Replicas beyond that count would only take partitions from the less busy replicas.
func EfficientReplicas(n, partitions, floor int32) int32 {
	return efficientReplicas(n, spread{total: partitions}, floor)
}

// efficientReplicas is EfficientReplicas for the partitions as the assignor spreads them.
func efficientReplicas(n int32, ps spread, floor int32) int32 {
	if n <= 0 || ps.total <= 0 {
		return n
	}
	load := ps.busiest(n)
	for m := max(floor, 1); m < n; m++ {
		if ps.busiest(m) == load {
			return m
		}
	}
	return n
}

// stabilize drops recommendations older than the window and appends rec.
func stabilize(history []Recommendation, now time.Time, window time.Duration, rec int32) []Recommendation {
	out := make([]Recommendation, 0, len(history)+1)
	for _, h := range history {
		if now.Sub(h.Time) < window {
			out = append(out, h)
		}
	}
	return append(out, Recommendation{Time: now, Replicas: rec})
}

func maxRecommendation(h []Recommendation) int32 {
	var m int32
	for _, r := range h {
		m = max(m, r.Replicas)
	}
	return m
}
