package env

// ArchiveTransform is the configuration of the archive's Firehose transformation: only the
// common settings (the app config decides which raw fields each app's rows keep).
type ArchiveTransform struct {
	Common
}

// ReadArchiveTransform reads the archive transformation's configuration.
func ReadArchiveTransform(getenv Getenv) (ArchiveTransform, error) {
	return ArchiveTransform{Common: readCommon(getenv)}, nil
}
