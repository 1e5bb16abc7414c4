package auth

import "testing"

func TestLocalPathKeepsOnlyPathsOnThisConsole(t *testing.T) {
	for next, want := range map[string]string{
		"":                         "/",
		"/":                        "/",
		"/images/sha256:ab?tab=x":  "/images/sha256:ab?tab=x",
		"/a%2Fb":                   "/a%2Fb",
		"https://evil.example/":    "/",
		"//evil.example/":          "/",
		"/\\evil.example":          "/",
		"/\t/evil.example":         "/",
		"javascript:alert(1)":      "/",
		"evil.example":             "/",
		"/auth/login?next=//evil":  "/",
		"/auth/callback?code=x":    "/",
		"/x#fragment":              "/x",
		"/%0d%0aSet-Cookie:%20a=b": "/%0d%0aSet-Cookie:%20a=b",
		"/ok\r\nSet-Cookie: a=b":   "/",
		"http:/evil.example":       "/",
		"/..//evil.example":        "/..//evil.example",
	} {
		if got := localPath(next); got != want {
			t.Errorf("localPath(%q) = %q, want %q", next, got, want)
		}
	}
}
