package haproxy

import (
	"bytes"
	"testing"
)

// TestRecordOf: a row's cells give back their record only when they were
// cut from it at its commas.
func TestRecordOf(t *testing.T) {
	s := &statReader{}
	for _, rec := range []string{"a,b,,12,", ",", "x", "", "app,web-1,0,3,UP 1/2,,,"} {
		buf := []byte(rec + "trailing")[:len(rec)]
		cells, err := s.split(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := recordOf(cells); string(got) != rec || (len(rec) > 0 && &got[0] != &buf[0]) {
			t.Errorf("recordOf(split(%q)) = %q, want the record itself", rec, got)
		}
	}
	for _, rec := range []string{`a,"b,c",d`, `"a",b`, `a,"b"`, `a,"b",,`, `a,"",c,`, `x,"a""b",y`, `x,"a"junk,y`} {
		cells, err := s.split([]byte(rec))
		if err != nil {
			t.Fatal(err)
		}
		if got := recordOf(cells); got != nil {
			t.Errorf("recordOf(split(%q)) = %q, want nil: quoted cells are not the record's bytes", rec, got)
		}
	}
	a, b := []byte("ab,cd"), []byte("cd")
	if got := recordOf([][]byte{a[:2], b}); got != nil {
		t.Errorf("cells of two slices give %q, want nil", got)
	}
	if got := recordOf([][]byte{a[:2], a[3:]}); !bytes.Equal(got, a) {
		t.Errorf("cells of one slice give %q, want %q", got, a)
	}
}

// TestSplitEightAtATime: cells come out the same whatever the length of
// the record and wherever its commas fall among the 8-byte words.
func TestSplitEightAtATime(t *testing.T) {
	s := &statReader{}
	alphabet := []byte{',', 'a', '0', 0, 0xff, ',' + 0x80, ',', 'z'}
	for n := 0; n < 40; n++ {
		for seed := 0; seed < 50; seed++ {
			rec := make([]byte, n)
			x := uint32(seed*7919 + n)
			for i := range rec {
				x = x*1103515245 + 12345
				rec[i] = alphabet[(x>>16)%uint32(len(alphabet))]
			}
			want := bytes.Split(rec, []byte{','})
			got, err := s.split(rec)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("split(%q): %d cells, want %d", rec, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("split(%q): cell %d %q, want %q", rec, i, got[i], want[i])
				}
			}
		}
	}
}
