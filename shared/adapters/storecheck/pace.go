package storecheck

import (
	"fmt"
	"strings"
)

// AdAccount rejects an ad account id that is not "act_" and 1 to 20 digits.
func AdAccount(id string) error {
	digits, ok := strings.CutPrefix(id, "act_")
	valid := ok && digits != "" && len(digits) <= 20
	for i := 0; valid && i < len(digits); i++ {
		valid = digits[i] >= '0' && digits[i] <= '9'
	}
	if !valid {
		return fmt.Errorf("%w: ad account %q, want act_<digits>", ErrInvalid, id)
	}
	return nil
}
