package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/pkg/api"
)

func sampleReport() rebuild.Report {
	store, model := api.Order{ID: "o2", Version: 2}, api.Order{ID: "o2", Version: 2}
	mallory := "Mallory"
	model.Customer.Name = &mallory
	return rebuild.Report{Target: rebuild.Orders, Events: 9, Orders: 4, Missing: 1, Version: 1, Fields: 1, Extra: 1, Differences: []rebuild.Difference{
		{Kind: rebuild.Missing, OrderID: "o1", StoreVersion: 2},
		{Kind: rebuild.Fields, OrderID: "o2", StoreVersion: 2, ModelVersion: 2, Store: &store, Model: &model},
		{Kind: rebuild.Version, OrderID: "o3", StoreVersion: 2, ModelVersion: 1},
		{Kind: rebuild.Extra, OrderID: "o9"},
	}}
}

func TestWriteReport(t *testing.T) {
	var out bytes.Buffer
	if err := writeReport(&out, sampleReport(), 50); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"missing  o1 (version 2 in the event store)\n", "fields   o2 at version 2 differ:\n         read model:  {",
		`"name":"Mallory"`, "version  o3: read model 1, event store 2\n", "extra    o9 (in the read model, not in the event store)\n",
		"verified 4 orders against the orders read model: 4 differences\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	_ = writeReport(&out, sampleReport(), 1)
	if !strings.Contains(out.String(), "... and 3 more\n") || strings.Contains(out.String(), "extra") {
		t.Errorf("report with --max-report 1:\n%s", out.String())
	}
}

func TestWriteReportJSON(t *testing.T) {
	var out bytes.Buffer
	if err := writeReportJSON(&out, sampleReport(), 2); err != nil {
		t.Fatal(err)
	}
	var got struct {
		rebuild.Report
		Omitted int `json:"omitted_differences"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("verify --output json does not decode: %v\n%s", err, out.String())
	}
	if got.Orders != 4 || len(got.Differences) != 2 || got.Omitted != 2 || got.Extra != 1 || *got.Differences[1].Model.Customer.Name != "Mallory" {
		t.Errorf("decoded %+v", got)
	}
}

func TestWriteStatus(t *testing.T) {
	parked := 3
	st := rebuild.Status{
		History: rebuild.History{Topic: "orders.events", Partitions: []rebuild.PartitionStart{{Partition: 0, Start: 0}, {Partition: 1, Start: 12}}},
		Groups: []rebuild.GroupStatus{
			{Group: "projector-orders", Exists: true, State: "Stable", Partitions: []rebuild.PartitionLag{{Partition: 0, Committed: 5, End: 9, Lag: 4}}},
			{Group: "projector-search", Partitions: []rebuild.PartitionLag{}},
		},
		Orders: &rebuild.OrdersStatus{Live: "orders_g2", Building: []string{"orders_g3"}, ParkedOrders: 1},
		Search: &rebuild.SearchStatus{Alias: "orders", Targets: []string{"orders-v2"}, ParkedOrders: &parked},
	}
	var out bytes.Buffer
	if err := writeStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"topic orders.events: HISTORY WAS DELETED (partition 1 starts at offset 12)",
		"projector-orders  Stable          0          5          9    4", "projector-search  (no group yet)",
		"projector-orders: live generation orders_g2 (orders_read views), parked orders: 1; also orders_g3 (building)",
		"projector-search: alias orders -> orders-v2, parked orders: 3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	_ = writeStatus(&out, rebuild.Status{History: rebuild.History{Topic: "t", Partitions: []rebuild.PartitionStart{{}}}})
	for _, want := range []string{"every partition starts at offset 0", "DATABASE_URL not set", "OPENSEARCH_URL not set"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := writeJSON(&out, st); err != nil {
		t.Fatal(err)
	}
	var back rebuild.Status
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Orders.Live != "orders_g2" || *back.Search.ParkedOrders != 3 || back.History.Lost()[0].Start != 12 {
		t.Errorf("status --output json round trip = %+v, %v", back, err)
	}
}
