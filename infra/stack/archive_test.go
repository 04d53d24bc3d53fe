package stack

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
)

// Set by TestMain's setUp: the dummy bootstraps and the CDK feature flags.
var (
	testFunctionsDir string
	testFlags        map[string]any
)

const archiveTestExpiryDays = 365

// The archive stack is built on first use, in its own app (the shared app is synthesised
// before the tests run, and CDK takes no constructs after that).
var archiveOnce struct {
	sync.Once
	stack *RetargetStack
	tmpl  assertions.Template
	plain map[string]any
	err   error
}

func archiveStack(t *testing.T) (*RetargetStack, assertions.Template, map[string]any) {
	t.Helper()
	archiveOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				archiveOnce.err = r.(error)
			}
		}()
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(t.TempDir(), "cdk.out")), Context: &testFlags})
		st := NewRetargetStack(app, "Archived", &RetargetStackProps{
			Config:            testConfig,
			FunctionsDir:      testFunctionsDir,
			ArchiveEnabled:    true,
			ArchiveExpiryDays: archiveTestExpiryDays,
		})
		AddNagChecks(app)
		archiveOnce.stack, archiveOnce.tmpl = st, assertions.Template_FromStack(st.Stack, nil)
		archiveOnce.plain, archiveOnce.err = plainTemplate(archiveOnce.tmpl)
	})
	if archiveOnce.err != nil {
		t.Fatalf("archive stack: %v", archiveOnce.err)
	}
	return archiveOnce.stack, archiveOnce.tmpl, archiveOnce.plain
}

func TestArchiveResources(t *testing.T) {
	st, tmpl, plain := archiveStack(t)
	a := st.Archive
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"bucket: the archive's key, private, TLS only, unversioned, retained", func(t *testing.T) {
			check(t, func() {
				tmpl.HasResource(jsii.String("AWS::S3::Bucket"), map[string]any{
					"DeletionPolicy": "Retain",
					"Properties": map[string]any{
						"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{map[string]any{
							"BucketKeyEnabled": true,
							"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "aws:kms",
								"KMSMasterKeyID": getAtt(a.Key, "Arn")}}}},
						"PublicAccessBlockConfiguration": map[string]any{"BlockPublicAcls": true, "BlockPublicPolicy": true,
							"IgnorePublicAcls": true, "RestrictPublicBuckets": true},
						"VersioningConfiguration": assertions.Match_Absent(),
					}})
			})
			check(t, func() {
				tmpl.HasResourceProperties(jsii.String("AWS::S3::BucketPolicy"), map[string]any{
					"Bucket": ref(a.Bucket),
					"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
						"Effect": "Deny", "Action": "s3:*", "Principal": map[string]any{"AWS": "*"},
						"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}})})}})
			})
			check(t, func() {
				tmpl.HasResource(jsii.String("AWS::KMS::Key"), map[string]any{"DeletionPolicy": "Retain",
					"Properties": map[string]any{"EnableKeyRotation": true, "Description": "Encrypts the event archive's files"}})
			})
		}},
		{"lifecycle: Standard-IA after 90 days, expiry", func(t *testing.T) {
			check(t, func() {
				tmpl.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
					"LifecycleConfiguration": map[string]any{"Rules": []any{
						map[string]any{"Id": "uploads", "Status": "Enabled", "AbortIncompleteMultipartUpload": map[string]any{"DaysAfterInitiation": 7}},
						map[string]any{"Id": "infrequent-access", "Status": "Enabled", "ObjectSizeGreaterThan": "131072",
							"Transitions": []any{map[string]any{"StorageClass": "STANDARD_IA", "TransitionInDays": ArchiveInfrequentAccessDays}}},
						map[string]any{"Id": "expiry", "Status": "Enabled", "ExpirationInDays": archiveTestExpiryDays},
					}}})
			})
		}},
		{"glue table: the archive's columns, Parquet, projected partitions", func(t *testing.T) {
			tables := resourcesIn(plain, "AWS::Glue::Table")
			if len(tables) != 1 {
				t.Fatalf("%d Glue tables, want 1", len(tables))
			}
			for _, tbl := range tables {
				in := tbl["Properties"].(map[string]any)["TableInput"].(map[string]any)
				if in["Name"] != ArchiveTableName || in["TableType"] != "EXTERNAL_TABLE" {
					t.Errorf("table %v (%v)", in["Name"], in["TableType"])
				}
				sd := in["StorageDescriptor"].(map[string]any)
				var got []GlueColumn
				for _, c := range sd["Columns"].([]any) {
					c := c.(map[string]any)
					got = append(got, GlueColumn{c["Name"].(string), c["Type"].(string)})
				}
				if !reflect.DeepEqual(got, ArchiveColumns()) {
					t.Errorf("columns %v, want %v", got, ArchiveColumns())
				}
				if !reflect.DeepEqual(in["PartitionKeys"], []any{map[string]any{"Name": "app", "Type": "string"}, map[string]any{"Name": "day", "Type": "string"}}) {
					t.Errorf("partition keys %v", in["PartitionKeys"])
				}
				if sd["SerdeInfo"].(map[string]any)["SerializationLibrary"] != parquetSerde || sd["InputFormat"] != parquetInputFormat {
					t.Errorf("not a Parquet table: %v", sd)
				}
				params := in["Parameters"].(map[string]any)
				for k, v := range map[string]string{"projection.enabled": "true", "projection.app.type": "enum",
					"projection.app.values": "game,shop-ios", "projection.day.type": "date", "projection.day.format": "yyyy-MM-dd",
					"projection.day.range": "NOW-365DAYS,NOW", "projection.day.interval.unit": "DAYS"} {
					if params[k] != v {
						t.Errorf("parameter %s = %v, want %s", k, params[k], v)
					}
				}
				if b, _ := json.Marshal(params["storage.location.template"]); !strings.Contains(string(b), "/app=${app}/day=${day}/") {
					t.Errorf("storage.location.template %v", params["storage.location.template"])
				}
			}
			check(t, func() {
				tmpl.HasResourceProperties(jsii.String("AWS::Glue::Database"), map[string]any{
					"DatabaseInput": map[string]any{"Name": ArchiveDatabaseName(DefaultStage)}})
			})
		}},
		{"delivery stream: stream source, transformation, partitions, Parquet", func(t *testing.T) {
			check(t, func() {
				tmpl.HasResourceProperties(jsii.String("AWS::KinesisFirehose::DeliveryStream"), map[string]any{
					"DeliveryStreamType":               "KinesisStreamAsSource",
					"KinesisStreamSourceConfiguration": map[string]any{"KinesisStreamARN": getAtt(st.Events.Stream, "Arn")},
					"ExtendedS3DestinationConfiguration": map[string]any{
						"BucketARN":         getAtt(a.Bucket, "Arn"),
						"Prefix":            ArchiveDataPrefix,
						"ErrorOutputPrefix": ArchiveErrorPrefix,
						"FileExtension":     ".parquet",
						"BufferingHints":    map[string]any{"IntervalInSeconds": ArchiveBufferSeconds, "SizeInMBs": ArchiveBufferMiB},
						"EncryptionConfiguration": map[string]any{"KMSEncryptionConfig": map[string]any{
							"AWSKMSKeyARN": getAtt(a.Key, "Arn")}},
						"DynamicPartitioningConfiguration": map[string]any{"Enabled": true},
						"ProcessingConfiguration": map[string]any{"Enabled": true, "Processors": assertions.Match_ArrayWith(&[]any{
							map[string]any{"Type": "Lambda", "Parameters": assertions.Match_ArrayWith(&[]any{
								map[string]any{"ParameterName": "LambdaArn", "ParameterValue": getAtt(a.Transform.Function, "Arn")}})}})},
						"DataFormatConversionConfiguration": map[string]any{
							"Enabled": true,
							"InputFormatConfiguration": map[string]any{"Deserializer": map[string]any{
								"HiveJsonSerDe": map[string]any{"TimestampFormats": []any{"millis"}}}},
							"OutputFormatConfiguration": map[string]any{"Serializer": map[string]any{
								"ParquetSerDe": map[string]any{"Compression": "SNAPPY"}}},
							"SchemaConfiguration": map[string]any{
								"DatabaseName": ArchiveDatabaseName(DefaultStage), "TableName": map[string]any{"Ref": *st.GetLogicalId(a.Table)}},
						},
					}})
			})
		}},
		{"transformation function", func(t *testing.T) {
			check(t, func() {
				tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
					"Description": assertions.Match_StringLikeRegexp(jsii.String("archive rows for Firehose")),
					"Timeout":     archiveTransformTimeoutSeconds, "MemorySize": archiveTransformMemoryMiB})
			})
		}},
		{"alarms", func(t *testing.T) {
			for name, metric := range map[string]string{"ArchiveDeliveryFailing": "DeliveryToS3.Success",
				"ArchiveConversionFailed": "FailedConversion.Records", "ArchiveDeliveryStale": "DeliveryToS3.DataFreshness"} {
				if st.Alarms.Alarms[name] == nil {
					t.Errorf("no alarm %s", name)
					continue
				}
				check(t, func() {
					tmpl.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
						"MetricName": metric, "Namespace": "AWS/Firehose",
						"Dimensions": []any{map[string]any{"Name": "DeliveryStreamName", "Value": ref(a.DeliveryStream)}}})
				})
			}
			for _, name := range []string{"ArchiveTransformErrors"} {
				found := false
				for n := range st.Alarms.Alarms {
					found = found || strings.HasPrefix(n, "ArchiveTransform")
				}
				if !found {
					t.Errorf("no %s alarm among %d", name, len(st.Alarms.Alarms))
				}
			}
		}},
		{"outputs", func(t *testing.T) {
			check(t, func() {
				tmpl.HasOutput(jsii.String(OutputArchiveBucketName), map[string]any{"Value": ref(a.Bucket)})
			})
			check(t, func() {
				tmpl.HasOutput(jsii.String(OutputArchiveTable), map[string]any{"Value": "retarget_dev.events"})
			})
		}},
		{"no cdk-nag finding", func(t *testing.T) {
			ann := assertions.Annotations_FromStack(st.Stack)
			check(t, func() { ann.HasNoError(jsii.String("*"), assertions.Match_AnyValue()) })
			check(t, func() { ann.HasNoWarning(jsii.String("*"), assertions.Match_AnyValue()) })
		}},
		{"off by default", func(t *testing.T) {
			for _, typ := range []string{"AWS::KinesisFirehose::DeliveryStream", "AWS::Glue::Table", "AWS::S3::Bucket"} {
				if n := len(resources(typ)); n != 0 {
					t.Errorf("default stack has %d %s", n, typ)
				}
			}
			if testStack.Archive != nil {
				t.Error("default stack has an archive")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestArchiveColumnsMatchTheDoc: the Glue table's columns are the table of
// infra/docs/archive.md, names and types.
func TestArchiveColumnsMatchTheDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/archive.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	start := strings.Index(sec, "| column |")
	if start < 0 {
		t.Fatal("no column table in archive.md")
	}
	sec = sec[start:]
	sec = sec[:strings.Index(sec, "\n\n")]
	name := regexp.MustCompile("`([a-z_]+)`")
	docTypes := map[string]string{}
	for _, line := range strings.Split(sec, "\n")[2:] {
		cells := strings.Split(line, "|")
		typ := strings.TrimSpace(cells[2])
		glue := map[string]string{"int32 / int": "int", "string": "string", "timestamp (ms)": "timestamp", "boolean": "boolean",
			"int64": "bigint", "double": "double", "string (JSON array text)": "string"}
		typ = strings.TrimSuffix(typ, ", optional")
		g, ok := glue[typ]
		if !ok {
			t.Fatalf("archive.md type %q has no Glue type in this test", typ)
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			docTypes[m[1]] = g
		}
	}
	got := map[string]string{}
	for _, c := range ArchiveColumns() {
		got[c.Name] = c.Type
	}
	if !reflect.DeepEqual(got, docTypes) {
		t.Errorf("table columns %v\narchive.md %v", got, docTypes)
	}
}

func TestArchiveInvalidExpiry(t *testing.T) {
	for _, d := range []float64{-1, 1.5} {
		if _, err := resolveProps(&RetargetStackProps{Config: testConfig, ArchiveEnabled: true, ArchiveExpiryDays: d}); err == nil {
			t.Errorf("expiry %v accepted", d)
		}
	}
}

// TestArchiveLifecycleShortExpiry: an expiry within the Standard-IA delay moves nothing.
func TestArchiveLifecycleShortExpiry(t *testing.T) {
	ids := func(rules []*awss3.LifecycleRule) (out []string) {
		for _, r := range rules {
			out = append(out, *r.Id)
		}
		return out
	}
	if got := ids(*archiveLifecycle(30)); !reflect.DeepEqual(got, []string{"uploads", "expiry"}) {
		t.Errorf("expiry 30 days: rules %v", got)
	}
	if got := ids(*archiveLifecycle(0)); !reflect.DeepEqual(got, []string{"uploads", "infrequent-access"}) {
		t.Errorf("no expiry: rules %v", got)
	}
}
