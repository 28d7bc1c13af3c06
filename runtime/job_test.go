package runtime

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"
)

// TestJobReusedMessageIsRefilled: a job is reused with the Message in it; each use gets
// exactly its own message's fields and headers, whatever the job carried before.
func TestJobReusedMessageIsRefilled(t *testing.T) {
	g := NewWithT(t)
	hdr := func(k, v string) *sarama.RecordHeader { return &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)} }
	first := &sarama.ConsumerMessage{Topic: "a", Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte("v"),
		Headers: []*sarama.RecordHeader{hdr("h1", "1"), hdr("h2", "2"), hdr("h3", "3")}}
	second := &sarama.ConsumerMessage{Topic: "b", Partition: 2, Offset: 9, Value: []byte("w"),
		Headers: []*sarama.RecordHeader{hdr("x", "y")}}

	js := newJobs(nil, []*sarama.ConsumerMessage{first}, []int64{messageSize(first)}, time.Now())
	j := js[0]
	j.attempt = 1
	m := j.message()
	g.Expect(m.Headers).To(Equal([]Header{{"h1", []byte("1")}, {"h2", []byte("2")}, {"h3", []byte("3")}}))
	kept := m.Clone()
	j.recycle()

	// A later batch may get the same job back; fill it as newJobs does.
	j.msg, j.attempt = second, 2
	m = j.message()
	g.Expect(*m).To(Equal(Message{Topic: "b", Partition: 2, Offset: 9, Value: []byte("w"),
		Headers: []Header{{"x", []byte("y")}}, Attempt: 2}))
	g.Expect(kept.Topic).To(Equal("a"), "a clone is the handler's own")
	g.Expect(kept.Headers).To(HaveLen(3))
	g.Expect(kept.Offset).To(Equal(int64(7)))
}

// TestMessageCloneIsDeep: changing a clone's bytes leaves the original alone.
func TestMessageCloneIsDeep(t *testing.T) {
	g := NewWithT(t)
	m := &Message{Key: []byte("k"), Value: []byte("v"), Headers: []Header{{Key: "h", Value: []byte("1")}}}
	c := m.Clone()
	c.Key[0], c.Value[0], c.Headers[0].Value[0] = 'x', 'x', 'x'
	g.Expect(string(m.Key) + string(m.Value) + string(m.Headers[0].Value)).To(Equal("kv1"))
	g.Expect((&Message{}).Clone().Headers).To(BeNil())
}

// TestHeaderKeysOfTheLastMessageAreReused: refilling a job's Message whose header keys are
// those of its last message allocates nothing; a changed key is a new string.
func TestHeaderKeysOfTheLastMessageAreReused(t *testing.T) {
	g := NewWithT(t)
	m := &sarama.ConsumerMessage{Topic: "a", Value: []byte("v"), Headers: []*sarama.RecordHeader{
		{Key: []byte("trace"), Value: []byte("1")}, {Key: []byte("seq"), Value: []byte("2")}}}
	j := newJobs(nil, []*sarama.ConsumerMessage{m}, []int64{messageSize(m)}, time.Now())[0]
	g.Expect(j.message().Headers).To(Equal([]Header{{"trace", []byte("1")}, {"seq", []byte("2")}}))
	g.Expect(testing.AllocsPerRun(100, func() { j.message() })).To(BeZero())

	m.Headers[1].Key = []byte("seq2")
	g.Expect(j.message().Headers).To(Equal([]Header{{"trace", []byte("1")}, {"seq2", []byte("2")}}))
}
