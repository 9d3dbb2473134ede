package cli

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/pipeline"
)

func (a *app) workerCommand() *cobra.Command {
	var (
		workers int
		doms    []string
		format  string
		drain   bool
		follow  bool
		poll    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "worker --drain | --follow",
		Short: "Process queued partitions beside other workers on other machines (PostgreSQL meta store)",
		Long: `Claim queued partitions from the meta store and process them, as run does,
with no overlap lock: any number of workers on any number of machines share one
PostgreSQL meta store and one object store.

--drain exits once the queue is empty (a Kubernetes Job with parallelism N);
--follow keeps waiting for work: a run that queues partitions wakes it at once
(PostgreSQL LISTEN/NOTIFY), and it checks the queue every --poll anyway (a
Deployment, or docker compose up --scale worker=3). SIGTERM stops a worker; a partition it was
processing is marked FAILED as an interruption and retried without counting.

Workers only process. Discovery, late data, retries and the rescue of crashed
workers' leases stay in run, so a cron 'medallion run --no-process' feeds them.
A partition that fails waits as FAILED for that next run. A worker that stalls
past its lease (pipeline.lease_ttl) commits nothing: every Iceberg commit checks
the lease in the same transaction.

The SQLite meta store is on one machine: use 'medallion run --workers N' there.

Summary as run's; exit code 1 if a partition this worker processed failed.

Examples:
  medallion run --no-process && medallion worker --drain
  medallion worker --follow --workers 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if drain == follow {
				return usageError("worker needs exactly one of --drain (exit when the queue is empty) and --follow (keep waiting for work)")
			}
			if err := tableOrJSON(format); err != nil {
				return err
			}
			return a.work(cmd, pipeline.WorkOptions{Workers: workers, Domains: doms, Follow: follow, Poll: poll}, format)
		},
	}
	cmd.Flags().BoolVar(&drain, "drain", false, "exit once the queue is empty")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep waiting for work until stopped")
	cmd.Flags().DurationVar(&poll, "poll", pipeline.DefaultPoll, "with --follow, how often to check the queue when no run wakes the worker")
	cmd.Flags().IntVarP(&workers, "workers", "w", 0, "partitions processed in parallel (default pipeline.workers)")
	cmd.Flags().StringSliceVarP(&doms, "domain", "d", nil, "only these domains (repeat or comma-separate)")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "summary format: table or json")
	return cmd
}

func (a *app) work(cmd *cobra.Command, opts pipeline.WorkOptions, format string) error {
	ctx := cmd.Context()
	eng, err := a.openEngine(ctx)
	if err != nil {
		return err
	}
	defer eng.close()
	if err := checkDomains(eng, opts.Domains); err != nil {
		return err
	}
	sum, err := pipeline.Work(ctx, eng.deps, opts)
	if errors.Is(err, pipeline.ErrSingleMachine) {
		return usageError("%v", err)
	}
	pushMetrics(ctx, eng, sum)
	if err != nil {
		return runErr(err)
	}
	if err := printRun(cmd, sum, pipeline.Options{Command: "worker"}, format); err != nil {
		return err
	}
	if !sum.Healthy() {
		return &exitError{code: ExitFailed, err: errSilent}
	}
	return nil
}
