package main

import (
	"errors"
	"flag"
	"io"
	"strings"
)

// errFlagHelp is returned after -h/--help printed a command's usage: exit status 0.
var errFlagHelp = errors.New("help requested")

// flagSet wraps flag.FlagSet so flags may appear before, between or after
// positional arguments (`sluice admin get agents -o json`).
type flagSet struct {
	*flag.FlagSet
	synopsis string
	out      io.Writer
}

func (a *app) newFlagSet(name, synopsis string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, synopsis: synopsis, out: a.stdout}
}

// parse parses args and returns the positional arguments. Everything after a
// literal "--" is positional.
func (fs *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printHelp()
				return nil, errFlagHelp
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (fs *flagSet) printHelp() {
	w := fs.out
	io.WriteString(w, "Usage: "+fs.synopsis+"\n")
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if b.Len() > 0 {
		io.WriteString(w, "\nFlags:\n"+b.String())
	}
}

// wantArgs checks the number of positional arguments.
func (fs *flagSet) wantArgs(pos []string, n int) error {
	if len(pos) != n {
		return usagef("usage: %s", fs.synopsis)
	}
	return nil
}
