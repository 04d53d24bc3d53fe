package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/retarget-dev/retarget/infra/cmd/devstack/devenv"
)

// endpointsDoc is the endpoints file of what run started (devenv.Endpoints): the same facts
// as the startup summary, for programs. awsCfg is the emulators' config, whose region and
// dummy credentials the file repeats, so a tool or script signs its requests alike.
func endpointsDoc(ctx context.Context, st started, awsCfg aws.Config, logs *logFiles) (*devenv.Endpoints, error) {
	creds, err := awsCfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("emulator credentials: %w", err)
	}
	s := st.Settings
	e := &devenv.Endpoints{
		PID: os.Getpid(), StartedAt: time.Now().UTC().Truncate(time.Second), ConfigFile: s.ConfigFile,
		APIURL: st.APIURL, App: st.App.ID, APIKey: st.Key,
		Region:   awsCfg.Region,
		Kinesis:  devenv.Service{Endpoint: st.KinesisURL, PID: st.KinesisPID},
		DynamoDB: devenv.Service{Endpoint: st.DynamoURL, PID: st.DynamoPID},
		Stream:   s.StreamName, Table: stateTable,
		DeadLetters: filepath.Join(s.LogDir, deadLettersFile),
		Credentials: devenv.Credentials{AWSAccessKeyID: creds.AccessKeyID, AWSSecretAccessKey: creds.SecretAccessKey,
			AdminAccessKeyID: s.AdminAccessKeyID, AdminSecretAccessKey: s.AdminSecretAccessKey, APIRegion: devenv.APIRegion},
		LogDir: s.LogDir, Logs: logs.paths(),
	}
	e.FrontDoor = s.FrontDoor
	if s.FrontDoor == devenv.FrontDoorHTTP {
		e.RateTable = rateTable
	}
	// Only the public stand-ins: a pepper or Meta credentials from the environment stay out.
	if s.DevPepper {
		e.Credentials.Pepper = s.Pepper
	}
	if st.Meta != nil {
		e.MetaCAPIVersion, e.MetaMarketingVersion = st.Meta.CAPIVersion, st.Meta.MarketingVersion
	}
	if st.Meta != nil && st.Meta.Sandbox != nil {
		e.MetaSandboxURL = st.Meta.URL
		e.Credentials.MetaAccessToken, e.Credentials.MetaAppSecret = s.MetaToken, s.MetaSecret
	}
	return e, nil
}

// paths names each log file by what writes it (the endpoints file's "logs").
func (l *logFiles) paths() map[string]string {
	m := map[string]string{}
	for name, f := range map[string]*os.File{"ingest": l.ingest, "forwarder": l.forwarder, "segments": l.segments, "metrics": l.metrics,
		"kinesalite": l.kinesalite, "dynalite": l.dynalite, "esm_failures": l.esmFailures} {
		if f != nil {
			m[name] = f.Name()
		}
	}
	return m
}
