package stack

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsglue"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesisfirehose"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/archive"
)

// ArchiveTransformFunctionName is the transformation's folder under functions/ and under the
// build directory.
const ArchiveTransformFunctionName = "archive-transform"

// Settings of the archive.
const (
	// DefaultArchiveExpiryDays deletes archive files two years after they were written (0:
	// never).
	DefaultArchiveExpiryDays = 730
	// ArchiveInfrequentAccessDays moves files to S3 Standard-IA after 90 days (queries mostly
	// read recent days).
	ArchiveInfrequentAccessDays = 90
	// archiveIAMinObjectBytes: Standard-IA bills every object as at least 128 KiB, so smaller
	// files (a quiet app's partition of one buffer) stay in Standard.
	archiveIAMinObjectBytes = 128 * 1024
	// ArchiveBufferMiB and ArchiveBufferSeconds are the delivery stream's buffer: the largest
	// Firehose takes (1-128 MiB, 0-900 s). Record format conversion and dynamic partitioning
	// both need at least 64 MiB; the largest buffer makes the fewest, largest Parquet files
	// (one per active partition per flush), which is what Athena reads fastest and what the
	// per-object partitioning fee and S3 PUTs charge least for.
	ArchiveBufferMiB     = 128
	ArchiveBufferSeconds = 900
	// ArchiveTableName is the Glue table of the archive; its database is ArchiveDatabaseName.
	ArchiveTableName = "events"
	// ArchiveDataPrefix and ArchiveErrorPrefix are the delivery stream's S3 prefixes: the
	// layout of make dev's archive (app=<app>/day=<YYYY-MM-DD>/), and the error output (records
	// the transformation failed, conversion failures) by kind and UTC day.
	ArchiveDataPrefix  = "app=!{partitionKeyFromLambda:app}/day=!{partitionKeyFromLambda:day}/"
	ArchiveErrorPrefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
	// ArchiveFreshnessAlarmSeconds: the oldest record not yet in S3 should never be older than
	// two buffer intervals.
	ArchiveFreshnessAlarmSeconds = 2 * ArchiveBufferSeconds
	archiveTransformMemoryMiB    = 512
	// archiveTransformTimeoutSeconds: Firehose waits for the transformation up to its timeout
	// (at most 5 minutes); a batch of at most 3 MiB takes well under a second.
	archiveTransformTimeoutSeconds = 60
)

// Glue / Hive names of the Parquet table.
const (
	parquetSerde        = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
	parquetInputFormat  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
	parquetOutputFormat = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
)

// ArchiveProps configures the archive.
type ArchiveProps struct {
	Config       *appconfig.Config
	FunctionsDir string
	// Stream is the event stream Firehose reads.
	Stream awskinesis.IStream
	// Stage names the Glue database (retarget_<stage>).
	Stage string
	// ExpiryDays deletes files this many days after they were written; 0 keeps them forever.
	ExpiryDays float64
	// RemovalPolicy of the bucket and its key; defaults to RETAIN (the archive outlives the
	// stack, like the secrets). DESTROY fails on a bucket that still holds files.
	RemovalPolicy    awscdk.RemovalPolicy
	LogRetention     awslogs.RetentionDays
	LogRemovalPolicy awscdk.RemovalPolicy
}

// Archive is the managed path from the event stream to the analytics archive: a Firehose
// delivery stream reading the stream, transforming each record into its archive row
// (functions/archive-transform), partitioning on the row's app and day and converting to
// Parquet (Snappy) through the Glue table's schema, into an S3 bucket encrypted with the
// archive's own key. The Glue table projects its partitions, so Athena reads new days without a
// crawler.
type Archive struct {
	constructs.Construct
	Bucket         awss3.Bucket
	Key            awskms.Key
	Database       awsglue.CfnDatabase
	Table          awsglue.CfnTable
	Transform      *GoFunction
	DeliveryStream awskinesisfirehose.DeliveryStream
	// DatabaseName and TableName name the Glue table (Athena: <database>.<table>).
	DatabaseName, TableName string
}

// ArchiveDatabaseName is the Glue database of a stage: Glue names take lowercase letters,
// digits and underscores.
func ArchiveDatabaseName(stage string) string {
	return "retarget_" + strings.ReplaceAll(stage, "-", "_")
}

// NewArchive declares the bucket, its key, the Glue database and table, the transformation
// function and the delivery stream.
func NewArchive(scope constructs.Construct, id string, props *ArchiveProps) *Archive {
	if props == nil || props.Config == nil || props.FunctionsDir == "" || props.Stream == nil || props.Stage == "" {
		panic(errors.New("archive: Config, FunctionsDir, Stream and Stage are required"))
	}
	if d := props.ExpiryDays; d < 0 || d != math.Trunc(d) {
		panic(fmt.Errorf("archive: expiry days %v must be a whole number (0: never)", d))
	}
	removal := props.RemovalPolicy
	if removal == "" {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	c := constructs.NewConstruct(scope, jsii.String(id))

	key := awskms.NewKey(c, jsii.String("Key"), &awskms.KeyProps{
		Description:       jsii.String("Encrypts the event archive's files"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     removal,
	})
	bucket := awss3.NewBucket(c, jsii.String("Bucket"), &awss3.BucketProps{
		Encryption:    awss3.BucketEncryption_KMS,
		EncryptionKey: key,
		// One data key per bucket and period instead of one KMS call per object.
		BucketKeyEnabled:  jsii.Bool(true),
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		// Unversioned: Firehose never overwrites a file (each name is unique), and a rewrite
		// that removes an erased user's rows must not leave the old file behind as a version.
		Versioned:       jsii.Bool(false),
		ObjectOwnership: awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		LifecycleRules:  archiveLifecycle(props.ExpiryDays),
		RemovalPolicy:   removal,
	})
	// CloudFormation types ObjectSizeGreaterThan as a string (CDK writes a number, which
	// CloudFormation would coerce with a validation warning).
	for i, r := range *archiveLifecycle(props.ExpiryDays) {
		if r.ObjectSizeGreaterThan != nil {
			bucket.Node().DefaultChild().(awss3.CfnBucket).AddPropertyOverride(
				jsii.String(fmt.Sprintf("LifecycleConfiguration.Rules.%d.ObjectSizeGreaterThan", i)), jsii.String(fmt.Sprint(*r.ObjectSizeGreaterThan)))
		}
	}
	suppress(bucket, false, nagRule{"AwsSolutions-S1", nil,
		"Only the stack's delivery stream writes the archive and Athena reads it under IAM; object-level access is audited with CloudTrail data events where an account enables them, and a log bucket would need its own logs"})

	dbName := ArchiveDatabaseName(props.Stage)
	db := awsglue.NewCfnDatabase(c, jsii.String("Database"), &awsglue.CfnDatabaseProps{
		CatalogId: awscdk.Aws_ACCOUNT_ID(),
		DatabaseInput: &awsglue.CfnDatabase_DatabaseInputProperty{
			Name:        jsii.String(dbName),
			Description: jsii.String("retarget: the event archive"),
		},
	})
	table := awsglue.NewCfnTable(c, jsii.String("Table"), &awsglue.CfnTableProps{
		CatalogId:    awscdk.Aws_ACCOUNT_ID(),
		DatabaseName: jsii.String(dbName),
		TableInput: &awsglue.CfnTable_TableInputProperty{
			Name:        jsii.String(ArchiveTableName),
			Description: jsii.String("One row per accepted event (infra/docs/archive.md); keep one row per (app, event_id)"),
			TableType:   jsii.String("EXTERNAL_TABLE"),
			Parameters:  archiveTableParameters(props.Config, bucket.BucketName(), props.ExpiryDays),
			PartitionKeys: &[]any{
				&awsglue.CfnTable_ColumnProperty{Name: jsii.String("app"), Type: jsii.String("string")},
				&awsglue.CfnTable_ColumnProperty{Name: jsii.String("day"), Type: jsii.String("string")},
			},
			StorageDescriptor: &awsglue.CfnTable_StorageDescriptorProperty{
				Columns:      archiveGlueColumns(),
				Location:     jsii.String("s3://" + *bucket.BucketName() + "/"),
				InputFormat:  jsii.String(parquetInputFormat),
				OutputFormat: jsii.String(parquetOutputFormat),
				Compressed:   jsii.Bool(true),
				SerdeInfo: &awsglue.CfnTable_SerdeInfoProperty{
					SerializationLibrary: jsii.String(parquetSerde),
					Parameters:           map[string]any{"serialization.format": "1"},
				},
			},
		},
	})
	table.Node().AddDependency(db)

	fn := NewGoFunction(c, "Transform", &GoFunctionProps{
		FunctionsDir: props.FunctionsDir,
		Name:         ArchiveTransformFunctionName,
		Config:       props.Config,
		Description:  "Turns the event stream's records into archive rows for Firehose (Parquet, partitioned by app and day)",
		MemoryMiB:    archiveTransformMemoryMiB,
		Timeout:      awscdk.Duration_Seconds(jsii.Number(archiveTransformTimeoutSeconds)),
		NoAsyncDeadLetters: "Firehose invokes the transformation synchronously; records it cannot transform " +
			"are written under the archive's error prefix",
		LogRetention:     props.LogRetention,
		LogRemovalPolicy: props.LogRemovalPolicy,
	})

	destination := awskinesisfirehose.NewS3Bucket(bucket, &awskinesisfirehose.S3BucketProps{
		BufferingInterval: awscdk.Duration_Seconds(jsii.Number(ArchiveBufferSeconds)),
		BufferingSize:     awscdk.Size_Mebibytes(jsii.Number(ArchiveBufferMiB)),
		DataOutputPrefix:  jsii.String(ArchiveDataPrefix),
		ErrorOutputPrefix: jsii.String(ArchiveErrorPrefix),
		EncryptionKey:     key,
		FileExtension:     jsii.String(".parquet"),
		Processors: &[]awskinesisfirehose.IDataProcessor{awskinesisfirehose.NewLambdaFunctionProcessor(fn.Function, &awskinesisfirehose.DataProcessorProps{
			// Firehose hands the function up to 3 MiB per call (its maximum; the function's
			// payload limit is 6 MiB both ways) every 60 s at most.
			BufferSize:     awscdk.Size_Mebibytes(jsii.Number(3)),
			BufferInterval: awscdk.Duration_Seconds(jsii.Number(60)),
			Retries:        jsii.Number(3),
		})},
		DynamicPartitioning: &awskinesisfirehose.DynamicPartitioningProps{Enabled: jsii.Bool(true)},
		DataFormatConversion: &awskinesisfirehose.DataFormatConversionProps{
			SchemaConfiguration: awskinesisfirehose.SchemaConfiguration_FromCfnTable(table, nil),
			// event_time and received_at are epoch milliseconds in the transformation's JSON.
			InputFormat: awskinesisfirehose.NewHiveJsonInputFormat(&awskinesisfirehose.HiveJsonInputFormatProps{
				TimestampParsers: &[]awskinesisfirehose.TimestampParser{awskinesisfirehose.TimestampParser_EPOCH_MILLIS()},
			}),
			OutputFormat: awskinesisfirehose.NewParquetOutputFormat(&awskinesisfirehose.ParquetOutputFormatProps{
				Compression: awskinesisfirehose.ParquetCompression_SNAPPY(),
			}),
		},
	})
	delivery := awskinesisfirehose.NewDeliveryStream(c, jsii.String("DeliveryStream"), &awskinesisfirehose.DeliveryStreamProps{
		Source:      awskinesisfirehose.NewKinesisStreamSource(props.Stream),
		Destination: destination,
	})
	suppress(delivery, false, nagRule{"AwsSolutions-KDF1", nil,
		"The source is the event stream, encrypted at rest; Firehose does not take its own server-side encryption on a Kinesis stream source, and the files are encrypted with the archive's key"})
	suppress(delivery, true, nagRule{"AwsSolutions-IAM5", []string{
		"/^Action::s3:(Abort|DeleteObject|GetBucket|GetObject|List)\\*$/", "/^Resource::<Archive[A-Za-z]*Bucket[0-9A-F]+\\.Arn>\\/\\*$/",
		"/^Action::kms:(GenerateDataKey|ReEncrypt)\\*$/",
	}, "Firehose's S3 destination writes, lists and cleans up objects of any name under the archive bucket only, with the archive's key only (the grants the Firehose construct makes for its destination)"},
		nagRule{"AwsSolutions-IAM5", []string{"Resource::*"},
			"glue:GetSchemaVersion only, which the Firehose construct grants for a schema registry; it reads nothing here (the schema is the Glue table, granted by ARN)"},
		nagRule{"AwsSolutions-IAM5", []string{"/^Resource::<Archive[A-Za-z]*TransformFunction[0-9A-F]+\\.Arn>:\\*$/"},
			"Firehose may invoke any version of the archive's transformation function, and no other function"})
	// The Firehose construct adds a map of Firehose's CIDR blocks to the stack for the
	// destinations that reach into a VPC or Redshift; an S3 destination never reads it, and
	// CloudFormation's validation warns about an unused mapping.
	awscdk.Stack_Of(c).Node().TryRemoveChild(jsii.String("awscdkawskinesisfirehoseCidrBlocks"))
	return &Archive{Construct: c, Bucket: bucket, Key: key, Database: db, Table: table, Transform: fn,
		DeliveryStream: delivery, DatabaseName: dbName, TableName: ArchiveTableName}
}

// archiveLifecycle: Standard-IA after ArchiveInfrequentAccessDays (files of at least 128 KiB),
// expiry after expiryDays (0: never), and unfinished uploads cleaned after a week. Separate
// rules: S3 takes no upload cleanup in a rule filtered on object size, and the size filter of
// the transition must not spare small files from the expiry.
func archiveLifecycle(expiryDays float64) *[]*awss3.LifecycleRule {
	rules := []*awss3.LifecycleRule{{
		Id:                                  jsii.String("uploads"),
		AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(7)),
	}}
	if expiryDays == 0 || expiryDays > ArchiveInfrequentAccessDays {
		rules = append(rules, &awss3.LifecycleRule{
			Id: jsii.String("infrequent-access"),
			Transitions: &[]*awss3.Transition{{
				StorageClass:    awss3.StorageClass_INFREQUENT_ACCESS(),
				TransitionAfter: awscdk.Duration_Days(jsii.Number(ArchiveInfrequentAccessDays)),
			}},
			ObjectSizeGreaterThan: jsii.Number(archiveIAMinObjectBytes),
		})
	}
	if expiryDays > 0 {
		rules = append(rules, &awss3.LifecycleRule{Id: jsii.String("expiry"), Expiration: awscdk.Duration_Days(jsii.Number(expiryDays))})
	}
	return &rules
}

// archiveTableParameters: Parquet, and partition projection (app from the config's app ids,
// day a date within the expiry), so Athena finds the partitions without a crawler or
// MSCK REPAIR.
func archiveTableParameters(cfg *appconfig.Config, bucketName *string, expiryDays float64) map[string]any {
	ids := make([]string, 0, len(cfg.Apps))
	for _, a := range cfg.Apps {
		ids = append(ids, a.ID)
	}
	sort.Strings(ids)
	dayRange := "NOW-10YEARS,NOW"
	if expiryDays > 0 {
		dayRange = fmt.Sprintf("NOW-%.0fDAYS,NOW", expiryDays)
	}
	return map[string]any{
		"classification":               "parquet",
		"parquet.compression":          "SNAPPY",
		"projection.enabled":           "true",
		"projection.app.type":          "enum",
		"projection.app.values":        strings.Join(ids, ","),
		"projection.day.type":          "date",
		"projection.day.format":        "yyyy-MM-dd",
		"projection.day.range":         dayRange,
		"projection.day.interval":      "1",
		"projection.day.interval.unit": "DAYS",
		"storage.location.template":    "s3://" + *bucketName + "/app=${app}/day=${day}/",
	}
}

// GlueColumn is one column of the archive table.
type GlueColumn struct{ Name, Type string }

// ArchiveColumns are the archive table's columns, in file order: archive.Row's Parquet
// columns (the files make dev writes), with the Glue type of each Go type. The partition keys
// are not among them.
func ArchiveColumns() []GlueColumn {
	t := reflect.TypeOf(archive.Row{})
	var cols []GlueColumn
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("parquet"), ",")
		if tag[0] == "-" || tag[0] == "" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		var typ string
		switch ft.Kind() {
		case reflect.String:
			typ = "string"
		case reflect.Int32:
			typ = "int"
		case reflect.Int64:
			typ = "bigint"
			for _, o := range tag[1:] {
				if strings.HasPrefix(o, "timestamp") {
					typ = "timestamp"
				}
			}
		case reflect.Float64:
			typ = "double"
		case reflect.Bool:
			typ = "boolean"
		default:
			panic(fmt.Errorf("archive: column %s has Go type %s, which has no Glue type here", tag[0], ft))
		}
		cols = append(cols, GlueColumn{tag[0], typ})
	}
	return cols
}

func archiveGlueColumns() *[]any {
	cols := ArchiveColumns()
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = &awsglue.CfnTable_ColumnProperty{Name: jsii.String(c.Name), Type: jsii.String(c.Type)}
	}
	return &out
}

// archiveAlarms: deliveries to S3 failing, records failing the Parquet conversion, and the
// oldest record waiting longer than two buffer intervals (a stuck delivery).
func archiveAlarms(c constructs.Construct, a *Archive, period awscdk.Duration, add func(name string, alarm awscloudwatch.Alarm)) {
	metric := func(name, stat string) awscloudwatch.Metric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String("AWS/Firehose"),
			MetricName:    jsii.String(name),
			DimensionsMap: &map[string]*string{"DeliveryStreamName": a.DeliveryStream.DeliveryStreamName()},
			Statistic:     jsii.String(stat),
			Period:        period,
		})
	}
	alarm := func(name, description string, m awscloudwatch.IMetric, threshold float64, op awscloudwatch.ComparisonOperator) {
		add(name, awscloudwatch.NewAlarm(c, jsii.String(name), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(description),
			Metric:             m,
			Threshold:          jsii.Number(threshold),
			ComparisonOperator: op,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		}))
	}
	alarm("ArchiveDeliveryFailing", "Firehose failed to put archive files into S3 (DeliveryToS3.Success below 1): check the bucket, its key and the delivery stream's role; Firehose retries for 24 hours, the stream keeps records for its retention",
		metric("DeliveryToS3.Success", "Minimum"), 1, awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD)
	alarm("ArchiveConversionFailed", "Archive records failed the Parquet conversion: they are under errors/format-conversion-failed/ in the archive bucket",
		metric("FailedConversion.Records", "Sum"), 0, awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD)
	alarm("ArchiveDeliveryStale", fmt.Sprintf("The oldest event not yet archived is older than %d seconds (two buffer intervals): the delivery stream is stuck or failing", ArchiveFreshnessAlarmSeconds),
		metric("DeliveryToS3.DataFreshness", "Maximum"), ArchiveFreshnessAlarmSeconds, awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD)
}
