package runtime

import (
	"github.com/retarget-dev/retarget/shared/handlers/archivetransform"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

// NewArchiveTransform builds the archive's Firehose transformation: it reads the app config
// (each app's archive_raw_fields) and calls no AWS service.
func NewArchiveTransform(c env.ArchiveTransform, d Deps) (*archivetransform.Handler, error) {
	apps, err := env.LoadApps(c.ConfigFile)
	if err != nil {
		return nil, err
	}
	return archivetransform.New(archivetransform.Config{Apps: apps, Logger: d.Log})
}
