// Package sla checks each domain's `sla:`: a day's partition must be DONE
// by the end of that day (UTC) plus the domain's SLA.
package sla

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
)

// Miss is a partition past its SLA and still not DONE.
type Miss struct {
	Key medtype.PartitionKey `json:"partition"`
	// State is the partition's state; UNDISCOVERED when no bronze file
	// of that day arrived.
	State    meta.State    `json:"state"`
	Deadline time.Time     `json:"deadline"`
	Late     time.Duration `json:"late_ns"`
}

// Deadline is when the partition of date is due: the end of the day, UTC,
// plus sla.
func Deadline(date medtype.Date, sla time.Duration) time.Time {
	return date.AddDays(1).Time().Add(sla)
}

// Lookback bounds the check to the last 30 days: SLAs are about
// freshness, and a day without bronze long ago is history, not an alarm.
const Lookback = 30

// Check lists the partitions of doms past their SLA at now, of the last
// Lookback days, oldest first: tracked partitions not DONE (an archived
// one was DONE) whose deadline has passed, and the days since a domain's
// first tracked partition whose deadline has passed without any bronze
// arriving. A domain without an SLA, or without any partition yet, has
// none.
func Check(ctx context.Context, store meta.Store, doms []config.Domain, now time.Time) ([]Miss, error) {
	var open []meta.State
	for _, st := range medtype.PartitionStates() {
		if st != medtype.StateDone && st != medtype.StateUndiscovered {
			open = append(open, st)
		}
	}
	since := medtype.DateOf(now.UTC()).AddDays(-Lookback)
	var out []Miss
	for _, d := range doms {
		if d.SLA <= 0 {
			continue
		}
		l, err := store.Listing(ctx, d.Name)
		if err != nil {
			return nil, err
		}
		if l.Oldest.IsZero() {
			continue
		}
		f := meta.Filter{Domains: []string{d.Name}, From: since}
		dates, err := store.FileHashes(ctx, f)
		if err != nil {
			return nil, err
		}
		f.States = open
		parts, err := store.List(ctx, f)
		if err != nil {
			return nil, err
		}
		first := since
		if first.Before(l.Oldest) {
			first = l.Oldest
		}
		out = append(out, domainMisses(d, first, dates, parts, now)...)
	}
	sortMisses(out)
	return out, nil
}

// domainMisses is Check for one domain: its tracked dates and its
// partitions not DONE, and the first day to look for days without bronze.
func domainMisses(d config.Domain, first medtype.Date, dates map[medtype.PartitionKey]string, open []meta.Partition, now time.Time) []Miss {
	var out []Miss
	miss := func(day medtype.Date, state meta.State) {
		deadline := Deadline(day, d.SLA)
		out = append(out, Miss{Key: medtype.PartitionKey{Domain: d.Name, Date: day}, State: state, Deadline: deadline, Late: now.Sub(deadline)})
	}
	for _, p := range open {
		if Deadline(p.Key.Date, d.SLA).Before(now) {
			miss(p.Key.Date, p.Status)
		}
	}
	for day := first; Deadline(day, d.SLA).Before(now); day = day.AddDays(1) {
		if _, ok := dates[medtype.PartitionKey{Domain: d.Name, Date: day}]; !ok {
			miss(day, medtype.StateUndiscovered)
		}
	}
	return out
}

// sortMisses orders misses oldest date first, then by domain.
func sortMisses(ms []Miss) {
	slices.SortFunc(ms, func(a, b Miss) int {
		if c := a.Key.Date.Time().Compare(b.Key.Date.Time()); c != 0 {
			return c
		}
		return strings.Compare(a.Key.Domain, b.Key.Domain)
	})
}
