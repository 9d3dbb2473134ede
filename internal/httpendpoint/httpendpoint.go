// Package httpendpoint runs the small HTTP servers of long-running
// commands (/metrics and /healthz of sink and serve).
package httpendpoint

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Start listens on addr and serves h until stop, which shuts the server
// down within 5 seconds. key names the setting in errors
// ("sink.http_addr").
func Start(key, addr string, h http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
