package sink

import "github.com/segmentio/kafka-go"

// committer merges the commits of a generation's partitions that are
// waiting at the same moment into one request: a commit costs a round trip
// and most of a millisecond of CPU in kafka-go. Each partition still waits
// for its own commit before it starts its next batch.
type committer struct {
	gen  *kafka.Generation
	reqs chan commitReq
	quit chan struct{}
	done chan struct{}
}

type commitReq struct {
	topic     string
	partition int
	offset    int64
	result    chan error
}

func newCommitter(gen *kafka.Generation) *committer {
	c := &committer{gen: gen, reqs: make(chan commitReq, 64), quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *committer) run() {
	defer close(c.done)
	for {
		var batch []commitReq
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
		case <-c.quit:
			return
		}
	more:
		for {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		offsets := map[string]map[int]int64{}
		for _, r := range batch {
			if offsets[r.topic] == nil {
				offsets[r.topic] = map[int]int64{}
			}
			offsets[r.topic][r.partition] = r.offset
		}
		err := c.gen.CommitOffsets(offsets)
		for _, r := range batch {
			r.result <- err
		}
	}
}

// commit commits one partition's offset and waits for the result.
func (c *committer) commit(topic string, partition int, offset int64) error {
	r := commitReq{topic: topic, partition: partition, offset: offset, result: make(chan error, 1)}
	c.reqs <- r
	return <-r.result
}

// stop ends the committer once no partition of its generation runs.
func (c *committer) stop() {
	close(c.quit)
	<-c.done
}
