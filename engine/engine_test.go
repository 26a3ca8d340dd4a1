package engine

import (
	"context"
	"errors"
	"testing"
)

type namedPlugin string

func (p namedPlugin) Name() string { return string(p) }
func (p namedPlugin) Handle(ctx context.Context, s *Session, m *Message, next Next) error {
	return next(ctx, s, m)
}

func TestCompileOrdersByOrderList(t *testing.T) {
	c, err := Compile([]Plugin{namedPlugin("mask"), namedPlugin("audit"), namedPlugin("guardrail")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c {
		got = append(got, p.Name())
	}
	if len(got) != 3 || got[0] != "audit" || got[1] != "guardrail" || got[2] != "mask" {
		t.Fatalf("got %v, want [audit guardrail mask]", got)
	}
}

func TestCompileRejectsUnknownAndDuplicate(t *testing.T) {
	if _, err := Compile([]Plugin{namedPlugin("nope")}); err == nil {
		t.Fatal("unknown plugin accepted")
	}
	if _, err := Compile([]Plugin{namedPlugin("audit"), namedPlugin("audit")}); err == nil {
		t.Fatal("duplicate plugin accepted")
	}
}

func TestOrderHasNoDuplicates(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Order {
		if seen[n] {
			t.Fatalf("%q twice in Order", n)
		}
		seen[n] = true
	}
}

func TestAsError(t *testing.T) {
	d := Deny("rule drop")
	if AsError(d) != d || AsError(d).Code != CodeDenied {
		t.Fatal("AsError lost the typed error")
	}
	wrapped := AsError(errors.New("boom"))
	if wrapped.Code != CodeInternal || wrapped.Message != "internal error" {
		t.Fatalf("untyped error rendered as %+v; internals must not reach the client", wrapped)
	}
}

func TestBufferPoolSizes(t *testing.T) {
	var p BufferPool
	for _, n := range []int{1, 4096, 4097, 65536, 1 << 20, 64 << 20} {
		b := p.Get(n)
		if len(b) != n {
			t.Fatalf("Get(%d) returned len %d", n, len(b))
		}
		p.Put(b)
		if b2 := p.Get(n); len(b2) != n {
			t.Fatalf("reused Get(%d) returned len %d", n, len(b2))
		}
	}
}

func BenchmarkBufferPool(b *testing.B) {
	var p BufferPool
	b.ReportAllocs()
	for b.Loop() {
		p.Put(p.Get(64 << 10))
	}
}
