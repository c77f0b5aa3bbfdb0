package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/problem"
)

// readJSON reads the whole body (the body limit middleware bounds it) and decodes it strictly into v:
// the media type must be JSON, unknown fields and trailing data are refused, and a wrong JSON type names
// the field. It returns the raw body for idempotency hashing. allowEmpty accepts a missing body as {}.
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
	} else if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, echo.ErrUnsupportedMediaType
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, problem.New(http.StatusBadRequest, "malformed_json", "the body has data after the JSON value")
	}
	return body, nil
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

// ifMatch parses If-Match: "<version>"; 0 when the header is absent.
func ifMatch(c echo.Context) (int64, error) {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 1 {
		return 0, problem.New(http.StatusBadRequest, "invalid_if_match", `If-Match must be a version in quotes, like "3"`)
	}
	return v, nil
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }
