package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// TestTailLineOfEveryVersion: a record of one event names it, with its version; a version 2
// record of several events gives their count and the first; a record that does not decode says
// so without its bytes. Digests are never printed.
func TestTailLineOfEveryVersion(t *testing.T) {
	email := identity.Hash{0xab, 0xcd, 0xef}
	ev := func(id, name string) envelope.Record {
		return envelope.Record{App: "sample-shop", UserKey: "Xk3-key", ReceivedAt: 1700000000000,
			Event: envelope.Event{ID: id, Name: name, Time: 1700000000, User: envelope.User{Email: email}}}
	}
	a, b, c := ev("id-a", "fb_mobile_purchase"), ev("id-b", "fb_mobile_add_to_cart"), ev("id-c", "fb_mobile_activate_app")
	rec := func(data []byte) kinesisstream.TailedRecord {
		return kinesisstream.TailedRecord{ShardID: "shardId-000000000001", SequenceNumber: "4966", PartitionKey: "Xk3-key", Data: data}
	}
	const head = "tail shard=shardId-000000000001 seq=4966 "
	v1, v2, group := envelope.AppendV1(nil, &a), envelope.Append(nil, &a), envelope.AppendGroup(nil, []envelope.Record{a, b, c})
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"version 1", v1, head + fmt.Sprintf("v=1 app=sample-shop user=Xk3-key event=fb_mobile_purchase id=id-a bytes=%d", len(v1))},
		{"version 2, one event", v2, head + fmt.Sprintf("v=2 app=sample-shop user=Xk3-key event=fb_mobile_purchase id=id-a bytes=%d", len(v2))},
		{"version 2, three events", group, head + fmt.Sprintf("v=2 app=sample-shop user=Xk3-key events=3 first=fb_mobile_purchase id=id-a bytes=%d", len(group))},
		{"undecodable", []byte(`{"v":9,"uk":"secret"}`), head + "partition_key=Xk3-key bytes=21 undecodable: "},
	} {
		got := tailLine(rec(tc.data))
		if !strings.HasPrefix(got, tc.want) || (tc.name != "undecodable" && got != tc.want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, email.String()[:12]) {
			t.Errorf("%s: the line prints the record's content: %s", tc.name, got)
		}
	}

	// -tail-json carries the record itself, of either version, as JSON.
	var line struct {
		Bytes int
		Data  struct {
			V      int
			Events []struct{ ID string }
		}
	}
	if err := json.Unmarshal([]byte(tailJSON(kinesisstream.TailedRecord{ShardID: "s", SequenceNumber: "1", Data: group, ApproximateArrival: time.Unix(1, 0)})), &line); err != nil {
		t.Fatal(err)
	}
	if line.Bytes != len(group) || line.Data.V != 2 || len(line.Data.Events) != 3 || line.Data.Events[2].ID != "id-c" {
		t.Errorf("tail json of a version 2 record: %+v", line)
	}
}
