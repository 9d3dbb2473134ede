// Package cli is the medallion command line: cobra commands that load the
// configuration, open the stores and call the engine. Logs go to stderr
// (log/slog); results go to stdout.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/meta"
)

// Exit codes, for cron and alerting.
const (
	// ExitOK: everything processed.
	ExitOK = 0
	// ExitFailed: some partitions failed or are dead, or the command failed.
	ExitFailed = 1
	// ExitUsage: bad flags, arguments or configuration.
	ExitUsage = 2
)

// exitError carries an exit code up to Main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// tableOrJSON checks a --format flag of the commands that print table or json.
func tableOrJSON(format string) error {
	if format != "table" && format != "json" {
		return usageError("--format %q: want table or json", format)
	}
	return nil
}

// app is the state shared by all commands.
type app struct {
	configPath string
	logLevel   string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	log        *slog.Logger
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainWithInput(args, os.Stdin, stdout, stderr)
}

// MainWithInput is Main with stdin given (the query prompt reads it).
func MainWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitFailed
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case config.IsConfigError(err):
		code = ExitUsage
	case isCobraUsageError(err):
		code = ExitUsage
	}
	if !(errors.As(err, &ee) && ee.err == errSilent) {
		msg := err.Error()
		if config.IsConfigError(err) && strings.Contains(msg, "\n") {
			msg = "invalid configuration:\n  " + strings.ReplaceAll(msg, "\n", "\n  ")
		} else if config.IsConfigError(err) {
			msg = "invalid configuration: " + msg
		}
		fmt.Fprintln(stderr, "medallion:", msg)
		if code == ExitUsage && !config.IsConfigError(err) {
			fmt.Fprintln(stderr, "Run 'medallion --help' for usage.")
		}
	}
	return code
}

// errSilent marks an exit code whose message the command already printed.
var errSilent = errors.New("")

// isCobraUsageError recognises cobra's own argument and flag errors, which
// it returns as plain errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "medallion",
		Short: "Medallion: a medallion lakehouse batch engine (Kafka -> bronze -> silver -> gold)",
		Long: `Medallion sinks Kafka topics to raw Parquet (bronze), turns bronze into typed,
deduplicated records (silver) and business aggregates (gold) with DuckDB, and
tracks every (domain, date) partition in a state machine so cron runs are
idempotent, failures retry and late data is reprocessed.

Configuration comes from --config, else $MEDALLION_CONFIG, else ./medallion.yaml,
else the embedded defaults (local ./lakehouse and ./medallion.db). Any key can be
overridden with MEDALLION_<PATH>, e.g. MEDALLION_PIPELINE_WORKERS=4.

Exit codes: 0 ok, 1 partitions failed or dead (or the command failed),
2 usage or configuration error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
				return usageError("--log-level %q: want debug, info, warn or error", a.logLevel)
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			slog.SetDefault(a.log)
			return nil
		},
	}
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "config file (default $MEDALLION_CONFIG, else ./medallion.yaml, else embedded defaults)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError("%v", err) })
	root.AddCommand(a.demoCommand(), a.extractCommand(), a.runCommand(), a.workerCommand(), a.backfillCommand(), a.statusCommand(), a.queryCommand(), a.tablesCommand(), a.verifyCommand(), a.maintainCommand(), a.generateCommand(), a.sinkCommand(), a.scheduleCommand(), a.serveCommand())
	return root
}

// loadConfig finds and loads the configuration.
func (a *app) loadConfig() (*config.Config, error) {
	path := config.Find(a.configPath)
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if path == "" {
		a.log.Debug("no config file; using embedded defaults")
	} else {
		a.log.Debug("loaded config", "file", path, "domains", len(cfg.Domains))
	}
	return cfg, nil
}

// openMeta opens the state store named by the configuration.
func (a *app) openMeta(ctx context.Context, cfg *config.Config) (meta.Store, error) {
	s, err := meta.Open(ctx, cfg.Meta.URL)
	if err != nil {
		return nil, fmt.Errorf("open meta store (meta.url in %s): %w", describeSource(cfg), err)
	}
	return s, nil
}

func describeSource(cfg *config.Config) string {
	if cfg.File == "" {
		return "embedded defaults"
	}
	return cfg.File
}
