package lag

import (
	"errors"
	"slices"

	"github.com/IBM/sarama"

	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
)

// Group states as DescribeGroups reports them (the classic group protocol).
const (
	GroupStable              = "Stable"
	GroupPreparingRebalance  = "PreparingRebalance"
	GroupCompletingRebalance = "CompletingRebalance"
	GroupEmpty               = "Empty"
	GroupDead                = "Dead"
)

// GroupState is a consumer group's state and membership as its coordinator described it.
type GroupState struct {
	// State is one of the Group* constants (another string from a newer broker is kept as is).
	State string
	// Members are the members' client ids ("client-id@host"), sorted: with kpipe, a
	// replica's client id is its pod name.
	Members []string
}

// Rebalancing reports whether the group is between generations: its partitions have no
// owner, or owners about to change, so their commits do not move.
func (g *GroupState) Rebalancing() bool {
	return g != nil && (g.State == GroupPreparingRebalance || g.State == GroupCompletingRebalance)
}

// describeOn asks one coordinator for the state of all its due groups in one DescribeGroups
// request (every broker version takes several groups). A failed request or a group answered
// with an error (the coordinator moved, not authorized) leaves that group's state unknown:
// the operator then falls back to what committed offsets alone tell.
func (c *conn) describeOn(b *sarama.Broker, groups []string, out map[string]*groupRead) {
	req := &sarama.DescribeGroupsRequest{Groups: groups}
	if c.conf.Version.IsAtLeast(sarama.V2_0_0_0) {
		req.Version = 2 // one the runtime's supported brokers all speak; fields used are in v0
	}
	resp, err := b.DescribeGroups(req)
	if err != nil {
		return
	}
	for _, gd := range resp.Groups {
		gr := out[gd.GroupId]
		if gd == nil || gr == nil || gr.err != nil || !errors.Is(gd.Err, sarama.ErrNoError) {
			continue
		}
		gs := &GroupState{State: gd.State, Members: make([]string, 0, len(gd.Members))}
		for _, m := range gd.Members {
			gs.Members = append(gs.Members, m.ClientId+"@"+m.ClientHost)
		}
		slices.Sort(gs.Members)
		gr.group = gs
	}
}

// decodeRecords reads the telemetry record of each partition's commit metadata. Metadata that
// is not a kpipe record, or one of another version, gives no record: the operator then falls
// back to its estimates from offsets.
func decodeRecords(blocks map[string]map[int32]*sarama.OffsetFetchResponseBlock) map[scaling.TopicPartition]*telemetry.Record {
	var out map[scaling.TopicPartition]*telemetry.Record
	for t, bs := range blocks {
		for p, blk := range bs {
			if blk == nil || blk.Metadata == "" || !errors.Is(blk.Err, sarama.ErrNoError) {
				continue
			}
			rec, err := telemetry.Decode(blk.Metadata)
			if err != nil {
				continue
			}
			if out == nil {
				out = map[scaling.TopicPartition]*telemetry.Record{}
			}
			out[scaling.TopicPartition{Topic: t, Partition: p}] = &rec
		}
	}
	return out
}
