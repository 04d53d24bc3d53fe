package metagraph

import "time"

// DefaultTimeoutPerMiB is the default Config.TimeoutPerMiB. Meta's advice (most Conversions API
// answers within 600 ms, a client timeout of about 1.5 s: Conversions API best practices,
// https://developers.facebook.com/docs/marketing-api/conversions-api/best-practices, as noted
// in the project's Meta reference notes, section 1) is about ordinary requests of a few
// kilobytes. A batch of 1,000 events can reach 2 MiB, whose upload and parsing alone can use
// most of 1.5 s on a slow path; cutting it off there turns a request Meta would have taken
// into a retry of the same 2 MiB. One second per MiB covers a link of about 8 Mbit/s.
const DefaultTimeoutPerMiB = time.Second

const mebibyte = 1 << 20

// requestTimeout is the budget of one call whose body is bodyBytes long: base, plus perMiB
// for each MiB of body, pro rata, so a small request still times out at about base.
func requestTimeout(base, perMiB time.Duration, bodyBytes int) time.Duration {
	return base + time.Duration(float64(perMiB)*float64(bodyBytes)/mebibyte)
}
