package audiencesync

import "crypto/sha256"

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }
