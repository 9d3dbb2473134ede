package pipeline_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/medallionlake/medallion/generate"
)

// model computes, independently of the SQL, what every table must hold for
// a set of generated messages: valid messages only, deduplicated by the
// rules of docs/domains.md, then aggregated in Go.
type model struct {
	eventIDs   []string
	orders     map[string]version
	restCur    map[string]version
	usersCur   map[string]version
	quarantine []string // topic \t partition \t offset
	msgs       map[string][]version
}

// version is one valid message, with what orders it among versions of the
// same key.
type version struct {
	v      map[string]any
	order  string // the domain's order_by value (RFC 3339 text sorts by time for one format)
	kafka  time.Time
	offset int64
	part   int32
}

func (a version) newer(b version) bool {
	if a.order != b.order {
		return tsOf(a.order).After(tsOf(b.order))
	}
	if !a.kafka.Equal(b.kafka) {
		return a.kafka.After(b.kafka)
	}
	if a.part != b.part {
		return a.part > b.part
	}
	return a.offset > b.offset
}

func tsOf(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func buildModel(msgs []generate.Message, includeLate bool) *model {
	m := &model{orders: map[string]version{}, restCur: map[string]version{}, usersCur: map[string]version{}, msgs: map[string][]version{}}
	offsets := generate.Offsets(msgs)
	events := map[string]bool{}
	for i, msg := range msgs {
		if msg.Unroutable || (msg.Late && !includeLate) {
			continue
		}
		if msg.Malformed {
			m.quarantine = append(m.quarantine, fmt.Sprintf("%s\t%d\t%d", msg.Topic, msg.Partition, offsets[i]))
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(msg.Value))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			panic(err)
		}
		ver := version{v: v, kafka: msg.Time.Truncate(time.Millisecond), offset: offsets[i], part: msg.Partition}
		keep := func(into map[string]version, key, orderField string) {
			ver.order = str(v[orderField])
			if cur, ok := into[key]; !ok || ver.newer(cur) {
				into[key] = ver
			}
		}
		switch msg.Domain {
		case "events":
			if !events[str(v["event_id"])] {
				events[str(v["event_id"])] = true
				m.msgs["events"] = append(m.msgs["events"], ver)
			}
		case "orders":
			keep(m.orders, str(v["order_id"]), "updated_at")
		case "restaurants":
			keep(m.restCur, str(v["restaurant_id"]), "snapshot_ts")
		case "users":
			keep(m.usersCur, str(v["user_id"]), "updated_at")
		}
	}
	for id := range events {
		m.eventIDs = append(m.eventIDs, id)
	}
	sort.Strings(m.eventIDs)
	sort.Strings(m.quarantine)
	return m
}

func str(x any) string {
	if x == nil {
		return ""
	}
	return fmt.Sprint(x)
}

func nullable(x any) string {
	if x == nil {
		return "NULL"
	}
	return fmt.Sprint(x)
}

func cents(x any) int64 {
	s := str(x)
	whole, frac, _ := strings.Cut(s, ".")
	frac = (frac + "00")[:2]
	w, _ := strconv.ParseInt(whole, 10, 64) // not fmt.Sscan: it reads "08" as octal
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*100 + f
}

// DuckDB's round(DOUBLE, n): the same IEEE operations, so the same result.
func roundTo(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

func (m *model) eventsHourly() []string {
	type key struct{ date, hour, typ string }
	count := map[key]int{}
	users := map[key]map[string]bool{}
	for _, e := range m.msgs["events"] {
		ts := tsOf(str(e.v["event_timestamp"])).UTC()
		k := key{ts.Format("2006-01-02"), ts.Truncate(time.Hour).Format("2006-01-02 15:04:05"), str(e.v["event_type"])}
		count[k]++
		if users[k] == nil {
			users[k] = map[string]bool{}
		}
		users[k][str(e.v["user_id"])] = true
	}
	var out []string
	for k, n := range count {
		out = append(out, fmt.Sprintf("%s\t%s\t%s\t%d\t%d", k.date, k.hour, k.typ, n, len(users[k])))
	}
	sort.Strings(out)
	return out
}

func (m *model) funnel() []string {
	steps := []string{"app_open", "search", "view_item", "add_to_cart", "begin_checkout", "purchase"}
	reached := map[string]map[string]map[string]bool{} // date -> type -> users
	for _, e := range m.msgs["events"] {
		date := tsOf(str(e.v["event_timestamp"])).UTC().Format("2006-01-02")
		if reached[date] == nil {
			reached[date] = map[string]map[string]bool{}
		}
		typ := str(e.v["event_type"])
		if reached[date][typ] == nil {
			reached[date][typ] = map[string]bool{}
		}
		reached[date][typ][str(e.v["user_id"])] = true
	}
	var out []string
	for date, byType := range reached {
		first := len(byType["app_open"])
		for i, s := range steps {
			n := len(byType[s])
			conv := 0.0
			if first > 0 {
				conv = roundTo(float64(n)/float64(first), 4)
			}
			out = append(out, fmt.Sprintf("%s\t%d\t%s\t%d\t%.4f", date, i+1, s, n, conv))
		}
	}
	sort.Strings(out)
	return out
}

func (m *model) revenue() []string {
	type key struct{ date, city string }
	n, sum := map[key]int64{}, map[key]int64{}
	for _, e := range m.msgs["events"] {
		if str(e.v["event_type"]) != "purchase" {
			continue
		}
		k := key{tsOf(str(e.v["event_timestamp"])).UTC().Format("2006-01-02"), nullable(e.v["city"])}
		n[k]++
		sum[k] += cents(e.v["amount"])
	}
	var out []string
	for k := range n {
		avg := roundTo(float64(sum[k])/100/float64(n[k]), 2)
		out = append(out, fmt.Sprintf("%s\t%s\t%d\t%s\t%.2f", k.date, k.city, n[k], fmtCents(sum[k]), avg))
	}
	sort.Strings(out)
	return out
}

func (m *model) orderStatuses() []string {
	var out []string
	for id, o := range m.orders {
		out = append(out, id+"\t"+str(o.v["status"])+"\t"+str(o.v["updated_at"]))
	}
	sort.Strings(out)
	return out
}

func (m *model) ordersDaily() []string {
	type key struct{ date, city, status string }
	n, items, gross := map[key]int64{}, map[key]int64{}, map[key]int64{}
	for _, o := range m.orders {
		k := key{tsOf(str(o.v["created_at"])).UTC().Format("2006-01-02"), nullable(o.v["city"]), str(o.v["status"])}
		n[k]++
		gross[k] += cents(o.v["total_amount"])
		for _, it := range o.v["items"].([]any) {
			q, _ := it.(map[string]any)["quantity"].(json.Number).Int64()
			items[k] += q
		}
	}
	var out []string
	for k := range n {
		out = append(out, fmt.Sprintf("%s\t%s\t%s\t%d\t%d\t%s", k.date, k.city, k.status, n[k], items[k], fmtCents(gross[k])))
	}
	sort.Strings(out)
	return out
}

func (m *model) restaurantsCurrent() []string {
	var out []string
	for id, r := range m.restCur {
		menu := r.v["menu_items"].([]any)
		avail := 0
		for _, it := range menu {
			if it.(map[string]any)["is_available"] == true {
				avail++
			}
		}
		out = append(out, fmt.Sprintf("%s\t%s\t%s\t%d\t%d\t%s", id, str(r.v["name"]), str(r.v["rating"]), len(menu), avail, str(r.v["snapshot_ts"])))
	}
	sort.Strings(out)
	return out
}

func emailHash(e string) string {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(e))))
	return hex.EncodeToString(h[:])
}

func (m *model) usersCurrent() []string {
	var out []string
	for id, u := range m.usersCur {
		out = append(out, fmt.Sprintf("%s\t%s\t%s\t%s\t%s", id, emailHash(str(u.v["email"])), nullable(u.v["city"]),
			tsOf(str(u.v["signup_ts"])).UTC().Format("2006-01-02"), str(u.v["updated_at"])))
	}
	sort.Strings(out)
	return out
}

func (m *model) signups() []string {
	type key struct{ date, city string }
	n := map[key]int{}
	for _, u := range m.usersCur {
		n[key{tsOf(str(u.v["signup_ts"])).UTC().Format("2006-01-02"), nullable(u.v["city"])}]++
	}
	var out []string
	for k, c := range n {
		out = append(out, fmt.Sprintf("%s\t%s\t%d", k.date, k.city, c))
	}
	sort.Strings(out)
	return out
}
