package measure

import "errors"

// Build computes the report. (Being implemented: see the measurement issue.)
func Build(in Input) (Report, error) {
	return Report{}, errors.New("measure: Build is not implemented yet")
}
