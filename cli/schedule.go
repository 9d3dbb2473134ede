package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/pipeline"
)

func (a *app) scheduleCommand() *cobra.Command {
	var spec string
	cmd := &cobra.Command{
		Use:   `schedule --cron "0 6 * * *"`,
		Short: "Run `medallion run` on a cron schedule (UTC), for containers without cron",
		Long: `Stay up and run the pipeline at every time the cron expression names (five
fields, UTC), like a cron entry for 'medallion run'. A run that finds another
one in progress is skipped, not queued. SIGTERM stops between runs, or
interrupts the running one (its partitions are retried by the next run).

Example (docker-compose, daily at 06:00 UTC):
  medallion schedule --cron "0 6 * * *"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sched, err := cron.ParseStandard(spec)
			if err != nil {
				return usageError("--cron %q: %v", spec, err)
			}
			ctx := cmd.Context()
			eng, err := a.openEngine(ctx)
			if err != nil {
				return err
			}
			defer eng.close()
			for {
				next := sched.Next(time.Now().UTC())
				a.log.Info("next run", "at", next.Format(time.RFC3339), "cron", spec)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Until(next)):
				}
				sum, err := pipeline.Run(ctx, eng.deps, pipeline.Options{Command: "schedule"})
				switch {
				case errors.Is(err, pipeline.ErrOverlap):
					a.log.Warn("skipped: another run is in progress")
				case err != nil:
					a.log.Error("scheduled run failed", "error", err)
				default:
					printSummary(cmd.OutOrStdout(), sum, pipeline.Options{})
					if !sum.Healthy() {
						a.log.Error("scheduled run finished with FAILED or DEAD partitions", "run", sum.RunID)
					}
				}
			}
		},
	}
	cmd.Flags().StringVar(&spec, "cron", "0 6 * * *", "five-field cron expression, UTC")
	return cmd
}

// nextRuns lists the next n times of a cron expression after from (for
// --help and tests).
func nextRuns(spec string, from time.Time, n int) ([]time.Time, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid cron expression %q: %w", spec, err)
	}
	var out []time.Time
	for t := from; len(out) < n; {
		t = s.Next(t)
		out = append(out, t)
	}
	return out, nil
}
