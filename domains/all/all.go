// Package all registers the reference domains. cmd/medallion imports it for
// its side effects, like a database/sql driver bundle.
package all

import (
	_ "github.com/medallionlake/medallion/domains/events"      // events domain
	_ "github.com/medallionlake/medallion/domains/orders"      // orders domain
	_ "github.com/medallionlake/medallion/domains/restaurants" // restaurants domain
	_ "github.com/medallionlake/medallion/domains/users"       // users domain
)
