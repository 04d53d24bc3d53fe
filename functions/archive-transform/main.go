// Command archive-transform is the Firehose data transformation of the event archive: each
// stream record becomes one archive row (JSON, converted to Parquet by Firehose) with its app
// and day partition keys. It only wires: runtime.Start reads the environment once
// (env.ReadArchiveTransform names the variables), builds the handler once and hands it to the
// Lambda runtime.
package main

import (
	"context"

	"github.com/retarget-dev/retarget/shared/runtime"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

func main() {
	runtime.Start("archive-transform", func(_ context.Context, getenv env.Getenv, d runtime.Deps) (any, error) {
		c, err := env.ReadArchiveTransform(getenv)
		if err != nil {
			return nil, err
		}
		h, err := runtime.NewArchiveTransform(c, d)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil
	})
}
