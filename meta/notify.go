package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// listener waits for the work notifications of one PostgreSQL schema on a
// connection of its own, which holds the LISTEN for as long as it lives.
type listener struct {
	db      *sql.DB
	channel string
	mu      sync.Mutex
	conn    *sql.Conn
}

// close gives the listening connection back, once a wait has returned.
func (l *listener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

func (l *listener) notify(ctx context.Context) error {
	if _, err := l.db.ExecContext(ctx, "SELECT pg_notify($1, '')", l.channel); err != nil {
		return fmt.Errorf("meta: notify workers: %w", err)
	}
	return nil
}

// wait returns when a notification arrives, after d, or when ctx ends. A
// broken connection is dropped and wait sleeps out d (polling), so a
// following worker never spins.
func (l *listener) wait(ctx context.Context, d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		conn, err := l.db.Conn(ctx)
		if err == nil {
			if _, err = conn.ExecContext(ctx, "LISTEN "+l.channel); err != nil {
				conn.Close()
			}
		}
		if err != nil {
			return sleep(ctx, d)
		}
		l.conn = conn
	}
	waitCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := l.conn.Raw(func(dc any) error {
		_, err := dc.(*stdlib.Conn).Conn().WaitForNotification(waitCtx)
		return err
	})
	switch {
	case err == nil, errors.Is(waitCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	// The connection broke (a server restart): listen again next time
	// (the pool discards the closed connection).
	l.conn.Close()
	l.conn = nil
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
