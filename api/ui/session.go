package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/tinkops/tinkops/api"
	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/state"
)

// Session cookie. With API tokens it holds the token the operator signed
// in with: HttpOnly (no script reads it), SameSite=Strict (no other site
// makes the browser send it), Secure under TLS, scoped to /ui/. Without
// tokens it holds a random value that only keys the CSRF token. Keeping
// the token itself, not a server-side session, lets any replica serve the
// next request and makes revoking the token end the session.
const (
	cookieName = "tink_session"
	cookiePath = "/ui/"
	// sessionLife bounds a signed-in session (a workday).
	sessionLife = 12 * time.Hour
	// csrfField is the form field (or X-CSRF-Token header) that carries
	// the CSRF token on every action.
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
)

// session is a browser's standing with the dashboard.
type session struct {
	// token is the API token sent with every API call; empty when the
	// server runs without tokens.
	token string
	Who   *api.Principal
	// csrf is the token every state-changing form must carry: an HMAC of
	// the cookie's value, so a page of another origin, which can read
	// neither the cookie nor our pages, cannot produce it.
	CSRF string
}

// csrfToken derives the CSRF token of a cookie value.
func csrfToken(cookie string) string {
	m := hmac.New(sha256.New, []byte(cookie))
	m.Write([]byte("tinkops dashboard csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// setCookie writes the session cookie; maxAge < 0 deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: cookiePath, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// session returns the request's session. Without API tokens a browser
// without a cookie gets one (the CSRF key) and the anonymous principal.
// With tokens, no cookie or a token the server no longer knows is
// EUNAUTHORIZED.
func (u *UI) session(w http.ResponseWriter, r *http.Request) (*session, error) {
	var value string
	if c, err := r.Cookie(cookieName); err == nil {
		value = c.Value
	}
	if !u.srv.TokensRequired() {
		if len(value) < 16 {
			var b [24]byte
			_, _ = rand.Read(b[:])
			value = base64.RawURLEncoding.EncodeToString(b[:])
			setCookie(w, r, value, 0)
		}
		who, err := u.srv.Authenticate("")
		if err != nil {
			return nil, err
		}
		return &session{Who: who, CSRF: csrfToken(value)}, nil
	}
	if value == "" {
		return nil, &client.Error{Code: state.EUNAUTHORIZED, Message: "sign in with an API token"}
	}
	who, err := u.srv.Authenticate(value)
	if err != nil {
		return nil, &client.Error{Code: state.EUNAUTHORIZED, Message: "the session's API token is no longer valid; sign in again"}
	}
	return &session{token: value, Who: who, CSRF: csrfToken(value)}, nil
}

// checkAction refuses a state-changing request that a page of another
// origin could have made: a cross-origin browser request (Sec-Fetch-Site,
// Origin), or one without the session's CSRF token.
func (u *UI) checkAction(r *http.Request, s *session) error {
	if err := u.cop.Check(r); err != nil {
		return &client.Error{StatusCode: http.StatusForbidden, Code: api.EFORBIDDEN, Message: "cross-origin requests that change state are refused"}
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) != 1 {
		return &client.Error{StatusCode: http.StatusForbidden, Code: api.EFORBIDDEN, Message: "the form's CSRF token is missing or wrong: reload the page and try again"}
	}
	return nil
}

// signinPage asks for an API token.
func (u *UI) signinPage(w http.ResponseWriter, r *http.Request) {
	if !u.srv.TokensRequired() {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	u.render(w, r, http.StatusOK, "signin", &page{Title: "Sign in", Data: signinData{Next: localNext(r.URL.Query().Get("next"))}})
}

type signinData struct {
	Next  string
	Error string
}

// signin checks the token as the API would and keeps it in the cookie.
func (u *UI) signin(w http.ResponseWriter, r *http.Request) {
	if err := u.cop.Check(r); err != nil {
		u.fail(w, r, &client.Error{StatusCode: http.StatusForbidden, Code: api.EFORBIDDEN, Message: "cross-origin sign-in is refused"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := localNext(r.PostFormValue("next"))
	who, err := u.srv.Authenticate(token)
	msg := ""
	switch {
	case token == "":
		msg = "give an API token"
	case err != nil:
		msg = "this API token is not valid"
	case !who.Permits(api.RoleViewer, ""):
		msg = "a " + string(who.Role) + " token cannot use the dashboard; use a viewer, operator or admin token"
	}
	if msg != "" {
		u.render(w, r, http.StatusUnauthorized, "signin", &page{Title: "Sign in", Data: signinData{Next: next, Error: msg}})
		return
	}
	setCookie(w, r, token, int(sessionLife/time.Second))
	u.log.Info("dashboard sign-in", "user", who.Name, "role", who.Role, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signout forgets the token (CSRF-checked: a page elsewhere must not sign
// the operator out either).
func (u *UI) signout(w http.ResponseWriter, r *http.Request, s *session) {
	setCookie(w, r, "", -1)
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
}

// localNext keeps a redirect target on the dashboard (no open redirect).
func localNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}
