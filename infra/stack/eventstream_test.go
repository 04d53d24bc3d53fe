package stack

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestEventStream: the Kinesis stream, on-demand by default, provisioned with -c streamShards.
func TestEventStream(t *testing.T) {

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"stream is on-demand and KMS-encrypted", func(t *testing.T) {
			check(t, func() { template.ResourceCountIs(jsii.String("AWS::Kinesis::Stream"), jsii.Number(1)) })
			check(t, func() {
				template.HasResourceProperties(jsii.String("AWS::Kinesis::Stream"), map[string]any{
					"StreamModeDetails":    map[string]any{"StreamMode": "ON_DEMAND"},
					"StreamEncryption":     map[string]any{"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
					"RetentionPeriodHours": 24,
					"ShardCount":           assertions.Match_Absent(),
				})
			})
		}},
		{"-c streamShards makes the stream provisioned", func(t *testing.T) {
			check(t, func() {
				opsTemplate.HasResourceProperties(jsii.String("AWS::Kinesis::Stream"), map[string]any{
					"StreamModeDetails": map[string]any{"StreamMode": "PROVISIONED"},
					"ShardCount":        opsStreamShards,
					"StreamEncryption":  map[string]any{"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
				})
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}
