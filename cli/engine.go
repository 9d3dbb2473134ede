package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/medallionlake/medallion/alert"
	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/domains"
	"github.com/medallionlake/medallion/duck"
	"github.com/medallionlake/medallion/gold"
	"github.com/medallionlake/medallion/lake"
	"github.com/medallionlake/medallion/meta"
	"github.com/medallionlake/medallion/pipeline"
	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage/client"
)

// engine holds everything a run, backfill or query opens.
type engine struct {
	cfg   *config.Config
	deps  pipeline.Deps
	close func()
}

// openEngine opens the meta store, storage, Iceberg catalog and DuckDB, and
// binds the configured domains to their registered SQL.
func (a *app) openEngine(ctx context.Context) (*engine, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	doms, err := domains.Default.BindAll(cfg.Domains)
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: err}
	}
	store, err := a.openMeta(ctx, cfg)
	if err != nil {
		return nil, err
	}
	closers := []func(){func() { store.Close() }}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	bucket, err := client.Open(ctx, cfg.Storage)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("open storage (storage.url in %s): %w", describeSource(cfg), err)
	}
	lk, err := lake.Open(ctx, store, bucket, cfg.Storage.S3)
	if err != nil {
		closeAll()
		return nil, err
	}
	db, err := duck.Open(cfg.DuckDB)
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, func() { db.Close() })
	var exp *gold.Exporter
	if pg := cfg.Export.Postgres; pg.URL != "" {
		if exp, err = gold.OpenExporter(ctx, pg.URL, pg.Schema); err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, exp.Close)
	}
	notifier, closeAlerts, err := openAlerts(cfg, store, a.log)
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, closeAlerts)
	var prog io.Writer
	if f, ok := a.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		prog = a.stderr
	}
	return &engine{cfg: cfg, close: closeAll, deps: pipeline.Deps{
		Config: cfg, Store: store, Bucket: bucket, Lake: lk, Duck: db, Exporter: exp, Alerts: notifier, Domains: doms, Log: a.log, Progress: prog,
	}}, nil
}

// openAlerts builds the alert sinks of the alerts config (none: a
// notifier that sends nothing).
func openAlerts(cfg *config.Config, store meta.Store, log *slog.Logger) (*alert.Notifier, func(), error) {
	var senders []alert.Sender
	closeAll := func() {}
	if u := cfg.Alerts.WebhookURL; u != "" {
		senders = append(senders, &alert.Webhook{URL: u})
	}
	if k := cfg.Alerts.Kafka; k.Enabled {
		d, err := sink.Dialer(cfg.Kafka)
		if err != nil {
			return nil, nil, &exitError{code: ExitUsage, err: fmt.Errorf("alerts.kafka: %w", err)}
		}
		topic := alert.NewTopic(cfg.Kafka.Brokers, k.Topic, sink.Transport(d))
		senders = append(senders, topic)
		closeAll = func() { topic.Close() }
	}
	return alert.New(store, log, time.Duration(cfg.Alerts.Timeout), senders...), closeAll, nil
}

// runErr maps pipeline errors to exit codes.
func runErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, meta.ErrArchived):
		return &exitError{code: ExitUsage, err: err}
	case errors.Is(err, pipeline.ErrOverlap):
		return &exitError{code: ExitFailed, err: err}
	case errors.Is(err, context.Canceled):
		return &exitError{code: ExitFailed, err: errors.New("interrupted; partitions in flight were marked FAILED and will be retried")}
	}
	return err
}
