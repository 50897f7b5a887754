package ui

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/api/apitest"
)

// The browser tests (cmd/tink-server/ui_test.go) drive the dashboard in
// Chromium; these check what a browser does not show: headers, cookies,
// redirects.

func newUI(t *testing.T, opts ...apitest.Option) (*UI, *apitest.Server) {
	t.Helper()
	s := apitest.MustRunServer(t, opts...)
	u, err := New(Config{API: s.API})
	require.NoError(t, err)
	return u, s
}

func serve(u *UI, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, req)
	return rec
}

func TestSecurityHeaders(t *testing.T) {
	u, _ := newUI(t)
	for _, path := range []string{"/ui/", "/ui/static/app.js", "/ui/nope"} {
		rec := serve(u, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, contentSecurityPolicy, rec.Header().Get("Content-Security-Policy"), path)
		require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), path)
		require.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"), path)
	}
	require.NotContains(t, contentSecurityPolicy, "unsafe")
	rec := serve(u, httptest.NewRequest(http.MethodGet, "/ui/static/app.js", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Header().Get("Content-Type"), "javascript")
	require.Equal(t, http.StatusNotFound, serve(u, httptest.NewRequest(http.MethodGet, "/ui/nope", nil)).Code)
}

func TestSignInKeepsTheTokenInAStrictCookie(t *testing.T) {
	u, s := newUI(t, apitest.WithTokens())
	rec := serve(u, httptest.NewRequest(http.MethodGet, "/ui/workflows", nil))
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, "/ui/signin?next=%2Fui%2Fworkflows", rec.Header().Get("Location"))

	signin := func(token string, tlsOn bool) *httptest.ResponseRecorder {
		form := url.Values{"token": {token}, "next": {"/ui/workflows"}}
		req := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tlsOn {
			req.TLS = &tls.ConnectionState{}
		}
		return serve(u, req)
	}
	rec = signin(s.Tokens["viewer"], false)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, "/ui/workflows", rec.Header().Get("Location"))
	c := rec.Result().Cookies()[0]
	require.Equal(t, cookieName, c.Name)
	require.Equal(t, s.Tokens["viewer"], c.Value)
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, c.SameSite)
	require.Equal(t, "/ui/", c.Path)
	require.False(t, c.Secure, "plain HTTP")
	require.True(t, signin(s.Tokens["viewer"], true).Result().Cookies()[0].Secure, "under TLS")

	rec = signin("wrong", false)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Empty(t, rec.Result().Cookies())
	rec = signin(s.Tokens["worker-node-01"], false)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Contains(t, rec.Body.String(), "a worker token cannot use the dashboard")

	// A page with the cookie: signed in; a sign-out without the CSRF
	// token is refused.
	req := httptest.NewRequest(http.MethodGet, "/ui/", nil)
	req.AddCookie(c)
	rec = serve(u, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "viewer (viewer)")
	require.NotContains(t, rec.Body.String(), s.Tokens["viewer"], "the page never shows the token")
	req = httptest.NewRequest(http.MethodPost, "/ui/signout", nil)
	req.AddCookie(c)
	require.Equal(t, http.StatusForbidden, serve(u, req).Code)
	form := url.Values{csrfField: {csrfToken(c.Value)}}
	req = httptest.NewRequest(http.MethodPost, "/ui/signout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(c)
	rec = serve(u, req)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, -1, rec.Result().Cookies()[0].MaxAge, "the cookie is deleted")
}

func TestNoSignInWithoutTokens(t *testing.T) {
	u, _ := newUI(t)
	rec := serve(u, httptest.NewRequest(http.MethodGet, "/ui/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "anonymous (admin)")
	c := rec.Result().Cookies()[0]
	require.True(t, c.HttpOnly)
	require.Len(t, c.Value, 32, "a random CSRF key")
	require.Equal(t, http.StatusSeeOther, serve(u, httptest.NewRequest(http.MethodGet, "/ui/signin", nil)).Code)
}

func TestRedirectsStayOnTheDashboard(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/hardware?q=x":  "/ui/hardware?q=x",
		"https://evil.test": "/ui/",
		"//evil.test/ui/":   "/ui/",
		"/ui/\\evil":        "/ui/",
		"/v1/status":        "/ui/",
		"":                  "/ui/",
	} {
		require.Equal(t, want, localNext(in), in)
	}
}
