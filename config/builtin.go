package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
)

// builtin holds the domains compiled into the binary: each domain package
// registers its folder (domain.yaml and extract/) from init(), through
// domains.MustRegisterFolder, since config cannot import the domains.
var builtin = struct {
	sync.Mutex
	domains  map[string]Domain
	extracts map[string]map[string]Extract // domain → mode → extract
}{domains: map[string]Domain{}, extracts: map[string]map[string]Extract{}}

// RegisterBuiltin reads a built-in domain's folder: domain.yaml, and for
// each mode it has a built-in extract of, extract/<mode>.yaml, whose
// query_file names a file of the same folder.
func RegisterBuiltin(name string, fsys fs.FS) error {
	file := "(built in) domains/" + name + "/domain.yaml"
	data, err := fs.ReadFile(fsys, "domain.yaml")
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	d, errs := decodeDomain(file, data)
	if len(errs) > 0 {
		return errs
	}
	if d.Name != name {
		return fmt.Errorf("%s: name %q, but the folder registers %q", file, d.Name, name)
	}
	extracts, err := builtinExtracts(name, fsys)
	if err != nil {
		return err
	}
	builtin.Lock()
	defer builtin.Unlock()
	if _, dup := builtin.domains[name]; dup {
		return fmt.Errorf("%s: domain registered twice", file)
	}
	builtin.domains[name] = d
	builtin.extracts[name] = extracts
	return nil
}

func builtinExtracts(name string, fsys fs.FS) (map[string]Extract, error) {
	files, _ := fs.Glob(fsys, "extract/*.yaml")
	out := map[string]Extract{}
	for _, f := range files {
		file := "(built in) domains/" + name + "/" + f
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		var e Extract
		dec := newDecoder(file)
		dec.decodeFile(data, &e)
		if len(dec.errs) > 0 {
			return nil, dec.errs
		}
		e.Mode = strings.TrimSuffix(path.Base(f), ".yaml")
		if e.QueryFile != "" {
			q, err := fs.ReadFile(fsys, path.Join("extract", e.QueryFile))
			if err != nil {
				return nil, fmt.Errorf("%s: query_file: %w", file, err)
			}
			e.Query, e.QueryFile = strings.TrimSpace(string(q)), ""
		}
		c := &checker{}
		validateExtract(c, "extract", e)
		for i := range c.ps {
			c.ps[i].key = strings.TrimPrefix(c.ps[i].key, "extract.")
		}
		if len(c.ps) > 0 {
			return nil, locate(c.ps, file, nil, nil)
		}
		out[e.Mode] = e
	}
	return out, nil
}

// BuiltinDomains are the registered built-in domains, sorted by name.
func BuiltinDomains() ([]Domain, error) {
	builtin.Lock()
	defer builtin.Unlock()
	if len(builtin.domains) == 0 {
		return nil, errors.New("no built-in domain is registered (import github.com/medallionlake/medallion/domains/all)")
	}
	out := make([]Domain, 0, len(builtin.domains))
	for _, d := range builtin.domains {
		out = append(out, d.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// clone is a deep copy, so a caller changing its domains (tests mark gold
// tables for export) never changes the registry's.
func (d Domain) clone() Domain {
	d.Topics = slices.Clone(d.Topics)
	d.PrimaryKey = slices.Clone(d.PrimaryKey)
	d.Gold = slices.Clone(d.Gold)
	for i := range d.Gold {
		d.Gold[i].MergeKeys = slices.Clone(d.Gold[i].MergeKeys)
	}
	if d.MaxRetries != nil {
		n := *d.MaxRetries
		d.MaxRetries = &n
	}
	return d
}

// BuiltinExtract is a built-in domain's extract for mode, if it has one,
// and the modes it has.
func BuiltinExtract(domain, mode string) (Extract, []string, bool) {
	builtin.Lock()
	defer builtin.Unlock()
	var modes []string
	for m := range builtin.extracts[domain] {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	e, ok := builtin.extracts[domain][mode]
	e.Key = slices.Clone(e.Key)
	e.Mask = maps.Clone(e.Mask)
	return e, modes, ok
}
