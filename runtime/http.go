package runtime

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

// HTTP headers of the http processor's POST. The body is the message's value.
const (
	HTTPHeaderTopic     = "Kpipe-Topic"
	HTTPHeaderPartition = "Kpipe-Partition"
	HTTPHeaderOffset    = "Kpipe-Offset"
	HTTPHeaderAttempt   = "Kpipe-Attempt"
	// HTTPHeaderKey carries the key when it is a valid header value; otherwise
	// HTTPHeaderKeyBase64 carries it, standard base64. Neither is sent without a key.
	HTTPHeaderKey       = "Kpipe-Key"
	HTTPHeaderKeyBase64 = "Kpipe-Key-Base64"
	// HTTPHeaderPrefix prefixes each Kafka header: Kafka header "trace-id" arrives as
	// "Kpipe-Header-Trace-Id" (HTTP canonicalizes the case). Kafka headers whose name is
	// not a valid HTTP header name are left out; values that are not valid header values
	// are sent base64-encoded under HTTPHeaderPrefix + "Base64-" + name.
	HTTPHeaderPrefix = "Kpipe-Header-"
)

// httpHandler POSTs each message to a URL: 2xx is done; 408, 429, 5xx and transport
// errors are retried; any other status, and a redirect to another host, sends the message to
// the dead-letter topic. Its errors, which reach the logs and the dead-letter headers, name
// the URL without its userinfo or query and quote at most a short, redacted excerpt of the
// response.
type httpHandler struct {
	url     string
	headers http.Header // from spec.processor.http.headersSecretRef
	target  redactedURL
	timeout time.Duration
	client  *http.Client
}

// maxRedirects bounds the redirects followed within the configured URL's origin.
const maxRedirects = 5

func newHTTPHandler(spec *kpipev1.HTTPProcessor, headers http.Header, workers int) *httpHandler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	target := newRedactedURL(spec.URL)
	for _, values := range headers {
		for _, v := range values {
			if len(v) >= 4 { // masking a shorter value would mangle every error for nothing
				target.secrets = append(target.secrets, v) // in case the service echoes it back
			}
		}
	}
	return &httpHandler{
		url:     spec.URL,
		headers: headers,
		target:  target,
		timeout: spec.Timeout.Duration,
		client:  &http.Client{Transport: tr, CheckRedirect: target.checkRedirect},
	}
}

func (h *httpHandler) Handle(ctx context.Context, m *Message) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(m.Value))
	if err != nil {
		return Permanent(fmt.Errorf("build request for %s: %w", h.target, h.target.scrub(err)))
	}
	maps.Copy(req.Header, h.headers)
	setRequestHeaders(req.Header, m)
	resp, err := h.client.Do(req)
	if err != nil {
		err = fmt.Errorf("post to %s: %w", h.target, h.target.scrub(err))
		if errors.Is(err, errRedirectElsewhere) {
			return Permanent(err)
		}
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return fmt.Errorf("post to %s: %s: %s", h.target, resp.Status, h.target.excerpt(snippet))
	default:
		return Permanent(fmt.Errorf("post to %s: %s: %s", h.target, resp.Status, h.target.excerpt(snippet)))
	}
}

func setRequestHeaders(hd http.Header, m *Message) {
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set(HTTPHeaderTopic, m.Topic)
	hd.Set(HTTPHeaderPartition, strconv.Itoa(int(m.Partition)))
	hd.Set(HTTPHeaderOffset, strconv.FormatInt(m.Offset, 10))
	hd.Set(HTTPHeaderAttempt, strconv.Itoa(m.Attempt))
	if m.Key != nil {
		setValue(hd, HTTPHeaderKey, HTTPHeaderKeyBase64, m.Key)
	}
	for _, kh := range m.Headers {
		if !httpguts.ValidHeaderFieldName(kh.Key) {
			continue
		}
		setValue(hd, HTTPHeaderPrefix+kh.Key, HTTPHeaderPrefix+"Base64-"+kh.Key, kh.Value)
	}
}

func setValue(hd http.Header, name, base64Name string, v []byte) {
	if httpguts.ValidHeaderFieldValue(string(v)) {
		hd.Add(name, string(v))
		return
	}
	hd.Add(base64Name, base64.StdEncoding.EncodeToString(v))
}
