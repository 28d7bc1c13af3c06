package lag

import (
	"slices"
	"sync"
)

// user is what one pipeline reads through a connection.
type user struct {
	topics []string
	group  string
}

// users is the registry of a connection's pipelines: what each reads, and the unions the
// shared reads need, kept by reference counts so that a poll (which re-registers its pipeline)
// costs nothing unless the pipeline's topics or group changed. With 10 000 pipelines on one
// cluster, recomputing the union on every poll was the reader's largest cost.
type users struct {
	mu        sync.Mutex
	byName    map[string]user           // pipeline -> what it reads
	topicRefs map[string]int            // topic -> pipelines reading it
	topics    []string                  // sorted union of the topics; replaced, never modified
	groups    map[string]map[string]int // group -> topic -> pipelines reading it with the group
}

func newUsers() *users {
	return &users{byName: map[string]user{}, topicRefs: map[string]int{}, groups: map[string]map[string]int{}}
}

// set registers the pipeline's topics and group, replacing what it read before.
func (u *users) set(pipeline string, topics []string, group string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if old, ok := u.byName[pipeline]; ok {
		if old.group == group && slices.Equal(old.topics, topics) {
			return
		}
		u.dropLocked(pipeline, old)
	}
	nu := user{topics: slices.Clone(topics), group: group}
	u.byName[pipeline] = nu
	gt := u.groups[group]
	if gt == nil {
		gt = map[string]int{}
		u.groups[group] = gt
	}
	grown := false
	for _, t := range nu.topics {
		gt[t]++
		u.topicRefs[t]++
		grown = grown || u.topicRefs[t] == 1
	}
	if grown {
		u.rebuildLocked()
	}
}

// remove drops the pipeline and reports whether no pipeline is left.
func (u *users) remove(pipeline string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if old, ok := u.byName[pipeline]; ok {
		u.dropLocked(pipeline, old)
	}
	return len(u.byName) == 0
}

func (u *users) dropLocked(pipeline string, old user) {
	delete(u.byName, pipeline)
	gt := u.groups[old.group]
	shrunk := false
	for _, t := range old.topics {
		if gt[t]--; gt[t] <= 0 {
			delete(gt, t)
		}
		if u.topicRefs[t]--; u.topicRefs[t] <= 0 {
			delete(u.topicRefs, t)
			shrunk = true
		}
	}
	if len(gt) == 0 {
		delete(u.groups, old.group)
	}
	if shrunk {
		u.rebuildLocked()
	}
}

func (u *users) rebuildLocked() {
	topics := make([]string, 0, len(u.topicRefs))
	for t := range u.topicRefs {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	u.topics = topics
}

// union is the sorted union of every pipeline's topics. The caller must not modify it.
func (u *users) union() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.topics
}

// groupTopics is every registered group with the topics its pipelines read.
func (u *users) groupTopics() map[string][]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string][]string, len(u.groups))
	for g, ts := range u.groups {
		topics := make([]string, 0, len(ts))
		for t := range ts {
			topics = append(topics, t)
		}
		out[g] = topics
	}
	return out
}
