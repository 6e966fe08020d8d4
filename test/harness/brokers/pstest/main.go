// Command pstest serves Google's fake Pub/Sub (cloud.google.com/go/pubsub/pstest) for Wharf's
// integration tests. It prints two lines: the gRPC address clients use as their emulator host, and
// an HTTP base URL where GET /messages?ids=a,b shows what the fake recorded of those messages
// (deliveries, acks, and ack-deadline changes, a nack being a change to 0 s), so tests can see what
// a connector acked. It serves until stdin closes, so it dies with the test run that started it.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"cloud.google.com/go/pubsub/pstest"
)

type counts struct {
	ID         string  `json:"id"`
	Deliveries int     `json:"deliveries"`
	Acks       int     `json:"acks"`
	Modacks    []int32 `json:"modacks"`
	// When pstest received each ack-deadline change, in Unix milliseconds (the order tells a lease
	// that overtook a nack).
	ModackAt []int64 `json:"modack_at"`
}

func main() {
	srv := pstest.NewServer()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	http.HandleFunc("/messages", func(w http.ResponseWriter, r *http.Request) {
		want := map[string]bool{}
		for _, id := range strings.Split(r.URL.Query().Get("ids"), ",") {
			want[id] = true
		}
		out := []counts{}
		for _, m := range srv.Messages() {
			if want[m.ID] {
				c := counts{ID: m.ID, Deliveries: m.Deliveries, Acks: m.Acks, Modacks: []int32{}, ModackAt: []int64{}}
				for _, ma := range m.Modacks {
					c.Modacks = append(c.Modacks, ma.AckDeadline)
					c.ModackAt = append(c.ModackAt, ma.ReceivedAt.UnixMilli())
				}
				out = append(out, c)
			}
		}
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	go func() { _ = http.Serve(l, nil) }()
	fmt.Println(srv.Addr)
	fmt.Println("http://" + l.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}
