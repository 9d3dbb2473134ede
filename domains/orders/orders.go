// Package orders is the orders reference domain: its SQL, registered from init().
// The message contract is in docs/domains.md; the configuration in
// config/domains/orders.yaml.
package orders

import (
	"embed"

	"github.com/medallionlake/medallion/domains"
)

//go:embed sql
var files embed.FS

func init() { domains.MustRegisterFS("orders", files, "sql") }
