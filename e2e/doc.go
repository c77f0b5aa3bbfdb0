// Package e2e holds the end-to-end tests: the services' own packages wired together in one process
// against the real Postgres, Kafka and OpenSearch, driven through the public HTTP APIs.
package e2e
