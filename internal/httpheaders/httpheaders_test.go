package httpheaders

import (
	"strings"
	"testing"
)

func TestFromSecret(t *testing.T) {
	h, err := FromSecret(map[string][]byte{"Authorization": []byte("Bearer abc\n"), "x-tenant": []byte("shop")})
	if err != nil || h.Get("Authorization") != "Bearer abc" || h.Get("X-Tenant") != "shop" {
		t.Fatalf("got %v, %v", h, err)
	}
	_, err = FromSecret(map[string][]byte{"kpipe-offset": []byte("1"), "Content-Type": []byte("x"), "a b": []byte("x"), "X-Ok": []byte("s3cret\x00")})
	for _, want := range []string{`"kpipe-offset" is a header kpipe sets itself`, `"Content-Type" is a header kpipe sets itself`,
		`"a b" is not a valid HTTP header name`, `the value of key "X-Ok" is not a valid HTTP header value`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a value leaked into the error: %v", err)
	}
	if _, err := FromSecret(nil); err == nil {
		t.Error("an empty Secret must be refused")
	}
}
