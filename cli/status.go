package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/extract"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/sla"
)

// storedStates are the states a partition row can have (UNDISCOVERED is the
// absence of a row), with ARCHIVED, which status counts apart from DONE.
func storedStates() []meta.State {
	states := slices.DeleteFunc(medtype.PartitionStates(), func(s meta.State) bool { return s == medtype.StateUndiscovered })
	done := slices.Index(states, medtype.StateDone)
	return slices.Insert(states, done+1, medtype.StateArchived) // DONE partitions whose bronze retention deleted
}

type statusOptions struct {
	format string
	domain string
	date   string
	limit  int
}

func (a *app) statusCommand() *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show partitions by state, one domain's partitions, or one partition's history",
		Long: `Show the partition state machine.

  medallion status                                  partitions by domain and state, those past their SLA, and the last runs
  medallion status --domain orders                  every partition of a domain
  medallion status --domain orders --date 2024-01-15  one partition and its history

A partition is past its SLA when its day ended (UTC) more than the domain's
sla ago and it is not DONE, or no bronze arrived for it at all (NO BRONZE);
the last 30 days are checked.

Exits 1 when any partition shown is FAILED or DEAD, so cron alerting can use it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.status(cmd, o) },
	}
	cmd.Flags().StringVarP(&o.format, "format", "f", "table", "output format: table or json")
	cmd.Flags().StringVarP(&o.domain, "domain", "d", "", "show one domain's partitions")
	cmd.Flags().StringVar(&o.date, "date", "", "with --domain: show one partition (YYYY-MM-DD) and its history")
	cmd.Flags().IntVar(&o.limit, "limit", 20, "history events and runs to show")
	return cmd
}

type summaryRow struct {
	Domain string         `json:"domain"`
	Counts map[string]int `json:"counts"`
	Total  int            `json:"total"`
}

type summaryOut struct {
	Config  string       `json:"config"`
	Store   string       `json:"store"`
	Domains []summaryRow `json:"domains"`
	Total   summaryRow   `json:"total"`
	Runs    []meta.Run   `json:"runs"`
	PastSLA []sla.Miss   `json:"past_sla"`
	// Extracts are the positions of medallion extract's extracts, and
	// the warnings about them (a cdc slot keeping too much WAL).
	Extracts        []meta.ExtractState `json:"extracts"`
	ExtractWarnings []string            `json:"extract_warnings"`
}

func (a *app) status(cmd *cobra.Command, o statusOptions) error {
	if err := tableOrJSON(o.format); err != nil {
		return err
	}
	if o.date != "" && o.domain == "" {
		return usageError("--date needs --domain")
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if o.domain != "" {
		if _, ok := cfg.Domain(o.domain); !ok {
			return usageError("unknown domain %q (configured: %s)", o.domain, strings.Join(domainNames(cfg), ", "))
		}
	}
	ctx := cmd.Context()
	store, err := a.openMeta(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	var unhealthy bool
	switch {
	case o.date != "":
		unhealthy, err = a.partitionStatus(cmd, store, o)
	case o.domain != "":
		unhealthy, err = a.domainStatus(cmd, store, o)
	default:
		unhealthy, err = a.summaryStatus(cmd, cfg, store, o)
	}
	if err != nil {
		return err
	}
	if unhealthy {
		return &exitError{code: ExitFailed, err: errSilent}
	}
	return nil
}

func domainNames(cfg *config.Config) []string {
	var out []string
	for _, d := range cfg.Domains {
		out = append(out, d.Name)
	}
	return out
}

func (a *app) summaryStatus(cmd *cobra.Command, cfg *config.Config, store meta.Store, o statusOptions) (bool, error) {
	counts, err := store.Summary(cmd.Context())
	if err != nil {
		return false, err
	}
	runs, err := store.Runs(cmd.Context(), min(o.limit, 5))
	if err != nil {
		return false, err
	}
	misses, err := sla.Check(cmd.Context(), store, cfg.Domains, time.Now())
	if err != nil {
		return false, err
	}
	extracts, err := store.Extracts(cmd.Context())
	if err != nil {
		return false, err
	}
	out := summaryOut{Config: describeSource(cfg), Store: store.Kind(), Runs: runs, PastSLA: misses, Extracts: extracts}
	rows := map[string]*summaryRow{}
	row := func(d string) *summaryRow {
		if r, ok := rows[d]; ok {
			return r
		}
		r := &summaryRow{Domain: d, Counts: map[string]int{}}
		for _, s := range storedStates() {
			r.Counts[string(s)] = 0
		}
		rows[d] = r
		return r
	}
	for _, d := range cfg.Domains {
		row(d.Name)
	}
	out.Total = *row("TOTAL")
	delete(rows, "TOTAL")
	for _, c := range counts {
		r := row(c.Domain)
		r.Counts[string(c.State)] += c.Count
		r.Total += c.Count
		out.Total.Counts[string(c.State)] += c.Count
		out.Total.Total += c.Count
	}
	for _, r := range rows {
		out.Domains = append(out.Domains, *r)
	}
	slices.SortFunc(out.Domains, func(x, y summaryRow) int { return strings.Compare(x.Domain, y.Domain) })
	unhealthy := out.Total.Counts[string(medtype.StateFailed)] > 0 || out.Total.Counts[string(medtype.StateDead)] > 0
	if out.Runs == nil {
		out.Runs = []meta.Run{}
	}
	if out.Domains == nil {
		out.Domains = []summaryRow{}
	}
	if out.PastSLA == nil {
		out.PastSLA = []sla.Miss{}
	}
	if out.Extracts == nil {
		out.Extracts = []meta.ExtractState{}
	}
	out.ExtractWarnings = extractWarnings(cfg, out.Extracts)

	w := cmd.OutOrStdout()
	if o.format == "json" {
		return unhealthy, writeJSON(w, out)
	}
	fmt.Fprintf(w, "Partitions by state (%s store, config: %s)\n\n", out.Store, out.Config)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"DOMAIN"}
	for _, s := range storedStates() {
		header = append(header, string(s))
	}
	fmt.Fprintln(tw, strings.Join(append(header, "TOTAL"), "\t")+"\t")
	for _, r := range append(out.Domains, out.Total) {
		cells := []string{r.Domain}
		for _, s := range storedStates() {
			cells = append(cells, fmt.Sprint(r.Counts[string(s)]))
		}
		fmt.Fprintln(tw, strings.Join(append(cells, fmt.Sprint(r.Total)), "\t")+"\t")
	}
	tw.Flush()
	if out.Total.Total == 0 {
		fmt.Fprintln(w, "\nNo partitions tracked yet: `medallion run` discovers them from bronze.")
	}
	printPastSLA(w, out.PastSLA)
	printExtracts(w, out.Extracts, out.ExtractWarnings)
	if len(out.Runs) > 0 {
		fmt.Fprintln(w, "\nLast runs:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tCOMMAND\tSTARTED\tDURATION\tOUTCOME\tPARTITIONS\tDONE\tFAILED")
		for _, r := range out.Runs {
			dur := "-"
			if !r.FinishedAt.IsZero() {
				dur = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", r.ID, r.Command, r.StartedAt.Format(time.RFC3339), dur, r.Outcome, r.Partitions, r.Done, r.Failed)
		}
		tw.Flush()
	}
	return unhealthy, nil
}

func (a *app) domainStatus(cmd *cobra.Command, store meta.Store, o statusOptions) (bool, error) {
	parts, err := store.List(cmd.Context(), meta.Filter{Domains: []string{o.domain}})
	if err != nil {
		return false, err
	}
	unhealthy := slices.ContainsFunc(parts, func(p meta.Partition) bool {
		return p.Status == medtype.StateFailed || p.Status == medtype.StateDead
	})
	w := cmd.OutOrStdout()
	if o.format == "json" {
		if parts == nil {
			parts = []meta.Partition{}
		}
		return unhealthy, writeJSON(w, parts)
	}
	if len(parts) == 0 {
		fmt.Fprintf(w, "No partitions tracked for domain %s yet.\n", o.domain)
		return false, nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tSTATUS\tFILES\tRECORDS\tSILVER\tGOLD\tRETRIES\tATTEMPTS\tPROCESSED\tERROR")
	for _, p := range parts {
		processed := "-"
		if !p.ProcessedAt.IsZero() {
			processed = p.ProcessedAt.Format(time.RFC3339)
		}
		status := p.Status
		if !p.ArchivedAt.IsZero() {
			status = medtype.StateArchived
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Key.Date, status, len(p.SourceFiles), p.RecordCount,
			p.SilverRecords, p.GoldRecords, p.RetryCount, p.Attempts, processed, truncate(p.ErrorMessage, 80))
	}
	return unhealthy, tw.Flush()
}

type partitionOut struct {
	meta.Partition
	History []meta.Event `json:"history"`
}

func (a *app) partitionStatus(cmd *cobra.Command, store meta.Store, o statusOptions) (bool, error) {
	date, err := medtype.ParseDate(o.date)
	if err != nil {
		return false, usageError("--date: %v", err)
	}
	key := medtype.PartitionKey{Domain: o.domain, Date: date}
	p, err := store.Get(cmd.Context(), key)
	if err != nil {
		return false, fmt.Errorf("partition %s: not tracked (UNDISCOVERED): %w", key, err)
	}
	hist, err := store.History(cmd.Context(), key, o.limit)
	if err != nil {
		return false, err
	}
	unhealthy := p.Status == medtype.StateFailed || p.Status == medtype.StateDead
	w := cmd.OutOrStdout()
	if o.format == "json" {
		if hist == nil {
			hist = []meta.Event{}
		}
		return unhealthy, writeJSON(w, partitionOut{p, hist})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	field("partition", key)
	field("status", p.Status)
	if !p.ArchivedAt.IsZero() {
		field("archived", p.ArchivedAt.Format(time.RFC3339)+" (bronze.retention deleted its bronze files; it cannot be reprocessed)")
	}
	field("records (bronze)", p.RecordCount)
	field("silver records", p.SilverRecords)
	field("gold records", p.GoldRecords)
	field("source files", len(p.SourceFiles))
	field("file hash", p.FileHash)
	field("retries", p.RetryCount)
	field("attempts", p.Attempts)
	if p.ErrorMessage != "" {
		field("last error", p.ErrorMessage)
	}
	if p.LeasedBy != "" {
		field("leased by", fmt.Sprintf("%s until %s", p.LeasedBy, p.LeaseExpiresAt.Format(time.RFC3339)))
	}
	tables := make([]string, 0, len(p.Snapshots))
	for t := range p.Snapshots {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		field("snapshot "+t, p.Snapshots[t])
	}
	field("created", p.CreatedAt.Format(time.RFC3339))
	field("updated", p.UpdatedAt.Format(time.RFC3339))
	if !p.ProcessedAt.IsZero() {
		field("processed", p.ProcessedAt.Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nHistory (newest first):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tFROM\tTO\tRUN\tWORKER\tMESSAGE")
	for _, e := range hist {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.From, e.To, e.RunID, e.Worker, truncate(e.Message, 100))
	}
	return unhealthy, tw.Flush()
}

// printPastSLA lists the partitions past their domain's SLA, the 20
// oldest and a count of the rest.
func printPastSLA(w io.Writer, misses []sla.Miss) {
	if len(misses) == 0 {
		return
	}
	fmt.Fprintf(w, "\nPast their SLA (%d; a day is due at its end, UTC, plus the domain's sla):\n", len(misses))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tDATE\tSTATE\tDUE\tLATE BY")
	for _, m := range misses[:min(len(misses), 20)] {
		state := string(m.State)
		if m.State == medtype.StateUndiscovered {
			state = "NO BRONZE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Key.Domain, m.Key.Date, state, m.Deadline.Format(time.RFC3339), m.Late.Round(time.Minute))
	}
	tw.Flush()
	if len(misses) > 20 {
		fmt.Fprintf(w, "and %d more (--format json lists them all)\n", len(misses)-20)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// printExtracts lists each extract's position, its lag (how old its
// watermark or snapshot is; for cdc, the WAL its slot keeps), how long
// since it last succeeded, and its last error; then the warnings.
func printExtracts(w io.Writer, extracts []meta.ExtractState, warnings []string) {
	if len(extracts) == 0 {
		return
	}
	fmt.Fprintln(w, "\nExtracts:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tEXTRACT\tMODE\tROWS\tUP TO\tLAG\tLAST SUCCESS\tERROR")
	for _, e := range extracts {
		upTo := extract.PositionText(e.Position)
		if upTo == "" {
			upTo = "-"
		}
		success := "never"
		if !e.LastSuccessAt.IsZero() {
			success = time.Since(e.LastSuccessAt).Round(time.Second).String() + " ago"
		}
		errMsg := "-"
		if e.LastError != "" && !e.LastRunAt.Equal(e.LastSuccessAt) {
			errMsg = truncate(e.LastError, 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.Source, e.Extract, e.Mode, e.Rows, upTo, extractLag(e), success, errMsg)
	}
	tw.Flush()
	for _, warn := range warnings {
		fmt.Fprintln(w, "WARNING: "+warn)
	}
}

// extractLag is how far behind an extract is: the WAL a cdc slot keeps,
// else the age of its watermark or last snapshot.
func extractLag(e meta.ExtractState) string {
	if e.Mode == config.ModeCDC {
		if e.RetainedWAL < 0 {
			return "-"
		}
		return config.ByteSize(e.RetainedWAL).String() + " of WAL"
	}
	at, ok := extract.PositionTime(e.Position)
	if !ok {
		return "-"
	}
	return time.Since(at).Round(time.Second).String()
}

// extractWarnings names each cdc slot that kept more WAL than its
// extract's max_retained_wal when it last ran.
func extractWarnings(cfg *config.Config, extracts []meta.ExtractState) []string {
	out := []string{}
	for _, e := range extracts {
		x, ok := cfg.Sources[e.Source].Extracts[e.Extract]
		if !ok || e.Mode != config.ModeCDC || e.RetainedWAL <= x.RetainedWALLimit() {
			continue
		}
		out = append(out, e.Source+"."+e.Extract+": "+walWarning(extract.SlotName(e.Source, e.Extract), e.RetainedWAL, x.RetainedWALLimit()))
	}
	return out
}
