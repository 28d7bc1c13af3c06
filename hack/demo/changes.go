package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// scaleChange is one replica change the operator made, from its events.
type scaleChange struct {
	at       time.Time
	from, to int
	reason   string
}

// scaledRE reads the from and to counts of the operator's Scale event note.
var scaledRE = regexp.MustCompile(`^scaled from (\d+) to (\d+) replicas`)

// scaleChanges lists the pipeline's Scale events, oldest first. The operator records one per
// replica change ("scaled from N to M replicas: why", reason the policy's).
func scaleChanges(ctx context.Context, c client.Client) ([]scaleChange, error) {
	var list eventsv1.EventList
	if err := c.List(ctx, &list, client.InNamespace(pipelineKey.Namespace)); err != nil {
		return nil, err
	}
	var out []scaleChange
	for _, e := range list.Items {
		if e.Regarding.Name != pipelineKey.Name || e.Action != "Scale" {
			continue
		}
		m := scaledRE.FindStringSubmatch(e.Note)
		if m == nil {
			continue
		}
		from, _ := strconv.Atoi(m[1])
		to, _ := strconv.Atoi(m[2])
		at := e.EventTime.Time
		if at.IsZero() {
			at = e.CreationTimestamp.Time
		}
		out = append(out, scaleChange{at: at, from: from, to: to, reason: e.Reason})
	}
	slices.SortStableFunc(out, func(a, b scaleChange) int { return a.at.Compare(b.at) })
	return out, nil
}

// printChanges writes the scale changes with their time since start and the phase they fell in.
func printChanges(changes []scaleChange, start time.Time, phases []phaseMark) {
	fmt.Printf("  scale changes         %d\n", len(changes))
	for _, c := range changes {
		fmt.Printf("    %5.1fs  %-8s %2d -> %-2d  %s\n", c.at.Sub(start).Seconds(), phaseAt(phases, c.at), c.from, c.to, c.reason)
	}
}

// phaseMark is when a phase of the scenario began.
type phaseMark struct {
	at   time.Time
	name string
}

func phaseAt(phases []phaseMark, t time.Time) string {
	name := ""
	for _, p := range phases {
		if !t.Before(p.at) {
			name = p.name
		}
	}
	return name
}
