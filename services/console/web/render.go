package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/auth"
)

var funcs = template.FuncMap{
	"money": func(minor int64, currency string) string {
		sign := ""
		if minor < 0 {
			sign, minor = "-", -minor
		}
		return fmt.Sprintf("%s%d.%02d %s", sign, minor/100, minor%100, currency)
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
	},
	"pretty": func(raw json.RawMessage) string {
		var b bytes.Buffer
		if json.Indent(&b, raw, "", "  ") != nil {
			return string(raw)
		}
		return b.String()
	},
	"prettyString": func(s string) string {
		var b bytes.Buffer
		if json.Indent(&b, []byte(s), "", "  ") != nil {
			return s
		}
		return b.String()
	},
	"query": templateURL,
	// short is the start of an id, enough to tell orders apart in a list (the full id is its title).
	"short": func(id string) string {
		if len(id) <= 13 {
			return id
		}
		return id[:13] + "…"
	},
	"dur":      func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"contains": slices.Contains[[]string],
}

func templateURL(s string) string { return url.QueryEscape(s) }

// parseTemplates parses each page with the layout.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		page := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if page == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", page, err)
		}
		out[page] = t
	}
	return out, nil
}

// render writes a page: the layout around the page's template, with who is signed in and the CSRF
// token for its forms.
func (s *Server) render(c echo.Context, status int, page string, data map[string]any) error {
	t, ok := s.pages[page]
	if !ok {
		return fmt.Errorf("no template %s", page)
	}
	if data == nil {
		data = map[string]any{}
	}
	p := principal(c)
	data["Me"] = p
	data["Admin"] = p.Role == auth.Admin
	data["SignedIn"] = p.Subject != ""
	data["CSRF"] = csrf(c)
	data["Page"] = page
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, b.Bytes())
}
