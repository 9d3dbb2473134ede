package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// DefaultFile is the config file looked for in the working folder when
// --config is not given.
const DefaultFile = "medallion.yaml"

// Find picks the config file: the explicit path if given, else
// $MEDALLION_CONFIG, else ./medallion.yaml if it exists, else "" (the
// embedded defaults).
func Find(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if env := os.Getenv("MEDALLION_CONFIG"); env != "" {
		return env
	}
	if _, err := os.Stat(DefaultFile); err == nil {
		return DefaultFile
	}
	return ""
}

// Load reads the config file at path ("" for the embedded defaults), applies
// MEDALLION_* overrides, loads the domain files and validates everything.
// Relative paths in the file are resolved against the file's folder, so a
// config behaves the same whatever folder cron starts in. Any error is an
// Errors value (see IsConfigError).
func Load(path string) (*Config, error) {
	cfg := Defaults()
	cfg.File = path
	base, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	dec := newDecoder(path)
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, Errors{{File: path, Msg: readError(err)}}
		}
		dec.decodeFile(data, &cfg)
		if abs, err := filepath.Abs(filepath.Dir(path)); err == nil {
			base = abs
		}
	}
	envOf := map[string]string{}
	applyEnv(reflect.ValueOf(&cfg).Elem(), "", envOf, &dec.errs)
	if len(dec.errs) > 0 {
		return nil, dec.errs
	}

	errs := locate(cfg.validate(), path, dec.lines, envOf)
	if len(errs) > 0 {
		return nil, errs
	}
	cfg.resolvePaths(base)

	domains, derrs := loadDomains(cfg.DomainsDir, explicitKey(dec.lines, envOf, "domains_dir"))
	if len(derrs) > 0 {
		return nil, derrs
	}
	if domains, derrs = enable(domains, cfg.Enabled, path, dec.lines); len(derrs) > 0 {
		return nil, derrs
	}
	if derrs := checkTopics(domains); len(derrs) > 0 {
		return nil, derrs
	}
	cfg.Domains = domains
	if errs := cfg.checkExtractDomains(path, dec.lines); len(errs) > 0 {
		return nil, errs
	}
	if cfg.Export.Postgres.URL == "" {
		for _, d := range domains {
			for i, g := range d.Gold {
				if g.Export {
					return nil, Errors{{File: d.File, Key: fmt.Sprintf("gold[%d].export", i),
						Msg: fmt.Sprintf("table %s is marked for export but export.postgres.url is not set in %s", g.Table, configName(path))}}
				}
			}
		}
	}
	return &cfg, nil
}

func configName(path string) string {
	if path == "" {
		return "the configuration"
	}
	return path
}

func readError(err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return "config file not found"
	}
	return err.Error()
}

func explicitKey(lines map[string]int, envOf map[string]string, key string) bool {
	_, inFile := lines[key]
	_, inEnv := envOf[key]
	return inFile || inEnv
}

// loadDomains is the built-in domains, replaced or added to by every
// *.yaml in dir. A missing folder is an error only when the user named it.
func loadDomains(dir string, explicit bool) ([]Domain, Errors) {
	all, err := BuiltinDomains()
	if err != nil {
		return nil, Errors{{Msg: err.Error()}}
	}
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return all, nil
		}
		return nil, Errors{{Key: "domains_dir", Msg: fmt.Sprintf("cannot read %s: %v", dir, err)}}
	}
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		files = append(files, m...)
	}
	sort.Strings(files)
	var errs Errors
	byName := map[string]string{}
	for _, f := range files {
		d, ferrs := LoadDomainFile(f)
		if len(ferrs) > 0 {
			errs = append(errs, ferrs...)
			continue
		}
		if prev, dup := byName[d.Name]; dup {
			errs = append(errs, &Error{File: f, Key: "name", Msg: fmt.Sprintf("domain %q is already defined in %s", d.Name, prev)})
			continue
		}
		byName[d.Name] = f
		all = slices.DeleteFunc(all, func(b Domain) bool { return b.Name == d.Name })
		all = append(all, d)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, errs
}

// enable keeps the domains listed under domains: (all when it is empty).
func enable(all []Domain, names []string, file string, lines map[string]int) ([]Domain, Errors) {
	if len(names) == 0 {
		return all, nil
	}
	var out []Domain
	var errs Errors
	for _, n := range names {
		i := slices.IndexFunc(all, func(d Domain) bool { return d.Name == n })
		if i < 0 {
			var known []string
			for _, d := range all {
				known = append(known, d.Name)
			}
			errs = append(errs, &Error{File: file, Line: lineOf(lines, "domains"), Key: "domains",
				Msg: fmt.Sprintf("unknown domain %q (known: %s)", n, strings.Join(known, ", "))})
			continue
		}
		out = append(out, all[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errs
}

// checkTopics refuses a topic that two enabled domains claim.
func checkTopics(domains []Domain) Errors {
	var errs Errors
	byTopic := map[string]string{}
	for _, d := range domains {
		for _, t := range d.Topics {
			if prev, dup := byTopic[t]; dup {
				errs = append(errs, &Error{File: d.File, Key: "topics", Msg: fmt.Sprintf("topic %q already belongs to domain %q", t, prev)})
			}
			byTopic[t] = d.Name
		}
	}
	return errs
}

// LoadDomainFile decodes and validates one domain file. The name defaults to
// the file's base name.
func LoadDomainFile(path string) (Domain, Errors) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Domain{}, Errors{{File: path, Msg: readError(err)}}
	}
	return decodeDomain(path, data)
}

func decodeDomain(path string, data []byte) (Domain, Errors) {
	d := domainDefaults()
	dec := newDecoder(path)
	dec.decodeFile(data, &d)
	if len(dec.errs) > 0 {
		return Domain{}, dec.errs
	}
	if d.Name == "" {
		d.Name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".yaml"), ".yml")
	}
	for i := range d.Gold {
		g := &d.Gold[i]
		if g.Mode == "" {
			g.Mode = "partition"
		}
		if g.Mode == "partition" && g.PartitionColumn == "" {
			g.PartitionColumn = d.PartitionKey
		}
	}
	d.File = path
	if errs := locate(d.validate(), path, dec.lines, nil); len(errs) > 0 {
		return Domain{}, errs
	}
	return d, nil
}

// locate turns validation problems into located errors.
func locate(ps []problem, file string, lines map[string]int, envOf map[string]string) Errors {
	var errs Errors
	for _, p := range ps {
		e := &Error{Key: p.key, Msg: p.msg}
		if env, ok := envOf[p.key]; ok {
			e.Env = env
		} else {
			e.File, e.Line = file, lineOf(lines, p.key)
			if e.File == "" {
				e.File = "defaults"
			}
		}
		errs = append(errs, e)
	}
	return errs
}

// lineOf is the line of key, or of its nearest parent in the file (a key
// missing from a mapping the file has, such as an extract's watermark).
func lineOf(lines map[string]int, key string) int {
	for k := key; k != ""; {
		if l, ok := lines[k]; ok {
			return l
		}
		i := strings.LastIndex(k, ".")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func (c *Config) resolvePaths(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if u, err := url.Parse(c.Storage.URL); err == nil && (u.Scheme == "" || u.Scheme == "file") {
		c.Storage.URL = abs(localPath(c.Storage.URL))
	}
	if rest, ok := strings.CutPrefix(c.Meta.URL, "sqlite://"); ok {
		path, query, _ := strings.Cut(rest, "?")
		c.Meta.URL = "sqlite://" + abs(path)
		if query != "" {
			c.Meta.URL += "?" + query
		}
	}
	c.DuckDB.SpillDir = abs(c.DuckDB.SpillDir)
	c.DomainsDir = abs(c.DomainsDir)
	c.Kafka.TLS.CAFile = abs(c.Kafka.TLS.CAFile)
	c.Kafka.TLS.CertFile = abs(c.Kafka.TLS.CertFile)
	c.Kafka.TLS.KeyFile = abs(c.Kafka.TLS.KeyFile)
	for _, s := range c.Sources {
		for name, e := range s.Extracts {
			e.QueryFile = abs(e.QueryFile)
			s.Extracts[name] = e
		}
	}
}

// localPath strips file:// from a local storage URL.
func localPath(s string) string {
	if rest, ok := strings.CutPrefix(s, "file://"); ok {
		return rest
	}
	return s
}
