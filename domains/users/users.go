// Package users is the users reference domain, registered from init(): its
// configuration (domain.yaml), its SQL (sql/) and its built-in extracts
// (extract/). The message contract is in docs/domains.md.
package users

import (
	"embed"

	"github.com/medallionlake/medallion/domains"
)

//go:embed domain.yaml sql extract
var files embed.FS

func init() { domains.MustRegisterFolder("users", files) }
