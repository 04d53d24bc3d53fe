package segmentupdater

import "github.com/retarget-dev/retarget/shared/domain/envelope"

func idEntryAt(id string, t int64) string {
	return idEntry(&envelope.Event{ID: id, Name: "n", Time: t})
}
