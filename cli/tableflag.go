package cli

import (
	"context"

	"github.com/medallionlake/medallion/lake"
)

// parseTableFlag parses a --table flag; "" names no table.
func parseTableFlag(name string) (*lake.TableID, error) {
	if name == "" {
		return nil, nil
	}
	id, err := lake.ParseTableID(name)
	if err != nil {
		return nil, usageError("--table: %v", err)
	}
	return &id, nil
}

// tablesOf is the table a --table flag named, which must exist, or every
// table of the lake when it named none.
func tablesOf(ctx context.Context, l *lake.Lake, id *lake.TableID) ([]lake.TableID, error) {
	if id == nil {
		return l.AllTables(ctx)
	}
	ok, err := l.Exists(ctx, *id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, usageError("--table: no table %s (medallion tables lists them)", *id)
	}
	return []lake.TableID{*id}, nil
}
