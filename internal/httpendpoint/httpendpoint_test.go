package httpendpoint_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/internal/httpendpoint"
)

// TestStart: the handler answers on the address until stop; an address in
// use fails at once, naming the setting.
func TestStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := httpendpoint.Start("x.http_addr", ln.Addr().String(), nil); err == nil || !strings.HasPrefix(err.Error(), "x.http_addr "+ln.Addr().String()) {
		t.Fatalf("an address in use: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err := httpendpoint.Start("x.http_addr", addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("answer: %q", body)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("still answering after stop")
	}
}
