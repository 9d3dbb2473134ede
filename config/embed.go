package config

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
)

// builtinDomains are the reference domain files, used when no domains folder
// exists (e.g. `medallion demo` on a machine without a checkout).
//
//go:embed domains/*.yaml
var builtinDomains embed.FS

// BuiltinDomains decodes the embedded reference domain files.
func BuiltinDomains() ([]Domain, error) {
	files, err := fs.Glob(builtinDomains, "domains/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Domain
	for _, f := range files {
		data, err := fs.ReadFile(builtinDomains, f)
		if err != nil {
			return nil, err
		}
		d, errs := decodeDomain("(embedded) config/"+f, data)
		if len(errs) > 0 {
			return nil, fmt.Errorf("embedded domain file: %w", errs)
		}
		out = append(out, d)
	}
	return out, nil
}
