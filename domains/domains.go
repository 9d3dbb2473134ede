package domains

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/medallionlake/medallion/config"
)

// Spec is what a domain package registers: its name and its SQL files.
type Spec struct {
	Name string
	// SQL holds parse.sql, silver/<table>.sql and gold/<table>.sql (see the
	// package documentation for what each must produce).
	SQL fs.FS
}

// Registry maps domain names to specs. Default is the process-wide one the
// domain packages register into from init(); tests may build their own.
type Registry struct {
	mu    sync.RWMutex
	specs map[string]Spec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{specs: map[string]Spec{}} }

// Default is the registry domain packages register into.
var Default = NewRegistry()

// MustRegister registers spec in Default; it panics on an invalid spec or a
// duplicate name, like database/sql.Register.
func MustRegister(spec Spec) {
	if err := Default.Register(spec); err != nil {
		panic(err)
	}
}

// MustRegisterFolder registers a built-in domain's embedded folder:
// domain.yaml (its configuration), sql/ (its SQL) and extract/ (its
// built-in extracts, if any). The whole of a domain package's
// registration is
//
//	//go:embed domain.yaml sql extract
//	var files embed.FS
//
//	func init() { domains.MustRegisterFolder("orders", files) }
func MustRegisterFolder(name string, fsys fs.FS) {
	sub, err := fs.Sub(fsys, "sql")
	if err != nil {
		panic(fmt.Errorf("domains: %s: %w", name, err))
	}
	MustRegister(Spec{Name: name, SQL: sub})
	if err := config.RegisterBuiltin(name, fsys); err != nil {
		panic(fmt.Errorf("domains: %w", err))
	}
}

// Register adds a spec after checking its SQL files are present.
func (r *Registry) Register(spec Spec) error {
	if spec.Name == "" || spec.SQL == nil {
		return errors.New("domains: register of a spec without name or SQL")
	}
	if _, err := fs.Stat(spec.SQL, "parse.sql"); err != nil {
		return fmt.Errorf("domains: %s has no parse.sql: %w", spec.Name, err)
	}
	if _, err := fs.Stat(spec.SQL, "silver/"+spec.Name+".sql"); err != nil {
		return fmt.Errorf("domains: %s has no silver/%s.sql (the main silver table): %w", spec.Name, spec.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.specs[spec.Name]; dup {
		return fmt.Errorf("domains: %s registered twice", spec.Name)
	}
	r.specs[spec.Name] = spec
	return nil
}

// Lookup returns a registered spec.
func (r *Registry) Lookup(name string) (Spec, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.specs[name]
	if !ok {
		return Spec{}, fmt.Errorf("unknown domain %q (forgotten import?)", name)
	}
	return s, nil
}

// Names lists the registered domains, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for n := range r.specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Domain is a registered spec bound to its configuration: everything the
// engine needs to process one of its partitions.
type Domain struct {
	config.Domain
	Parse  string
	Silver []Query // the main table (named after the domain) first
	Gold   []GoldQuery
}

// Writes reports whether the domain writes the table namespace.name:
// one of its silver or gold tables, or its quarantine table.
func (d Domain) Writes(namespace, name string) bool {
	switch namespace {
	case "silver":
		return slices.ContainsFunc(d.Silver, func(q Query) bool { return q.Table == name })
	case "gold":
		return slices.ContainsFunc(d.Gold, func(g GoldQuery) bool { return g.Table == name })
	case "quarantine":
		return name == d.Name
	}
	return false
}

// Query is one output table and the SELECT that produces it.
type Query struct {
	Table string
	SQL   string
}

// GoldQuery is a gold table's configuration and its SELECT.
type GoldQuery struct {
	config.GoldTable
	SQL string
}

// Bind checks a configured domain against its registered SQL: every gold
// table in the YAML needs gold/<table>.sql and every gold SQL file needs a
// YAML entry, so a typo cannot silently drop a table.
func (r *Registry) Bind(cfg config.Domain) (Domain, error) {
	spec, err := r.Lookup(cfg.Name)
	if err != nil {
		return Domain{}, fmt.Errorf("%s: %w", cfg.File, err)
	}
	d := Domain{Domain: cfg}
	if d.Parse, err = readSQL(spec, "parse.sql"); err != nil {
		return Domain{}, err
	}
	silver, err := fs.Glob(spec.SQL, "silver/*.sql")
	if err != nil {
		return Domain{}, err
	}
	slices.SortFunc(silver, func(a, b string) int {
		// The main table first: child tables may read it.
		am, bm := tableOf(a) == cfg.Name, tableOf(b) == cfg.Name
		if am != bm {
			if am {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, f := range silver {
		q, err := readSQL(spec, f)
		if err != nil {
			return Domain{}, err
		}
		d.Silver = append(d.Silver, Query{Table: tableOf(f), SQL: q})
	}
	goldFiles, err := fs.Glob(spec.SQL, "gold/*.sql")
	if err != nil {
		return Domain{}, err
	}
	configured := map[string]bool{}
	for _, g := range cfg.Gold {
		configured[g.Table] = true
		q, err := readSQL(spec, "gold/"+g.Table+".sql")
		if err != nil {
			return Domain{}, fmt.Errorf("%s: gold table %s: %w", cfg.File, g.Table, err)
		}
		d.Gold = append(d.Gold, GoldQuery{GoldTable: g, SQL: q})
	}
	for _, f := range goldFiles {
		if !configured[tableOf(f)] {
			return Domain{}, fmt.Errorf("%s: domain %s has %s but no gold entry for table %s", cfg.File, cfg.Name, f, tableOf(f))
		}
	}
	return d, nil
}

func tableOf(file string) string { return strings.TrimSuffix(path.Base(file), ".sql") }

func readSQL(spec Spec, name string) (string, error) {
	b, err := fs.ReadFile(spec.SQL, name)
	if err != nil {
		return "", fmt.Errorf("domain %s: %w", spec.Name, err)
	}
	q := strings.TrimSpace(string(b))
	q = strings.TrimSuffix(q, ";")
	if q == "" {
		return "", fmt.Errorf("domain %s: %s is empty", spec.Name, name)
	}
	return q, nil
}

// BindAll binds every configured domain.
func (r *Registry) BindAll(cfgs []config.Domain) ([]Domain, error) {
	var out []Domain
	for _, c := range cfgs {
		d, err := r.Bind(c)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
