package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// format is the value of --output: text for people, json for scripts and the console.
type format string

const (
	textFormat format = "text"
	jsonFormat format = "json"
)

func (f *format) String() string { return string(*f) }
func (f *format) Type() string   { return "text|json" }
func (f *format) Set(s string) error {
	if s != string(textFormat) && s != string(jsonFormat) {
		return fmt.Errorf("want text or json")
	}
	*f = format(s)
	return nil
}

// addOutputFlag adds --output (-o) to cmd, text by default.
func addOutputFlag(cmd *cobra.Command) *format {
	f := textFormat
	cmd.Flags().VarP(&f, "output", "o", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return &f
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
