package config

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Source is one PostgreSQL database that domains are extracted from
// (medallion extract).
type Source struct {
	// URL is postgres://user:${PASSWORD}@host:5432/db.
	URL string `yaml:"url"`
	// Extracts, by name: the name is the extract's domain unless Domain
	// says otherwise.
	Extracts map[string]Extract `yaml:"extracts"`
}

// Extract modes.
const (
	ModeIncremental = "incremental"
	ModeSnapshot    = "snapshot"
	ModeCDC         = "cdc"
)

// Extract is one table or query of a source, into one domain's bronze.
type Extract struct {
	// Domain receives the rows (default: the extract's name).
	Domain string `yaml:"domain"`
	// Mode is incremental, snapshot (every row each time, stamped with the
	// extract's time in the domain's timestamp field) or cdc (the table's
	// changes from the write-ahead log, through a logical replication slot).
	Mode string `yaml:"mode"`
	// Table, Query or QueryFile (relative to the config file) is what is
	// read; each row becomes one JSON message, nested values included. An
	// extract of a built-in domain that sets none of them uses the
	// domain's built-in extract for its mode (domains/<name>/extract).
	//
	// A cdc extract reads Table's changes; its optional query adds
	// columns to each captured row: $1 is the text[] of the changed rows'
	// Key column, and the query returns that column and the ones it adds
	// (the orders' items), read when the change is extracted.
	Table     string `yaml:"table"`
	Query     string `yaml:"query"`
	QueryFile string `yaml:"query_file"`
	// Watermark is the timestamp column an incremental extract follows,
	// set by the database's clock; Key the columns that break its ties.
	Watermark string   `yaml:"watermark"`
	Key       []string `yaml:"key"`
	// Mask hashes columns before they leave the source: column: sha256.
	Mask map[string]string `yaml:"mask"`
	// Batch is the most rows read at a time (default 10000).
	Batch int `yaml:"batch"`
	// MaxRetainedWAL (cdc) is how much WAL the server may keep for the
	// slot before extract warns (default 1GiB): a stopped extractor makes
	// it grow.
	MaxRetainedWAL ByteSize `yaml:"max_retained_wal"`
}

// DomainName is the domain an extract named name writes.
func (e Extract) DomainName(name string) string {
	if e.Domain != "" {
		return e.Domain
	}
	return name
}

// RetainedWALLimit is MaxRetainedWAL, 1GiB when unset.
func (e Extract) RetainedWALLimit() int64 {
	if e.MaxRetainedWAL == 0 {
		return 1 << 30
	}
	return int64(e.MaxRetainedWAL)
}

// SourceNames are the configured sources, sorted.
func (c *Config) SourceNames() []string {
	names := make([]string, 0, len(c.Sources))
	for n := range c.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ExtractNames are a source's extracts, sorted.
func (s Source) ExtractNames() []string {
	names := make([]string, 0, len(s.Extracts))
	for n := range s.Extracts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// fillBuiltinExtracts completes every extract that names no table or
// query from its domain's built-in extract for its mode; the user's mask,
// batch and max_retained_wal are kept.
func (cfg *Config) fillBuiltinExtracts(c *checker) {
	for _, name := range cfg.SourceNames() {
		s := cfg.Sources[name]
		for _, en := range s.ExtractNames() {
			e := s.Extracts[en]
			if e.Table != "" || e.Query != "" || e.QueryFile != "" || e.Mode == "" {
				continue
			}
			b, modes, ok := BuiltinExtract(e.DomainName(en), e.Mode)
			if !ok {
				has := "has no built-in extract"
				if len(modes) > 0 {
					has = "has built-in extracts for " + strings.Join(modes, ", ") + " only"
				}
				c.add("sources."+name+".extracts."+en+".table", "domain %s %s: set table, query or query_file", e.DomainName(en), has)
				continue
			}
			b.Domain, b.Batch, b.MaxRetainedWAL = e.Domain, e.Batch, e.MaxRetainedWAL
			if len(e.Mask) > 0 {
				b.Mask = e.Mask
			}
			s.Extracts[en] = b
		}
	}
}

func (cfg *Config) validateSources(c *checker) {
	cfg.fillBuiltinExtracts(c)
	for _, name := range cfg.SourceNames() {
		s := cfg.Sources[name]
		key := "sources." + name
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			c.add(key+".url", "invalid URL: want postgres://user:${PASSWORD}@host:5432/db")
		}
		if len(s.Extracts) == 0 {
			c.add(key+".extracts", "a source needs at least one extract")
		}
		for _, en := range s.ExtractNames() {
			validateExtract(c, key+".extracts."+en, s.Extracts[en])
		}
	}
}

func validateExtract(c *checker, key string, e Extract) {
	switch e.Mode {
	case ModeIncremental:
		if e.Watermark == "" {
			c.add(key+".watermark", "an incremental extract needs the timestamp column it follows")
		}
		if len(e.Key) == 0 {
			c.add(key+".key", "an incremental extract needs the key columns that break the watermark's ties")
		}
	case ModeSnapshot:
		if e.Watermark != "" || len(e.Key) > 0 {
			c.add(key+".watermark", "a snapshot extract reads every row each time: drop watermark and key")
		}
	case ModeCDC:
		if e.Table == "" {
			c.add(key+".table", "a cdc extract captures one table's changes: set table")
		}
		if e.Watermark != "" {
			c.add(key+".watermark", "a cdc extract follows the write-ahead log: drop watermark")
		}
		if e.Table != "" && (e.Query != "" || e.QueryFile != "") != (len(e.Key) == 1) {
			c.add(key+".key", "a cdc extract's query, which adds columns to the changed rows, needs the one key column it is given ($1) and returns; set both or neither")
		}
		if e.Query != "" && e.QueryFile != "" {
			c.add(key+".query", "set one of query and query_file")
		}
		if e.MaxRetainedWAL < 0 {
			c.add(key+".max_retained_wal", "must not be negative")
		}
	default:
		c.add(key+".mode", "want incremental, snapshot or cdc, got %q", e.Mode)
	}
	if e.Mode != ModeCDC {
		validateSource(c, key, e)
	}
	for col, how := range e.Mask {
		if how != "sha256" {
			c.add(fmt.Sprintf("%s.mask.%s", key, col), "unknown mask %q (want sha256)", how)
		}
	}
	if e.Batch < 0 {
		c.add(key+".batch", "must not be negative")
	}
}

func validateSource(c *checker, key string, e Extract) {
	n := 0
	for _, s := range []string{e.Table, e.Query, e.QueryFile} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		c.add(key+".table", "set exactly one of table, query and query_file")
	}
}

// checkExtractDomains names every extract whose domain is not configured.
func (cfg *Config) checkExtractDomains(file string, lines map[string]int) Errors {
	var errs Errors
	for _, sn := range cfg.SourceNames() {
		for _, en := range cfg.Sources[sn].ExtractNames() {
			d := cfg.Sources[sn].Extracts[en].DomainName(en)
			if _, ok := cfg.Domain(d); ok {
				continue
			}
			key := "sources." + sn + ".extracts." + en
			var known []string
			for _, dom := range cfg.Domains {
				known = append(known, dom.Name)
			}
			errs = append(errs, &Error{File: file, Line: lineOf(lines, key), Key: key,
				Msg: fmt.Sprintf("no domain %q (configured: %s); name the extract after its domain or set domain:", d, strings.Join(known, ", "))})
		}
	}
	return errs
}
