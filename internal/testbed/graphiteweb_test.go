package testbed

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"
)

func TestGraphiteWebRendersWhatCarbonGot(t *testing.T) {
	c := NewCarbon(t)
	g := NewGraphiteWeb(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	conn, err := net.Dial("tcp", c.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	fmt.Fprintf(conn, "hm.web.a.x 1 %d\nhm.web.a.x 5 %d\nhm.web.b.x 7 %d\n", now-2, now-1, now-1)
	conn.Close()

	var series []Series
	for {
		if series, err = g.Render(ctx, "sumSeries(hm.web.*.x)", "-1min"); err != nil {
			t.Fatal(err)
		}
		if len(series) == 1 {
			if v, ok := series[0].Last(); ok && v == 12 {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("sumSeries(hm.web.*.x) = %+v, want a last value of 12", series)
		}
		time.Sleep(200 * time.Millisecond)
	}
	found, err := g.Find(ctx, "hm.web.*")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].Text != "a" || found[1].Text != "b" || found[0].Leaf != 0 {
		t.Errorf("find hm.web.* = %+v, want branches a and b", found)
	}
	paths, err := g.Expand(ctx, "hm.*.a")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(paths) != "[hm.web.a]" {
		t.Errorf("expand hm.*.a = %v", paths)
	}
	png, err := g.RenderPNG(ctx, []string{"hm.web.*.x"}, url.Values{"from": {"-1min"}, "width": {"200"}, "height": {"100"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("render png is not a PNG: %q", png[:min(len(png), 16)])
	}
	if _, err := g.Render(ctx, "nosuchfunction(hm.web.*.x)", "-1min"); err == nil {
		t.Error("render of an unknown function: no error")
	} else {
		t.Logf("unknown function: %v", err)
	}
}
