// Package restaurants is the restaurants reference domain: its SQL, registered from init().
// The message contract is in docs/domains.md; the configuration in
// config/domains/restaurants.yaml.
package restaurants

import (
	"embed"

	"github.com/medallionlake/medallion/domains"
)

//go:embed sql
var files embed.FS

func init() { domains.MustRegisterFS("restaurants", files, "sql") }
