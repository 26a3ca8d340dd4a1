package main

import "errors"

// runAgent runs `sluice agent`. (wired by the lead; placeholder)
func runAgent(args []string) error { return errors.New("agent: not wired yet") }

// runDemo runs `sluice demo`. (wired by the lead; placeholder)
func runDemo(args []string) error { return errors.New("demo: not wired yet") }
