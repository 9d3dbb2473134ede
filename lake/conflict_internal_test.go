package lake

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apache/iceberg-go/table"
)

// TestConflictKinds: a lost race is a conflict however iceberg-go reports
// it, "commit diverged" included, and nothing else is.
func TestConflictKinds(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("commit: %w", table.ErrCommitFailed):                                        true,
		fmt.Errorf("commit: %w", table.ErrConflictingDataFiles):                                true,
		fmt.Errorf("commit: %w: base snapshot 12 is not an ancestor", table.ErrCommitDiverged): true,
		errors.New("requirement failed: current snapshot id changed"):                          true,
		errors.New("Requirement failed: current schema id has changed: expected 1, found 2"):   true,
		errors.New("connection refused"):                                                       false,
	} {
		if got := isConflict(err); got != want {
			t.Errorf("isConflict(%v) = %v, want %v", err, got, want)
		}
	}
}
