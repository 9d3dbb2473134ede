// Package restaurants is the restaurants reference domain: its SQL, registered from init().
// The message contract is in DOMAINS.md; the configuration in
// config/domains/restaurants.yaml.
package restaurants

import (
	"embed"
	"io/fs"

	"github.com/medallionlake/medallion/domains"
)

//go:embed sql
var files embed.FS

func init() {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		panic(err)
	}
	domains.MustRegister(domains.Spec{Name: "restaurants", SQL: sub})
}
