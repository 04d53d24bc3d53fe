package appconfig

// The event archive's per-app setting:
//
//	"archive_raw_fields": true
//
// The archive keeps every accepted event pseudonymised as on the stream, minus the fields only
// Meta needs raw: the client IP address, the user agent, the advertising id (madid) and the
// install id (anon_id). An app
// whose analytics need them (fraud checks, device attribution) opts in with this key; the raw
// values are then personal data in a long-lived store, so an opt-in belongs in the app's privacy
// notice. Absent or false (the default): they are dropped before the first byte is written.
//
// The key is a JSON boolean: any other type is refused with its line, and a misspelt key is
// refused like every unknown key (a typo must never silently keep raw data, nor silently drop
// what an app asked to keep).

// ArchiveKeepsRawFields reports whether the archive keeps the app's raw client IP, user agent,
// advertising id and install id.
func (a *App) ArchiveKeepsRawFields() bool { return a.ArchiveRawFields }
