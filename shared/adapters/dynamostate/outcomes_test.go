package dynamostate

import (
	"testing"

	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/testkit/statetest"
)

func TestOutcomeContract(t *testing.T) {
	client := dynalite(t)
	statetest.RunOutcomes(t, func(t *testing.T) ports.OutcomeStore {
		return New(client, freshTable(t, client), Options{})
	})
}
