// Package users is the users reference domain: its SQL, registered from init().
// The message contract is in docs/domains.md; the configuration in
// config/domains/users.yaml.
package users

import (
	"embed"

	"github.com/medallionlake/medallion/domains"
)

//go:embed sql
var files embed.FS

func init() { domains.MustRegisterFS("users", files, "sql") }
