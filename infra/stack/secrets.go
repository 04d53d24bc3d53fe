package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// PepperLength is the length of the generated pepper.
const PepperLength = 48

// PepperSecretProps configures the pepper secret.
type PepperSecretProps struct {
	// ExistingSecretArn, when set, reuses a secret instead of creating one: the complete ARN of
	// a pepper retained from an earlier deployment of this stack. A new pepper re-keys every
	// pseudonymous user id, so recreating a deleted stack should reuse the old one.
	ExistingSecretArn string
}

// PepperSecret holds the secret pepper that keys the pseudonymous user ids (an HMAC of app and
// user identifier). A created pepper is always retained: deleting it, even with the stack,
// would re-key every user and orphan all state and audience membership.
type PepperSecret struct {
	constructs.Construct
	// Secret is the Secrets Manager secret; its value is a plain string.
	Secret awssecretsmanager.ISecret
}

// NewPepperSecret declares (or imports) the pepper secret.
func NewPepperSecret(scope constructs.Construct, id string, props *PepperSecretProps) *PepperSecret {
	if props == nil {
		props = &PepperSecretProps{}
	}
	c := constructs.NewConstruct(scope, jsii.String(id))
	if props.ExistingSecretArn != "" {
		s := awssecretsmanager.Secret_FromSecretCompleteArn(c, jsii.String("Secret"), jsii.String(props.ExistingSecretArn))
		return &PepperSecret{Construct: c, Secret: s}
	}
	s := awssecretsmanager.NewSecret(c, jsii.String("Secret"), &awssecretsmanager.SecretProps{
		Description: jsii.String("Pepper keying the pseudonymous user ids of retarget. Never rotate or delete: a new value re-keys every user."),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength: jsii.Number(PepperLength),
			// Letters and digits only: the value is used as raw key bytes and must survive
			// copy-paste and shell quoting when an operator inspects or restores it.
			ExcludePunctuation: jsii.Bool(true),
			IncludeSpace:       jsii.Bool(false),
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	suppress(s, false, nagRule{id: "AwsSolutions-SMG4",
		reason: "the pepper keys every pseudonymous user id: rotating it would re-key all users (their state, segments and audience rows); it never leaves Secrets Manager and the functions' roles"})
	return &PepperSecret{Construct: c, Secret: s}
}

// Keys of the Meta credentials secret's JSON document (a contract with shared/handlers/capiforwarder's
// MetaCredentials).
const (
	MetaAccessTokenKey = "access_token"
	MetaAppSecretKey   = "app_secret"
	// MetaAccessTokenPlaceholder is the access token of a newly created secret: the stack
	// cannot know the real one, an operator puts it in after the first deployment.
	MetaAccessTokenPlaceholder = "REPLACE_ME"
)

// MetaSecretProps configures the Meta credentials secret.
type MetaSecretProps struct {
	// ExistingSecretArn, when set, reuses a secret (complete ARN) instead of creating one, e.g.
	// one retained from an earlier deployment or managed outside this stack.
	ExistingSecretArn string
}

// MetaSecret holds the Meta credentials the functions calling the Graph API use: a JSON
// document {"access_token": "...", "app_secret": "..."} (a system user token of the business
// owning the datasets, and the app secret for appsecret_proof). A created secret starts with a
// placeholder token and a random app secret; `aws secretsmanager put-secret-value` replaces both
// (see infra/docs/deploy.md). It is always retained: the token is issued by hand in Meta's
// Business Manager and should not vanish with a stack.
type MetaSecret struct {
	constructs.Construct
	// Secret is the Secrets Manager secret; grant readers GrantRead.
	Secret awssecretsmanager.ISecret
}

// NewMetaSecret declares (or imports) the Meta credentials secret.
func NewMetaSecret(scope constructs.Construct, id string, props *MetaSecretProps) *MetaSecret {
	if props == nil {
		props = &MetaSecretProps{}
	}
	c := constructs.NewConstruct(scope, jsii.String(id))
	if props.ExistingSecretArn != "" {
		s := awssecretsmanager.Secret_FromSecretCompleteArn(c, jsii.String("Secret"), jsii.String(props.ExistingSecretArn))
		return &MetaSecret{Construct: c, Secret: s}
	}
	s := awssecretsmanager.NewSecret(c, jsii.String("Secret"), &awssecretsmanager.SecretProps{
		Description: jsii.String(`Meta credentials of retarget: JSON {"access_token": "...", "app_secret": "..."}. Created with a placeholder; put the real values with aws secretsmanager put-secret-value.`),
		// A generated document keeps every value out of the template: only the placeholder
		// and the key names appear there.
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(`{"` + MetaAccessTokenKey + `":"` + MetaAccessTokenPlaceholder + `"}`),
			GenerateStringKey:    jsii.String(MetaAppSecretKey),
			ExcludePunctuation:   jsii.Bool(true),
			IncludeSpace:         jsii.Bool(false),
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	suppress(s, false, nagRule{id: "AwsSolutions-SMG4",
		reason: "holds a Meta system-user access token and the Meta app secret, which only Meta Business Manager can issue; there is no API a rotation Lambda could call. Rotate them there and put the new values (infra/docs/deploy.md, first-deploy checklist)"})
	return &MetaSecret{Construct: c, Secret: s}
}
