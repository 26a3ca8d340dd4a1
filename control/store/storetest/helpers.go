package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-gw/sluice/control/store"
)

var timeType = reflect.TypeFor[time.Time]()

// sameRecord fails unless got equals want field by field: time.Time fields
// by sameTime (same instant, UTC), every other field by reflect.DeepEqual.
// Records are flat structs.
func sameRecord[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	g, w := reflect.ValueOf(&got).Elem(), reflect.ValueOf(&want).Elem()
	for i := range g.NumField() {
		f := g.Type().Field(i)
		if f.Type == timeType {
			sameTime(t, what+"."+f.Name, g.Field(i).Interface().(time.Time), w.Field(i).Interface().(time.Time))
			g.Field(i).Set(reflect.Zero(timeType))
			w.Field(i).Set(reflect.Zero(timeType))
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

// isEmpty fails unless l is empty and non-nil and err is nil.
func isEmpty[T any](t *testing.T, what string, l []T, err error) {
	t.Helper()
	must(t, what, err)
	if l == nil || len(l) != 0 {
		t.Fatalf("%s: got %#v, want an empty, non-nil slice", what, l)
	}
}

// conflict fails unless err wraps store.ErrConflict.
func conflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("%s: got %v, want ErrConflict", what, err)
	}
}

// keys maps the records of l to their keys, in order.
func keys[T any, K any](l []T, key func(T) K) []K {
	out := make([]K, len(l))
	for i, v := range l {
		out[i] = key(v)
	}
	return out
}

// order fails unless the keys of l are want, in that order.
func order[T any, K comparable](t *testing.T, what string, l []T, err error, key func(T) K, want ...K) {
	t.Helper()
	must(t, what, err)
	if l == nil {
		t.Fatalf("%s: nil slice", what)
	}
	got := keys(l, key)
	if len(want) == 0 {
		want = []K{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}
