package scaling

// Assignment is how the group's assignor spreads the partitions of the consumed topics over
// the replicas. The zero value is one pool of Input.Partitions partitions.
type Assignment struct {
	// TopicPartitions are the partitions of each consumed topic.
	TopicPartitions []int32
	// PerTopic is true when the assignor assigns each topic on its own (Range): replica i of
	// n gets a range of every topic, and the first ones get one more of a topic whose
	// partitions do not divide by n. CooperativeSticky and RoundRobin spread the partitions
	// of all topics together.
	PerTopic bool
}

// spread is the partitions as the policy counts them: total and how they are assigned.
type spread struct {
	total int32
	a     Assignment
}

func (s spread) perTopic() bool { return s.a.PerTopic && len(s.a.TopicPartitions) > 0 }

// cap is the most replicas that get a partition: the partitions of the largest topic when
// each topic is assigned on its own, of all topics otherwise. 0 when unknown.
func (s spread) cap() int32 {
	if !s.perTopic() {
		return s.total
	}
	var most int32
	for _, n := range s.a.TopicPartitions {
		most = max(most, n)
	}
	return most
}

// busiest is the partitions of the busiest of n replicas: with each topic on its own, the
// first replica gets the larger share of every topic.
func (s spread) busiest(n int32) int32 {
	if !s.perTopic() {
		return ceilDiv32(s.total, n)
	}
	var load int32
	for _, p := range s.a.TopicPartitions {
		load += ceilDiv32(p, n)
	}
	return load
}

func ceilDiv32(a, b int32) int32 { return (a + b - 1) / b }

// WithWork is the most replicas that get a partition of the topics.
func (a Assignment) WithWork() int32 { return a.spread().cap() }

// Busiest is the partitions of the busiest of n replicas.
func (a Assignment) Busiest(n int32) int32 { return a.spread().busiest(n) }

func (a Assignment) spread() spread {
	var total int32
	for _, p := range a.TopicPartitions {
		total += p
	}
	return spread{total: total, a: a}
}
