package generate

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Tables is the DDL of the operational tables the orders, restaurants and
// users domains are extracted from (docs/domains.md, "Source tables").
//
//go:embed tables.sql
var Tables string

// CreateTables creates the operational tables where they are missing.
func CreateTables(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, Tables); err != nil {
		return fmt.Errorf("create the operational tables: %w", err)
	}
	return nil
}

// PostgresStats counts what ApplyPostgres did.
type PostgresStats struct {
	Orders, OrderUpdates, Restaurants, Users, UserUpdates, UsersDeleted int
}

// ApplyPostgres lives the messages out as the operational database would
// have: in the order of their own time (updated_at, snapshot_ts), the
// first version of an order inserts it with its items and every later one
// updates its status; each restaurant snapshot updates the restaurant and
// its menu; each user version inserts or updates the user. Messages no
// database would hold (malformed, unroutable, redelivered) are skipped, and
// events are not in the database. Then a fraction deletes of the users are
// deleted. Rows are written in transactions of about a thousand messages.
func ApplyPostgres(ctx context.Context, conn *pgx.Conn, msgs []Message, deletes float64, seed uint64) (PostgresStats, error) {
	var st PostgresStats
	if err := CreateTables(ctx, conn); err != nil {
		return st, err
	}
	versions, err := versionsOf(msgs)
	if err != nil {
		return st, err
	}
	seen := map[string]bool{}
	for i := 0; i < len(versions); i += 1000 {
		b := &pgx.Batch{}
		for _, v := range versions[i:min(i+1000, len(versions))] {
			v.queue(b, seen, &st)
		}
		if err := sendTx(ctx, conn, b); err != nil {
			return st, err
		}
	}
	n, err := deleteUsers(ctx, conn, deletes, seed)
	st.UsersDeleted = n
	return st, err
}

// version is one message's row values, and the time that orders it.
type version struct {
	domain string
	at     string
	v      map[string]any
}

// versionField is the field whose time orders a domain's versions.
var versionField = map[string]string{"orders": "updated_at", "restaurants": "snapshot_ts", "users": "updated_at"}

func versionsOf(msgs []Message) ([]version, error) {
	var out []version
	for _, m := range msgs {
		if m.Malformed || m.Unroutable || m.Duplicate || m.Domain == "events" {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(m.Value))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("generate: a %s message: %w", m.Domain, err)
		}
		at, _ := v[versionField[m.Domain]].(string)
		out = append(out, version{domain: m.Domain, at: at, v: v})
	}
	// The timestamps are all of one format (UTC, milliseconds): as text
	// they sort in time order.
	slices.SortStableFunc(out, func(a, b version) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	return out, nil
}

func (x version) queue(b *pgx.Batch, seen map[string]bool, st *PostgresStats) {
	v := x.v
	switch x.domain {
	case "orders":
		id := v["order_id"]
		b.Queue(`INSERT INTO orders (order_id, user_id, restaurant_id, status, city, created_at, updated_at, currency, total_amount)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`,
			id, v["user_id"], v["restaurant_id"], v["status"], v["city"], v["created_at"], v["updated_at"], v["currency"], num(v["total_amount"]))
		if key := fmt.Sprint(id); !seen["o/"+key] {
			seen["o/"+key] = true
			st.Orders++
			items, _ := v["items"].([]any)
			for n, it := range items {
				i := it.(map[string]any)
				b.Queue(`INSERT INTO order_items (order_id, line_number, item_id, name, quantity, unit_price) VALUES ($1, $2, $3, $4, $5, $6)
					ON CONFLICT DO NOTHING`, id, n+1, i["item_id"], i["name"], num(i["quantity"]), num(i["unit_price"]))
			}
		} else {
			st.OrderUpdates++
		}
	case "restaurants":
		id := v["restaurant_id"]
		if !seen["r/"+fmt.Sprint(id)] {
			seen["r/"+fmt.Sprint(id)] = true
			st.Restaurants++
		}
		b.Queue(`INSERT INTO restaurants (restaurant_id, name, city, cuisine, rating, is_active, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (restaurant_id) DO UPDATE SET name = excluded.name, city = excluded.city, cuisine = excluded.cuisine,
				rating = excluded.rating, is_active = excluded.is_active, updated_at = excluded.updated_at`,
			id, v["name"], v["city"], v["cuisine"], num(v["rating"]), v["is_active"], v["snapshot_ts"])
		menu, _ := v["menu_items"].([]any)
		for n, it := range menu {
			i := it.(map[string]any)
			b.Queue(`INSERT INTO menu_items (restaurant_id, item_id, name, price, is_available, position) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (restaurant_id, item_id) DO UPDATE SET name = excluded.name, price = excluded.price,
					is_available = excluded.is_available, position = excluded.position`,
				id, i["item_id"], i["name"], num(i["price"]), i["is_available"], n+1)
		}
	case "users":
		if key := fmt.Sprint(v["user_id"]); !seen["u/"+key] {
			seen["u/"+key] = true
			st.Users++
		} else {
			st.UserUpdates++
		}
		b.Queue(`INSERT INTO users (user_id, email, name, city, signup_ts, updated_at, is_test_account, year_of_birth)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name, city = excluded.city,
				signup_ts = excluded.signup_ts, updated_at = excluded.updated_at, is_test_account = excluded.is_test_account,
				year_of_birth = excluded.year_of_birth`,
			v["user_id"], v["email"], v["name"], v["city"], v["signup_ts"], v["updated_at"], v["is_test_account"], num(v["year_of_birth"]))
	}
}

// num is a JSON number as the text PostgreSQL parses into numeric or int.
func num(v any) any {
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return v
}

func sendTx(ctx context.Context, conn *pgx.Conn, b *pgx.Batch) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("generate --to postgres: %w", err)
		}
		return nil
	})
}

// deleteUsers deletes a fraction of the users, chosen by the seed.
func deleteUsers(ctx context.Context, conn *pgx.Conn, fraction float64, seed uint64) (int, error) {
	if fraction <= 0 {
		return 0, nil
	}
	rows, err := conn.Query(ctx, "SELECT user_id FROM users ORDER BY user_id")
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	var gone []string
	for _, id := range ids {
		if rng.Float64() < fraction {
			gone = append(gone, id)
		}
	}
	_, err = conn.Exec(ctx, "DELETE FROM users WHERE user_id = ANY($1)", gone)
	return len(gone), err
}
