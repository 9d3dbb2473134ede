package lake

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/apache/iceberg-go/table"
)

// TestConflictKinds: a lost race is a conflict however iceberg-go reports
// it, "commit diverged" included, and nothing else is.
func TestConflictKinds(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("commit: %w", table.ErrCommitFailed):                                                                                               true,
		fmt.Errorf("commit: %w", table.ErrConflictingDataFiles):                                                                                       true,
		fmt.Errorf("commit: %w: base snapshot 12 is not an ancestor", table.ErrCommitDiverged):                                                        true,
		errors.New("requirement failed: current snapshot id changed"):                                                                                 true,
		errors.New("Requirement failed: current schema id has changed: expected 1, found 2"):                                                          true,
		errors.New("failed to create table: ERROR: could not serialize access due to read/write dependencies among transactions (SQLSTATE 40001)"):    true,
		errors.New("connection refused"):                                                                                                              false,
		fmt.Errorf("replace files: could not open manifest file: %w", &fs.PathError{Op: "open", Path: "t/metadata/snap-1.avro", Err: fs.ErrNotExist}): true,
		fmt.Errorf("replace files: %w", &fs.PathError{Op: "open", Path: "t/metadata/1-m1.avro", Err: fs.ErrNotExist}):                                 true,
		fmt.Errorf("replace files: %w", &fs.PathError{Op: "open", Path: "t/metadata/1-m1.avro", Err: fs.ErrPermission}):                               false,
		fmt.Errorf("read: %w", &fs.PathError{Op: "open", Path: "t/data/x.parquet", Err: fs.ErrNotExist}):                                              false,
	} {
		if got := isConflict(err); got != want {
			t.Errorf("isConflict(%v) = %v, want %v", err, got, want)
		}
	}
}
