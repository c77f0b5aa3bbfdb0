package httpapi

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/problem"
)

// erasePersonalData answers DELETE /customers/{customer_id}/personal-data: the customer's data keys
// are deleted before the answer, the rest follows; 202 with the erasure's Location, whose GET says how
// far it got. Asking again while it is in progress answers the same erasure.
func (s *server) erasePersonalData(c echo.Context) error {
	p, customerID, err := customerRequest(c)
	if err != nil {
		return err
	}
	e, err := s.Commands.RequestErasure(c.Request().Context(), p, customerID)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/customers/"+url.PathEscape(customerID)+"/personal-data/erasures/"+e.ID)
	return c.JSON(http.StatusAccepted, e)
}

// getErasure answers GET /customers/{customer_id}/personal-data/erasures/{erasure_id}: the progress.
func (s *server) getErasure(c echo.Context) error {
	p, customerID, err := customerRequest(c)
	if err != nil {
		return err
	}
	e, err := s.Commands.ErasureStatus(c.Request().Context(), p, customerID, c.Param("erasure_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, e)
}

// customerRequest is the principal of a request on /customers/{customer_id}, and the customer id.
func customerRequest(c echo.Context) (auth.Principal, string, error) {
	p, err := principal(c)
	if err != nil {
		return auth.Principal{}, "", err
	}
	customerID, err := pathParam(c, "customer_id")
	return p, customerID, err
}

// pathParam is a path parameter unescaped (a customer id may hold any character, escaped in the path).
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil // the router matched the decoded path
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return "", problem.New(http.StatusBadRequest, "invalid_customer_id", "the customer id is not a valid path segment")
	}
	return u, nil
}
