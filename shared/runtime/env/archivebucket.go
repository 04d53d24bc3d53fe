package env

// ArchiveBucket is the S3 bucket of the event archive (the stack output ArchiveBucketName):
// where the CLI's archive commands read the stack's archive.
const ArchiveBucket = "ARCHIVE_BUCKET"
