package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/medallionlake/medallion/meta"
)

// CDC captures a table's inserts, updates and deletes from the write-ahead
// log, through a logical replication slot and the pgoutput plugin: every
// intermediate change and every delete, with no load on the table. Each
// change becomes a record of the row's new values with "op" c, u or d; a
// delete carries the key (the replica identity) and, when the domain's
// timestamp field is not among them, the commit time in that field.
//
// The slot and a publication for the table are created on the first run;
// changes from then on are captured (run a snapshot or incremental extract
// once for the rows already there). The slot's confirmed position is moved
// only after the bronze files and the meta store's position are written, so
// the server keeps the WAL of anything not yet durable: a crash re-delivers
// it (at-least-once).
type CDC struct {
	Table string
	Slot  string
	Mask  map[string]string
	// Field is the domain's timestamp field, for deletes that lack it.
	Field string
	// Batch is the most changes written at once (at a commit boundary).
	Batch int
	// Idle ends a run once no change has arrived for this long (default 2s).
	Idle time.Duration
	// Enrich, if set, adds columns to each inserted or updated row: a query
	// whose $1 is the text[] of the changed rows' EnrichKey values and which
	// returns EnrichKey and the columns to add (the orders' items). They
	// are read when the change is extracted, not from the log; a row the
	// query no longer finds gets none, and its domain's contract decides.
	Enrich    string
	EnrichKey string
}

// SlotName is the replication slot (and publication) of a source's cdc
// extract: medallion_<source>_<extract>, lower case, [a-z0-9_] only.
func SlotName(source, extract string) string {
	var b strings.Builder
	for _, r := range strings.ToLower("medallion_" + source + "_" + extract) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
	}
	return b.String()
}

// ReplicationURL is url with the replication protocol turned on.
func ReplicationURL(url string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "replication=database"
}

func (x CDC) publication() string { return x.Slot }

// prepare makes the publication and the slot if they are missing; it runs
// on an ordinary connection.
func (x CDC) prepare(ctx context.Context, conn *pgx.Conn) error {
	var level string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&level); err != nil {
		return err
	}
	if level != "logical" {
		return fmt.Errorf("cdc needs wal_level = logical on the server (it is %s): set it in postgresql.conf and restart", level)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_publication WHERE pubname = $1", x.publication()).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s", pgx.Identifier{x.publication()}.Sanitize(), x.Table)); err != nil {
			return fmt.Errorf("create the publication of %s: %w", x.Table, err)
		}
	}
	return nil
}

// ErrSlotLost means the extract has captured before but its replication
// slot is gone (dropped by hand, or invalidated by max_slot_wal_keep_size):
// the changes since its position were not kept, so a new slot would skip
// them silently.
var ErrSlotLost = errors.New("the replication slot is gone, and the changes since the extract's position with it")

// checkSlot creates the slot on the first run (no position), and refuses
// to go on without the slot a position was recorded against.
func (x CDC) checkSlot(ctx context.Context, conn *pgx.Conn, lsn string) error {
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND wal_status IS DISTINCT FROM 'lost'", x.Slot).Scan(&n); err != nil {
		return err
	}
	switch {
	case n > 0:
		return nil
	case lsn != "":
		return fmt.Errorf("%w: slot %s, position %s. Re-extract the table (a snapshot or incremental extract), then start capture anew: "+
			"medallion extract --drop-slot, which also forgets the position", ErrSlotLost, x.Slot, lsn)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", x.Slot); err != nil {
		return fmt.Errorf("create the replication slot %s: %w", x.Slot, err)
	}
	return nil
}

// DropSlot removes the extract's replication slot and publication, so the
// server no longer keeps WAL for it.
func (x CDC) DropSlot(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", x.Slot); err != nil {
		return fmt.Errorf("drop the replication slot %s: %w", x.Slot, err)
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{x.publication()}.Sanitize()); err != nil {
		return fmt.Errorf("drop the publication %s: %w", x.publication(), err)
	}
	return nil
}

// RetainedWAL is how many bytes of WAL the server keeps for the slot.
func (x CDC) RetainedWAL(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n *int64
	err := conn.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1", x.Slot).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) || n == nil {
		return 0, err
	}
	return *n, err
}

// Run captures the changes past the extract's position until none has
// arrived for x.Idle, writing them to t's bronze at commit boundaries.
// conn is an ordinary connection; replURL the source's URL (see
// ReplicationURL). afterWrite, if set, runs between the bronze files and
// the position (tests).
func (x CDC) Run(ctx context.Context, conn *pgx.Conn, replURL string, store meta.Store, t Target, afterWrite func()) (Result, error) {
	res, err := x.run(ctx, conn, replURL, store, t, afterWrite)
	return res, recordFailure(ctx, store, t, "cdc", err)
}

// cdcState is a CDC extract's position: the end of the last transaction
// written, and the bronze offsets used.
type cdcState struct {
	LSN        string `json:"lsn"`
	NextOffset int64  `json:"next_offset,omitempty"`
}

func (x CDC) run(ctx context.Context, conn *pgx.Conn, replURL string, store meta.Store, t Target, afterWrite func()) (Result, error) {
	var res Result
	if err := x.prepare(ctx, conn); err != nil {
		return res, fmt.Errorf("cdc extract of %s: %w", x.Table, err)
	}
	from, err := position(ctx, store, t)
	if err != nil {
		return res, err
	}
	var st cdcState
	if from != "" {
		if err := json.Unmarshal([]byte(from), &st); err != nil {
			return res, fmt.Errorf("cdc position %q: %w", from, err)
		}
	}
	if err := x.checkSlot(ctx, conn, st.LSN); err != nil {
		return res, fmt.Errorf("cdc extract of %s: %w", x.Table, err)
	}
	start := pglogrepl.LSN(0)
	if st.LSN != "" {
		if start, err = pglogrepl.ParseLSN(st.LSN); err != nil {
			return res, err
		}
	}
	var target pglogrepl.LSN
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&target); err != nil {
		return res, fmt.Errorf("cdc extract of %s: %w", x.Table, err)
	}
	repl, err := pgconn.Connect(ctx, ReplicationURL(replURL))
	if err != nil {
		return res, fmt.Errorf("cdc extract of %s: replication connection: %w", x.Table, err)
	}
	defer x.release(context.WithoutCancel(ctx), conn, repl)
	err = pglogrepl.StartReplication(ctx, repl, x.Slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + x.publication() + "'"}})
	if err != nil {
		return res, fmt.Errorf("cdc extract of %s: start replication on slot %s: %w", x.Table, x.Slot, err)
	}
	s := &cdcStream{x: x, t: t, store: store, repl: repl, conn: conn, state: st, from: from, relations: map[uint32]*pglogrepl.RelationMessage{},
		types: pgtype.NewMap(), afterWrite: afterWrite, res: &res, target: target}
	return res, s.loop(ctx)
}

// release closes the replication connection and waits (up to 10 s) until
// the server's walsender has let the slot go: it leaves asynchronously, and
// until then the next run's START_REPLICATION, or dropping the slot, fails
// with "replication slot is active".
func (x CDC) release(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn) {
	repl.Close(ctx)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var active bool
		err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", x.Slot).Scan(&active)
		if err != nil || !active {
			return
		}
	}
}

// change is one captured row as a JSON object and, when the extract
// enriches rows, the key its added columns are read by ("" for none).
type change struct {
	row []byte
	key string
}

// cdcStream is one run's replication stream and what it has buffered.
type cdcStream struct {
	x          CDC
	t          Target
	store      meta.Store
	repl       *pgconn.PgConn
	state      cdcState
	from       string
	relations  map[uint32]*pglogrepl.RelationMessage
	types      *pgtype.Map
	afterWrite func()
	res        *Result

	conn      *pgx.Conn // for Enrich
	tx        []change  // the changes of the transaction being received
	commit    time.Time
	done      []change // the changes of committed transactions, not written yet
	doneLSN   pglogrepl.LSN
	writtenTo pglogrepl.LSN

	// target is the server's WAL end when the run started, decoded how
	// far the server's decoding has read (its keepalives' WAL end): until
	// it passes target, decoding progress counts as activity, so a run
	// does not end while the server is still decoding a large
	// transaction committed before it started.
	target, decoded pglogrepl.LSN
	inTx            bool // between a Begin and its Commit
}

// stallLimit ends a run that has seen neither a change nor the server's
// decoding move for this long, caught up or not (the next run goes on
// from the position).
const stallLimit = 30 * time.Second

// caughtUp says the server has decoded and sent every transaction that
// committed before the run started.
func (s *cdcStream) caughtUp() bool { return s.decoded >= s.target && !s.inTx }

func (s *cdcStream) loop(ctx context.Context) error {
	idle := s.x.Idle
	if idle <= 0 {
		idle = 2 * time.Second
	}
	batch := s.x.Batch
	if batch <= 0 {
		batch = 10_000
	}
	lastChange := time.Now()
	for {
		if quiet := time.Since(lastChange); quiet > idle && (s.caughtUp() || quiet > stallLimit) {
			return s.flush(ctx)
		}
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		raw, err := s.repl.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				if err := s.ping(ctx); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("cdc extract of %s: %w", s.x.Table, err)
		}
		if e, ok := raw.(*pgproto3.ErrorResponse); ok {
			return fmt.Errorf("cdc extract of %s: %s (SQLSTATE %s)", s.x.Table, e.Message, e.Code)
		}
		msg, ok := raw.(*pgproto3.CopyData)
		if !ok || len(msg.Data) == 0 {
			continue
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return err
			}
			if s.progressed(k.ServerWALEnd) {
				lastChange = time.Now()
			}
			if k.ReplyRequested {
				if err := s.confirm(ctx); err != nil {
					return err
				}
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return err
			}
			s.progressed(xld.WALStart)
			committed, err := s.decode(xld.WALData)
			if err != nil {
				return fmt.Errorf("cdc extract of %s: %w", s.x.Table, err)
			}
			lastChange = time.Now()
			if committed && len(s.done) >= batch {
				if err := s.flush(ctx); err != nil {
					return err
				}
				lastChange = time.Now() // a long flush is not idleness
			}
		}
	}
}

// progressed records that the server's decoding has read up to end, and
// reports whether that moved it on while it was still short of target.
func (s *cdcStream) progressed(end pglogrepl.LSN) bool {
	behind := s.decoded < s.target
	if end <= s.decoded {
		return false
	}
	s.decoded = end
	return behind
}

// ping asks the server how far its decoding has read, while that is
// short of target (the reply is a keepalive); it confirms nothing new.
func (s *cdcStream) ping(ctx context.Context) error {
	if s.decoded >= s.target {
		return nil
	}
	return pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: s.writtenTo, ReplyRequested: true})
}

// decode handles one pgoutput message; it reports whether it ended a
// transaction.
func (s *cdcStream) decode(data []byte) (bool, error) {
	m, err := pglogrepl.Parse(data)
	if err != nil {
		return false, err
	}
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		s.relations[m.RelationID] = m
	case *pglogrepl.BeginMessage:
		s.tx, s.commit, s.inTx = nil, m.CommitTime, true
	case *pglogrepl.InsertMessage:
		return false, s.change(m.RelationID, m.Tuple, "c")
	case *pglogrepl.UpdateMessage:
		return false, s.change(m.RelationID, m.NewTuple, "u")
	case *pglogrepl.DeleteMessage:
		return false, s.change(m.RelationID, m.OldTuple, "d")
	case *pglogrepl.CommitMessage:
		s.done = append(s.done, s.tx...)
		s.tx, s.inTx = nil, false
		s.doneLSN = m.TransactionEndLSN
		return true, nil
	}
	return false, nil
}

// change turns a tuple into a JSON row with its op.
func (s *cdcStream) change(rel uint32, tuple *pglogrepl.TupleData, op string) error {
	r, ok := s.relations[rel]
	if !ok {
		return fmt.Errorf("a change of unknown relation %d", rel)
	}
	if tuple == nil {
		return fmt.Errorf("a %s change of %s.%s without its row", op, r.Namespace, r.RelationName)
	}
	row := map[string]any{"op": op}
	for i, col := range tuple.Columns {
		c := r.Columns[i]
		switch col.DataType {
		case 'n':
			if op != "d" {
				row[c.Name] = nil
			}
		case 't':
			v, err := s.value(col.Data, c.DataType)
			if err != nil {
				return fmt.Errorf("column %s: %w", c.Name, err)
			}
			if how, masked := s.x.Mask[c.Name]; masked && how == "sha256" {
				v = sha256Hex(string(col.Data))
			}
			row[c.Name] = v
		}
	}
	if _, ok := row[s.x.Field]; !ok && s.x.Field != "" {
		row[s.x.Field] = s.commit.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(row)
	if err != nil {
		return err
	}
	c := change{row: b}
	if s.x.Enrich != "" && op != "d" && row[s.x.EnrichKey] != nil {
		c.key = fmt.Sprint(row[s.x.EnrichKey])
	}
	s.tx = append(s.tx, c)
	return nil
}

// rows are the committed changes, enriched (Enrich).
func (s *cdcStream) rows(ctx context.Context) ([][]byte, error) {
	var added map[string][]byte
	if s.x.Enrich != "" {
		var err error
		if added, err = s.enrich(ctx); err != nil {
			return nil, fmt.Errorf("cdc extract of %s: the query adding columns: %w", s.x.Table, err)
		}
	}
	out := make([][]byte, len(s.done))
	for i, c := range s.done {
		out[i] = c.row
		if cols := added[c.key]; c.key != "" && cols != nil {
			// The row is a JSON object: its added columns go before
			// its closing brace.
			out[i] = append(append(c.row[:len(c.row)-1:len(c.row)-1], cols...), '}')
		}
	}
	return out, nil
}

// enrich runs the Enrich query once for the batch's changed keys, and
// returns each key's added columns as JSON members (`,"items":[…]`).
func (s *cdcStream) enrich(ctx context.Context) (map[string][]byte, error) {
	var keys []string
	for _, c := range s.done {
		if c.key != "" {
			keys = append(keys, c.key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	q := "SELECT row_to_json(e)::text FROM (" + s.x.Enrich + "\n) e" // the query may end in a comment
	rows, err := s.conn.Query(ctx, q, keys)
	if err != nil {
		return nil, err
	}
	added := map[string][]byte{}
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			return nil, err
		}
		var cols map[string]json.RawMessage
		if err := json.Unmarshal([]byte(text), &cols); err != nil {
			return nil, err
		}
		key, ok := cols[s.x.EnrichKey]
		if !ok {
			return nil, fmt.Errorf("it does not return the key column %s", s.x.EnrichKey)
		}
		delete(cols, s.x.EnrichKey)
		var members []byte
		for _, name := range slices.Sorted(maps.Keys(cols)) {
			n, _ := json.Marshal(name)
			members = append(append(append(append(members, ','), n...), ':'), cols[name]...)
		}
		added[jsonText(key)] = members
	}
	return added, rows.Err()
}

// jsonText is a JSON scalar as text: a string unquoted, else as written.
func jsonText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

func (s *cdcStream) value(data []byte, oid uint32) (any, error) {
	if dt, ok := s.types.TypeForOID(oid); ok {
		v, err := dt.Codec.DecodeValue(s.types, oid, pgtype.TextFormatCode, data)
		if err != nil {
			return nil, err
		}
		if _, ok := v.(pgtype.Numeric); ok {
			return json.Number(string(data)), nil // exact, as to_jsonb writes it
		}
		return v, nil
	}
	return string(data), nil
}

// flush writes the committed changes, then records the position, then
// lets the server forget the WAL before it.
func (s *cdcStream) flush(ctx context.Context) error {
	if len(s.done) > 0 {
		rows, err := s.rows(ctx)
		if err != nil {
			return err
		}
		w, err := s.t.Write(ctx, rows, nextBase(s.state.NextOffset, s.t.now()),
			map[string]string{"source": s.t.Source, "extract": s.t.Extract, "lsn": s.doneLSN.String()})
		if err != nil {
			return err
		}
		s.res.Batches++
		s.res.Rows += len(s.done)
		s.res.Files += w.Files
		s.res.DeadLetters += w.DeadLetters
		s.state.NextOffset = w.NextOffset
		if s.afterWrite != nil {
			s.afterWrite()
		}
	}
	if s.doneLSN != 0 {
		s.state.LSN = s.doneLSN.String()
	}
	pos, _ := json.Marshal(s.state)
	st := meta.ExtractState{Source: s.t.Source, Extract: s.t.Extract, Mode: "cdc", Position: string(pos), Rows: int64(len(s.done))}
	if s.state.LSN == "" {
		st.Position = ""
	}
	if err := s.store.AdvanceExtract(ctx, st, s.from, s.t.now()); err != nil {
		return fmt.Errorf("extract %s.%s: %w", s.t.Source, s.t.Extract, err)
	}
	s.from = st.Position
	s.done = nil
	s.writtenTo = s.doneLSN
	s.res.Position = Position{Watermark: s.state.LSN, NextOffset: s.state.NextOffset}
	return s.confirm(ctx)
}

// confirm tells the server the position written, so it may recycle the
// WAL before it.
func (s *cdcStream) confirm(ctx context.Context) error {
	if s.writtenTo == 0 {
		return nil
	}
	return pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: s.writtenTo})
}
