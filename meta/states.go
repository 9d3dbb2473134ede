package meta

import (
	"slices"

	"github.com/medallionlake/medallion/medtype"
)

// State is medtype.PartitionState, re-exported for brevity.
type State = medtype.PartitionState

// transitions is the one table of allowed state changes: from -> to.
//
//	happy path  UNDISCOVERED → PENDING → IN_FLIGHT → DONE
//	failure     IN_FLIGHT → FAILED → RETRYING → IN_FLIGHT …, FAILED → DEAD
//	late data   DONE → LATE → REPROCESSING → IN_FLIGHT → DONE
//	reset       any state but IN_FLIGHT and UNDISCOVERED → PENDING
//	            (backfill and reset; a leased partition belongs to its worker)
var transitions = map[State][]State{
	medtype.StateUndiscovered: {medtype.StatePending},
	medtype.StatePending:      {medtype.StateInFlight},
	medtype.StateInFlight:     {medtype.StateDone, medtype.StateFailed},
	medtype.StateDone:         {medtype.StateLate, medtype.StatePending},
	medtype.StateFailed:       {medtype.StateRetrying, medtype.StateDead, medtype.StatePending},
	medtype.StateRetrying:     {medtype.StateInFlight, medtype.StatePending},
	medtype.StateDead:         {medtype.StatePending},
	medtype.StateLate:         {medtype.StateReprocessing, medtype.StatePending},
	medtype.StateReprocessing: {medtype.StateInFlight, medtype.StatePending},
}

// CanTransition reports whether from -> to is in the transition table.
func CanTransition(from, to State) bool {
	return slices.Contains(transitions[from], to)
}

// AllowedFrom lists the states from which a partition may move to to, in
// lifecycle order.
func AllowedFrom(to State) []State {
	var out []State
	for _, from := range medtype.PartitionStates() {
		if CanTransition(from, to) {
			out = append(out, from)
		}
	}
	return out
}

// Queued are the states a worker claims from: new work, retries and late
// reprocessing. (FAILED and LATE are moved into RETRYING and REPROCESSING by
// Requeue at the start of a run.)
func Queued() []State {
	return []State{medtype.StatePending, medtype.StateRetrying, medtype.StateReprocessing}
}
