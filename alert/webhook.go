package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Webhook posts each alert as a Slack incoming-webhook body: {"text": ...},
// plus the alert's fields under "medallion" for other receivers.
type Webhook struct {
	URL    string
	Client *http.Client
}

func (w *Webhook) Name() string {
	u, err := url.Parse(w.URL)
	if err != nil {
		return "webhook"
	}
	return "webhook " + u.Host // the path of a Slack URL is its secret
}

func (w *Webhook) Send(ctx context.Context, a Alert) error {
	body, err := json.Marshal(map[string]any{"text": a.Text, "medallion": a.message()})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("HTTP %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
