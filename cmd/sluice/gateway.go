package main

import "errors"

// runGateway runs `sluice gateway`. (wired by the lead; placeholder)
func runGateway(args []string) error { return errors.New("gateway: not wired yet") }
