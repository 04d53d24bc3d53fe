package ports

import "context"

// ArchivePurges lists the erasures whose rows the event archive may still hold. Storing an
// erasure (ConsentStore.PutErasure) makes it pending; the archive purge marks it done once it
// has rewritten every partition that can hold the user's rows. A sparse list rather than a scan
// of the audit records: a purge run reads only what is pending.
type ArchivePurges interface {
	// PendingPurges returns the app's pending erasures (ID, UserKey, RequestedAt, FirstDay),
	// ordered by id, with strongly consistent reads.
	PendingPurges(ctx context.Context, app string) ([]ErasureRecord, error)
	// PurgeDone removes the erasure from the pending list; done twice (or for an unknown id)
	// is harmless.
	PurgeDone(ctx context.Context, app, id string) error
}
