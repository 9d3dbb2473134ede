// Package generate makes realistic synthetic messages for the four reference
// domains (docs/domains.md): clickstream sessions through the funnel, orders whose
// status changes arrive as CDC messages (some out of order), hourly
// restaurant snapshots and daily user extracts. It can add redelivered
// duplicates, malformed messages and late arrivals. The same options and
// seed always give the same messages.
package generate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/medtype"
)

// Options shape the data.
type Options struct {
	Seed  uint64
	Start medtype.Date
	Days  int
	// EventsPerDay sizes everything: orders are a twentieth of it, users a
	// twentieth; restaurants are fixed (20, snapshotted hourly).
	EventsPerDay int
	// Duplicates is the fraction of messages redelivered once more.
	Duplicates float64
	// Malformed is the fraction of messages that route to a partition but
	// fail silver validation (they end in quarantine).
	Malformed float64
	// Unroutable is the fraction of messages that cannot be routed at all
	// (not JSON, no or bad timestamp); the sink sends them to the DLQ.
	Unroutable float64
	// Late is the fraction of messages that arrive after the last day (late
	// data for a partition already processed).
	Late float64
	// Domains limits the output; empty means all four.
	Domains []string
	// Partitions is the Kafka partition count of each topic (default 3).
	Partitions int
}

// Message is one Kafka message.
type Message struct {
	Domain string
	Topic  string
	Key    []byte
	Value  []byte
	// Time is the Kafka timestamp (delivery time).
	Time time.Time
	// Partition is the Kafka partition, from the key.
	Partition int32
	// Flags describe how the message was made, for tests and reports.
	Late, Malformed, Unroutable, Duplicate bool
}

// AllDomains lists the reference domains in generation order.
var AllDomains = []string{"events", "orders", "restaurants", "users"}

var (
	cities     = []string{"Austin", "Boston", "Chicago", "Denver", "Miami", "Seattle"}
	devices    = []string{"ios", "android", "web"}
	cuisines   = []string{"mexican", "italian", "thai", "indian", "burgers", "sushi"}
	queries    = []string{"tacos", "pizza", "pad thai", "curry", "burger", "ramen"}
	firstNames = []string{"Ana", "Ben", "Chloe", "Diego", "Emma", "Farah", "Gus", "Hana"}
	lastNames  = []string{"Lopez", "Smith", "Chen", "Okafor", "Rossi", "Kim", "Novak", "Silva"}
	domainsE   = []string{"example.com", "mail.test", "corp.example"}
)

// Generate returns the messages in delivery order (late ones last).
func Generate(o Options) ([]Message, error) {
	if o.Days <= 0 || o.EventsPerDay <= 0 || o.Start.IsZero() {
		return nil, fmt.Errorf("generate: need start, days > 0 and events per day > 0")
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	for _, f := range []float64{o.Duplicates, o.Malformed, o.Unroutable, o.Late} {
		if f < 0 || f > 0.5 {
			return nil, fmt.Errorf("generate: fractions must be between 0 and 0.5")
		}
	}
	want := o.Domains
	if len(want) == 0 {
		want = AllDomains
	}
	for _, d := range want {
		if !slices.Contains(AllDomains, d) {
			return nil, fmt.Errorf("generate: unknown domain %q (want %v)", d, AllDomains)
		}
	}
	refs, err := references()
	if err != nil {
		return nil, err
	}
	g := &gen{o: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), refs: refs}
	g.users = max(50, o.EventsPerDay/20)
	var onTime, late []Message
	for day := 0; day < o.Days; day++ {
		date := o.Start.AddDays(day)
		var dayMsgs []Message
		for _, d := range AllDomains { // fixed order keeps the RNG stream stable
			msgs := g.domain(d, date)
			if slices.Contains(want, d) {
				dayMsgs = append(dayMsgs, msgs...)
			}
		}
		dayMsgs = g.corrupt(dayMsgs)
		slices.SortStableFunc(dayMsgs, func(a, b Message) int { return a.Time.Compare(b.Time) })
		for _, m := range dayMsgs {
			if m.Late {
				late = append(late, m)
			} else {
				onTime = append(onTime, m)
			}
		}
	}
	// Late messages are delivered after the last day, in their own order.
	end := o.Start.AddDays(o.Days).Time().Add(2 * time.Hour)
	for i := range late {
		late[i].Time = end.Add(time.Duration(i) * time.Millisecond)
	}
	return append(onTime, late...), nil
}

type gen struct {
	o     Options
	rng   *rand.Rand
	refs  map[string]config.Domain
	users int
	seq   int
}

// references are the reference domains' built-in configurations: a
// message's topic and timestamp field come from its domain.yaml.
func references() (map[string]config.Domain, error) {
	builtin, err := config.BuiltinDomains()
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	out := map[string]config.Domain{}
	for _, d := range builtin {
		if slices.Contains(AllDomains, d.Name) {
			out[d.Name] = d
		}
	}
	if len(out) != len(AllDomains) {
		return nil, fmt.Errorf("generate: the reference domains %v are not all built in", AllDomains)
	}
	return out, nil
}

func (g *gen) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g *gen) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func money(cents int) json.Number { return json.Number(fmt.Sprintf("%d.%02d", cents/100, cents%100)) }

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// PartitionOf is the Kafka partition of a key among n: FNV-1a of the key.
// Producing with it puts every message where Generate says it is.
func PartitionOf(key []byte, n int) int32 {
	h := uint32(2166136261)
	for _, c := range key {
		h = (h ^ uint32(c)) * 16777619
	}
	return int32(h % uint32(n))
}

func (g *gen) msg(domain, key string, value map[string]any, at time.Time) Message {
	body, _ := json.Marshal(value)
	delay := time.Duration(g.rng.IntN(3000)) * time.Millisecond
	return Message{Domain: domain, Topic: g.refs[domain].Topics[0], Key: []byte(key), Value: body, Time: at.Add(delay),
		Partition: PartitionOf([]byte(key), g.o.Partitions)}
}

func (g *gen) domain(d string, date medtype.Date) []Message {
	switch d {
	case "events":
		return g.events(date)
	case "orders":
		return g.orders(date)
	case "restaurants":
		return g.restaurants(date)
	default:
		return g.usersDay(date)
	}
}

func (g *gen) inDay(date medtype.Date) time.Time {
	return date.Time().Add(time.Duration(g.rng.Int64N(int64(23 * time.Hour))))
}

// events: sessions walking down the funnel with drop-offs.
func (g *gen) events(date medtype.Date) []Message {
	type step struct {
		typ  string
		keep float64
	}
	funnel := []step{{"search", 0.8}, {"view_restaurant", 0.75}, {"view_item", 0.8}, {"add_to_cart", 0.55},
		{"remove_from_cart", 0.1}, {"begin_checkout", 0.65}, {"purchase", 0.8}, {"rate_order", 0.3}, {"share", 0.05}}
	var out []Message
	for len(out) < g.o.EventsPerDay {
		user := fmt.Sprintf("u-%d", g.rng.IntN(g.users))
		session := "s-" + g.uuid()[:13]
		device, city := g.pick(devices), g.pick(cities)
		restaurant := fmt.Sprintf("r-%d", g.rng.IntN(20))
		item := fmt.Sprintf("m-%d", 100+g.rng.IntN(60))
		at := g.inDay(date)
		emit := func(typ string, extra map[string]any) {
			at = at.Add(time.Duration(1+g.rng.IntN(90)) * time.Second)
			if at.After(date.AddDays(1).Time().Add(-time.Millisecond)) {
				at = date.AddDays(1).Time().Add(-time.Millisecond)
			}
			e := map[string]any{"event_id": g.uuid(), "event_type": typ, "event_timestamp": ts(at), "user_id": user,
				"session_id": session, "device": device, "city": city, "restaurant_id": nil, "item_id": nil,
				"order_id": nil, "amount": nil, "properties": map[string]any{}}
			for k, v := range extra {
				e[k] = v
			}
			out = append(out, g.msg("events", e["event_id"].(string), e, at))
		}
		emit("app_open", nil)
		for _, s := range funnel {
			if g.rng.Float64() > s.keep {
				break
			}
			switch s.typ {
			case "search":
				emit("search", map[string]any{"properties": map[string]any{"query": g.pick(queries)}})
			case "view_restaurant":
				emit(s.typ, map[string]any{"restaurant_id": restaurant})
			case "purchase":
				g.seq++
				emit(s.typ, map[string]any{"restaurant_id": restaurant, "order_id": fmt.Sprintf("o-e%d", g.seq), "amount": money(500 + g.rng.IntN(7500))})
			default:
				emit(s.typ, map[string]any{"restaurant_id": restaurant, "item_id": item})
			}
		}
		if g.rng.Float64() < 0.9 {
			emit("app_close", nil)
		}
	}
	return out
}

var statuses = []string{"placed", "accepted", "preparing", "out_for_delivery", "delivered"}

// orders: every status change is a message; about a third of orders have
// two of their changes delivered out of order.
func (g *gen) orders(date medtype.Date) []Message {
	n := max(10, g.o.EventsPerDay/20)
	var out []Message
	for i := 0; i < n; i++ {
		g.seq++
		id := fmt.Sprintf("o-%d", g.seq)
		created := g.inDay(date)
		var items []map[string]any
		total := 0
		for k := 0; k < 1+g.rng.IntN(4); k++ {
			q, price := 1+g.rng.IntN(3), 150+g.rng.IntN(1850)
			total += q * price
			items = append(items, map[string]any{"item_id": fmt.Sprintf("m-%d", 100+g.rng.IntN(60)), "name": "Item " + g.pick(queries), "quantity": q, "unit_price": money(price)})
		}
		final := 1 + g.rng.IntN(len(statuses))
		cancel := g.rng.Float64() < 0.08
		user, rest, city := fmt.Sprintf("u-%d", g.rng.IntN(g.users)), fmt.Sprintf("r-%d", g.rng.IntN(20)), g.pick(cities)
		updated := created
		var versions []Message
		for s := 0; s < final; s++ {
			status := statuses[s]
			if cancel && s == final-1 && s > 0 {
				status = "cancelled"
			}
			if s > 0 {
				updated = updated.Add(time.Duration(1+g.rng.IntN(15)) * time.Minute)
			}
			o := map[string]any{"order_id": id, "user_id": user, "restaurant_id": rest, "status": status, "city": city,
				"created_at": ts(created), "updated_at": ts(updated), "currency": "USD", "items": items, "total_amount": money(total)}
			versions = append(versions, g.msg("orders", id, o, updated))
		}
		if len(versions) > 1 && g.rng.Float64() < 0.33 {
			// Out-of-order delivery: the later change arrives first.
			k := g.rng.IntN(len(versions) - 1)
			versions[k].Time, versions[k+1].Time = versions[k+1].Time, versions[k].Time
		}
		out = append(out, versions...)
	}
	return out
}

// restaurants: 20 restaurants, a full snapshot every hour.
func (g *gen) restaurants(date medtype.Date) []Message {
	var out []Message
	for h := 0; h < 24; h++ {
		at := date.Time().Add(time.Duration(h) * time.Hour)
		for r := 0; r < 20; r++ {
			var menu []map[string]any
			for m := 0; m < 3+r%4; m++ {
				menu = append(menu, map[string]any{"item_id": fmt.Sprintf("m-%d", 100+r*3+m), "name": fmt.Sprintf("Dish %d", m),
					"price": money(300 + (r*37+m*53)%1500), "is_available": g.rng.Float64() < 0.9})
			}
			v := map[string]any{"restaurant_id": fmt.Sprintf("r-%d", r), "name": fmt.Sprintf("Restaurant %d", r), "city": cities[r%len(cities)],
				"cuisine": cuisines[r%len(cuisines)], "rating": json.Number(fmt.Sprintf("%.1f", 3.0+float64((r*7+h)%20)/10)),
				"is_active": g.rng.Float64() < 0.97, "snapshot_ts": ts(at), "menu_items": menu}
			out = append(out, g.msg("restaurants", fmt.Sprintf("r-%d", r), v, at))
		}
	}
	return out
}

// usersDay: a daily incremental extract. On the first day every existing
// user; then new signups and about a quarter of users updated.
func (g *gen) usersDay(date medtype.Date) []Message {
	first := date == g.o.Start
	var out []Message
	newUsers := max(1, g.users/50)
	for u := 0; u < g.users+newUsers; u++ {
		isNew := u >= g.users
		if !first && !isNew && g.rng.Float64() > 0.25 {
			continue
		}
		id := fmt.Sprintf("u-%d", u)
		if isNew {
			id = fmt.Sprintf("u-%s-%d", date.Time().Format("20060102"), u-g.users)
		}
		h := uint64(0)
		for _, c := range id {
			h = h*31 + uint64(c)
		}
		signup := g.o.Start.Time().Add(-time.Duration(1+h%60) * 24 * time.Hour).Add(time.Duration(h%86400) * time.Second)
		if isNew {
			signup = g.inDay(date)
		}
		updated := g.inDay(date)
		if updated.Before(signup) {
			updated = signup.Add(time.Minute)
		}
		fn, ln := firstNames[h%uint64(len(firstNames))], lastNames[(h/7)%uint64(len(lastNames))]
		v := map[string]any{"user_id": id, "email": fmt.Sprintf("  %s.%s%d@%s ", fn, ln, h%1000, domainsE[h%3]), "name": fn + " " + ln,
			"city": g.pick(cities), "signup_ts": ts(signup), "updated_at": ts(updated), "is_test_account": h%17 == 0,
			"year_of_birth": 1960 + int(h%45)}
		out = append(out, g.msg("users", id, v, updated))
	}
	return out
}

// corrupt adds malformed and unroutable messages, duplicates and late flags.
func (g *gen) corrupt(msgs []Message) []Message {
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		switch r := g.rng.Float64(); {
		case r < g.o.Unroutable:
			m = g.unroutable(m)
		case r < g.o.Unroutable+g.o.Malformed:
			m = g.malform(m)
		}
		if g.rng.Float64() < g.o.Late && !m.Unroutable {
			m.Late = true
		}
		out = append(out, m)
		if g.rng.Float64() < g.o.Duplicates {
			d := m
			d.Duplicate = true
			d.Time = m.Time.Add(time.Duration(1+g.rng.IntN(600)) * time.Second)
			out = append(out, d)
		}
	}
	return out
}

// malform breaks a field silver validates, keeping the partition timestamp
// valid so the message still lands in bronze.
func (g *gen) malform(m Message) Message {
	var v map[string]any
	_ = json.Unmarshal(m.Value, &v)
	type mutation struct {
		field string
		value any
		drop  bool
	}
	muts := map[string][]mutation{
		"events":      {{field: "event_id", drop: true}, {field: "event_type", value: "teleport"}, {field: "user_id", value: 42}, {field: "amount", value: "a lot"}},
		"orders":      {{field: "order_id", drop: true}, {field: "status", value: "lost"}, {field: "updated_at", value: "yesterday"}, {field: "items", value: "none"}},
		"restaurants": {{field: "restaurant_id", drop: true}, {field: "rating", value: "great"}, {field: "is_active", value: "yes"}},
		"users":       {{field: "user_id", drop: true}, {field: "signup_ts", value: "2024-13-45T99:00:00Z"}, {field: "year_of_birth", value: "1990"}},
	}[m.Domain]
	mu := muts[g.rng.IntN(len(muts))]
	if mu.drop {
		delete(v, mu.field)
	} else {
		v[mu.field] = mu.value
	}
	m.Value, _ = json.Marshal(v)
	m.Malformed = true
	return m
}

// unroutable makes a message the sink cannot place in any partition.
func (g *gen) unroutable(m Message) Message {
	switch g.rng.IntN(4) {
	case 0:
		m.Value = []byte(`{"truncated": `)
	case 3:
		// Well-formed JSON with a byte that is not UTF-8 in its first
		// string value: DuckDB could not read a bronze file holding it.
		m.Value = bytes.Replace(m.Value, []byte(`":"`), []byte("\":\"\xff"), 1)
	case 1:
		var v map[string]any
		_ = json.Unmarshal(m.Value, &v)
		delete(v, g.refs[m.Domain].TimestampField)
		m.Value, _ = json.Marshal(v)
	default:
		var v map[string]any
		_ = json.Unmarshal(m.Value, &v)
		v[g.refs[m.Domain].TimestampField] = "not a time"
		m.Value, _ = json.Marshal(v)
	}
	m.Unroutable = true
	return m
}
