package cli

import (
	"testing"
	"time"
)

func TestNextRuns(t *testing.T) {
	from := time.Date(2024, 1, 15, 6, 0, 0, 0, time.UTC)
	got, err := nextRuns("0 6 * * *", from, 2)
	if err != nil || got[0] != time.Date(2024, 1, 16, 6, 0, 0, 0, time.UTC) || got[1] != time.Date(2024, 1, 17, 6, 0, 0, 0, time.UTC) {
		t.Fatalf("next runs = %v, %v", got, err)
	}
	if _, err := nextRuns("0 25 * * *", from, 1); err == nil {
		t.Fatal("hour 25 accepted")
	}
}
