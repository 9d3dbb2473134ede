// Package events is the events reference domain: its SQL, registered from init().
// The message contract is in DOMAINS.md; the configuration in
// config/domains/events.yaml.
package events

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
	domains.MustRegister(domains.Spec{Name: "events", SQL: sub})
}
