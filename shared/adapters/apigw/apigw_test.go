package apigw

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

func TestIAMCaller(t *testing.T) {
	for _, tt := range []struct {
		name     string
		identity events.APIGatewayRequestIdentity
		want     string
		wantOK   bool
	}{
		{"none", events.APIGatewayRequestIdentity{APIKeyID: "k", SourceIP: "203.0.113.7"}, "", false},
		{"arn", events.APIGatewayRequestIdentity{UserArn: "arn:aws:iam::123456789012:user/ops", AccessKey: "AKIAEXAMPLE"}, "arn:aws:iam::123456789012:user/ops", true},
		{"access key only", events.APIGatewayRequestIdentity{AccessKey: "AKIAEXAMPLE"}, "AKIAEXAMPLE", true},
	} {
		req := events.APIGatewayProxyRequest{RequestContext: events.APIGatewayProxyRequestContext{Identity: tt.identity}}
		if got, ok := IAMCaller(req); got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: IAMCaller = %q %v, want %q %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
	if r := RequireIAM(); r.StatusCode != 403 {
		t.Errorf("RequireIAM = %d", r.StatusCode)
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc.def.ghi":   "abc.def.ghi",
		"bearer abc.def.ghi":   "abc.def.ghi",
		"Bearer   abc.def.ghi": "abc.def.ghi",
		" Bearer abc ":         "abc",
		"":                     "",
		"Bearer":               "",
		"Bearer ":              "",
		"Basic dXNlcjpwYXNz":   "",
		"Bearer a b":           "",
		"Bearer a\tb":          "",
		"abc.def.ghi":          "",
	} {
		req := events.APIGatewayProxyRequest{Headers: map[string]string{"authorization": header}}
		got, ok := BearerToken(req)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q %v, want %q", header, got, ok, want)
		}
	}
}
