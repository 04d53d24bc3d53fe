package env

import (
	"strings"
	"testing"
	"time"
)

func TestReadArchivePurge(t *testing.T) {
	vars := func(kv ...string) Getenv {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	c, err := ReadArchivePurge(vars(StateTableName, "t", ArchiveBucketName, "b"))
	if err != nil || c.StateTable != "t" || c.Bucket != "b" || c.Settle != DefaultArchivePurgeSettle || c.Lookback != DefaultArchivePurgeLookbackDays {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	c, err = ReadArchivePurge(vars(StateTableName, "t", ArchiveBucketName, "b", ArchivePurgeSettle, "1800s", ArchivePurgeLookbackDays, "730"))
	if err != nil || c.Settle != 30*time.Minute || c.Lookback != 730 {
		t.Errorf("set: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		env  Getenv
		want string
	}{
		{vars(ArchiveBucketName, "b"), StateTableName},
		{vars(StateTableName, "t"), ArchiveBucketName},
		{vars(StateTableName, "t", ArchiveBucketName, "b", ArchivePurgeSettle, "30"), ArchivePurgeSettle},
		{vars(StateTableName, "t", ArchiveBucketName, "b", ArchivePurgeSettle, "-1s"), ArchivePurgeSettle},
		{vars(StateTableName, "t", ArchiveBucketName, "b", ArchivePurgeLookbackDays, "x"), ArchivePurgeLookbackDays},
	} {
		if _, err := ReadArchivePurge(tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one naming %s", err, tc.want)
		}
	}
}
