package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/problem"
)

// readJSON reads the whole body (the body limit middleware bounds it) and decodes it strictly into v:
// the media type must be application/json, unknown fields and trailing data are refused, and a wrong
// JSON type names the field. A number with a zero fractional part (9462.0, 1e3) is an integer, as JSON
// Schema (and docs/openapi.yaml) says. It returns the raw body for idempotency hashing. allowEmpty
// accepts a missing body as {}.
func readJSON(c echo.Context, v any, allowEmpty bool) ([]byte, error) {
	req := c.Request()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) || errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
			return nil, echo.ErrStatusRequestEntityTooLarge
		}
		return nil, problem.New(http.StatusBadRequest, "unreadable_body", "the request body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return body, nil
		}
		return nil, problem.New(http.StatusBadRequest, "empty_body", "the request needs a JSON body")
	}
	if ct := req.Header.Get(echo.HeaderContentType); ct == "" {
		return nil, echo.ErrUnsupportedMediaType
	} else if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, echo.ErrUnsupportedMediaType
	}
	err = decodeStrict(body, v)
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && strings.HasPrefix(typ.Value, "number") {
		// Perhaps an integer written with a fraction or an exponent: read it as the integer it is.
		if norm, ok := integralNumbers(body); ok {
			err = decodeStrict(norm, v)
		}
	}
	if err != nil {
		var p *problem.Problem
		if errors.As(err, &p) {
			return nil, p
		}
		return nil, decodeProblem(err)
	}
	return body, nil
}

// decodeStrict decodes body into v: a decoding error as it is, trailing data as a problem.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return problem.New(http.StatusBadRequest, "malformed_json", "the body has data after the JSON value")
	}
	return nil
}

// integralNumbers rewrites every number of a JSON document that is an integer written with a fraction
// or an exponent (9462.0, 1e3) as that integer; ok is false when nothing changed or it is not JSON.
func integralNumbers(body []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	changed := false
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case json.Number:
			if !strings.ContainsAny(string(x), ".eE") {
				return x
			}
			f, ok := new(big.Float).SetPrec(2048).SetString(string(x))
			if !ok || !f.IsInt() {
				return x
			}
			i, _ := f.Int(nil)
			changed = true
			return json.Number(i.String())
		}
		return v
	}
	doc = walk(doc)
	if !changed {
		return nil, false
	}
	out, err := json.Marshal(doc)
	return out, err == nil
}

func decodeProblem(err error) *problem.Problem {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return problem.Newf(http.StatusBadRequest, "malformed_json", "the body is not valid JSON: %v", err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		p := problem.Newf(http.StatusBadRequest, "invalid_type", "%s must be a JSON %s", field, jsonKind(typ.Type.Kind().String()))
		p.Errors = []problem.FieldError{{Field: field, Message: fmt.Sprintf("must be a JSON %s, got %s", jsonKind(typ.Type.Kind().String()), typ.Value)}}
		return p
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		p := problem.Newf(http.StatusBadRequest, "unknown_field", "the body has a field this endpoint does not know: %s", name)
		p.Errors = []problem.FieldError{{Field: name, Message: "unknown field"}}
		return p
	}
	return problem.Newf(http.StatusBadRequest, "malformed_json", "the body could not be decoded: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	}
	return "object"
}

// ifMatchPattern is what docs/openapi.yaml allows: a version in quotes, optionally weak.
var ifMatchPattern = regexp.MustCompile(`^(W/)?"[1-9][0-9]{0,17}"$`)

// ifMatch parses If-Match: "<version>"; 0 when the header is absent.
func ifMatch(c echo.Context) (int64, error) {
	values := c.Request().Header.Values("If-Match")
	if len(values) == 0 {
		return 0, nil
	}
	h := strings.TrimSpace(values[0])
	if len(values) > 1 || !ifMatchPattern.MatchString(h) {
		return 0, problem.New(http.StatusBadRequest, "invalid_if_match", `If-Match must be one version in quotes, like "3"`)
	}
	v, _ := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64) // at most 18 digits: in range
	return v, nil
}
