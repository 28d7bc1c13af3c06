package runtime

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
)

// errRedirectElsewhere refuses a redirect away from the configured URL's scheme and host:
// following it would re-send the message, and the request's headers, to a party the pipeline
// was not configured to trust.
var errRedirectElsewhere = errors.New("redirect to another host refused")

// excerptLen bounds how much of a response body an error quotes.
const excerptLen = 64

// redactedURL is the http processor's URL as it may be shown: scheme, host and path, never
// the userinfo or the query, which may carry credentials.
type redactedURL struct {
	scheme, host, shown string
	secrets             []string // strings that must never appear in an error
}

func newRedactedURL(raw string) redactedURL {
	u, err := url.Parse(raw)
	if err != nil {
		return redactedURL{shown: "(the configured URL)", secrets: []string{raw}}
	}
	r := redactedURL{scheme: u.Scheme, host: u.Host}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	r.shown = shown.String()
	if u.User != nil {
		r.secrets = append(r.secrets, u.User.String(), u.User.Username())
		if p, ok := u.User.Password(); ok {
			r.secrets = append(r.secrets, p)
		}
	}
	if u.RawQuery != "" {
		r.shown += "?[redacted]"
		r.secrets = append(r.secrets, u.RawQuery)
		for _, vs := range u.Query() {
			r.secrets = append(r.secrets, vs...)
		}
	}
	return r
}

func (r redactedURL) String() string { return r.shown }

// checkRedirect follows redirects within the configured scheme and host only.
func (r redactedURL) checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != r.scheme || req.URL.Host != r.host {
		return fmt.Errorf("%w: %s answered with a redirect to %s", errRedirectElsewhere, r.host, req.URL.Host)
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	return nil
}

// scrub drops the URL that net/http puts into its errors (it may hold the query) and masks
// any secret part of the URL in the cause, which stays reachable for errors.Is.
func (r redactedURL) scrub(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return &scrubbedError{msg: r.mask(err.Error()), cause: err}
}

type scrubbedError struct {
	msg   string
	cause error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.cause }

// excerpt makes a response body fit for a log line or a header: its first line, printable
// characters only, secret parts of the URL masked, at most excerptLen bytes.
func (r redactedURL) excerpt(body []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	line = strings.Map(func(c rune) rune {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			return '?'
		}
		return c
	}, line)
	line = r.mask(line)
	if len(line) > excerptLen {
		line = line[:excerptLen] + "..."
	}
	return line
}

func (r redactedURL) mask(s string) string {
	for _, secret := range r.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
