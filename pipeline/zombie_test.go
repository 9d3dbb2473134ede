package pipeline_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/storage"
)

// TestZombieDuplicatesAreHarmless: the one duplicate the sink can leave in
// bronze is a zombie's (a member that wrote after losing its partitions):
// the same topic, partition and offset in a second file, under the key of
// its first offset. Silver's dedup removes them, so every table equals the
// model, as without them.
func TestZombieDuplicatesAreHarmless(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "sqlite+local", nil, nil)
	msgs, err := generate.Generate(generate.Options{Seed: 11, Start: medtype.MustDate("2024-01-15"), Days: 2, EventsPerDay: 2000,
		Duplicates: 0.02, Malformed: 0.002})
	must(t, err)
	e.write(t, msgs, false)
	objs, err := storage.ListAll(ctx, e.deps.Bucket, bronze.Root+"/")
	must(t, err)
	copied := 0
	for _, o := range objs {
		data, err := storage.ReadAll(ctx, e.deps.Bucket, o.Key)
		must(t, err)
		recs, err := bronze.Decode(bytes.NewReader(data), int64(len(data)))
		must(t, err)
		f, err := bronze.ParseKey(o.Key)
		must(t, err)
		if len(recs) < 2 {
			continue
		}
		zombie := recs[len(recs)/2:] // the zombie's remainder, past a file the new owner wrote
		f.StartOffset = zombie[0].Offset
		must(t, bronze.Put(ctx, e.deps.Bucket, f, zombie))
		copied += len(zombie)
	}
	if copied == 0 {
		t.Fatal("no duplicates were written")
	}
	allDone(t, e.run(t, pipeline.Options{}))
	e.checkTables(t, buildModel(msgs, false))
	t.Logf("%d rows were in bronze twice", copied)
}
