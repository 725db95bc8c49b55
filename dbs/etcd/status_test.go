package etcd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Status answers recorded from Debian's etcd 3.4.23 on sandbox nodes.
func TestStatusRecorded(t *testing.T) {
	for file, leader := range map[string]bool{"status-leader.json": true, "status-follower.json": false} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		var st Status
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		if st.IsLeader() != leader || st.Leader != "13663322087146139816" || st.RaftTerm != "2" {
			t.Errorf("%s: %+v, leader %t", file, st, st.IsLeader())
		}
	}
}
