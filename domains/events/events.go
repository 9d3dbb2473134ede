// Package events is the events reference domain: its SQL, registered from init().
// The message contract is in docs/domains.md; the configuration in
// config/domains/events.yaml.
package events

import (
	"embed"

	"github.com/medallionlake/medallion/domains"
)

//go:embed sql
var files embed.FS

func init() { domains.MustRegisterFS("events", files, "sql") }
